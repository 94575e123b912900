//! The Presto/Trino engine (`engine = "presto://…"`), through the real
//! binary, against two real servers of the protocol: PyPI's buenavista
//! 0.5.0 (DuckDB behind Presto's HTTP protocol; `tests/python/presto_server.py`
//! patches its server bugs, listed there, and no result), reading the
//! gateway's warehouse through views the gateway keeps current; and the
//! gateway's own Trino endpoint. Every answer is compared with DataFusion's
//! on the same files.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use weir_tests::broker::free_port;
use weir_tests::{Backend, Gateway, Keys, Options, goes_quiet, on_every_backend};

fn env(pairs: &[(&str, String)]) -> Options {
    Options { env: pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(), ..Options::default() }
}

/// buenavista on a port of its own, over an in-memory DuckDB.
struct PrestoServer {
    _child: tokio::process::Child,
    port: u16,
}

impl PrestoServer {
    async fn start() -> PrestoServer {
        let python = std::env::var("WEIRTEST_PYTHON")
            .unwrap_or_else(|_| panic!("WEIRTEST_PYTHON is not set: run the suite with scripts/test.sh"));
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("presto_server.py");
        let port = free_port();
        let child = tokio::process::Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start buenavista");
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(format!("http://127.0.0.1:{port}/v1/info")).send().await.is_ok_and(|r| r.status() == 200) {
                return PrestoServer { _child: child, port };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("buenavista did not answer on {port}");
    }
}

async fn commit(gw: &Gateway, k: &Keys) {
    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn send(gw: &Gateway, k: &Keys, events: &[(String, Value)]) {
    for chunk in events.chunks(500) {
        assert!(gw.client.batch(&k.write, chunk).await.expect("batch").is_stored());
    }
    commit(gw, k).await;
}

/// Page views, clicks and sign-ups over three days, in three loads.
fn events(part: u32) -> Vec<(String, Value)> {
    let day = 86_400_000_i64;
    (0..900)
        .map(|i| {
            let n = i + part * 900;
            let time = 1_700_000_000_000_i64 + i64::from(n % 3) * day + i64::from(n) * 1_000;
            let user = format!("u{}", n % 17);
            match n % 5 {
                0..=2 => (
                    "pageview".to_owned(),
                    json!({"url": format!("/p{}", n % 7), "n": f64::from(n % 11), "flag": n.is_multiple_of(2),
                           "tags": if n.is_multiple_of(4) { json!(["a", format!("t{}", n % 3)]) } else { json!(null) },
                           "_user": user, "_time": time}),
                ),
                3 => ("click".to_owned(), json!({"button": format!("b{}", n % 3), "_user": user, "_time": time})),
                _ => (
                    "signup".to_owned(),
                    json!({"plan": if n.is_multiple_of(2) { "pro" } else { "free" }, "_user": user, "_time": time}),
                ),
            }
        })
        .collect()
}

/// Queries both engines run alike; aggregates are named, since engines
/// name them differently.
const QUERIES: &[&str] = &[
    "SELECT url, n, flag, tags, _time, _user FROM pageview ORDER BY _time, url",
    "SELECT _collection, count(*) AS c FROM _all GROUP BY _collection ORDER BY _collection",
    "SELECT url, sum(n) AS total, avg(n) AS mean, min(_time) AS first, max(_time) AS last, count(tags) AS tagged \
     FROM pageview GROUP BY url ORDER BY url",
    "SELECT p.url, count(*) AS c FROM pageview p JOIN click c ON p._user = c._user WHERE p.flag GROUP BY p.url ORDER BY p.url",
    "SELECT plan, count(DISTINCT _user) AS users FROM signup GROUP BY plan ORDER BY plan",
    "WITH big AS (SELECT _user, n FROM pageview WHERE n > 5) SELECT _user, sum(n) AS s FROM big GROUP BY _user ORDER BY _user",
    "SELECT nope FROM pageview",
    "SELECT * FROM other.pageview",
];

async fn answers(gw: &Gateway, k: &Keys) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    for sql in QUERIES {
        let r = gw.post("/query/execute", &[("read_key", &k.read)], &json!({"query": sql, "limit": 100_000})).await;
        let body = r.json();
        // Errors are compared by status and shape, not by each engine's words.
        let shown = match body.get("error") {
            Some(Value::Object(e)) => {
                json!({"query_error": e.contains_key("errorLine"), "error_code": body["error_code"]})
            }
            Some(_) => json!({"error_code": body["error_code"]}),
            None => body,
        };
        out.push((r.status, shown));
    }
    out
}

fn assert_same(presto: &[(u16, Value)], datafusion: &[(u16, Value)]) {
    for ((sql, p), d) in QUERIES.iter().zip(presto).zip(datafusion) {
        assert_eq!(p, d, "{sql}");
    }
}

async fn answers_match_datafusion_on_the_same_files(backend: Backend) {
    let server = PrestoServer::start().await;
    let warehouse = tempfile::tempdir().expect("warehouse");
    let shared = [
        ("WEIR_WAREHOUSE", format!("file://{}", warehouse.path().display())),
        ("WEIR_BATCH__INTERVAL_MS", "3600000".to_owned()),
        ("WEIR_BATCH__COMPACT_MIN_FILES", "2".to_owned()),
        ("WEIR_BATCH__COMPACT_INTERVAL_MS", "300".to_owned()),
    ];
    let mut presto = shared.to_vec();
    presto.push(("WEIR_ENGINE", format!("presto://weir@127.0.0.1:{}/memory", server.port)));
    presto.push(("WEIR_PRESTO__TABLE_DDL", "duckdb".to_owned()));
    let mut gw = Gateway::start_with(backend, env(&presto)).await;
    let k = gw.create_project("shop").await;
    gw.create_project("other").await;
    for part in 0..3 {
        send(&gw, &k, &events(part)).await;
    }
    // Compaction merges the loads' small files meanwhile; the cluster's
    // views follow the manifest, so nothing is read twice or missed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let on_presto = answers(&gw, &k).await;
    assert_eq!(on_presto[0].0, 200, "{:?}", on_presto[0]);
    assert_eq!(on_presto[0].1["result"].as_array().map(Vec::len), Some(1620), "every page view, paged by the server");
    assert_eq!(on_presto[1].1["result"], json!([["click", 540], ["pageview", 1620], ["signup", 540]]));
    assert_eq!((on_presto[6].0, on_presto[7].0), (400, 403));

    gw.stop().await;
    gw.restart_with(env(&shared)).await;
    let on_datafusion = answers(&gw, &k).await;
    assert_same(&on_presto, &on_datafusion);
}

async fn table_management_can_be_left_to_the_operator(backend: Backend) {
    let server = PrestoServer::start().await;
    let options = env(&[
        ("WEIR_ENGINE", format!("presto://weir@127.0.0.1:{}/memory", server.port)),
        ("WEIR_PRESTO__TABLE_DDL", "duckdb".to_owned()),
        ("WEIR_PRESTO__MANAGE_TABLES", "false".to_owned()),
        ("WEIR_PRESTO__SCHEMA", "weir_{project}".to_owned()),
    ]);
    let gw = Gateway::start_with(backend, options).await;
    let k = gw.create_project("shop").await;
    send(&gw, &k, &events(0)[..10]).await;
    let r = gw
        .post("/query/execute", &[("read_key", &k.read)], &json!({"query": "SELECT count(*) AS c FROM pageview"}))
        .await;
    assert_eq!(r.status, 400, "no table was made: {}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("weir_shop"), "the configured schema is named: {message}");
}

async fn the_engine_reads_the_gateway_s_own_trino_endpoint(backend: Backend) {
    // The cluster: a gateway on DataFusion, paging small, one query slot
    // for the project.
    let cluster = Gateway::start_with(
        backend,
        env(&[
            ("WEIR_TRINO__PAGE_BYTES", "500".to_owned()),
            ("WEIR_QUERY__TIMEOUT_S", "300".to_owned()),
            ("WEIR_QUERY__PROJECT_CONCURRENCY", "1".to_owned()),
        ]),
    )
    .await;
    let on_cluster = cluster.create_project("shop").await;
    cluster.create_project("other").await;
    for part in 0..3 {
        send(&cluster, &on_cluster, &events(part)).await;
    }
    // The gateway under test: the same events (so that its rewrite knows
    // the collections), queries run on the cluster with its read key.
    let port = cluster.base().rsplit(':').next().expect("port").to_owned();
    let gw = Gateway::start_with(
        backend,
        env(&[
            ("WEIR_ENGINE", format!("trino://analyst@127.0.0.1:{port}/weir")),
            ("WEIR_PRESTO__PASSWORD", on_cluster.read.clone()),
            ("WEIR_PRESTO__MANAGE_TABLES", "false".to_owned()),
            ("WEIR_QUERY__TIMEOUT_S", "3".to_owned()),
        ]),
    )
    .await;
    let k = gw.create_project("shop").await;
    send(&gw, &k, &events(0)[..20]).await;
    let through_trino = answers(&gw, &k).await;
    let on_datafusion = answers(&cluster, &on_cluster).await;
    assert_eq!(through_trino[0].1["result"].as_array().map(Vec::len), Some(1620), "the cluster's rows, many pages");
    assert_same(&through_trino, &on_datafusion);

    // The query timeout cancels the statement on the cluster: it stops
    // working, and the project's only slot there is free again.
    let ten = "(SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x))";
    let from: Vec<String> = "abcdefghi".chars().map(|n| format!("{ten} {n}")).collect();
    let slow = format!("SELECT sum(a.x * b.x + c.x * d.x + e.x * f.x + g.x * h.x + i.x) AS s FROM {}", from.join(", "));
    let r = gw.post("/query/execute", &[("read_key", &k.read)], &json!({"query": slow})).await;
    assert_eq!(r.status, 504, "{}", r.text());
    goes_quiet(cluster.pid()).await;
    let r = cluster
        .post("/query/execute", &[("read_key", &on_cluster.read)], &json!({"query": "SELECT count(*) FROM click"}))
        .await;
    assert_eq!(r.json()["result"], json!([[540]]), "{}", r.text());
}

on_every_backend!(
    answers_match_datafusion_on_the_same_files,
    table_management_can_be_left_to_the_operator,
    the_engine_reads_the_gateway_s_own_trino_endpoint,
);
