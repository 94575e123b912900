//! CRM hooks: a project's requests to its CRM upstream (`/crm/<path>`) and
//! the upstream's answers pass through them.

use crate::KeyKind;

/// What the gateway knows about the caller of a CRM request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmContext {
    /// The project whose upstream the request goes to.
    pub project: String,
    /// The kind of key the caller used.
    pub key_kind: KeyKind,
    /// The client's address, when known.
    pub client_address: Option<String>,
}

/// HTTP headers in order, names lowercased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// The first value of a header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Sets a header, replacing every value it had.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Adds a value, keeping those the header had.
    pub fn append(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Removes every value of a header.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The headers as (name, value) pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }
}

impl From<Vec<(String, String)>> for Headers {
    fn from(pairs: Vec<(String, String)>) -> Headers {
        Headers(pairs.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).collect())
    }
}

/// A request on its way to the upstream. The headers are the caller's
/// without the project's keys; the headers of the project's CRM
/// configuration are added after every hook ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Below `/crm/`, without a leading `/`: the request goes to
    /// `<upstream url>/<path>`.
    pub path: String,
    /// The query string without `?`, the project's keys taken out.
    pub query: Option<String>,
    pub headers: Headers,
    /// The whole body (empty when there is none).
    pub body: Vec<u8>,
}

/// The upstream's answer on its way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmResponse {
    /// 100 to 599.
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// Sets a JSON body and its content type.
fn set_json(headers: &mut Headers, body: &mut Vec<u8>, value: &serde_json::Value) {
    *body = value.to_string().into_bytes();
    headers.set("content-type", "application/json");
}

/// The body as JSON.
fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not the JSON expected: {e}"))
}

impl CrmRequest {
    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        json(&self.body)
    }

    /// Replaces the body with a JSON value (and says so in `Content-Type`).
    pub fn set_json(&mut self, value: &serde_json::Value) {
        set_json(&mut self.headers, &mut self.body, value);
    }

    /// The first value of a query parameter as sent (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }
}

impl CrmResponse {
    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        json(&self.body)
    }

    /// Replaces the body with a JSON value (and says so in `Content-Type`).
    pub fn set_json(&mut self, value: &serde_json::Value) {
        set_json(&mut self.headers, &mut self.body, value);
    }
}

/// A refusal the caller is told, in the gateway's JSON error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// 400 to 599; anything else is answered as 403.
    pub status: u16,
    pub message: String,
}

impl Denial {
    pub fn new(status: u16, message: impl Into<String>) -> Denial {
        Denial { status, message: message.into() }
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Denial {
        Denial::new(403, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Denial {
        Denial::new(404, message)
    }
}

/// A CRM hook: sees each request of a project to its CRM upstream before it
/// is forwarded, and the upstream's answer before it goes back. Each method
/// passes everything unchanged unless implemented.
pub trait CrmHook {
    /// Changes the request in place (method, path, query, headers, body), or
    /// refuses it: it is then not forwarded and the caller gets the denial.
    fn on_request(context: &CrmContext, request: &mut CrmRequest) -> Result<(), Denial> {
        let _ = (context, request);
        Ok(())
    }

    /// Changes the answer in place, or replaces it with a denial. `request`
    /// is the request as it was forwarded.
    fn on_response(context: &CrmContext, request: &CrmRequest, response: &mut CrmResponse) -> Result<(), Denial> {
        let _ = (context, request, response);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_set_appended_and_removed_by_any_case() {
        let mut headers =
            Headers::from(vec![("Accept".to_owned(), "a".to_owned()), ("x-b".to_owned(), "1".to_owned())]);
        assert_eq!(headers.get("accept"), Some("a"));
        headers.append("X-B", "2");
        headers.set("ACCEPT", "json");
        headers.remove("x-missing");
        assert_eq!(headers.iter().collect::<Vec<_>>(), [("x-b", "1"), ("x-b", "2"), ("accept", "json")]);
        headers.remove("x-b");
        assert_eq!(headers.into_pairs(), [("accept".to_owned(), "json".to_owned())]);
    }

    #[test]
    fn a_json_body_is_read_and_replaced() {
        let mut request = CrmRequest {
            method: "POST".into(),
            path: "contacts".into(),
            query: Some("a=1&b=two&a=3".into()),
            headers: Headers::default(),
            body: br#"{"name":"Ann"}"#.to_vec(),
        };
        assert_eq!(request.query_param("a"), Some("1"));
        assert_eq!(request.query_param("b"), Some("two"));
        assert_eq!(request.query_param("c"), None);
        let mut body: serde_json::Value = request.json().expect("json");
        body["plan"] = "pro".into();
        request.set_json(&body);
        assert_eq!(request.body, br#"{"name":"Ann","plan":"pro"}"#);
        assert_eq!(request.headers.get("content-type"), Some("application/json"));
        assert!(
            CrmResponse { status: 200, headers: Headers::default(), body: b"<html>".to_vec() }
                .json::<serde_json::Value>()
                .is_err()
        );
    }
}
