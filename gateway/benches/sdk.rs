//! Other SDKs' ingest, and the cost of deduplication. Prints, from one run
//! against the real `weir` process on the embedded log:
//!
//! - events/s through Segment's `/v1/batch` (100 events per request, gzip,
//!   as Segment's and RudderStack's SDKs send them) beside `/event/batch`
//!   with the same events (target: at least 0.8);
//! - events/s through `/event/batch` with an `_id` on every event beside
//!   the same events without (target: at least 0.8);
//! - the batch loop moving a backlog of the same events into storage, with
//!   ids (each one looked up and remembered) and without, three times each.
//!
//! Run: `cargo bench -p weir-gateway --bench sdk` (`WEIRBENCH_SECONDS` sets
//! the length of each load phase, default 10).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use common::{batch_body, events, load, load_with, post_json, seconds, start_gateway_with};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS_PER_BATCH: usize = 100;
const CONNECTIONS: usize = 8;
/// Events in the backlog the batch loop moves.
const BACKLOG: usize = 300_000;
/// Times the batch loop moves a backlog of each kind.
const LOAD_ROUNDS: usize = 3;

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run())
}

/// Rakam events as Segment `track` messages.
fn segment_body(key: &str, events: &[Value], first_id: usize) -> Result<Bytes, BoxError> {
    let batch: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut properties = e["properties"].clone();
            let user = properties.as_object_mut().and_then(|p| p.remove("_user")).unwrap_or(Value::Null);
            json!({
                "type": "track", "event": e["collection"], "userId": user, "properties": properties,
                "messageId": format!("m{}", first_id + i), "timestamp": "2026-12-01T10:00:00.000Z",
                "context": {"library": {"name": "analytics-node", "version": "3.1.0"}},
            })
        })
        .collect();
    let text = json!({"batch": batch, "writeKey": key, "sentAt": "2026-12-01T10:00:00.100Z"}).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes())?;
    Ok(Bytes::from(gz.finish()?))
}

/// The same events with an `_id` each.
fn with_ids(events: &[Value], first_id: usize) -> Vec<Value> {
    let mut events = events.to_vec();
    for (i, e) in events.iter_mut().enumerate() {
        e["properties"]["_id"] = json!(format!("e{}", first_id + i));
    }
    events
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn project(addr: SocketAddr, name: &str) -> Result<(String, String), BoxError> {
    let keys = post_json(addr, "/project/create", json!({"name": name})).await?;
    let key = |k: &str| keys[k].as_str().map(str::to_owned).ok_or_else(|| format!("no {k}"));
    Ok((key("write_key")?, key("master_key")?))
}

/// CPU seconds (user and system) process `pid` has used.
fn cpu_seconds(pid: u32) -> Result<f64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').ok_or("no name in /proc/<pid>/stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // Linux counts them in USER_HZ, 100 a second.
    Ok(ticks / 100.0)
}

/// Seconds, of the clock and of the gateway's CPU, the batch loop takes to
/// move everything waiting into storage.
async fn commit_seconds(addr: SocketAddr, pid: u32, master: &str) -> Result<(f64, f64), BoxError> {
    let (start, cpu) = (Instant::now(), cpu_seconds(pid)?);
    let answer = post_json(addr, &format!("/event/bulk/commit?master_key={master}"), json!({})).await?;
    if answer != json!({"success": true}) {
        return Err(format!("commit answered {answer}").into());
    }
    Ok((start.elapsed().as_secs_f64(), cpu_seconds(pid)? - cpu))
}

