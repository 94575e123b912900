//! The batch loop from the event log into Parquet: exactly once, across
//! partitions, days, schema versions, batch boundaries and a crash between
//! writing files and committing them; compaction and the janitor; the
//! master's fence. Run on every backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow::array::{Array, Float64Array, StringArray};
use arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt as _;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use weir_gateway::batch::compaction::Compactor;
use weir_gateway::batch::janitor::Janitor;
use weir_gateway::batch::loader::{self, Loader};
use weir_gateway::batch::warehouse::PART_BYTES;
use weir_gateway::config::QueryConfig;
use weir_gateway::ingest::{Context, Event, Ingestor};
use weir_gateway::log::file::{FileLog, FileLogConfig};
use weir_gateway::log::kafka::KafkaLogConfig;
use weir_gateway::log::{EventLog, LogSettings};
use weir_gateway::metadata::{self, Commit, MetadataStore, OffsetAdvance};
use weir_gateway::query::engine::{DataFusionEngine, MemorySettings, QueryEngine};
use weir_gateway::query::{Tables, rewrite};
use weir_gateway::schema::SchemaRegistry;
use weir_gateway::users::{self, Users};
use weir_tests::broker::Broker;
use weir_tests::{Backend, Gateway, on_every_backend};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The epoch the parts commit under, claimed when they are made.
const EPOCH: i64 = 1;

struct Parts {
    _dir: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    log: Arc<dyn EventLog>,
    ingest: Ingestor,
    loader: Arc<Loader>,
    users: Arc<Users>,
    /// How long a record waits before the loader may read it.
    hold: Duration,
    _broker: Option<Broker>,
}

async fn parts(backend: Backend, max_records: usize) -> Parts {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = backend.fresh_metadata_url(dir.path()).await;
    let store = metadata::open(&url).await.expect("metadata");
    store.create_project("p", 0).await.expect("project");
    assert!(store.claim_epoch(EPOCH, "test", 0).await.expect("claim"));
    let (log, broker): (Arc<dyn EventLog>, _) = match backend {
        Backend::Kafka => {
            let broker = Broker::start().await;
            let kafka = KafkaLogConfig { partitions: 3, delivery_timeout_ms: 1000, settle_ms: 0, ..Default::default() };
            let settings = LogSettings { file: &FileLogConfig::default(), kafka: &kafka };
            (weir_gateway::log::open(&broker.url(), settings, store.clone()).await.expect("log"), Some(broker))
        }
        _ => {
            let config = FileLogConfig { partitions: 3, ..FileLogConfig::default() };
            (Arc::new(FileLog::open(dir.path().join("log"), config).await.expect("log")), None)
        }
    };
    let hold = log.read_delay();
    let registry = Arc::new(SchemaRegistry::new(store.clone()));
    let warehouse = backend.fresh_warehouse(dir.path());
    let loader = Arc::new(Loader::new(log.clone(), store.clone(), registry.clone(), warehouse, max_records));
    let users = Arc::new(Users::new(users::open(&url).await.expect("users"), store.clone(), registry.clone(), 1_000));
    let ingest = Ingestor::new(registry, log.clone());
    Parts { _dir: dir, store, log, ingest, loader, users, hold, _broker: broker }
}

/// Sends events `seqs` to `collection`, one request each; even ones on one
/// day, odd ones on the next; users spread over partitions.
async fn send(p: &Parts, collection: &str, seqs: impl Iterator<Item = u64>, extra: Value) {
    for seq in seqs {
        let mut properties = json!({"seq": seq, "_user": format!("u{}", seq % 7), "_time": if seq % 2 == 0 { "2024-03-01T10:00:00Z" } else { "2024-03-02T10:00:00Z" }});
        if let (Some(o), Some(e)) = (properties.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let event = Event::new(collection, Some(properties)).expect("event");
        let ctx = Context { project: "p".into(), received_ms: 1_709_287_200_000, ..Context::default() };
        p.ingest.store(&ctx, vec![event]).await.expect("store");
    }
    tokio::time::sleep(p.hold).await;
}

/// Every row of a collection's table, read through its manifest.
async fn table(p: &Parts, collection: &str) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for file in p.store.parquet_files("p", collection).await.expect("manifest") {
        assert!(file.path.contains(&format!("/_day={}/", file.day)), "{}", file.path);
        let bytes = p.loader.warehouse().get(&file.path).await.expect("file");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("parquet").build().expect("reader");
        let mut rows = 0;
        for batch in reader {
            let batch = batch.expect("batch");
            rows += batch.num_rows() as u64;
            batches.push(batch);
        }
        assert_eq!(rows, file.rows, "{}: the manifest counts its rows", file.path);
    }
    batches
}

