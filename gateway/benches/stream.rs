//! Event stream and user database benchmark. Prints, from one run against
//! the real `weir` process (embedded log, defaults):
//!
//! - stream delivery latency (the `/event/collect` answer `1` → the SSE
//!   message at the subscriber) p50 and p99, with 100 subscribers while
//!   other events are ingested at about 50,000 events/s;
//! - `/event/batch` throughput from 8 connections without subscribers and
//!   with the 100 subscribers, in turn twice (ratio, target >= 0.9);
//! - `/user/set_properties` writes per second from 8 connections.
//!
//! Run: `cargo bench -p weir-gateway --bench stream` (`WEIRBENCH_SECONDS`
//! sets each phase's length, default 10).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{batch_body, events, load, post_json, seconds, start_gateway};
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SUBSCRIBERS: usize = 100;
/// The paced ingest beside the probes: batches of this many events...
const PACED_BATCH: usize = 500;
/// ...every this long on each of 4 connections: 50,000 events/s.
const PACED_EVERY: Duration = Duration::from_millis(40);
/// One probe event this often.
const PROBE_EVERY: Duration = Duration::from_millis(20);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run()).map_err(|e| e.to_string().into())
}

async fn connection(addr: SocketAddr) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Probe arrivals: sequence number → when each subscriber saw it.
type Arrivals = Arc<Mutex<HashMap<u64, Vec<Instant>>>>;

