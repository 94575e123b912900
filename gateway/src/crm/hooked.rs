//! Forwarding through a project's CRM hooks: the request, read whole, goes
//! through the hooks and then to the upstream; the answer, read whole, goes
//! back through them to the caller.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::forward::{Answer, Crm, CrmError, Forward, HOP_BY_HOP, KEYS, Outgoing, without_keys};
use crate::metadata::CrmUpstream;
use crate::plugin::bindings::crm::{CrmRequest, CrmResponse};
use crate::plugin::bindings::types::Header;
use crate::plugin::crm::CrmCaller;
use crate::plugin::{Plugins, ProjectPlugins};

/// A hooked request as it arrived, its body read.
pub struct Arrived {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Crm {
    /// Bytes a hooked request's body, or its answer, may have.
    pub fn hook_body_bytes(&self) -> usize {
        self.config.hook_body_bytes.min(self.config.max_body_bytes)
    }

    /// Forwards a request through the project's CRM hooks.
    pub async fn forward_hooked(
        &self,
        plugins: &Plugins,
        set: &ProjectPlugins,
        caller: &CrmCaller,
        upstream: &CrmUpstream,
        request: Arrived,
    ) -> Result<Answer, CrmError> {
        let wire = CrmRequest {
            method: request.method.to_string(),
            path: request.path,
            query: without_keys(request.query.as_deref()),
            // Hooks see bodies as they are: the upstream is not asked to
            // compress its answer unless a hook asks for that itself.
            headers: hook_headers(&request.headers, &["accept-encoding"]),
            body: request.body.to_vec(),
        };
        let sent = plugins.crm_request(set, caller, wire).await?;
        let method = Method::from_bytes(sent.method.as_bytes())
            .map_err(|_| CrmError::Invalid(format!("method {:?}", sent.method)))?;
        let forward = Forward {
            method,
            path: sent.path.clone(),
            query: sent.query.clone(),
            headers: header_map(&sent.headers),
            body: Outgoing::Whole(Bytes::from(sent.body.clone())),
        };
        let answer = self.forward(upstream, forward).await?;
        let cap = self.hook_body_bytes();
        let timeout = upstream.timeout_ms.min(self.config.max_timeout_ms).max(1);
        let body = match tokio::time::timeout(Duration::from_millis(timeout), Limited::new(answer.body, cap).collect())
            .await
        {
            Err(_) => return Err(CrmError::Timeout(timeout)),
            Ok(Err(e)) if e.is::<LengthLimitError>() => {
                return Err(CrmError::AnswerTooLarge { cap, setting: "crm.hook_body_bytes" });
            }
            Ok(Err(e)) => return Err(CrmError::Unreachable(e.to_string())),
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        let response = CrmResponse {
            status: answer.status.as_u16(),
            headers: hook_headers(&answer.headers, &[]),
            body: body.into(),
        };
        let back = plugins.crm_response(set, caller, sent, response).await?;
        Ok(Answer {
            status: StatusCode::from_u16(back.status).unwrap_or(StatusCode::BAD_GATEWAY),
            headers: header_map(&back.headers),
            body: Body::from(back.body),
        })
    }
}

/// Headers as hooks see them: not the connection's, not the project's
/// keys, not `Content-Length` (set again from the body sent), nor `also`.
fn hook_headers(headers: &HeaderMap, also: &[&str]) -> Vec<Header> {
    headers
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            !HOP_BY_HOP.contains(&n) && !KEYS.contains(&n) && n != "content-length" && !also.contains(&n)
        })
        .filter_map(|(n, v)| Some(Header { name: n.as_str().to_owned(), value: v.to_str().ok()?.to_owned() }))
        .collect()
}

/// Headers a hook answered (checked already), as a map; the body's length
/// is the gateway's to say.
fn header_map(headers: &[Header]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for h in headers.iter().filter(|h| !h.name.eq_ignore_ascii_case("content-length")) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_str(&h.value)) {
            map.append(name, value);
        }
    }
    map
}
