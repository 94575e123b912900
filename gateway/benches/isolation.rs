//! Isolation benchmark. Prints, from one run against the real `weir`
//! process:
//!
//! - another tenant's `SELECT 1` latency (p50, p99) idle, and while one
//!   tenant floods expensive queries from 8 connections, with the ratio of
//!   the p99s (target <= 2);
//! - `/event/collect` latency (p50, p99) with no other connections, and with
//!   1,000 idle connections open, with the ratio of the p99s (target <=
//!   1.2).
//!
//! Baseline and loaded measurements alternate over five rounds and the
//! medians are compared.
//!
//! Run: `cargo bench -p weir-gateway --bench isolation` (`WEIRBENCH_SAMPLES`
//! sets the requests per measurement, default 400).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{post_json, start_gateway};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde_json::json;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Expensive for the engine, cheap to send: ten million generated rows.
const EXPENSIVE: &str = "SELECT sum(a.x * b.x + c.x * d.x + e.x * f.x + g.x) FROM \
    (SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x)) a, \
    (SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x)) b, \
    (SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x)) c, \
    (SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x)) d, \
    (SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x)) e, \
    (SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x)) f, \
    (SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x)) g";

/// Alternating rounds of baseline and loaded measurements.
const ROUNDS: usize = 5;

fn samples() -> usize {
    std::env::var("WEIRBENCH_SAMPLES").ok().and_then(|s| s.parse().ok()).unwrap_or(400)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run()).map_err(|e| e.to_string().into())
}

/// A keep-alive connection that sends requests one after another.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Result<Connection, BoxError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Connection { sender })
    }

    /// Sends a request; answers its status.
    async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: Bytes) -> Result<u16, BoxError> {
        let mut request = Request::post(path).header("host", "bench").header("content-type", "application/json");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        self.sender.ready().await?;
        let response = self.sender.send_request(request.body(Full::new(body))?).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(status)
    }
}

/// Latencies of `n` requests sent one after another, sorted.
async fn latencies(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    n: usize,
) -> Result<Vec<Duration>, BoxError> {
    let mut connection = Connection::open(addr).await?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let status = connection.post(path, headers, body.clone()).await.map_err(|e| format!("{path}: {e:?}"))?;
        if status != 200 {
            return Err(format!("{path} answered {status}").into());
        }
        out.push(started.elapsed());
    }
    out.sort_unstable();
    Ok(out)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The median over rounds of a percentile of each round.
fn median(rounds: &[Vec<Duration>], p: f64) -> Duration {
    let mut values: Vec<Duration> = rounds.iter().map(|r| percentile(r, p)).collect();
    values.sort_unstable();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn run() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let (_gateway, addr) = start_gateway(dir.path()).await.map_err(|e| e.to_string())?;
    let key = |v: &serde_json::Value, k: &str| v[k].as_str().map(str::to_owned).ok_or("no key");
    let calm = post_json(addr, "/project/create", json!({"name": "calm"})).await.map_err(|e| e.to_string())?;
    let flood = post_json(addr, "/project/create", json!({"name": "flood"})).await.map_err(|e| e.to_string())?;
    let (calm_read, calm_write, flood_read) =
        (key(&calm, "read_key")?, key(&calm, "write_key")?, key(&flood, "read_key")?);
    let select_one = Bytes::from(json!({"query": "SELECT 1"}).to_string());
    let n = samples();

    // Baseline and loaded measurements alternate, ROUNDS times, and the
    // medians are compared: this machine's latency tails drift between
    // runs by more than the effects measured.
    let (mut idle, mut flooded, mut alone, mut crowded) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut expensive = 0;
    latencies(addr, "/query/execute", &[("read_key", &calm_read)], select_one.clone(), 50).await?;
    let event = Bytes::from(
        json!({"collection": "pageview", "api": {"api_key": calm_write}, "properties": {"url": "/a", "n": 1}})
            .to_string(),
    );
    latencies(addr, "/event/collect", &[], event.clone(), 50).await?;
    for _ in 0..ROUNDS {
        // Another tenant's queries, idle and under a flood.
        idle.push(latencies(addr, "/query/execute", &[("read_key", &calm_read)], select_one.clone(), n).await?);
        let running = Arc::new(AtomicBool::new(true));
        let mut flooders = Vec::new();
        for _ in 0..8 {
            let (running, read) = (running.clone(), flood_read.clone());
            flooders.push(tokio::spawn(async move {
                let mut connection = Connection::open(addr).await?;
                let body = Bytes::from(json!({"query": EXPENSIVE}).to_string());
                let mut sent = 0u64;
                while running.load(Ordering::Relaxed) {
                    connection
                        .post("/query/execute", &[("read_key", &read)], body.clone())
                        .await
                        .map_err(|e| format!("flood: {e}"))?;
                    sent += 1;
                }
                Ok::<u64, BoxError>(sent)
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        flooded.push(latencies(addr, "/query/execute", &[("read_key", &calm_read)], select_one.clone(), n).await?);
        running.store(false, Ordering::Relaxed);
        for f in flooders {
            expensive += f.await?.map_err(|e| e.to_string())?;
        }
        // Collection with many idle connections open.
        alone.push(latencies(addr, "/event/collect", &[], event.clone(), n).await?);
        let mut idle_connections = Vec::with_capacity(1000);
        for _ in 0..1000 {
            idle_connections.push(TcpStream::connect(addr).await?);
        }
        crowded.push(latencies(addr, "/event/collect", &[], event.clone(), n).await?);
        drop(idle_connections);
    }

    let row = |what: &str, a: &[Vec<Duration>], b: &[Vec<Duration>], target: f64| {
        let (a50, a99, b50, b99) = (median(a, 0.5), median(a, 0.99), median(b, 0.5), median(b, 0.99));
        let ratio = b99.as_secs_f64() / a99.as_secs_f64();
        println!(
            "| {what} | {} / {} | {} / {} | {ratio:.2} | <= {target} {} |",
            ms(a50),
            ms(a99),
            ms(b50),
            ms(b99),
            if ratio <= target { "met" } else { "NOT met" }
        );
    };
    println!("| measure | baseline p50 / p99 | loaded p50 / p99 | p99 ratio | target |");
    println!("| --- | --- | --- | --- | --- |");
    row("another tenant's SELECT 1, one tenant flooding expensive queries", &idle, &flooded, 2.0);
    row("/event/collect with 1,000 idle connections open", &alone, &crowded, 1.2);
    println!(
        "(medians over {ROUNDS} alternating rounds of {n} requests; the flooding tenant sent {expensive} expensive \
         queries from 8 connections)"
    );
    Ok(())
}
