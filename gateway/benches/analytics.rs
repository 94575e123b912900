//! Analytics benchmark. Prints, from one run:
//!
//! - the batch loop's events/s (event log to Parquet) beside raw Avro
//!   decoding of the same records;
//! - five analytics queries on DataFusion beside DuckDB on the same Parquet
//!   files, with the ratio for each.
//!
//! Run: `pip install duckdb pytz && cargo bench -p weir-gateway --bench analytics`
//! (`WEIRBENCH_EVENTS` sets the number of events, default 10,000,000).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use weir_gateway::batch::compaction::Compactor;
use weir_gateway::batch::loader::Loader;
use weir_gateway::batch::warehouse::{S3Config, Warehouse};
use weir_gateway::config::QueryConfig;
use weir_gateway::ingest::{Context, Event, Ingestor};
use weir_gateway::log::EventLog;
use weir_gateway::log::file::{FileLog, FileLogConfig};
use weir_gateway::query::Tables;
use weir_gateway::query::engine::{DataFusionEngine, MemorySettings, QueryEngine};
use weir_gateway::query::rewrite;
use weir_gateway::schema::SchemaRegistry;
use weir_gateway::schema::avro;
use weir_gateway::users::{self, Users};

mod common;

use common::duckdb;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The queries, in DataFusion's and DuckDB's words.
const QUERIES: [(&str, &str, &str); 5] = [
    (
        "count per day",
        "SELECT date_trunc('day', _time) AS d, count(*) FROM pageview GROUP BY 1 ORDER BY 1",
        "SELECT date_trunc('day', _time) AS d, count(*) FROM pageview GROUP BY 1 ORDER BY 1",
    ),
    (
        "top 20 values of a property",
        "SELECT url, count(*) AS n FROM pageview GROUP BY url ORDER BY n DESC, url LIMIT 20",
        "SELECT url, count(*) AS n FROM pageview GROUP BY url ORDER BY n DESC, url LIMIT 20",
    ),
    (
        "distinct users per day",
        "SELECT date_trunc('day', _time) AS d, count(DISTINCT _user) FROM pageview GROUP BY 1 ORDER BY 1",
        "SELECT date_trunc('day', _time) AS d, count(DISTINCT _user) FROM pageview GROUP BY 1 ORDER BY 1",
    ),
    (
        "two-step funnel within an hour",
        "SELECT count(DISTINCT s._user) FROM signup s JOIN purchase p ON s._user = p._user \
         AND p._time >= s._time AND p._time <= s._time + INTERVAL '1 hour'",
        "SELECT count(DISTINCT s._user) FROM signup s JOIN purchase p ON s._user = p._user \
         AND p._time >= s._time AND p._time <= s._time + INTERVAL '1 hour'",
    ),
    (
        "p95 of a property per country",
        "SELECT country, approx_percentile_cont(price, 0.95) FROM purchase GROUP BY country ORDER BY country",
        "SELECT country, approx_quantile(price, 0.95) FROM purchase GROUP BY country ORDER BY country",
    ),
];

fn main() -> Result<(), BoxError> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run())
}

fn event(rng: &mut StdRng, start_ms: i64) -> Event {
    let roll = rng.random_range(0..100);
    let collection = match roll {
        0..60 => "pageview",
        60..85 => "click",
        85..95 => "purchase",
        _ => "signup",
    };
    let user = (rng.random::<f64>().powi(3) * 200_000.0) as u64;
    let countries = ["US", "DE", "GB", "TR", "IN", "BR", "FR", "JP"];
    let time_ms = start_ms + rng.random_range(0..30 * 86_400_000i64);
    let browser = ["Chrome", "Safari", "Firefox"][rng.random_range(0..3)];
    let properties = json!({
        "_user": format!("u{user}"),
        "_time": time_ms,
        "url": format!("/p/{}", (rng.random::<f64>().powi(2) * 2000.0) as u32),
        "country": countries[rng.random_range(0..countries.len())],
        "price": (rng.random_range(100..100_000) as f64) / 100.0,
        "browser": browser,
        "session_id": format!("{:016x}", rng.random::<u64>()),
    });
    Event::new(collection, Some(properties)).unwrap_or_else(|_| unreachable!("generated names are valid"))
}

