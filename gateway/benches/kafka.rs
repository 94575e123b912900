//! Kafka log benchmark. Prints, from one run against one broker (tansu,
//! from `WEIRBENCH_TANSU`, else `WEIRTEST_TANSU`):
//!
//! - events/s through `/event/batch` (100 events per request, 8 keep-alive
//!   connections) on the embedded log and on the Kafka log, against the
//!   real `weir` process;
//! - rdkafka's raw produce rate of the same Avro records (encoded in
//!   process beforehand) to the same broker, with the gateway's producer
//!   settings (idempotent, `acks=all`, `linger.ms=0`): 8 tasks, each
//!   producing 100 records and waiting for their delivery reports, as a
//!   request does (the floor); the same with the gateway's 16-byte header
//!   on each record; and the records produced without waiting per batch;
//! - the ratios.
//!
//! Run: `cargo bench -p weir-gateway --bench kafka` (`WEIRBENCH_SECONDS`
//! sets the length of each load phase, default 10).

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{batch_body, encoder, events, load, post_json, seconds, start_gateway_with};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use weir_gateway::log::Record;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS_PER_BATCH: usize = 100;
const CONNECTIONS: usize = 8;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // cargo bench -- --list
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run())
}

async fn start_broker() -> Result<(tokio::process::Child, String), Box<dyn std::error::Error>> {
    let tansu = std::env::var("WEIRBENCH_TANSU")
        .or_else(|_| std::env::var("WEIRTEST_TANSU"))
        .map_err(|_| "set WEIRBENCH_TANSU to the tansu binary (scripts/test.sh installs one)")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listener = format!("tcp://127.0.0.1:{port}");
    let child = tokio::process::Command::new(tansu)
        .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok((child, format!("127.0.0.1:{port}")));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err("tansu did not start".into())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = StdRng::seed_from_u64(7);
    let (_broker, bootstrap) = start_broker().await?;
    let bodies = |key: &str, rng: &mut StdRng| -> Vec<Bytes> {
        (0..200).map(|_| batch_body(key, &events(rng, EVENTS_PER_BATCH))).collect()
    };
    println!(
        "Weir Kafka log benchmark: {} s per phase; {CONNECTIONS} connections or producers, batches of \
         {EVENTS_PER_BATCH}; broker tansu (memory storage) on loopback",
        seconds().as_secs()
    );

    // The batch loop waits for the end of a phase (it would read the log
    // back on the same two cores): the phases measure ingest alone.
    let hold_loop = [("WEIR_BATCH__INTERVAL_MS", "3600000"), ("WEIR_BATCH__MAX_RECORDS", "100000000")];
    let dir = tempfile::tempdir()?;
    let (gateway, addr) = start_gateway_with(dir.path(), &hold_loop).await?;
    let keys = post_json(addr, "/project/create", json!({"name": "bench"})).await?;
    let batches = bodies(keys["write_key"].as_str().ok_or("no write key")?, &mut rng);
    let embedded = load(addr, "/event/batch", &batches, CONNECTIONS).await? * EVENTS_PER_BATCH as f64;
    drop(gateway);
    println!("/event/batch on the embedded log:            {embedded:>10.0} events/s");

    let dir = tempfile::tempdir()?;
    let log = format!("kafka://{bootstrap}");
    let (gateway, addr) = start_gateway_with(dir.path(), &[&hold_loop[..], &[("WEIR_LOG", &log)]].concat()).await?;
    let keys = post_json(addr, "/project/create", json!({"name": "bench"})).await?;
    let batches = bodies(keys["write_key"].as_str().ok_or("no write key")?, &mut rng);
    let kafka = load(addr, "/event/batch", &batches, CONNECTIONS).await? * EVENTS_PER_BATCH as f64;
    drop(gateway);
    println!("/event/batch on the Kafka log:               {kafka:>10.0} events/s");

    let records = Arc::new(encoded(&batches).await?);
    let producer: Arc<FutureProducer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .create()?,
    );
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &bootstrap).create()?;
    let topics =
        ["raw-awaited", "raw-awaited-headers", "raw-streamed"].map(|t| NewTopic::new(t, 3, TopicReplication::Fixed(1)));
    for result in admin.create_topics(&topics, &AdminOptions::new()).await? {
        result.map_err(|(t, e)| format!("create {t}: {e}"))?;
    }
    let awaited = raw_awaited(producer.clone(), records.clone(), "raw-awaited").await?;
    println!("raw rdkafka produce, awaited per batch:      {awaited:>10.0} events/s");
    let headers = raw_awaited(producer.clone(), records.clone(), "raw-awaited-headers").await?;
    println!("the same with a 16-byte header per record:   {headers:>10.0} events/s");
    let streamed = raw_streamed(producer.clone(), records.clone()).await?;
    println!("raw rdkafka produce, streamed:               {streamed:>10.0} events/s");

    println!();
    println!("| measure | figure | target | met |");
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, figure: String, target: &str, met: bool| {
        println!("| {name} | {figure} | {target} | {} |", if met { "yes" } else { "no" });
    };
    row("/event/batch on Kafka, events/s", format!("{kafka:.0}"), "", true);
    row("Kafka / raw produce (awaited per batch)", format!("{:.2}", kafka / awaited), ">= 0.7", kafka / awaited >= 0.7);
    row("Kafka / raw produce (streamed)", format!("{:.2}", kafka / streamed), "", true);
    row("Kafka / embedded log", format!("{:.2}", kafka / embedded), "", true);
    Ok(())
}

