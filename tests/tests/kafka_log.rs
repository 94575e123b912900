//! The Kafka log against a real broker (tansu): Confluent's Python client
//! decodes Weir's topics through the Schema Registry API; records are keyed
//! by user over several partitions; a broker stopped mid-load costs no
//! acknowledged event and stores no refused one; a gateway starts without
//! its broker and serves once it is up.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_tests::broker::{self, Broker};
use weir_tests::{Backend, Gateway, Keys, Options};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn count(gw: &Gateway, k: &Keys, sql: &str) -> Vec<Value> {
    let r = gw.post("/query/execute", &[("read_key", &k.read)], &json!({"query": sql})).await;
    assert_eq!(r.status, 200, "{sql}: {}", r.text());
    r.json()["result"][0].as_array().cloned().unwrap_or_default()
}

/// Polls `sql` until it answers `want`, for up to a minute.
async fn wait_for(gw: &Gateway, k: &Keys, sql: &str, want: &[Value]) {
    let mut last = Vec::new();
    for _ in 0..300 {
        last = count(gw, k, sql).await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{sql}: {last:?}, not {want:?}");
}

/// Runs `tests/python/read_topic.py`: one JSON object per record.
fn read_with_python(broker: &Broker, gw: &Gateway, auth: &str, topic: &str) -> Vec<Value> {
    let python = std::env::var("WEIRTEST_PYTHON")
        .unwrap_or_else(|_| panic!("WEIRTEST_PYTHON is not set: run the suite with scripts/test.sh"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("read_topic.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args([&broker.bootstrap(), gw.base(), auth, topic])
        .output()
        .expect("run python");
    assert!(out.status.success(), "read_topic.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_clients_decode_topics_keyed_by_user_over_partitions() {
    let options = Options {
        env: env(&[("WEIR_KAFKA__PARTITIONS", "4"), ("WEIR_BATCH__INTERVAL_MS", "200")]),
        ..Options::default()
    };
    let gw = Gateway::start_with(Backend::Kafka, options).await;
    let k = gw.create_project("shop").await;
    // 40 requests over a while: six users, and events of nobody.
    for r in 0..40u64 {
        let events: Vec<(String, Value)> = (0..10u64)
            .map(|i| {
                let seq = r * 10 + i;
                let mut p = json!({"seq": seq, "page": format!("/p{seq}")});
                if i < 6 {
                    p["_user"] = json!(format!("u{}", seq % 6));
                }
                ("pageview".to_owned(), p)
            })
            .collect();
        assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
        tokio::time::sleep(Duration::from_millis(15)).await;
    }

    let broker = gw.broker.clone().expect("a broker");
    let topic = gw.broker_topic("shop.pageview");
    let records = read_with_python(&broker, &gw, &format!("shop:{}", k.read), &topic);
    assert_eq!(records.len(), 400);
    let mut seen = BTreeSet::new();
    let mut partitions_of_user: HashMap<String, BTreeSet<u64>> = HashMap::new();
    let mut last_seq_of_user: HashMap<String, f64> = HashMap::new();
    let mut partitions_of_nobody = BTreeSet::new();
    let mut sorted = records.clone();
    sorted.sort_by_key(|r| (r["partition"].as_u64(), r["offset"].as_u64()));
    for r in &sorted {
        let value = &r["value"];
        let seq = value["seq"].as_f64().expect("seq");
        assert!(seen.insert(seq as u64), "seq {seq} once");
        assert_eq!(value["page"], json!(format!("/p{seq}")), "{r}");
        assert!(value["_time"].is_string(), "the server's time: {r}");
        assert_eq!(r["latest_version"], 1);
        let partition = r["partition"].as_u64().expect("partition");
        match value["_user"].as_str() {
            Some(user) => {
                assert_eq!(r["key"].as_str(), Some(user), "keyed by its user: {r}");
                partitions_of_user.entry(user.to_owned()).or_default().insert(partition);
                let last = last_seq_of_user.insert(user.to_owned(), seq).unwrap_or(-1.0);
                assert!(seq > last, "a user's events stay in order: {seq} after {last}");
            }
            None => {
                assert!(r["key"].is_null(), "{r}");
                partitions_of_nobody.insert(partition);
            }
        }
    }
    assert_eq!(partitions_of_user.len(), 6);
    assert!(partitions_of_user.values().all(|p| p.len() == 1), "one partition per user: {partitions_of_user:?}");
    assert_eq!(partitions_of_nobody, BTreeSet::from([0, 1, 2, 3]), "events of nobody spread over every partition");

    // The batch loop moves every partition into storage, once.
    wait_for(&gw, &k, "SELECT count(*), count(DISTINCT seq) FROM pageview", &[json!(400), json!(400)]).await;
    // A topic that appears later is picked up without a restart.
    let signups: Vec<(String, Value)> = (0..5).map(|i| ("signup".to_owned(), json!({"n": i}))).collect();
    assert!(gw.client.batch(&k.write, &signups).await.expect("batch").is_stored());
    wait_for(&gw, &k, "SELECT count(*) FROM signup", &[json!(5)]).await;
}

/// One answer to a batch request.
struct Answer {
    answered: Instant,
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

/// Sends 50-event batches until `stop`, retrying a refused batch with the
/// same events, as a client would; records every answer and the sequence
/// numbers of acknowledged events.
async fn load(
    gw: Arc<Gateway>,
    key: String,
    id: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    for n in 0u64.. {
        let seqs: Vec<u64> = (0..50).map(|i| id * 10_000_000 + n * 50 + i).collect();
        let events: Vec<Value> =
            seqs.iter().map(|s| json!({"collection": "load", "properties": {"seq": s, "client": id}})).collect();
        let body = json!({"api": {"api_key": key}, "events": events});
        loop {
            let r = gw.post("/event/batch", &[], &body).await;
            let answer = Answer {
                answered: Instant::now(),
                status: r.status,
                retry_after: r.header("retry-after").map(str::to_owned),
                body: r.json(),
            };
            let stored = answer.status == 200;
            assert!(stored || answer.status == 503, "unexpected answer {}: {}", r.status, r.text());
            answers.push(answer);
            if stored {
                acked.lock().expect("lock").extend(&seqs);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if stop.load(Ordering::Relaxed) {
            return answers;
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_stopped_mid_load_loses_no_acknowledged_event_and_stores_no_refused_one() {
    let options = Options {
        env: env(&[
            ("WEIR_KAFKA__PARTITIONS", "2"),
            ("WEIR_KAFKA__DELIVERY_TIMEOUT_MS", "1500"),
            ("WEIR_BATCH__INTERVAL_MS", "200"),
        ]),
        ..Options::default()
    };
    let gw = Arc::new(Gateway::start_with(Backend::Kafka, options).await);
    let k = gw.create_project("shop").await;
    let broker = gw.broker.clone().expect("a broker");
    let (stop, acked) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
    let clients: Vec<_> =
        (0..2).map(|id| tokio::spawn(load(gw.clone(), k.write.clone(), id, stop.clone(), acked.clone()))).collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let paused = Instant::now();
    broker.pause();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let health = gw.send("GET", "/health", &[], "").await;
    assert_eq!((health.status, &health.json()["log"]["up"]), (503, &json!(false)), "{}", health.text());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resumed = Instant::now();
    broker.resume();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(tokio::time::timeout(Duration::from_secs(60), c).await.expect("client ends").expect("client"));
    }
    assert_eq!(gw.send("GET", "/health", &[], "").await.status, 200, "the brokers answer again");

    // While the broker was down, answers were 503 with Retry-After and
    // Rakam's JSON error; nothing was acknowledged.
    let refused: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(!refused.is_empty(), "the load ran into the stopped broker");
    for a in &refused {
        assert_eq!(a.retry_after.as_deref(), Some("1"));
        assert_eq!(a.body["error_code"], 503);
        assert!(a.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", a.body);
    }
    let grace = Duration::from_millis(300);
    let acknowledged_while_down =
        answers.iter().filter(|a| a.status == 200 && a.answered > paused + grace && a.answered < resumed).count();
    assert_eq!(acknowledged_while_down, 0, "nothing is acknowledged while the broker is stopped");
    assert!(answers.iter().any(|a| a.status == 200 && a.answered > resumed), "collection resumed");

    // Every acknowledged event is stored once, and no refused one: the
    // refused batches were sent again, so a stored refused event would
    // count twice.
    let acked = acked.lock().expect("lock").len() as u64;
    assert!(acked >= 1000, "the load ran: {acked} events acknowledged");
    wait_for(&gw, &k, "SELECT count(DISTINCT seq) FROM load", &[json!(acked)]).await;
    assert_eq!(count(&gw, &k, "SELECT count(*), count(DISTINCT seq) FROM load").await, [json!(acked), json!(acked)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_starts_without_its_broker_and_serves_once_it_is_up() {
    let port = broker::free_port();
    let mut settings = broker::gateway_env(port);
    settings.push(("WEIR_BATCH__INTERVAL_MS".into(), "200".into()));
    let gw = Gateway::start_with(Backend::Postgres, Options { env: settings, ..Options::default() }).await;
    let k = gw.create_project("shop").await;
    let collect = json!({"collection": "c", "api": {"api_key": k.write}, "properties": {"n": 1}});

    // Down: /health says so and collection answers 503.
    let mut health = gw.send("GET", "/health", &[], "").await;
    for _ in 0..50 {
        if health.status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        health = gw.send("GET", "/health", &[], "").await;
    }
    assert_eq!((health.status, &health.json()["log"]["up"]), (503, &json!(false)), "{}", health.text());
    let r = gw.post("/event/collect", &[], &collect).await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")), "{}", r.text());

    // The broker comes up: collection works without a restart.
    let _broker = Broker::start_on(port).await;
    let mut stored = false;
    for _ in 0..100 {
        if gw.post("/event/collect", &[], &collect).await.status == 200 {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored, "collection works once the broker is up");
    assert_eq!(gw.send("GET", "/health", &[], "").await.status, 200);
    wait_for(&gw, &k, "SELECT count(*) FROM c", &[json!(1)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_loaded_once_their_writer_has_decided_them() {
    // A minute of settle time: only the gateway's published marks can make
    // its records readable sooner.
    let options = Options {
        env: env(&[("WEIR_KAFKA__SETTLE_MS", "60000"), ("WEIR_BATCH__INTERVAL_MS", "200")]),
        ..Options::default()
    };
    let gw = Gateway::start_with(Backend::Kafka, options).await;
    let k = gw.create_project("shop").await;
    let sent = Instant::now();
    let events: Vec<(String, Value)> = (0..20).map(|i| ("c".to_owned(), json!({"n": i}))).collect();
    assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
    loop {
        if count(&gw, &k, "SELECT count(*) FROM c").await == [json!(20)] {
            break;
        }
        assert!(sent.elapsed() < Duration::from_secs(20), "not loaded within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_commit_loads_a_backlog_many_reads_long() {
    // 100 records a read and no loading until asked: the commit reads the
    // partition a hundred times over.
    let options = Options {
        env: env(&[("WEIR_BATCH__MAX_RECORDS", "100"), ("WEIR_BATCH__INTERVAL_MS", "600000")]),
        ..Options::default()
    };
    let gw = Gateway::start_with(Backend::Kafka, options).await;
    let k = gw.create_project("shop").await;
    for b in 0..20 {
        let events: Vec<(String, Value)> = (0..500).map(|i| ("c".to_owned(), json!({"n": b * 500 + i}))).collect();
        assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
    }
    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count(&gw, &k, "SELECT count(*), count(DISTINCT n) FROM c").await, [json!(10_000), json!(10_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_commit_fails_while_the_broker_does_not_answer_and_loads_once_it_does() {
    let options = Options { env: env(&[("WEIR_BATCH__INTERVAL_MS", "600000")]), ..Options::default() };
    let gw = Gateway::start_with(Backend::Kafka, options).await;
    let k = gw.create_project("shop").await;
    let events: Vec<(String, Value)> = (0..100).map(|i| ("c".to_owned(), json!({"n": i}))).collect();
    assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());

    let broker = gw.broker.clone().expect("a broker");
    broker.pause();
    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    broker.resume();
    assert_eq!(r.status, 503, "a commit that could not read the log says so: {}", r.text());
    assert!(r.json()["error"].as_str().is_some_and(|e| e.contains("could not be committed")), "{}", r.text());

    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count(&gw, &k, "SELECT count(*) FROM c").await, [json!(100)]);
}