fn floats(batches: &[RecordBatch], column: &str) -> Vec<Option<f64>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(column).expect(column).as_any().downcast_ref::<Float64Array>().expect("f64");
            (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect::<Vec<_>>()
        })
        .collect()
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| match b.column_by_name(column) {
            None => vec![None; b.num_rows()],
            Some(c) => {
                let a = c.as_any().downcast_ref::<StringArray>().expect("utf8");
                (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_owned())).collect()
            }
        })
        .collect()
}

fn counted(values: Vec<Option<f64>>) -> HashMap<u64, usize> {
    let mut count = HashMap::new();
    for v in values {
        *count.entry(v.expect("seq is never null") as u64).or_default() += 1;
    }
    count
}

async fn every_event_lands_once_across_partitions_days_and_schema_versions(backend: Backend) {
    let p = parts(backend, 1000).await;
    send(&p, "clicks", 0..40, json!({})).await;
    send(&p, "clicks", 40..60, json!({"button": "buy"})).await;
    send(&p, "views", 0..10, json!({"url": "/"})).await;
    let stats = p.loader.run_once(EPOCH, 0).await.expect("load");
    assert_eq!(stats.rows, 70);

    let clicks = table(&p, "clicks").await;
    let count = counted(floats(&clicks, "seq"));
    assert_eq!(count.len(), 60);
    assert!(count.values().all(|n| *n == 1));
    // Old records read with nulls for the field added later.
    let seqs = floats(&clicks, "seq");
    let buttons = strings(&clicks, "button");
    for (seq, button) in seqs.iter().zip(&buttons) {
        let expected = if seq.expect("seq") >= 40.0 { Some("buy".to_owned()) } else { None };
        assert_eq!(*button, expected, "seq {seq:?}");
    }
    let files = p.store.parquet_files("p", "clicks").await.expect("manifest");
    let days: std::collections::BTreeSet<&str> = files.iter().map(|f| f.day.as_str()).collect();
    assert_eq!(days.into_iter().collect::<Vec<_>>(), ["2024-03-01", "2024-03-02"]);
    let partitions: std::collections::BTreeSet<u32> = files.iter().map(|f| f.partition).collect();
    assert!(partitions.len() > 1, "users spread over partitions: {partitions:?}");

    let again = p.loader.run_once(EPOCH, 0).await.expect("load again");
    assert_eq!(again.rows, 0, "nothing is loaded twice");
    let offsets = p.store.committed_offsets().await.expect("offsets");
    let total: u64 = offsets.iter().filter(|((t, _), _)| t == "p.clicks").map(|(_, o)| *o).sum();
    assert_eq!(total, 60);
}

async fn small_batches_keep_every_record_at_their_boundaries(backend: Backend) {
    let p = parts(backend, 7).await;
    send(&p, "c", 0..50, json!({})).await;
    p.loader.run_once(EPOCH, 0).await.expect("load");
    let count = counted(floats(&table(&p, "c").await, "seq"));
    assert_eq!(count.len(), 50);
    assert!(count.values().all(|n| *n == 1));
    let files = p.store.parquet_files("p", "c").await.expect("manifest");
    for f in &files {
        assert!(f.last_offset - f.first_offset < 7, "{f:?}");
    }
}

