//! Connections: accepted within a budget of file descriptors, each given a
//! time to send its headers (also the time a kept-alive connection may sit
//! idle), and refused with a JSON 503 past the connection cap, so that
//! clients that misbehave cannot take the descriptors the event log, the
//! metadata store and the batch loop need.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// From a connection's start or its previous response to the end of
    /// the next request's headers.
    pub header_timeout: Duration,
}

/// Refusals being written at once; past this a refused connection is
/// closed without an answer.
const REFUSALS_IN_FLIGHT: usize = 32;

/// How long shutdown waits for requests in progress.
const DRAIN: Duration = Duration::from_secs(10);

/// The most connections the process's descriptors allow, keeping
/// `reserved` (at most half of them) for everything else. Raises the soft
/// limit to the hard one first.
pub fn connection_budget(max_connections: usize, reserved: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the file descriptor limit");
            return max_connections;
        }
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let reserved = reserved.min(limit / 2);
    let budget = max_connections.min(limit.saturating_sub(reserved)).max(1);
    if budget < max_connections {
        tracing::warn!(
            descriptors = limit,
            reserved,
            connections = budget,
            "the file descriptor limit allows fewer connections than http.max_connections"
        );
    }
    budget
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// requests in progress finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (or a connection reset before it
                    // was taken): wait rather than spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let io = TokioIo::new(super::own_errors::JsonErrors::new(stream));
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in progress {} s after shutdown began were cut off", DRAIN.as_secs());
    }
    Ok(())
}

/// Answers a connection past the cap with a JSON 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = super::error_body(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "the server has as many connections as it serves at once (http.max_connections); try again shortly",
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
