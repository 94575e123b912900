//! PostHog's capture API: `/batch/` from its server SDKs, and `/capture/`,
//! `/e/` and `/i/v0/e/` from its browser SDK (JSON, gzip by header or by
//! `?compression=gzip-js`, or a form's base64 `data`).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};

use super::event::context;
use super::request::{decoded, header_str, query_param, read_body};
use super::{ApiError, ApiResult, AppState, json_response};
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
    let limits = &app.config.http;
    let bytes = read_body(&headers, body, limits.sdk_max_bytes, "", limits.body_timeout_ms).await?;
    let query = uri.query();
    // posthog-js marks its gzip with `?compression=gzip-js`, or (newer
    // releases) not at all: gzip's magic bytes tell, as no JSON starts so.
    let marked = matches!(query_param(query, "compression").as_deref(), Some("gzip-js" | "gzip"));
    let gzip_unlabelled =
        (marked || bytes.starts_with(&[0x1f, 0x8b])) && header_str(&headers, header::CONTENT_ENCODING).is_none();
    let bytes = if gzip_unlabelled {
        let mut gzip = HeaderMap::new();
        gzip.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        decoded(&gzip, bytes, limits.sdk_max_bytes)?
    } else {
        decoded(&headers, bytes, limits.sdk_max_bytes)?
    };
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
