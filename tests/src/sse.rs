//! A server-sent events client for the stream suites: one connection,
//! its messages read as they arrive.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// One message: its fields as sent (`data` lines joined by newlines), or
/// a comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comment: Option<String>,
}

pub struct Sse {
    pub status: u16,
    pub headers: http::HeaderMap,
    body: Incoming,
    buffer: String,
    ended: bool,
}

impl Sse {
    /// `GET base + path` with `headers` (and `Accept: text/event-stream`
    /// unless given).
    pub async fn connect(base: &str, path: &str, headers: &[(&str, &str)]) -> Sse {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let mut request = http::Request::get(format!("{base}{path}"));
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("accept")) {
            request = request.header("accept", "text/event-stream");
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = client.request(request.body(Empty::new()).expect("request")).await.expect("connect");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        Sse { status, headers, body: response.into_body(), buffer: String::new(), ended: false }
    }

    /// The next message, comments included; `None` once the server ended
    /// the stream or nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.push_str(&String::from_utf8_lossy(&data));
                    }
                }
            }
        }
    }

    /// The next message that is not a comment.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.next(left).await?;
            if m.comment.is_none() {
                return Some(m);
            }
        }
    }

    /// Whether the server ended the stream (after what was read).
    pub async fn ended(&mut self, wait: Duration) -> bool {
        self.next(wait).await.is_none() && self.ended
    }
}

fn parse(block: &str) -> Message {
    let mut m = Message::default();
    let mut data = Vec::new();
    for line in block.lines() {
        if let Some(c) = line.strip_prefix(':') {
            m.comment = Some(c.trim().to_owned());
        } else if let Some((field, value)) = line.split_once(':') {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => m.id = Some(value.to_owned()),
                "event" => m.event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
    }
    m.data = data.join("\n");
    m
}
