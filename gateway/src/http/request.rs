//! Reading requests: bodies within limits, JSON, keys and client addresses.

use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};

/// An oversized body is still read (and dropped) up to this many bytes past
/// the limit, so that a client that writes its whole body before reading
/// the answer gets the 413 rather than a reset connection.
const DRAIN_BYTES: usize = 16 << 20;

/// Reads the whole body, refusing it with 413 past `limit` bytes and with
/// 408 when it has not arrived within `timeout_ms`.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize, hint: &str, timeout_ms: u64) -> ApiResult<Bytes> {
    match tokio::time::timeout(Duration::from_millis(timeout_ms), read_all(headers, body, limit, hint)).await {
        Ok(read) => read,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {timeout_ms} ms (http.body_timeout_ms)"),
        )),
    }
}

async fn read_all(headers: &HeaderMap, mut body: Body, limit: usize, hint: &str) -> ApiResult<Bytes> {
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {limit} bytes{hint}"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > (limit + DRAIN_BYTES) as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.map_or(8 << 10, |n| (n as usize).min(limit)));
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        total += data.len();
        if total <= limit {
            buf.extend_from_slice(&data);
        } else if total > limit + DRAIN_BYTES {
            break;
        }
    }
    if total > limit {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

/// The body as sent before its `Content-Encoding` (gzip, or none; SDKs
/// compress whatever their content type says, and posthog-js does not
/// label its gzip at all, so an unlabelled body with gzip's magic bytes is
/// inflated: no JSON starts so), refused with 413 when it inflates past
/// `limit` bytes.
pub fn decoded(headers: &HeaderMap, body: Bytes, limit: usize) -> ApiResult<Bytes> {
    use std::io::Read;
    let encoding = header_str(headers, header::CONTENT_ENCODING).unwrap_or("").trim().to_ascii_lowercase();
    let unlabelled_gzip = encoding.is_empty() && body.starts_with(&[0x1f, 0x8b]);
    match encoding.as_str() {
        "" | "identity" if !unlabelled_gzip => Ok(body),
        "" | "gzip" | "x-gzip" => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
            let mut reader = flate2::read::MultiGzDecoder::new(&body[..]).take(limit as u64 + 1);
            reader
                .read_to_end(&mut out)
                .map_err(|e| ApiError::bad_request(format!("the body is not valid gzip: {e}")))?;
            if out.len() > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body inflates to more than {limit} bytes"),
                ));
            }
            Ok(Bytes::from(out))
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {other:?} is not supported; send gzip or no encoding"),
        )),
    }
}

/// The user of HTTP Basic authorization (`Authorization: Basic
/// base64(user:password)`), when there is one.
pub fn basic_user(headers: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let value = header_str(headers, header::AUTHORIZATION)?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_owned())
}

/// Checks that the body is UTF-8 text.
pub fn utf8(body: &[u8]) -> ApiResult<&str> {
    std::str::from_utf8(body).map_err(|e| ApiError::bad_request(format!("the body is not valid UTF-8: {e}")))
}

/// Parses a JSON body; an empty body reads as `{}`.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let text = utf8(body)?;
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A key from the header named after its kind, or the query parameter.
pub fn key_from(headers: &HeaderMap, query: Option<&str>, name: &str) -> Option<String> {
    if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok())
        && !v.is_empty()
    {
        return Some(v.to_owned());
    }
    query_param(query, name)
}

pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

pub fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_bodies_inflate_within_the_limit() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[b'a'; 1000]).expect("write");
        let packed = Bytes::from(gz.finish().expect("finish"));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, "gzip".parse().expect("value"));
        assert_eq!(decoded(&headers, packed.clone(), 1000).expect("inflated").len(), 1000);
        assert_eq!(decoded(&HeaderMap::new(), packed.clone(), 1000).expect("unlabelled").len(), 1000);
        assert_eq!(&decoded(&HeaderMap::new(), Bytes::from_static(b"{}"), 10).expect("plain")[..], b"{}");
        assert_eq!(decoded(&headers, packed, 999).expect_err("too large").status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            decoded(&headers, Bytes::from_static(b"{}"), 10).expect_err("not gzip").status,
            StatusCode::BAD_REQUEST
        );
        headers.insert(header::CONTENT_ENCODING, "br".parse().expect("value"));
        assert_eq!(decoded(&headers, Bytes::new(), 10).expect_err("br").status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn basic_authorization_names_its_user() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Basic a2V5Og==".parse().expect("value")); // "key:"
        assert_eq!(basic_user(&headers).as_deref(), Some("key"));
        headers.insert(header::AUTHORIZATION, "Bearer x".parse().expect("value"));
        assert_eq!(basic_user(&headers), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