async fn run() -> Result<(), BoxError> {
    let mut rng = StdRng::seed_from_u64(11);
    let dir = tempfile::tempdir()?;
    // No timed loads: the batch loop runs whenever `batch.max_records`
    // events wait (so during the HTTP loads too, as in production), and
    // when the benchmark commits.
    let (gateway, addr) = start_gateway_with(dir.path(), &[("WEIR_BATCH__INTERVAL_MS", "3600000")]).await?;
    let samples: Vec<Vec<Value>> = (0..200).map(|_| events(&mut rng, EVENTS_PER_BATCH)).collect();
    println!(
        "Weir SDK benchmark: {} s per phase; {CONNECTIONS} connections, batches of {EVENTS_PER_BATCH}",
        seconds().as_secs()
    );

    let (rakam_key, _) = project(addr, "rakam").await?;
    let rakam: Vec<Bytes> = samples.iter().map(|b| batch_body(&rakam_key, b)).collect();
    let (segment_key, _) = project(addr, "segment").await?;
    let segment: Vec<Bytes> = samples
        .iter()
        .enumerate()
        .map(|(i, b)| segment_body(&segment_key, b, i * EVENTS_PER_BATCH))
        .collect::<Result<_, _>>()?;
    let (ids_key, _) = project(addr, "ids").await?;
    let ided: Vec<Bytes> =
        samples.iter().enumerate().map(|(i, b)| batch_body(&ids_key, &with_ids(b, i * EVENTS_PER_BATCH))).collect();
    let gzip = [("content-encoding", "gzip")];
    // Each load twice, interleaved, so that the machine's drift over the
    // run falls on all three alike; the figures are the means.
    let (mut rakam_rate, mut segment_rate, mut ids_rate) = (0.0, 0.0, 0.0);
    for round in 0..2 {
        let rate = load(addr, "/event/batch", &rakam, CONNECTIONS).await? * EVENTS_PER_BATCH as f64;
        println!("/event/batch (round {round}):                       {rate:>10.0} events/s");
        rakam_rate += rate / 2.0;
        let rate = load_with(addr, "/v1/batch", &segment, CONNECTIONS, &gzip).await? * EVENTS_PER_BATCH as f64;
        println!("/v1/batch, Segment's, gzip (round {round}):          {rate:>10.0} events/s");
        segment_rate += rate / 2.0;
        let rate = load(addr, "/event/batch", &ided, CONNECTIONS).await? * EVENTS_PER_BATCH as f64;
        println!("/event/batch, every event with an _id (round {round}): {rate:>10.0} events/s");
        ids_rate += rate / 2.0;
    }
    drop(gateway);

    // Loading: a fresh gateway, a backlog of distinct events, with ids and
    // without.
    let dir = tempfile::tempdir()?;
    // The loop runs only when the benchmark commits.
    let settings = [("WEIR_BATCH__INTERVAL_MS", "3600000"), ("WEIR_BATCH__MAX_RECORDS", "10000000")];
    let (gateway, addr) = start_gateway_with(dir.path(), &settings).await?;
    // Three rounds, each without ids then with, so that drift falls on both
    // alike; the figures are the medians.
    let pid = gateway.id().ok_or("the gateway exited")?;
    let (mut plain_seconds, mut ids_seconds) = (Vec::new(), Vec::new());
    for round in 0..LOAD_ROUNDS {
        for ids in [false, true] {
            let name = format!("load_{}_{round}", if ids { "ids" } else { "plain" });
            let (key, master) = project(addr, &name).await?;
            let mut sent = 0;
            while sent < BACKLOG {
                let batch = &samples[(sent / EVENTS_PER_BATCH) % samples.len()];
                let batch = if ids { with_ids(batch, sent) } else { batch.clone() };
                let body: Value = serde_json::from_slice(&batch_body(&key, &batch))?;
                post_json(addr, "/event/batch", body).await?;
                sent += EVENTS_PER_BATCH;
            }
            let (took, cpu) = commit_seconds(addr, pid, &master).await?;
            println!(
                "batch loop, {BACKLOG} events {} (round {round}): {took:>6.2} s ({:.0} events/s), {cpu:.2} CPU s",
                if ids { "with ids   " } else { "without ids" },
                BACKLOG as f64 / took
            );
            if ids { ids_seconds.push((took, cpu)) } else { plain_seconds.push((took, cpu)) }
        }
    }
    drop(gateway);

    println!();
    println!("| measure | figure | target | met |");
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, ratio: f64, target: f64| {
        println!("| {name} | {ratio:.2} | >= {target} | {} |", if ratio >= target { "yes" } else { "no" });
    };
    row("/v1/batch (gzip) / /event/batch, events/s", segment_rate / rakam_rate, 0.8);
    row("/event/batch with ids / without, events/s", ids_rate / rakam_rate, 0.8);
    let ratio = |pick: fn(&(f64, f64)) -> f64| {
        median(plain_seconds.iter().map(pick).collect()) / median(ids_seconds.iter().map(pick).collect())
    };
    row("batch loop with ids / without, events/s", ratio(|(clock, _)| *clock), 0.8);
    row("batch loop with ids / without, events per CPU second", ratio(|(_, cpu)| *cpu), 0.8);
    Ok(())
}
