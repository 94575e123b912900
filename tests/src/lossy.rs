//! A proxy in front of the gateway that loses answers: each of the first
//! requests is passed on (and so stored), but its client is answered 503
//! with `Retry-After` as if it had failed. Clients that re-send what got no
//! success thus send the same events twice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

pub struct LossyProxy {
    pub base: String,
    /// Requests passed on so far.
    pub forwarded: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LossyProxy {
    /// Proxies to `upstream` (a base URL); the first `lose` requests are
    /// answered 503 after the gateway answered them.
    pub async fn start(upstream: &str, lose: usize) -> LossyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let forwarded = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client = reqwest::Client::new();
        let count = forwarded.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (client, upstream, count) = (client.clone(), upstream.clone(), count.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        let (client, upstream, count) = (client.clone(), upstream.clone(), count.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(forward(&client, &upstream, &count, lose, req).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        LossyProxy { base: format!("http://{addr}"), forwarded, task }
    }
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    count: &AtomicUsize,
    lose: usize,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = client.request(parts.method.clone(), format!("{upstream}{path}")).body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await;
    let n = count.fetch_add(1, Ordering::SeqCst);
    let (status, body, content_type) = match answer {
        Ok(_) if n < lose => {
            (503, Bytes::from_static(b"{\"error\":\"lost\",\"error_code\":503}"), "application/json".to_owned())
        }
        Ok(r) => {
            let status = r.status().as_u16();
            let content_type = r
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            (status, r.bytes().await.unwrap_or_default(), content_type)
        }
        Err(_) => (502, Bytes::new(), "text/plain".to_owned()),
    };
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        content_type.parse().unwrap_or(http::HeaderValue::from_static("text/plain")),
    );
    if status == 503 {
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("0"));
    }
    response
}
