//! Snowplow's collector endpoints: `POST /com.snowplowanalytics.snowplow/tp2`
//! and `GET /i`, under `/snowplow/<write key>/` or at the root.
//!
//! The tracker protocol carries no key: a tracker pointed at
//! `/snowplow/<write key>` (its collector URL's path) names the project;
//! at the root, the events' app id (`aid`) must be a write key.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri};
use serde_json::{Map, Value as Json};

use super::event::{bounded_query, context, pixel_response};
use super::{ApiError, ApiResult, AppState, sdk_body};
use crate::ingest::sdk::{self, Message, snowplow};
use crate::metadata::KeyKind;

pub async fn post_keyed(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    post(app, peer, Some(key), headers, body).await
}

pub async fn post_root(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    post(app, peer, None, headers, body).await
}

pub async fn get_keyed(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    get(app, peer, Some(key), uri, headers).await
}

pub async fn get_root(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    get(app, peer, None, uri, headers).await
}

async fn post(
    app: AppState,
    peer: SocketAddr,
    key: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let received = app.now_ms();
    let bytes = sdk_body(&app, &headers, body).await?;
    let json: Json =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let key = key.or_else(|| snowplow::app_id(&json));
    let project = app.authorize_as(key, &[KeyKind::Write, KeyKind::Master], "the write key").await?;
    let messages = snowplow::parse_post(json, received).map_err(ApiError::bad_request)?;
    deliver(&app, project, &headers, peer, received, messages).await?;
    Ok((StatusCode::OK, "ok").into_response())
}

async fn get(
    app: AppState,
    peer: SocketAddr,
    key: Option<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let received = app.now_ms();
    let query = bounded_query(&app, &uri)?;
    let params: Map<String, Json> =
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), Json::String(v.into_owned()))).collect();
    let key = key.or_else(|| params.get("aid").and_then(Json::as_str).map(str::to_owned));
    let project = app.authorize_as(key, &[KeyKind::Write, KeyKind::Master], "the write key").await?;
    let messages = snowplow::parse_params(params, received).map_err(ApiError::bad_request)?;
    deliver(&app, project, &headers, peer, received, messages).await?;
    Ok(pixel_response())
}

async fn deliver(
    app: &AppState,
    project: String,
    headers: &HeaderMap,
    peer: SocketAddr,
    received: i64,
    messages: Vec<Message>,
) -> ApiResult<()> {
    let ctx = context(app, project, None, headers, peer, received)?;
    sdk::deliver(&app.ingest, &app.users, &ctx, messages).await?;
    Ok(())
}
