//! Segment's tracking API, as Segment's and RudderStack's SDKs send it:
//! `POST /v1/batch` and `/v1/track|identify|page|screen|group|alias`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};

use super::event::context;
use super::request::{basic_user, utf8};
use super::{ApiError, ApiResult, AppState, sdk_body, success};
use crate::ingest::sdk::{self, segment};
use crate::metadata::KeyKind;

/// `POST /v1/<call>`: a batch, or one call.
pub async fn receive(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let endpoint =
        segment::Endpoint::of(&call).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such endpoint"))?;
    let received = app.now_ms();
    let bytes = sdk_body(&app, &headers, body).await?;
    let body = endpoint.read(utf8(&bytes)?).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    // The key is checked before the body's faults are told.
    let key = basic_user(&headers).or_else(|| body.write_key());
    let project = app.authorize_as(key, &[KeyKind::Write, KeyKind::Master], "the write key").await?;
    let messages = body.messages(received).map_err(ApiError::bad_request)?;
    let ctx = context(&app, project, None, &headers, peer, received)?;
    sdk::deliver(&app.ingest, &app.users, &ctx, messages).await?;
    Ok(success())
}
