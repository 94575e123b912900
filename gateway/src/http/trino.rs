//! The Trino client protocol: `/v1/statement`, its pages, cancelling, and
//! `/v1/info`. A project's read key is the password of HTTP Basic (any
//! user) or the `read_key` header; the project is schema `<project>` of
//! catalog `weir`.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use serde_json::json;

use super::request::{header_str, key_from, query_param, read_body};
use super::{ApiError, AppState, json_response};
use crate::metadata::KeyKind;
use crate::plugin::rewrite::QueryCaller;
use crate::query::trino::Session;
use crate::query::trino::statements::PageError;

const TRINO: &str = "X-Trino-";
const PRESTO: &str = "X-Presto-";

/// The read key: Basic's password, else the `read_key` header.
fn read_key(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let basic = header_str(headers, header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|d| d.split_once(':').map(|(_, password)| password.to_owned()))
        .filter(|p| !p.is_empty());
    basic.or_else(|| key_from(headers, uri.query(), "read_key"))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::unauthorized(message)
}

/// The caller, by its read key; 401 (with a Basic challenge) without a
/// valid one.
async fn caller(app: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<QueryCaller, Response> {
    let challenge = |e: ApiError| {
        let mut response = e.into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Weir\""));
        response
    };
    let key = read_key(headers, uri).ok_or_else(|| {
        challenge(unauthorized("the read key is missing: send it as the password of HTTP Basic or as read_key"))
    })?;
    let project = app
        .keys
        .project_of(&key, &[KeyKind::Read])
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(|| challenge(unauthorized("the read key is invalid")))?;
    Ok(QueryCaller { project, key_kind: KeyKind::Read, attributes: super::plugin::attributes(headers) })
}

/// The client's session headers, `X-Trino-*` or `X-Presto-*`.
fn session(headers: &HeaderMap) -> Session {
    let presto = headers.keys().any(|k| k.as_str().starts_with("x-presto-"))
        && !headers.keys().any(|k| k.as_str().starts_with("x-trino-"));
    let prefix = if presto { PRESTO } else { TRINO };
    let named = |name: &str| {
        let full = format!("{}{name}", prefix.to_ascii_lowercase());
        headers.get_all(full.as_str()).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect::<Vec<_>>()
    };
    let mut prepared = HashMap::new();
    for value in named("prepared-statement") {
        for pair in value.split(',') {
            if let Some((name, sql)) = pair.split_once('=') {
                let decode =
                    |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
                if let (Some(name), Some(sql)) = (decode(name.trim()), decode(sql.trim())) {
                    prepared.insert(name, sql);
                }
            }
        }
    }
    Session { prefix, user: named("user").pop().unwrap_or_default(), prepared }
}

/// Where this gateway is, as the client reached it.
fn base(headers: &HeaderMap) -> String {
    let host = header_str(headers, header::HOST).unwrap_or("127.0.0.1");
    let scheme =
        headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).filter(|s| *s == "https").unwrap_or("http");
    format!("{scheme}://{host}")
}

/// `POST /v1/statement`: starts a statement; the answer is queued, with
/// the `nextUri` to read it from.
pub async fn start(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let caller = match caller(&app, &headers, &uri).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let limit = app.config.http.max_body_bytes;
    let sql = match read_body(&headers, body, limit, "", app.config.http.body_timeout_ms).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return e.into_response(),
    };
    if sql.trim().is_empty() {
        return ApiError::bad_request("SQL statement is empty").into_response();
    }
    match app.trino.start(app.clone(), caller, session(&headers), sql) {
        Ok(statement) => json_response(StatusCode::OK, &statement.queued(&base(&headers))),
        Err(e) => ApiError { retry_after: Some(1), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()) }
            .into_response(),
    }
}

/// `GET /v1/statement/{queued|executing}/{id}/{slug}/{token}`: the page.
pub async fn page(
    State(app): State<AppState>,
    Path((_, id, slug, token)): Path<(String, String, String, u64)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let caller = match caller(&app, &headers, &uri).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let Some(statement) = app.trino.get(&id).filter(|s| s.project == caller.project && s.slug_is(&slug)) else {
        return not_found(&id);
    };
    let config = app.trino.config();
    let wait = query_param(uri.query(), "maxWait")
        .and_then(|w| parse_duration(&w))
        .unwrap_or(Duration::from_millis(config.max_wait_ms))
        .min(Duration::from_millis(config.max_wait_ms));
    match statement.page(&base(&headers), token, wait, config.page_bytes).await {
        Ok(answer) => {
            let mut response = json_response(StatusCode::OK, &answer.body);
            for (name, value) in answer.headers {
                if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                    response.headers_mut().append(name, value);
                }
            }
            response
        }
        Err(PageError::Gone) => {
            ApiError::new(StatusCode::GONE, format!("token {token} of query {id} is gone")).into_response()
        }
    }
}

/// `DELETE` on a `nextUri`, and `DELETE /v1/query/{id}`: cancels.
pub async fn cancel_page(
    State(app): State<AppState>,
    Path((_, id, _, _)): Path<(String, String, String, u64)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    cancel_statement(&app, &id, &uri, &headers).await
}

pub async fn cancel_query(
    State(app): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    cancel_statement(&app, &id, &uri, &headers).await
}

async fn cancel_statement(app: &AppState, id: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    let caller = match caller(app, headers, uri).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    if app.trino.cancel(id, &caller.project) { StatusCode::NO_CONTENT.into_response() } else { not_found(id) }
}

/// `GET /v1/query/{id}`: the statement's state.
pub async fn query_info(State(app): State<AppState>, Path(id): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let caller = match caller(&app, &headers, &uri).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    match app.trino.get(&id).filter(|s| s.project == caller.project) {
        Some(statement) => json_response(StatusCode::OK, &statement.info(&base(&headers))),
        None => not_found(&id),
    }
}

/// `GET /v1/info`: what clients check before connecting.
pub async fn info(State(app): State<AppState>) -> Response {
    let uptime = app.started.elapsed().as_secs_f64();
    json_response(
        StatusCode::OK,
        &json!({
            "nodeVersion": {"version": env!("CARGO_PKG_VERSION")},
            "environment": "weir",
            "coordinator": true,
            "starting": false,
            "uptime": format!("{:.2}m", uptime / 60.0),
        }),
    )
}

fn not_found(id: &str) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, format!("Query not found: {id}")).into_response()
}

/// A duration as Trino writes it (`1s`, `500ms`, `1.5m`).
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let seconds = match unit {
        "ns" => number / 1e9,
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_keys_come_from_either_protocol_s_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-presto-user", HeaderValue::from_static("ana"));
        headers.insert("x-presto-prepared-statement", HeaderValue::from_static("st1=SELECT+%3F,st2=SELECT+2"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic YW5hOnNlY3JldA=="));
        let s = session(&headers);
        assert_eq!(s.prefix, PRESTO);
        assert_eq!(s.user, "ana");
        assert_eq!(s.prepared.get("st1").map(String::as_str), Some("SELECT ?"));
        assert_eq!(s.prepared.len(), 2);
        assert_eq!(read_key(&headers, &Uri::from_static("/v1/statement")).as_deref(), Some("secret"));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("soon"), None);
    }
}
