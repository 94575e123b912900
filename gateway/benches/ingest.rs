//! Ingest benchmark. Prints, from one run:
//!
//! - events/s through `/event/batch` (100 events of about 300 bytes per
//!   request, keep-alive, several connections) on the embedded log, against
//!   the real `weir` process;
//! - the same events through JSON parsing and Avro encoding alone, in
//!   process (the floor), with the ratio;
//! - single-event `/event/collect` requests/s beside a bare hyper server that
//!   only reads the body and answers 200, with the ratio;
//! - the gateway's peak RSS under that load (`VmHWM`, reset before each
//!   load phase).
//!
//! Run: `cargo bench -p weir-gateway --bench ingest` (`WEIRBENCH_SECONDS`
//! sets the length of each load phase, default 10).

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use common::{batch_body, encoder, events, listening_addr, load, post_json, seconds, start_gateway};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

/// The same allocator as the `weir` binary, so that the in-process floor
/// runs the gateway's code exactly as the gateway does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS_PER_BATCH: usize = 100;
/// Connections posting batches (a few busy servers or SDK flushers).
const BATCH_CONNECTIONS: usize = 8;
/// Connections posting single events (many independent clients).
const COLLECT_CONNECTIONS: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if std::env::args().any(|a| a == "--bare-server") {
        return runtime.block_on(bare_server());
    }
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // cargo bench -- --list
    }
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = StdRng::seed_from_u64(7);
    let dir = tempfile::tempdir()?;
    let (gateway, addr) = start_gateway(dir.path()).await?;
    let keys = post_json(addr, "/project/create", json!({"name": "bench"})).await?;
    let write_key = keys["write_key"].as_str().ok_or("no write key")?.to_owned();

    let sample = events(&mut rng, 1000);
    let avg_bytes = sample.iter().map(|e| e.to_string().len()).sum::<usize>() / sample.len();
    let batches: Vec<Bytes> = (0..200).map(|_| batch_body(&write_key, &events(&mut rng, EVENTS_PER_BATCH))).collect();
    let collects: Vec<Bytes> = sample
        .iter()
        .map(|e| {
            let body =
                json!({"collection": e["collection"], "api": {"api_key": write_key}, "properties": e["properties"]});
            Bytes::from(body.to_string())
        })
        .collect();

    println!(
        "Weir ingest benchmark: {} s per phase; {BATCH_CONNECTIONS} connections for batches of {EVENTS_PER_BATCH}, \
         {COLLECT_CONNECTIONS} for single events; events of {avg_bytes} bytes",
        seconds().as_secs()
    );

    let floor = floor_events_per_s(&batches).await?;
    println!("floor (JSON parsing + Avro encoding, in process, 2 threads): {floor:>10.0} events/s");

    let pid = gateway.id().ok_or("no pid")?;
    reset_peak_rss(pid)?;
    let batch_rate = load(addr, "/event/batch", &batches, BATCH_CONNECTIONS).await? * EVENTS_PER_BATCH as f64;
    println!("/event/batch on the embedded log:                        {batch_rate:>10.0} events/s");
    let rss_mb = peak_rss_kb(pid)? as f64 / 1024.0;
    // The same load from 64 connections, the batch loop running throughout.
    reset_peak_rss(pid)?;
    let wide_rate = load(addr, "/event/batch", &batches, 64).await? * EVENTS_PER_BATCH as f64;
    println!("/event/batch from 64 connections:                        {wide_rate:>10.0} events/s");
    let rss64_mb = peak_rss_kb(pid)? as f64 / 1024.0;
    let collect_rate = load(addr, "/event/collect", &collects, COLLECT_CONNECTIONS).await?;
    println!("/event/collect on the embedded log:                      {collect_rate:>10.0} requests/s");
    drop(gateway);

    let (bare, bare_addr) = start_bare_server().await?;
    let bare_rate = load(bare_addr, "/event/collect", &collects, COLLECT_CONNECTIONS).await?;
    drop(bare);
    println!("bare hyper server (reads the body, answers 200):         {bare_rate:>10.0} requests/s");

    println!();
    println!("| measure | figure | target | met |");
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, figure: String, target: &str, met: bool| {
        println!("| {name} | {figure} | {target} | {} |", if met { "yes" } else { "no" });
    };
    row("/event/batch events/s", format!("{batch_rate:.0}"), ">= 150,000", batch_rate >= 150_000.0);
    row("batch / in-process floor", format!("{:.2}", batch_rate / floor), ">= 0.5", batch_rate / floor >= 0.5);
    row(
        "/event/collect / bare hyper",
        format!("{:.2}", collect_rate / bare_rate),
        ">= 0.5",
        collect_rate / bare_rate >= 0.5,
    );
    row("gateway peak RSS, batches from 8 connections", format!("{rss_mb:.0} MB"), "<= 150 MB", rss_mb <= 150.0);
    row("gateway peak RSS, batches from 64 connections", format!("{rss64_mb:.0} MB"), "<= 150 MB", rss64_mb <= 150.0);
    Ok(())
}

/// Parsing and encoding of the same batch bodies, as the gateway does them,
/// without HTTP or the log.
async fn floor_events_per_s(batches: &[Bytes]) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (ingestor, ctx) = encoder(dir.path()).await?;
    let (ingestor, ctx) = (Arc::new(ingestor), Arc::new(ctx));
    let batches = Arc::new(batches.to_vec());
    // Warm the schema cache.
    let warm = weir_gateway::http::parse_batch(std::str::from_utf8(&batches[0])?).map_err(|e| e.message)?;
    ingestor.encode(&ctx, warm.events).await?;
    let deadline = Instant::now() + seconds();
    let mut workers = Vec::new();
    for w in 0..2 {
        let (ingestor, ctx, batches) = (ingestor.clone(), ctx.clone(), batches.clone());
        workers.push(tokio::spawn(async move {
            let mut events = 0u64;
            let mut i = w;
            while Instant::now() < deadline {
                let text = std::str::from_utf8(&batches[i % batches.len()]).expect("utf8");
                let parsed = weir_gateway::http::parse_batch(text).expect("parse");
                let n = parsed.events.len() as u64;
                let records = ingestor.encode(&ctx, parsed.events).await.expect("encode");
                std::hint::black_box(records);
                events += n;
                i += 2;
            }
            events
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await?;
    }
    Ok(total as f64 / seconds().as_secs_f64())
}

/// Starts the process's peak RSS (`VmHWM`) again from its current RSS.
fn reset_peak_rss(pid: u32) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// The process's peak RSS since it started or was last reset, in kB.
fn peak_rss_kb(pid: u32) -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/<pid>/status".into())
}

async fn start_bare_server() -> Result<(tokio::process::Child, SocketAddr), Box<dyn std::error::Error>> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--bare-server")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let addr = listening_addr(&mut child, "bare server listening on ").await?;
    Ok((child, addr))
}

/// The baseline: hyper on the same runtime setup, reading the body and
/// answering 200.
async fn bare_server() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("bare server listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                let body = req.into_body().collect().await?.to_bytes();
                std::hint::black_box(body);
                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from_static(b"1"))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
