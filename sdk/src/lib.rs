//! A client for Weir's collection API, which is Rakam's: send events one at
//! a time (`/event/collect`) or in batches (`/event/batch`) over keep-alive
//! HTTP/1.1 connections.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weir_sdk::Error> {
//! use serde_json::json;
//! let client = weir_sdk::Client::new("http://127.0.0.1:9999")?;
//! client.collect("WRITE_KEY", "pageview", &json!({"url": "/", "_user": "u1"})).await?;
//! let outcome = client.batch("WRITE_KEY", &[("click".into(), json!({"button": "buy"}))]).await?;
//! assert!(outcome.is_stored());
//! # Ok(()) }
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use md5::{Digest, Md5};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad gateway URL {0:?}")]
    Url(String),
    #[error("HTTP request: {0}")]
    Http(String),
    #[error("the gateway answered {status}: {body}")]
    Status { status: u16, body: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A gateway's answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased, in the order they came.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    /// The first value of a header (`name` lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every event is durably stored (the gateway answered `1`).
    Stored,
    /// The events at these indexes were refused; the others are stored.
    Partial(Vec<usize>),
}

impl BatchOutcome {
    pub fn is_stored(&self) -> bool {
        *self == BatchOutcome::Stored
    }
}

/// `api.checksum` of a batch: the upper-case hex MD5 of `api_key +
/// api_version + upload_time + events`, absent parts as empty text.
pub fn checksum(api_key: &str, api_version: &str, upload_time: &str, events_json: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(api_key);
    md5.update(api_version);
    md5.update(upload_time);
    md5.update(events_json);
    hex::encode_upper(md5.finalize())
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client for the gateway at `base` (`http://host:port`).
    pub fn new(base: &str) -> Result<Self> {
        if !base.starts_with("http://") {
            return Err(Error::Url(base.to_owned()));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = HttpClient::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build(connector);
        Ok(Client { base: base.trim_end_matches('/').to_owned(), http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends any request; `path` may carry a query string.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Response> {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).map_err(|e| Error::Http(e.to_string()))?;
        let response = self.http.request(request).await.map_err(|e| Error::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let body = response.into_body().collect().await.map_err(|e| Error::Http(e.to_string()))?.to_bytes();
        Ok(Response { status, headers, body })
    }

    /// POSTs a JSON body.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Result<Response> {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send("POST", path, &all, body.to_string()).await
    }

    /// Sends one event.
    pub async fn collect(&self, write_key: &str, collection: &str, properties: &Value) -> Result<()> {
        let body = json!({"collection": collection, "api": {"api_key": write_key}, "properties": properties});
        let response = self.post("/event/collect", &[], &body).await?;
        match response.status {
            200 => Ok(()),
            status => Err(Error::Status { status, body: response.text() }),
        }
    }

    /// Sends a batch of `(collection, properties)` events with a checksum.
    pub async fn batch(&self, write_key: &str, events: &[(String, Value)]) -> Result<BatchOutcome> {
        let events: Vec<Value> = events.iter().map(|(c, p)| json!({"collection": c, "properties": p})).collect();
        let events = Value::Array(events).to_string();
        let sum = checksum(write_key, "", "", &events);
        let body = format!(r#"{{"api":{{"api_key":{},"checksum":"{sum}"}},"events":{events}}}"#, json!(write_key));
        let response = self.send("POST", "/event/batch", &[("content-type", "application/json")], body).await?;
        match response.status {
            200 => Ok(BatchOutcome::Stored),
            409 => Ok(BatchOutcome::Partial(serde_json::from_slice(&response.body).unwrap_or_default())),
            status => Err(Error::Status { status, body: response.text() }),
        }
    }
}
