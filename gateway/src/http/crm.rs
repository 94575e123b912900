//! `/crm/…`: the CRM pass-through. `/crm/config` sets and shows a
//! project's upstream (master key); everything else below `/crm/` is
//! forwarded to it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::Deserialize;
use serde_json::json;

use super::request::{json, key_from, read_body};
use super::{ApiError, ApiResult, AppState, json_response};
use crate::crm::{Arrived, CrmError, Forward, Outgoing};
use crate::metadata::{CrmUpstream, KeyKind};
use crate::plugin::crm::CrmCaller;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigBody {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

impl From<CrmError> for ApiError {
    fn from(e: CrmError) -> Self {
        match e {
            CrmError::Metadata(e) => e.into(),
            e => ApiError::new(e.status(), e.to_string()),
        }
    }
}

/// The upstream as answered: header names only, never their values.
fn shown(u: &CrmUpstream) -> serde_json::Value {
    let names: Vec<&str> = u.headers.iter().map(|(n, _)| n.as_str()).collect();
    json!({"url": u.url, "headers": names, "timeout_ms": u.timeout_ms})
}

/// `POST /crm/config` (sets) and `GET /crm/config` (shows).
pub async fn config(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let project = app.authorize(key_from(&headers, uri.query(), "master_key"), &[KeyKind::Master]).await?;
    if method == Method::GET {
        let upstream = app.crm.upstream(&project).await?;
        return Ok(json_response(StatusCode::OK, &shown(&upstream)));
    }
    let http = &app.config.http;
    let bytes = read_body(&headers, body, http.max_body_bytes, "", http.body_timeout_ms).await?;
    let req: ConfigBody = json(&bytes)?;
    let timeout_ms = app.crm.check(&req.url, req.timeout_ms)?;
    let mut pairs = Vec::with_capacity(req.headers.len());
    for (name, value) in req.headers {
        let name = name.to_ascii_lowercase();
        if http::HeaderName::try_from(name.as_str()).is_err() || http::HeaderValue::try_from(value.as_str()).is_err() {
            return Err(ApiError::bad_request(format!("header {name:?} is not a valid HTTP header")));
        }
        pairs.push((name, value));
    }
    let upstream = CrmUpstream { url: req.url, headers: pairs, timeout_ms };
    app.store.save_crm_upstream(&project, &upstream, app.now_ms()).await?;
    Ok(json_response(StatusCode::OK, &shown(&upstream)))
}

/// Any method on `/crm/<path>`: forwarded to the project's upstream. Reads
/// (GET, HEAD) take a read or master key, everything else a write or
/// master key.
pub async fn forward(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let kinds: &[KeyKind] = if method == Method::GET || method == Method::HEAD {
        &[KeyKind::Read, KeyKind::Master]
    } else {
        &[KeyKind::Write, KeyKind::Master]
    };
    // The key as given, of whichever kind: one that may not do this is
    // refused (403), no key at all is 401.
    let given = KeyKind::ALL.iter().find_map(|k| key_from(&headers, uri.query(), k.name()).map(|key| (key, k.name())));
    let project = match &given {
        Some((key, name)) => app.authorize_as(Some(key.clone()), kinds, name).await?,
        None => app.authorize(None, kinds).await?,
    };
    let upstream = app.crm.upstream(&project).await?;
    // As sent, not percent-decoded: `%2F` and `%3F` stay what they were.
    let path = uri.path().strip_prefix("/crm/").unwrap_or_default().to_owned();
    let hooks = app.plugins.project(&project).filter(|set| !set.crm_hooks.is_empty());
    let timeout = app.config.http.body_timeout_ms;
    let answer = match hooks {
        Some(set) => {
            // Hooks see the body whole: read it within the hooks' cap.
            let cap = app.crm.hook_body_bytes();
            let body = read_body(&headers, body, cap, " (crm.hook_body_bytes)", timeout).await?;
            // The key's own kind, whichever name it was given under.
            let stored = match &given {
                Some((key, _)) => app.keys.lookup(key).await?,
                None => None,
            };
            let caller = CrmCaller {
                project,
                key_kind: stored.map_or(KeyKind::Read, |k| k.kind),
                client_address: Some(app.client_ip(&headers, peer).to_string()),
            };
            let arrived = Arrived { method, path, query: uri.query().map(str::to_owned), headers, body };
            app.crm.forward_hooked(&app.plugins, &set, &caller, &upstream, arrived).await?
        }
        None => {
            let cap = app.config.crm.max_body_bytes;
            let declared =
                headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
            if declared.is_some_and(|n| n > cap) {
                // Read (and drop) what the client sends, so that it gets the
                // 413 rather than a reset connection.
                return Err(read_body(&headers, body, cap, " (crm.max_body_bytes)", timeout)
                    .await
                    .err()
                    .unwrap_or_else(|| CrmError::RequestTooLarge { cap, setting: "crm.max_body_bytes" }.into()));
            }
            let query = uri.query().map(str::to_owned);
            let request = Forward { method, path, query, headers, body: Outgoing::Stream(body) };
            app.crm.forward(&upstream, request).await?
        }
    };
    let mut response = (answer.status, answer.body).into_response();
    *response.headers_mut() = answer.headers;
    Ok(response)
}