/// The Avro records the gateway produces for these request bodies, one
/// batch of records per body.
async fn encoded(bodies: &[Bytes]) -> Result<Vec<Vec<Record>>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (ingestor, ctx) = encoder(dir.path()).await?;
    let mut out = Vec::with_capacity(bodies.len());
    for body in bodies {
        let parsed = weir_gateway::http::parse_batch(std::str::from_utf8(body)?).map_err(|e| e.message)?;
        let batches = ingestor.encode(&ctx, parsed.events).await?;
        out.push(batches.into_iter().flat_map(|b| b.records).collect());
    }
    Ok(out)
}

fn message<'a>(record: &'a Record, topic: &'a str) -> FutureRecord<'a, [u8], [u8]> {
    let mut m = FutureRecord::to(topic).payload(&record.value[..]);
    if topic.ends_with("-headers") {
        // The gateway's append header: 16 bytes per record.
        let headers = rdkafka::message::OwnedHeaders::new_with_capacity(1)
            .insert(rdkafka::message::Header { key: "weir-append", value: Some(&[7u8; 16][..]) });
        m = m.headers(headers);
    }
    match &record.key {
        Some(k) => m.key(&k[..]),
        None => m,
    }
}

/// Records/s of `CONNECTIONS` tasks, each producing a batch and waiting for
/// its delivery reports before the next.
async fn raw_awaited(
    producer: Arc<FutureProducer>,
    batches: Arc<Vec<Vec<Record>>>,
    topic: &'static str,
) -> Result<f64, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + seconds();
    let mut tasks = Vec::new();
    for t in 0..CONNECTIONS {
        let (producer, batches) = (producer.clone(), batches.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut i = t;
            while Instant::now() < deadline {
                let batch = &batches[i % batches.len()];
                let mut reports = Vec::with_capacity(batch.len());
                for record in batch {
                    let m = message(record, topic);
                    reports.push(producer.send_result(m).map_err(|(e, _)| e.to_string())?);
                }
                for r in futures::future::join_all(reports).await {
                    r.map_err(|e| e.to_string())?.map_err(|(e, _)| e.to_string())?;
                }
                sent += batch.len() as u64;
                i += CONNECTIONS;
            }
            Ok::<_, String>(sent)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / seconds().as_secs_f64())
}

/// Records/s of one task producing without waiting, then flushing.
async fn raw_streamed(
    producer: Arc<FutureProducer>,
    batches: Arc<Vec<Vec<Record>>>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let deadline = started + seconds();
    let mut sent = 0u64;
    let mut pending = Vec::new();
    let mut i = 0;
    while Instant::now() < deadline {
        for record in &batches[i % batches.len()] {
            let mut m = message(record, "raw-streamed");
            loop {
                match producer.send_result(m) {
                    Ok(report) => {
                        pending.push(report);
                        break;
                    }
                    Err((_, back)) => {
                        m = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            sent += 1;
        }
        i += 1;
        if pending.len() > 100_000 {
            for r in futures::future::join_all(std::mem::take(&mut pending)).await {
                r?.map_err(|(e, _)| e)?;
            }
        }
    }
    for r in futures::future::join_all(pending).await {
        r?.map_err(|(e, _)| e)?;
    }
    Ok(sent as f64 / started.elapsed().as_secs_f64())
}