async fn a_crash_between_writing_and_committing_loads_nothing_twice(backend: Backend) {
    let p = parts(backend, 1000).await;
    send(&p, "c", 0..30, json!({})).await;
    // A loader writes the files of every partition and dies before committing.
    let mut orphans = Vec::new();
    for partition in 0..3 {
        if let Some(staged) = p.loader.write_partition("p.c", partition, 0).await.expect("write") {
            orphans.extend(staged.files.into_iter().map(|f| f.path));
        }
    }
    assert!(!orphans.is_empty());
    assert!(p.store.parquet_files("p", "c").await.expect("manifest").is_empty(), "nothing committed");
    // The next run writes the same ranges under the same names and commits.
    p.loader.run_once(EPOCH, 0).await.expect("load");
    let committed: Vec<String> =
        p.store.parquet_files("p", "c").await.expect("manifest").into_iter().map(|f| f.path).collect();
    let mut orphans_sorted = orphans.clone();
    orphans_sorted.sort();
    assert_eq!(committed, orphans_sorted);
    let count = counted(floats(&table(&p, "c").await, "seq"));
    assert_eq!(count.len(), 30);
    assert!(count.values().all(|n| *n == 1));

    // A second loader that read the old offset cannot commit over it.
    let stale = OffsetAdvance { topic: "p.c".into(), partition: 0, from: 0, to: 999 };
    let moved = p.store.commit_load(EPOCH, &[], &[stale], 0).await.expect("commit");
    assert_eq!(moved, Commit::Conflict);
    let _ = p.log.topics().await.expect("topics");
}

async fn bulk_commit_makes_acknowledged_events_visible_in_storage(backend: Backend) {
    let mut gw = Gateway::start_with(
        backend,
        weir_tests::Options { env: vec![("WEIR_BATCH__INTERVAL_MS".into(), "3600000".into())], ..Default::default() },
    )
    .await;
    let k = gw.create_project("shop").await;
    let events: Vec<(String, Value)> = (0..25).map(|i| ("orders".to_owned(), json!({"seq": i, "sku": "A"}))).collect();
    assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
    assert_eq!(gw.post("/event/bulk/commit", &[("master_key", &k.read)], &json!({})).await.status, 403);
    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    gw.stop().await;

    let store = metadata::open(&gw.metadata_url).await.expect("metadata");
    let files = store.parquet_files("shop", "orders").await.expect("manifest");
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 25);
    let warehouse = gw.warehouse();
    for f in &files {
        let bytes = warehouse.get(&f.path).await.expect("parquet file in the warehouse");
        let rows: usize = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("parquet")
            .build()
            .expect("reader")
            .map(|b| b.expect("batch").num_rows())
            .sum();
        assert_eq!(rows as u64, f.rows);
    }
}

fn memory_settings(p: &Parts) -> MemorySettings {
    MemorySettings::from_config(&QueryConfig::default(), p._dir.path())
}

/// `SELECT count(*), count(DISTINCT seq), count(tag) FROM c` on the engine.
async fn counts(p: &Parts, engine: &dyn QueryEngine) -> (i64, i64, i64) {
    let collections =
        p.store.latest_schemas("p").await.expect("schemas").into_iter().map(|s| (s.collection, s.fields)).collect();
    let tables = Tables { collections, ..Tables::default() };
    let name = |c: &str| engine.table_name("p", c);
    let users_table = engine.users_table_name("p");
    let statement = rewrite::rewrite(
        "SELECT count(*), count(DISTINCT seq), count(tag) FROM c",
        &rewrite::Scope {
            collections: &tables.collections,
            table_name: &name,
            users_table: &users_table,
            catalog: None,
            derived: &rewrite::DerivedNames::new(),
        },
    )
    .expect("rewrite");
    let output = engine.run("p", &tables, statement).await.expect("query");
    let row = weir_gateway::query::result::rows(&output.batches, 1 << 20).expect("rows").remove(0);
    let n = |v: &Value| v.as_i64().expect("count");
    (n(&row[0]), n(&row[1]), n(&row[2]))
}

