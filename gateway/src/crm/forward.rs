//! Forwarding one request to a project's upstream, streaming both ways
//! within the size cap and the upstream's time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{HeaderMap, HeaderName, Method, StatusCode};

use super::CrmConfig;
use crate::metadata::{CrmUpstream, MetadataStore};
use crate::plugin::crm::HookStop;

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("this project has no CRM upstream; configure one with /crm/config")]
    NotConfigured,
    #[error("{0}")]
    Invalid(String),
    #[error("the request body is larger than {cap} bytes ({setting})")]
    RequestTooLarge { cap: usize, setting: &'static str },
    #[error("the CRM upstream cannot be reached: {0}")]
    Unreachable(String),
    #[error("the CRM upstream did not answer within {0} ms")]
    Timeout(u64),
    #[error("the CRM upstream's answer is larger than {cap} bytes ({setting})")]
    AnswerTooLarge { cap: usize, setting: &'static str },
    #[error(transparent)]
    Hook(#[from] HookStop),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::Error),
}

impl CrmError {
    pub fn status(&self) -> StatusCode {
        match self {
            CrmError::NotConfigured => StatusCode::NOT_FOUND,
            CrmError::Invalid(_) => StatusCode::BAD_REQUEST,
            CrmError::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            CrmError::Unreachable(_) | CrmError::AnswerTooLarge { .. } => StatusCode::BAD_GATEWAY,
            CrmError::Hook(stop) => StatusCode::from_u16(stop.status()).unwrap_or(StatusCode::FORBIDDEN),
            CrmError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            CrmError::Metadata(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Headers that describe one connection, not the message: never forwarded.
pub(super) const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The project's keys, never passed on.
pub(super) const KEYS: [&str; 3] = ["master_key", "read_key", "write_key"];

/// One request to forward.
pub struct Forward {
    pub method: Method,
    /// Below `/crm/`, without a leading `/`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Outgoing,
}

/// A forwarded request's body.
pub enum Outgoing {
    /// Passed on as it arrives.
    Stream(axum::body::Body),
    /// Read already (and sent with its length).
    Whole(Bytes),
}

/// An answer to stream back.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: axum::body::Body,
}

pub struct Crm {
    client: reqwest::Client,
    store: Arc<dyn MetadataStore>,
    pub(super) config: CrmConfig,
}

impl Crm {
    pub fn new(store: Arc<dyn MetadataStore>, config: CrmConfig) -> Self {
        // No redirects: an upstream's redirect goes back to the caller.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Crm { client, store, config }
    }

    /// Checks an upstream's configuration.
    pub fn check(&self, url: &str, timeout_ms: Option<u64>) -> Result<u64, CrmError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| CrmError::Invalid(format!("url {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(CrmError::Invalid(format!("url {url:?} must be http:// or https:// with a host")));
        }
        let max = self.config.max_timeout_ms;
        match timeout_ms {
            None => Ok(max),
            Some(ms) if ms > 0 && ms <= max => Ok(ms),
            Some(ms) => Err(CrmError::Invalid(format!("timeout_ms {ms} must be 1 to {max} (crm.max_timeout_ms)"))),
        }
    }

    pub async fn upstream(&self, project: &str) -> Result<CrmUpstream, CrmError> {
        self.store.crm_upstream(project).await?.ok_or(CrmError::NotConfigured)
    }

    /// Forwards a request to the project's upstream.
    pub async fn forward(&self, upstream: &CrmUpstream, request: Forward) -> Result<Answer, CrmError> {
        // A body declared larger than the cap was refused by the caller
        // (which reads it first); one that grows past it fails the send.
        let cap = self.config.max_body_bytes;
        let url = target(&upstream.url, &request.path, request.query.as_deref());
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            let n = name.as_str();
            if !HOP_BY_HOP.contains(&n) && !KEYS.contains(&n) {
                headers.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &upstream.headers {
            let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), http::HeaderValue::try_from(value))
            else {
                continue;
            };
            headers.insert(name, value);
        }
        let body = match request.body {
            Outgoing::Whole(bytes) => reqwest::Body::from(bytes),
            Outgoing::Stream(body) => {
                let mut sent = 0usize;
                reqwest::Body::wrap_stream(body.into_data_stream().map(move |chunk| {
                    let chunk = chunk.map_err(std::io::Error::other)?;
                    sent += chunk.len();
                    if sent > cap {
                        return Err(std::io::Error::other(format!("the request body is larger than {cap} bytes")));
                    }
                    Ok::<Bytes, std::io::Error>(chunk)
                }))
            }
        };
        let send = self.client.request(request.method, url).headers(headers).body(body).send();
        let timeout = upstream.timeout_ms.min(self.config.max_timeout_ms).max(1);
        let response = match tokio::time::timeout(Duration::from_millis(timeout), send).await {
            Err(_) => return Err(CrmError::Timeout(timeout)),
            Ok(Err(e)) if e.is_timeout() => return Err(CrmError::Timeout(timeout)),
            Ok(Err(e)) => return Err(CrmError::Unreachable(describe(&e))),
            Ok(Ok(response)) => response,
        };
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(CrmError::AnswerTooLarge { cap, setting: "crm.max_body_bytes" });
        }
        let status = response.status();
        let mut answer_headers = HeaderMap::new();
        for (name, value) in response.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                answer_headers.append(name.clone(), value.clone());
            }
        }
        let mut received = 0usize;
        let stream = response.bytes_stream().map_err(std::io::Error::other).and_then(move |chunk| {
            received += chunk.len();
            let over = received > cap;
            async move {
                if over {
                    // Cut short: the caller sees the answer end early.
                    return Err(std::io::Error::other(format!("the answer is larger than {cap} bytes")));
                }
                Ok(chunk)
            }
        });
        Ok(Answer { status, headers: answer_headers, body: axum::body::Body::from_stream(stream) })
    }
}

/// `<url>/<path>?<query>`, the query without the project's keys.
fn target(base: &str, path: &str, query: Option<&str>) -> String {
    let mut url = format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'));
    if let Some(kept) = without_keys(query) {
        url.push('?');
        url.push_str(&kept);
    }
    url
}

/// A query string without the project's keys; `None` when nothing is left.
pub(super) fn without_keys(query: Option<&str>) -> Option<String> {
    let pairs = form_urlencoded::parse(query?.as_bytes());
    let kept: Vec<(String, String)> =
        pairs.filter(|(k, _)| !KEYS.contains(&k.as_ref())).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    (!kept.is_empty()).then(|| form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish())
}

/// An error's causes, innermost last (reqwest's own message is terse).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_taken_out_of_the_query() {
        assert_eq!(target("http://crm:3000/", "contacts/1", None), "http://crm:3000/contacts/1");
        assert_eq!(
            target("http://crm:3000/api", "contacts", Some("read_key=secret&q=a+b&master_key=x&_limit=2")),
            "http://crm:3000/api/contacts?q=a+b&_limit=2"
        );
        assert_eq!(target("http://crm:3000", "contacts", Some("write_key=x")), "http://crm:3000/contacts");
    }
}
