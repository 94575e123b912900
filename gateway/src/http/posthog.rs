//! PostHog's capture API: `/batch/` from its server SDKs, and `/capture/`,
//! `/e/` and `/i/v0/e/` from its browser SDK (JSON, gzip labelled or not,
//! or a form's base64 `data`).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri, header};

use super::event::context;
use super::request::{header_str, query_param};
use super::{ApiError, ApiResult, AppState, json_response, sdk_body};
use crate::ingest::sdk::{self, posthog};
use crate::metadata::KeyKind;

pub async fn capture(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let received = app.now_ms();
    // posthog-js's gzip (`?compression=gzip-js`, or no label at all in
    // newer releases) is told by its magic bytes.
    let bytes = sdk_body(&app, &headers, body).await?;
    let query = uri.query();
    let json = match query_param(query, "data") {
        // A GET (an image beacon) carries its events in the query.
        Some(data) if bytes.is_empty() => form_data(data)?,
        _ => body_json(&headers, &bytes)?,
    };
    let key = posthog::api_key(&json).or_else(|| query_param(query, "token")).or_else(|| query_param(query, "api_key"));
    let project = app.authorize_as(key, &[KeyKind::Write, KeyKind::Master], "api_key").await?;
    let messages = posthog::parse(json, received).map_err(ApiError::bad_request)?;
    let ctx = context(&app, project, None, &headers, peer, received)?;
    sdk::deliver(&app.ingest, &app.users, &ctx, messages).await?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({"status": 1})))
}

/// The events as JSON: the body, or a form's `data` (JSON, or base64 of it).
fn body_json(headers: &HeaderMap, bytes: &Bytes) -> ApiResult<serde_json::Value> {
    let form =
        header_str(headers, header::CONTENT_TYPE).is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let bad = |e: &dyn std::fmt::Display| ApiError::bad_request(format!("invalid JSON body: {e}"));
    if form && !bytes.starts_with(b"{") && !bytes.starts_with(b"[") {
        let data = form_urlencoded::parse(bytes).find(|(k, _)| k == "data").map(|(_, v)| v.into_owned());
        return form_data(data.ok_or_else(|| ApiError::bad_request("the form has no data field"))?);
    }
    serde_json::from_slice(bytes).map_err(|e| bad(&e))
}

/// A form's `data`: JSON, or base64 of it.
fn form_data(data: String) -> ApiResult<serde_json::Value> {
    use base64::Engine;
    let text = if data.trim_start().starts_with(['{', '[']) {
        data.into_bytes()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| ApiError::bad_request(format!("data is neither JSON nor base64: {e}")))?
    };
    serde_json::from_slice(&text).map_err(|e| ApiError::bad_request(format!("invalid JSON in data: {e}")))
}