async fn compaction_merges_small_files_while_queries_see_every_row_once(backend: Backend) {
    let p = Arc::new(parts(backend, 3).await);
    send(&p, "c", 0..60, json!({})).await;
    p.loader.run_once(EPOCH, 0).await.expect("load");
    send(&p, "c", 60..66, json!({"tag": "late"})).await;
    p.loader.run_once(EPOCH, 0).await.expect("load");
    let before = p.store.parquet_files("p", "c").await.expect("manifest");
    assert!(before.len() > 10, "{} files", before.len());

    let engine: Arc<dyn QueryEngine> = Arc::new(
        DataFusionEngine::new(p.store.clone(), p.loader.warehouse().clone(), p.users.clone(), &memory_settings(&p))
            .expect("engine"),
    );
    assert_eq!(counts(&p, engine.as_ref()).await, (66, 66, 6));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (p, engine, stop) = (p.clone(), engine.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = 0;
                while !stop.load(Ordering::Relaxed) || seen == 0 {
                    assert_eq!(counts(&p, engine.as_ref()).await, (66, 66, 6), "a query during compaction");
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    let compactor = Compactor::new(p.store.clone(), p.loader.warehouse().clone(), 2);
    let now = now_ms();
    let stats = compactor.run_once(EPOCH, now).await.expect("compact");
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.await.expect("reader") > 0);
    }
    assert_eq!(stats.merged, before.len());
    let after = p.store.parquet_files("p", "c").await.expect("manifest");
    assert_eq!(after.len(), 2, "one file per day: {after:?}");
    assert_eq!(after.iter().map(|f| f.rows).sum::<u64>(), 66);
    assert_eq!(counts(&p, engine.as_ref()).await, (66, 66, 6));
    // The replaced files stay through the grace period, then the janitor
    // deletes them.
    let janitor = Janitor::new(p.store.clone(), p.loader.clone(), Duration::from_secs(60));
    assert_eq!(janitor.run_once(EPOCH, now + 1_000).await.expect("janitor"), 0);
    assert!(p.loader.warehouse().get(&before[0].path).await.is_ok(), "a query may still read it");
    assert_eq!(janitor.run_once(EPOCH, now + 61_000).await.expect("janitor"), before.len());
    for f in &before {
        assert!(p.loader.warehouse().get(&f.path).await.is_err(), "replaced files are deleted");
    }
    assert!(p.loader.warehouse().get(&after[0].path).await.is_ok());
    assert!(p.store.retired_files().await.expect("retired").is_empty());
    assert_eq!(counts(&p, engine.as_ref()).await, (66, 66, 6));
}