async fn run() -> Result<(), BoxError> {
    let events: usize = std::env::var("WEIRBENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let dir = tempfile::tempdir()?;
    let store = weir_gateway::metadata::open(&format!("sqlite://{}/metadata.db", dir.path().display())).await?;
    store.create_project("bench", 0).await?;
    store.claim_epoch(1, "bench", 0).await?;
    let log = Arc::new(
        FileLog::open(dir.path().join("log"), FileLogConfig { partitions: 2, ..FileLogConfig::default() }).await?,
    );
    let registry = Arc::new(SchemaRegistry::new(store.clone()));
    let warehouse =
        Warehouse::open(&format!("file://{}", dir.path().join("warehouse").display()), &S3Config::default())?;
    let loader = Loader::new(log.clone(), store.clone(), registry.clone(), warehouse.clone(), 1_000_000);
    let ingest = Ingestor::new(registry.clone(), log.clone());

    println!("Weir analytics benchmark: {events} events, 4 collections, 30 days, skewed users");
    let mut rng = StdRng::seed_from_u64(11);
    let ctx = Context { project: "bench".into(), received_ms: 1_735_689_600_000, ..Context::default() };
    let started = Instant::now();
    let mut sent = 0;
    while sent < events {
        let n = (events - sent).min(10_000);
        let batch: Vec<Event> = (0..n).map(|_| event(&mut rng, 1_733_011_200_000)).collect();
        ingest.store(&ctx, batch).await?;
        sent += n;
    }
    println!("generated and appended to the log in {:.1} s", started.elapsed().as_secs_f64());

    // Raw Avro decoding of the same records, in memory.
    let mut records = Vec::new();
    for topic in log.topics().await? {
        for p in 0..topic.partitions {
            let mut from = 0;
            loop {
                let batch = log.read(&topic.name, p, from, 1_000_000).await?;
                let Some(last) = batch.records.last() else { break };
                from = last.offset + 1;
                records.extend(batch.records);
            }
        }
    }
    let mut schemas = BTreeMap::new();
    for r in &records {
        let (id, _) = avro::split_header(&r.value)?;
        if let std::collections::btree_map::Entry::Vacant(slot) = schemas.entry(id) {
            slot.insert(registry.by_id(i64::from(id)).await?.ok_or("schema")?);
        }
    }
    let started = Instant::now();
    let mut fields = 0usize;
    for r in &records {
        let (id, body) = avro::split_header(&r.value)?;
        let schema = &schemas[&id];
        fields += avro::decode(body, &schema.fields, &schema.fields)?.len();
    }
    let decode_rate = records.len() as f64 / started.elapsed().as_secs_f64();
    std::hint::black_box(fields);
    drop(records);

    let started = Instant::now();
    let stats = loader.run_once(1, 0).await?;
    let loop_rate = stats.rows as f64 / started.elapsed().as_secs_f64();
    println!("batch loop (log to Parquet):      {loop_rate:>12.0} events/s ({} files)", stats.files);
    println!("raw Avro decoding, same records:  {decode_rate:>12.0} events/s");
    // Queries run on compacted days, as they do once background compaction
    // has caught up.
    let compactor = Compactor::new(store.clone(), warehouse.clone(), 2);
    let compacted = compactor.run_once(1, 0).await?;
    println!("compaction: {} files into {}", compacted.merged, compacted.written);

    // The queries.
    let memory = MemorySettings::from_config(&QueryConfig::default(), dir.path());
    let metadata_url = format!("sqlite://{}/metadata.db", dir.path().display());
    let users = Arc::new(Users::new(users::open(&metadata_url).await?, store.clone(), registry.clone(), 1_000));
    let engine = DataFusionEngine::new(store.clone(), warehouse.clone(), users, &memory)?;
    let collections: BTreeMap<String, Vec<weir_gateway::schema::types::Field>> =
        store.latest_schemas("bench").await?.into_iter().map(|s| (s.collection, s.fields)).collect();
    let users_table = engine.users_table_name("bench");
    let root = warehouse.local_root().ok_or("local warehouse")?.to_path_buf();
    let mut tables = serde_json::Map::new();
    for name in collections.keys() {
        let files: Vec<String> = store
            .parquet_files("bench", name)
            .await?
            .iter()
            .map(|f| root.join(&f.path).display().to_string())
            .collect();
        tables.insert(name.clone(), json!(files));
    }
    let spec = json!({"tables": tables, "queries": QUERIES.iter().map(|q| q.2).collect::<Vec<_>>(), "runs": 3});
    let duck = duckdb(&spec)?;

    println!();
    println!("| query | DataFusion | DuckDB | ratio | target <= 1.5 |");
    println!("| --- | --- | --- | --- | --- |");
    for (i, (label, sql, _)) in QUERIES.iter().enumerate() {
        let name = |c: &str| engine.table_name("bench", c);
        let mut best = f64::MAX;
        let mut rows = 0;
        for _ in 0..3 {
            let scope = rewrite::Scope {
                collections: &collections,
                table_name: &name,
                users_table: &users_table,
                catalog: None,
                derived: &rewrite::DerivedNames::new(),
            };
            let statement = rewrite::rewrite(sql, &scope)?;
            let tables = Tables { collections: collections.clone(), ..Tables::default() };
            let started = Instant::now();
            let output = engine.run("bench", &tables, statement).await?;
            best = best.min(started.elapsed().as_secs_f64());
            rows = output.batches.iter().map(|b| b.num_rows()).sum::<usize>();
        }
        let theirs = duck["seconds"][i].as_f64().unwrap_or(f64::NAN);
        let their_rows = duck["rows"][i].as_u64().unwrap_or(0) as usize;
        assert_eq!(rows, their_rows, "{label}: both engines answer the same number of rows");
        let ratio = best / theirs;
        println!(
            "| {label} | {:.0} ms | {:.0} ms | {ratio:.2} | {} |",
            best * 1000.0,
            theirs * 1000.0,
            if ratio <= 1.5 { "yes" } else { "no" }
        );
    }
    println!();
    let met = loop_rate >= 300_000.0;
    println!("| batch loop events/s | {loop_rate:.0} | target >= 300,000 | {} |", if met { "yes" } else { "no" });
    Ok(())
}
