//! The HTTP layer's own refusals in Rakam's JSON shape. hyper answers a
//! request it cannot parse (a URI or headers too large, a malformed
//! request line) itself, with an empty body, before any handler runs. The
//! connection's writes pass through here: an error response with
//! `content-length: 0` can only be hyper's (every handler's error has a
//! body), and it is given the JSON body every other error has.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct JsonErrors<T> {
    inner: T,
    /// A rewritten response still to be written.
    pending: Vec<u8>,
    written: usize,
}

impl<T> JsonErrors<T> {
    pub fn new(inner: T) -> Self {
        JsonErrors { inner, pending: Vec::new(), written: 0 }
    }
}

/// The response with a JSON body, if `head` is a whole error response
/// without one.
fn with_json_body(head: &[u8]) -> Option<Vec<u8>> {
    if !(head.starts_with(b"HTTP/1.1 4") || head.starts_with(b"HTTP/1.1 5")) || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let (status_line, rest) = text.split_once("\r\n")?;
    let empty = rest.split("\r\n").any(|line| line.eq_ignore_ascii_case("content-length: 0"));
    if !empty {
        return None;
    }
    let mut words = status_line.splitn(3, ' ').skip(1);
    let code: u16 = words.next()?.parse().ok()?;
    let reason = match code {
        414 => "the request's URI is too long".to_owned(),
        431 => "the request's headers are too large".to_owned(),
        400 => "the request is not valid HTTP".to_owned(),
        _ => words.next().unwrap_or("error").to_lowercase(),
    };
    let body = super::error_body(http::StatusCode::from_u16(code).ok()?, &reason);
    let headers: String = rest
        .split("\r\n")
        .filter(|line| !line.is_empty() && !line.eq_ignore_ascii_case("content-length: 0"))
        .map(|line| format!("{line}\r\n"))
        .collect();
    let response = format!(
        "{status_line}\r\n{headers}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    Some(response.into_bytes())
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes out what is pending; ready once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(response) = with_json_body(buf) {
            self.pending = response;
            // Taken whole; what was written is flushed with what follows.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(response) = with_json_body(first)
        {
            self.pending = response;
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(first.len()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_error_responses_get_a_body() {
        let hyper_own = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let rewritten = String::from_utf8(with_json_body(hyper_own).expect("rewritten")).expect("utf8");
        let (head, body) = rewritten.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 431 ") && head.contains("date: x"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["error_code"], 431);
        assert!(json["error"].as_str().is_some_and(|m| m.contains("headers")));
        for kept in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 40\r\n\r\n",
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n",
        ] {
            assert!(with_json_body(kept).is_none(), "{}", String::from_utf8_lossy(kept));
        }
    }
}