/// Once a newer master claims the fence, the old one's commits, swaps and
/// deletes are refused and change nothing; every file and offset records
/// the epoch that committed it; crash leftovers go, committed files stay.
async fn a_deposed_master_changes_nothing(backend: Backend) {
    let p = parts(backend, 1000).await;
    send(&p, "c", 0..20, json!({})).await;
    p.loader.run_once(EPOCH, 0).await.expect("load");
    send(&p, "c", 20..40, json!({})).await;
    // Epochs only grow: a lower or equal claim is refused.
    assert!(!p.store.claim_epoch(EPOCH, "other", 0).await.expect("claim"));
    assert!(p.store.claim_epoch(5, "other", 0).await.expect("claim"));
    assert!(!p.store.claim_epoch(4, "late", 0).await.expect("claim"));
    assert_eq!(p.store.master_epoch().await.expect("fence").epoch, 5);

    let manifest = p.store.manifest().await.expect("manifest");
    let offsets = p.store.committed_offsets().await.expect("offsets");
    match p.loader.run_once(EPOCH, 0).await {
        Err(loader::Error::Deposed(EPOCH)) => {}
        other => panic!("a deposed loader committed: {other:?}"),
    }
    let compactor = Compactor::new(p.store.clone(), p.loader.warehouse().clone(), 2);
    assert!(compactor.run_once(EPOCH, 0).await.is_err(), "a deposed compaction swapped files");
    let now = now_ms();
    let janitor = Janitor::new(p.store.clone(), p.loader.clone(), Duration::from_secs(60));
    assert!(janitor.run_once(EPOCH, now + 61_000).await.is_err(), "a deposed janitor deleted files");
    assert_eq!(p.store.manifest().await.expect("manifest"), manifest);
    assert_eq!(p.store.committed_offsets().await.expect("offsets"), offsets);
    assert!(manifest.iter().all(|f| f.epoch == EPOCH), "{manifest:?}");

    // The new master loads the rest; its files and offsets carry its epoch.
    let stats = p.loader.run_once(5, 0).await.expect("load");
    assert_eq!(stats.rows, 20);
    let count = counted(floats(&table(&p, "c").await, "seq"));
    assert_eq!(count.len(), 40);
    assert!(count.values().all(|n| *n == 1));
    let after = p.store.manifest().await.expect("manifest");
    assert_eq!(after.iter().filter(|f| f.epoch == 5).count(), after.len() - manifest.len());
    // Per partition, epochs never go back as offsets go forward.
    for partition in 0..3 {
        let mut files: Vec<_> = after.iter().filter(|f| f.partition == partition).collect();
        files.sort_by_key(|f| f.first_offset);
        assert!(files.windows(2).all(|w| w[0].epoch <= w[1].epoch), "{files:?}");
    }

    // The deposed master's leftovers (written, refused) are deleted once
    // old enough; committed files never.
    let leftover = p.loader.write_partition("p.c", 0, 0).await.expect("write").expect("records");
    // What Weir did not write is not the janitor's.
    p.loader.warehouse().put_durable("p/notes.txt", b"kept".to_vec()).await.expect("put");
    let janitor = Janitor::new(p.store.clone(), p.loader.clone(), Duration::from_secs(60));
    assert_eq!(janitor.run_once(5, now).await.expect("janitor"), 0, "leftovers are kept through the grace");
    let deleted = janitor.run_once(5, now + 61_000).await.expect("janitor");
    let named: std::collections::HashSet<String> = after.iter().map(|f| f.path.clone()).collect();
    let leftovers: Vec<_> = leftover.files.iter().filter(|f| !named.contains(&f.path)).collect();
    assert_eq!(deleted, leftovers.len());
    for f in &leftovers {
        assert!(p.loader.warehouse().get(&f.path).await.is_err(), "{} was left", f.path);
    }
    for f in &after {
        assert!(p.loader.warehouse().get(&f.path).await.is_ok(), "{} was deleted", f.path);
    }
    assert_eq!(p.loader.warehouse().get("p/notes.txt").await.expect("a file Weir did not write"), &b"kept"[..]);
    let _ = p.log.topics().await.expect("topics");
}

/// A file larger than a part goes up in parts (on S3, its ETag counts
/// them) and reads back whole.
async fn large_files_are_written_in_parts_and_read_back_whole(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = backend.fresh_warehouse(dir.path());
    let bytes: Vec<u8> = (0..PART_BYTES * 2 + 1000).map(|i| (i % 251) as u8).collect();
    warehouse.put_durable("p/c/_day=2024-03-01/large.parquet", bytes.clone()).await.expect("put");
    let back = warehouse.get("p/c/_day=2024-03-01/large.parquet").await.expect("get");
    assert!(back == bytes, "{} bytes read back of {}", back.len(), bytes.len());
    if warehouse.url().starts_with("s3://") {
        let meta = warehouse.store().head(&"p/c/_day=2024-03-01/large.parquet".into()).await.expect("head");
        let etag = meta.e_tag.unwrap_or_default();
        assert!(etag.trim_matches('"').ends_with("-3"), "not written in 3 parts: ETag {etag}");
    }
}

on_every_backend!(
    large_files_are_written_in_parts_and_read_back_whole,
    compaction_merges_small_files_while_queries_see_every_row_once,
    every_event_lands_once_across_partitions_days_and_schema_versions,
    small_batches_keep_every_record_at_their_boundaries,
    a_crash_between_writing_and_committing_loads_nothing_twice,
    a_deposed_master_changes_nothing,
    bulk_commit_makes_acknowledged_events_visible_in_storage,
);