/// A subscriber that reads every message and notes when each probe came.
async fn subscriber(addr: SocketAddr, read_key: String, data: String, arrivals: Arrivals) -> Result<(), BoxError> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let path = format!("/stream/subscribe?read_key={read_key}&data={data}");
    let request = Request::get(path).header("host", "bench").header("accept", "text/event-stream").body(Empty::new())?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        return Err(format!("subscribe answered {}", response.status()).into());
    }
    let mut body = response.into_body();
    let mut pending = String::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        let now = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = pending.find("\n\n") {
            let message: String = pending.drain(..end + 2).collect();
            for part in message.split("\"probe_seq\":").skip(1) {
                let digits: String = part.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
                if let Ok(seq) = digits.parse::<f64>() {
                    arrivals.lock().unwrap_or_else(|e| e.into_inner()).entry(seq as u64).or_default().push(now);
                }
            }
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let (_child, addr) = start_gateway(dir.path()).await.map_err(|e| e.to_string())?;
    let keys = post_json(addr, "/project/create", json!({"name": "bench"})).await.map_err(|e| e.to_string())?;
    let write = keys["write_key"].as_str().ok_or("write key")?.to_owned();
    let read = keys["read_key"].as_str().ok_or("read key")?.to_owned();
    let mut rng = StdRng::seed_from_u64(7);
    let bodies: Vec<Bytes> = (0..64).map(|_| batch_body(&write, &events(&mut rng, 100))).collect();
    let paced: Vec<Bytes> = (0..16).map(|_| batch_body(&write, &events(&mut rng, PACED_BATCH))).collect();
    // The collections exist before anyone subscribes.
    load_once(addr, &bodies[0]).await?;
    let probe = |seq: u64| {
        Bytes::from(
            json!({"api": {"api_key": write}, "collection": "probe", "properties": {"probe_seq": seq}}).to_string(),
        )
    };
    load_once_at(addr, "/event/collect", &probe(0)).await?;

    println!("Weir stream benchmark: {} s per phase, {SUBSCRIBERS} subscribers", seconds().as_secs());
    let data = json!({"collections": [
        {"name": "probe"},
        {"name": "pageview", "filter": "country = 'DE' AND price > 990"}
    ]})
    .to_string();
    let data: String = data
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let arrivals: Arrivals = Arc::default();
    let subscribe = || {
        (0..SUBSCRIBERS)
            .map(|_| {
                let (read, data, arrivals) = (read.clone(), data.clone(), arrivals.clone());
                // A subscriber ends when it is aborted, or when the gateway
                // does at the end of the run.
                tokio::spawn(async move {
                    let _ = subscriber(addr, read, data, arrivals).await;
                })
            })
            .collect::<Vec<_>>()
    };
    // Ingest without and with subscribers, twice in turn, so that what the
    // gateway does meanwhile (the batch loop moving the first phases'
    // events into Parquet) falls on both alike.
    let (mut without, mut with) = (0.0, 0.0);
    for _ in 0..2 {
        without += load(addr, "/event/batch", &bodies, 8).await.map_err(|e| format!("load without: {e}"))? * 50.0;
        let subscribers = subscribe();
        tokio::time::sleep(Duration::from_secs(1)).await;
        with += load(addr, "/event/batch", &bodies, 8).await.map_err(|e| format!("load with: {e}"))? * 50.0;
        subscribers.iter().for_each(tokio::task::JoinHandle::abort);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _subscribers = subscribe();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Latency: probes while other events come in at about 50,000 events/s.
    let deadline = Instant::now() + seconds();
    let mut pacers = Vec::new();
    for c in 0..4 {
        let paced = paced.clone();
        pacers.push(tokio::spawn(async move {
            let mut sender = connection(addr).await?;
            let mut tick = tokio::time::interval(PACED_EVERY);
            let mut i = c;
            while Instant::now() < deadline {
                tick.tick().await;
                let request = Request::post("/event/batch")
                    .header("host", "bench")
                    .body(Full::new(paced[i % paced.len()].clone()))?;
                let response = sender.send_request(request).await.map_err(|e| format!("paced batch: {e}"))?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                if !status.is_success() {
                    return Err(format!("paced batch answered {status}: {}", String::from_utf8_lossy(&body)).into());
                }
                i += 4;
            }
            Ok::<(), BoxError>(())
        }));
    }
    let mut answered: HashMap<u64, Instant> = HashMap::new();
    let mut failed = 0;
    let mut sender = connection(addr).await?;
    let mut tick = tokio::time::interval(PROBE_EVERY);
    let mut seq = 1;
    while Instant::now() < deadline {
        tick.tick().await;
        let request = Request::post("/event/collect").header("host", "bench").body(Full::new(probe(seq)))?;
        seq += 1;
        // A probe that fails is counted, on a new connection.
        let Ok(response) = sender.send_request(request).await else {
            failed += 1;
            sender = connection(addr).await?;
            continue;
        };
        let ok = response.status().is_success();
        response.into_body().collect().await?;
        if ok {
            answered.insert(seq - 1, Instant::now());
        } else {
            failed += 1;
        }
    }
    for p in pacers {
        p.await??;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut latencies = Vec::new();
    let mut missing = 0;
    for (seq, at) in &answered {
        let seen = arrivals.get(seq).map_or(&[][..], Vec::as_slice);
        missing += SUBSCRIBERS.saturating_sub(seen.len());
        latencies.extend(seen.iter().map(|t| t.saturating_duration_since(*at)));
    }
    latencies.sort();

    let users = user_writes(addr, &write).await?;
    let ratio = with / without;
    println!();
    println!("| measure | figure | target |");
    println!("| --- | --- | --- |");
    println!(
        "| stream delivery, answer 1 -> SSE message, p50 / p99 | {:.1} ms / {:.1} ms | p99 <= 100 ms {} |",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        if percentile(&latencies, 0.99) <= Duration::from_millis(100) { "met" } else { "missed" }
    );
    println!(
        "| deliveries measured ({} probes x {SUBSCRIBERS} subscribers, {failed} probes failed), missing | {} / {missing} | 0 missing |",
        answered.len(),
        latencies.len()
    );
    println!("| /event/batch from 8 connections, no subscribers | {without:.0} events/s | |");
    println!(
        "| /event/batch from 8 connections, {SUBSCRIBERS} subscribers | {with:.0} events/s (ratio {ratio:.2}) | >= 0.9 {} |",
        if ratio >= 0.9 { "met" } else { "missed" }
    );
    println!("| /user/set_properties from 8 connections | {users:.0} writes/s | |");
    Ok(())
}

async fn load_once(addr: SocketAddr, body: &Bytes) -> Result<(), BoxError> {
    load_once_at(addr, "/event/batch", body).await
}

async fn load_once_at(addr: SocketAddr, path: &str, body: &Bytes) -> Result<(), BoxError> {
    let mut sender = connection(addr).await?;
    let request = Request::post(path).header("host", "bench").body(Full::new(body.clone()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let text = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{path} answered {status}: {}", String::from_utf8_lossy(&text)).into());
    }
    Ok(())
}

/// `/user/set_properties` per second: 8 connections, 10,000 users, a few
/// properties each time.
async fn user_writes(addr: SocketAddr, write: &str) -> Result<f64, BoxError> {
    let bodies: Vec<Bytes> = (0..2_000)
        .map(|i| {
            let plan = ["free", "pro", "team"][i % 3];
            Bytes::from(
                json!({"id": format!("user-{}", (i * 7919) % 10_000), "api": {"api_key": write},
                       "properties": {"plan": plan, "seats": i % 50, "country": "DE",
                                      "last_seen": "2026-12-01T10:00:00Z"}})
                .to_string(),
            )
        })
        .collect();
    Ok(load(addr, "/user/set_properties", &bodies, 8).await.map_err(|e| format!("user writes: {e}"))?)
}
