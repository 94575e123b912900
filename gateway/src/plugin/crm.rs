//! Running a project's CRM hooks over a request to its upstream (in order)
//! and over the answer (in reverse order, so that the first hook has the
//! last word on both ends).

use std::sync::Arc;

use super::OnError;
use super::bindings::crm::{self, CrmRequest, CrmResponse, Denial, RequestOutcome, ResponseOutcome};
use super::registry::{LoadedPlugin, Plugins, ProjectPlugins};
use super::rewrite::key_kind;
use super::runtime::Failure;
use crate::metadata::KeyKind;

/// What CRM hooks are told about the caller.
#[derive(Debug, Clone)]
pub struct CrmCaller {
    pub project: String,
    pub key_kind: KeyKind,
    pub client_address: Option<String>,
}

/// Why a request or an answer went no further.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HookStop {
    #[error("plugin {plugin} denied the {what}: {message}")]
    Denied { plugin: String, what: &'static str, status: u16, message: String },
    #[error("plugin {plugin} failed ({failure}); its policy is on_error=reject, so the {what} was refused")]
    Failed { plugin: String, what: &'static str, failure: Failure },
}

impl HookStop {
    /// The status the caller is answered.
    pub fn status(&self) -> u16 {
        match self {
            HookStop::Denied { status, .. } => *status,
            HookStop::Failed { .. } => 500,
        }
    }
}

impl Plugins {
    /// The request after every CRM hook of the project, in order; each sees
    /// the request as the one before it left it.
    pub async fn crm_request(
        &self,
        set: &ProjectPlugins,
        caller: &CrmCaller,
        request: CrmRequest,
    ) -> Result<CrmRequest, HookStop> {
        const WHAT: &str = "request";
        let mut request = Arc::new(request);
        for plugin in &set.crm_hooks {
            let called = self.call_crm_request(plugin, context(caller), request.clone()).await;
            called.log.forward(&caller.project, &plugin.name);
            match called.result.and_then(checked_request) {
                Ok(RequestOutcome::Forward) => {}
                Ok(RequestOutcome::ForwardChanged(next)) => request = Arc::new(next),
                Ok(RequestOutcome::Deny(denial)) => return Err(denied(plugin, WHAT, denial)),
                Err(failure) => failed(caller, plugin, WHAT, failure)?,
            }
        }
        Ok(Arc::try_unwrap(request).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// The answer after every CRM hook of the project, last hook first;
    /// each sees the request as it was forwarded.
    pub async fn crm_response(
        &self,
        set: &ProjectPlugins,
        caller: &CrmCaller,
        request: CrmRequest,
        response: CrmResponse,
    ) -> Result<CrmResponse, HookStop> {
        const WHAT: &str = "answer";
        let mut exchange = Arc::new((request, response));
        for plugin in set.crm_hooks.iter().rev() {
            let called = self.call_crm_response(plugin, context(caller), exchange.clone()).await;
            called.log.forward(&caller.project, &plugin.name);
            match called.result.and_then(checked_response) {
                Ok(ResponseOutcome::Answer) => {}
                Ok(ResponseOutcome::AnswerChanged(next)) => {
                    let request = Arc::try_unwrap(exchange).map_or_else(|shared| shared.0.clone(), |(r, _)| r);
                    exchange = Arc::new((request, next));
                }
                Ok(ResponseOutcome::Deny(denial)) => return Err(denied(plugin, WHAT, denial)),
                Err(failure) => failed(caller, plugin, WHAT, failure)?,
            }
        }
        Ok(Arc::try_unwrap(exchange).map_or_else(|shared| shared.1.clone(), |(_, r)| r))
    }
}

pub fn context(caller: &CrmCaller) -> crm::CrmContext {
    crm::CrmContext {
        project: caller.project.clone(),
        key_kind: key_kind(caller.key_kind),
        client_address: caller.client_address.clone(),
    }
}

fn denied(plugin: &LoadedPlugin, what: &'static str, denial: Denial) -> HookStop {
    HookStop::Denied {
        plugin: plugin.name.clone(),
        what,
        status: denial_status(denial.status),
        message: denial.message,
    }
}

/// A denial's status as answered: 400 to 599, else 403.
pub fn denial_status(status: u16) -> u16 {
    if (400..=599).contains(&status) { status } else { 403 }
}

/// A failed call under the plugin's policy: passed over, or the end.
fn failed(caller: &CrmCaller, plugin: &LoadedPlugin, what: &'static str, failure: Failure) -> Result<(), HookStop> {
    match plugin.on_error {
        OnError::Pass => {
            tracing::warn!(project = %caller.project, plugin = %plugin.name, %failure, "CRM hook failed; the {what} passed unchanged");
            Ok(())
        }
        OnError::Reject => Err(HookStop::Failed { plugin: plugin.name.clone(), what, failure }),
    }
}

/// A changed request the gateway can send, else the hook's answer is wrong.
pub fn checked_request(outcome: RequestOutcome) -> Result<RequestOutcome, Failure> {
    if let RequestOutcome::ForwardChanged(r) = &outcome {
        let invalid = |what: String| Err(Failure::InvalidAnswer(what));
        if http::Method::from_bytes(r.method.as_bytes()).is_err() {
            return invalid(format!("method {:?}", r.method));
        }
        if r.path.chars().any(|c| c.is_control() || c.is_whitespace() || c == '?' || c == '#') {
            return invalid(format!("path {:?} (no spaces, ?, # or control characters)", r.path));
        }
        if let Some(q) = &r.query
            && q.chars().any(|c| c.is_control() || c.is_whitespace() || c == '#')
        {
            return invalid(format!("query {q:?} (no spaces, # or control characters)"));
        }
        check_headers(&r.headers)?;
    }
    Ok(outcome)
}

/// A changed answer the gateway can send, else the hook's answer is wrong.
pub fn checked_response(outcome: ResponseOutcome) -> Result<ResponseOutcome, Failure> {
    if let ResponseOutcome::AnswerChanged(r) = &outcome {
        if !(100..=599).contains(&r.status) {
            return Err(Failure::InvalidAnswer(format!("status {}", r.status)));
        }
        check_headers(&r.headers)?;
    }
    Ok(outcome)
}

fn check_headers(headers: &[super::bindings::types::Header]) -> Result<(), Failure> {
    for h in headers {
        if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() || http::HeaderValue::from_str(&h.value).is_err() {
            return Err(Failure::InvalidAnswer(format!("header {:?}: {:?}", h.name, h.value)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bindings::types::Header;

    fn request(method: &str, path: &str, query: Option<&str>, header: (&str, &str)) -> RequestOutcome {
        RequestOutcome::ForwardChanged(CrmRequest {
            method: method.into(),
            path: path.into(),
            query: query.map(str::to_owned),
            headers: vec![Header { name: header.0.into(), value: header.1.into() }],
            body: Vec::new(),
        })
    }

    #[test]
    fn a_denial_outside_the_error_statuses_is_a_403() {
        assert_eq!(denial_status(404), 404);
        assert_eq!(denial_status(503), 503);
        assert_eq!(denial_status(200), 403);
        assert_eq!(denial_status(302), 403);
        assert_eq!(denial_status(600), 403);
    }

    #[test]
    fn a_changed_request_the_gateway_cannot_send_is_the_hooks_failure() {
        assert!(checked_request(request("PATCH", "contacts/1", Some("a=1"), ("x-a", "1"))).is_ok());
        assert!(checked_request(RequestOutcome::Forward).is_ok());
        for (outcome, naming) in [
            (request("GE T", "c", None, ("x", "1")), "method"),
            (request("GET", "c?x=1", None, ("x", "1")), "path"),
            (request("GET", "c d", None, ("x", "1")), "path"),
            (request("GET", "c", Some("a=1#f"), ("x", "1")), "query"),
            (request("GET", "c", None, ("bad header", "1")), "header"),
            (request("GET", "c", None, ("x", "line\nbreak")), "header"),
        ] {
            let failure = checked_request(outcome).expect_err(naming);
            assert!(failure.to_string().contains(naming), "{failure}");
        }
        let answer =
            |status| ResponseOutcome::AnswerChanged(CrmResponse { status, headers: Vec::new(), body: Vec::new() });
        assert!(checked_response(answer(201)).is_ok());
        assert!(checked_response(answer(99)).is_err_and(|f| f.to_string().contains("status 99")));
        assert!(checked_response(answer(600)).is_err());
    }
}
