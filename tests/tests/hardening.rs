//! One tenant, hostile or sloppy, against the real gateway: what it sends
//! is refused with a clear error, and the gateway keeps serving everyone
//! else. Each test ends by checking that another project is still served.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use weir_tests::{Backend, Gateway, Keys, Options, cpu_seconds, on_every_backend};

fn env(pairs: &[(&str, &str)]) -> Options {
    Options { env: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Options::default() }
}

async fn query_at(gw: &Gateway, path: &str, k: &Keys, sql: &str) -> weir_tests::Response {
    gw.post(path, &[("read_key", &k.read)], &json!({"query": sql})).await
}

async fn query(gw: &Gateway, k: &Keys, sql: &str) -> weir_tests::Response {
    query_at(gw, "/query/execute", k, sql).await
}

/// The message of a query error, in either of Rakam's shapes.
fn message(r: &weir_tests::Response) -> String {
    let body = r.json();
    body["error"]["message"].as_str().or(body["error"].as_str()).unwrap_or_default().to_owned()
}

async fn commit(gw: &Gateway, k: &Keys) {
    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Another project still answers queries and takes events.
async fn others_are_served(gw: &Gateway, other: &Keys) {
    let r = query(gw, other, "SELECT 1 AS one").await;
    assert_eq!((r.status, r.json()["result"].clone()), (200, json!([[1]])), "{}", r.text());
    gw.client.collect(&other.write, "ping", &json!({"n": 1})).await.expect("collect");
    let health = gw.send("GET", "/health", &[], "").await;
    assert_eq!(health.status, 200, "{}", health.text());
}

/// The peak resident memory of the process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") * 1024
}

async fn deep_queries_are_refused_and_the_process_keeps_serving(backend: Backend) {
    let gw = Gateway::start_with(backend, env(&[("WEIR_BATCH__INTERVAL_MS", "3600000")])).await;
    let (k, other) = (gw.create_project("shop").await, gw.create_project("other").await);
    let events: Vec<(String, Value)> =
        (0..300).map(|i| ("pageview".to_owned(), json!({"url": format!("/p{}", i % 1500)}))).collect();
    assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
    assert!(gw.client.batch(&other.write, &events[..7]).await.expect("batch").is_stored());
    commit(&gw, &k).await;
    // Each project's query sees its own table of that name.
    for (keys, n) in [(&k, 300), (&other, 7), (&k, 300)] {
        let r = query(&gw, keys, "SELECT count(*) FROM pageview").await;
        assert_eq!(r.json()["result"], json!([[n]]), "{}", r.text());
    }

    let sum = |n: usize| format!("SELECT {}", vec!["1"; n].join("+"));
    let unions = |n: usize| vec!["SELECT 1 AS x"; n].join(" UNION ALL ");
    let parens = format!("SELECT {}1{}", "(".repeat(200), ")".repeat(200));
    for path in ["/query/execute", "/query/explain", "/query/metadata"] {
        for sql in [sum(5000), unions(5000), parens.clone()] {
            let r = query_at(&gw, path, &k, &sql).await;
            assert_eq!(r.status, 400, "{path}: {}", r.text());
            assert!(message(&r).contains("query too deep"), "{path}: {}", r.text());
        }
    }
    // What generated SQL ordinarily looks like still runs.
    let filter = (0..1000).map(|i| format!("url = '/p{i}'")).collect::<Vec<_>>().join(" OR ");
    let r = query(&gw, &k, &format!("SELECT count(*) FROM pageview WHERE {filter}")).await;
    assert_eq!((r.status, r.json()["result"].clone()), (200, json!([[300]])), "{}", message(&r));
    let r = query(&gw, &k, &unions(500)).await;
    assert_eq!(r.status, 200, "{}", message(&r));
    assert_eq!(r.json()["result"].as_array().map(Vec::len), Some(500));
    let r = query(&gw, &k, &sum(1000)).await;
    assert_eq!((r.status, r.json()["result"].clone()), (200, json!([[1000]])), "{}", message(&r));

    // A rewriter plugin's SQL is held to the same limit.
    let component = weir_tests::plugin_component("test-rewriter");
    let up = gw.upload_plugin(&k.master, "deep", "hook=rewrite&timeout_ms=1000", component).await;
    assert_eq!(up.status, 200, "{}", up.text());
    let config = json!({"name": "deep", "config": {"replace_with": sum(5000)}});
    let r = gw.post("/plugin/config", &[("master_key", &k.master)], &config).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = query(&gw, &k, "SELECT 1").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(message(&r).contains("query too deep"), "{}", r.text());
    others_are_served(&gw, &other).await;
}

async fn a_timed_out_query_stops_and_other_projects_are_served(backend: Backend) {
    let gw = Gateway::start_with(backend, env(&[("WEIR_QUERY__TIMEOUT_S", "2")])).await;
    let (k, other) = (gw.create_project("shop").await, gw.create_project("other").await);
    // Planning this doubles its work with every level of nesting.
    let runaway = format!("SELECT {}1{}", "coalesce(".repeat(60), ",1)".repeat(60));
    let floods: Vec<_> = (0..2)
        .map(|_| {
            let (client, read) = (gw.client.clone(), k.read.clone());
            let runaway = runaway.clone();
            tokio::spawn(async move {
                client.post("/query/execute", &[("read_key", &read)], &json!({"query": runaway})).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile another project's queries are answered at once.
    for _ in 0..10 {
        let started = Instant::now();
        let r = query(&gw, &other, "SELECT 1").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(started.elapsed() < Duration::from_millis(1500), "another project waited {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for flood in floods {
        let r = flood.await.expect("join").expect("request");
        assert!(matches!(r.status, 400 | 504), "{}", r.text());
    }
    // Once answered, the work is over: the process goes quiet.
    let pid = gw.pid();
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spent = cpu_seconds(pid) - before;
    assert!(spent < 1.0, "the process used {spent} CPU seconds after the queries were answered");
    others_are_served(&gw, &other).await;
}

async fn a_project_waits_its_turn_in_a_bounded_queue(backend: Backend) {
    let options = env(&[("WEIR_QUERY__PROJECT_CONCURRENCY", "1"), ("WEIR_QUERY__PROJECT_QUEUE", "2")]);
    let gw = Gateway::start_with(backend, options).await;
    let (k, other) = (gw.create_project("shop").await, gw.create_project("other").await);
    // A query that takes a while: a cross join of generated rows.
    let ten = "(SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x))";
    let slow = format!(
        "SELECT sum(a.x * b.x + c.x * d.x + e.x * f.x) FROM {ten} a, {ten} b, {ten} c, {ten} d, {ten} e, {ten} f"
    );
    let many: Vec<_> = (0..8)
        .map(|_| {
            let (client, read, slow) = (gw.client.clone(), k.read.clone(), slow.clone());
            tokio::spawn(
                async move { client.post("/query/execute", &[("read_key", &read)], &json!({"query": slow})).await },
            )
        })
        .collect();
    let mut statuses = Vec::new();
    for r in many {
        let r = r.await.expect("join").expect("request");
        if r.status == 429 {
            assert!(r.headers.iter().any(|(h, _)| h == "retry-after"), "429 without Retry-After");
            assert!(r.json()["error"].as_str().is_some_and(|m| m.contains("waiting")), "{}", r.text());
        }
        statuses.push(r.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429 | 504)), "{statuses:?}");
    others_are_served(&gw, &other).await;
}

async fn a_query_cannot_take_more_memory_than_its_limit(backend: Backend) {
    let options = env(&[("WEIR_QUERY__MAX_MEMORY_BYTES", "8388608"), ("WEIR_BATCH__INTERVAL_MS", "3600000")]);
    let gw = Gateway::start_with(backend, options).await;
    let (k, other) = (gw.create_project("shop").await, gw.create_project("other").await);
    for sql in [
        "SELECT length(repeat('a', 300000000))",
        "SELECT length(lpad('a', 300000000))",
        "SELECT cardinality(range(1, 300000000))",
        "SELECT count(*) FROM (SELECT unnest(range(1, 300000000)))",
    ] {
        let r = query(&gw, &k, sql).await;
        assert_eq!(r.status, 413, "{sql}: {}", r.text());
        assert!(message(&r).contains("memory limit") || message(&r).contains("more memory"), "{}", r.text());
    }
    // Rows that add up past the limit: the held result is refused.
    let events: Vec<(String, Value)> = (0..2000).map(|i| ("pageview".to_owned(), json!({"n": i}))).collect();
    assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
    commit(&gw, &k).await;
    let r = query(&gw, &k, "SELECT repeat('x', 10000) AS wide FROM pageview").await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(message(&r).contains("query.max_memory_bytes"), "{}", r.text());
    let peak = peak_rss(gw.pid());
    assert!(peak < 400 << 20, "the process peaked at {} MB", peak >> 20);
    // An aggregation over more groups than the limit holds spills to disk
    // and answers.
    let padding = "x".repeat(100);
    let events: Vec<(String, Value)> =
        (0..60_000).map(|i| ("visit".to_owned(), json!({"url": format!("/page/{i}/{padding}")}))).collect();
    for chunk in events.chunks(2_000) {
        assert!(gw.client.batch(&k.write, chunk).await.expect("batch").is_stored());
    }
    commit(&gw, &k).await;
    let r =
        query(&gw, &k, "SELECT count(*) FROM (SELECT url, count(*) AS c FROM visit GROUP BY url) t WHERE c = 1").await;
    assert_eq!((r.status, r.json()["result"].clone()), (200, json!([[60_000]])), "{}", r.text());
    let plan = query(&gw, &k, "EXPLAIN ANALYZE SELECT url, count(*) FROM visit GROUP BY url").await.text();
    let spills: u64 = plan
        .split("spill_count=")
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
        .sum();
    assert!(spills > 0, "nothing spilled: {plan}");
    let peak = peak_rss(gw.pid());
    assert!(peak < 400 << 20, "the process peaked at {} MB", peak >> 20);
    // The same data in a smaller form is answered.
    let r = query(&gw, &k, "SELECT count(*), sum(n) FROM pageview").await;
    assert_eq!((r.status, r.json()["result"].clone()), (200, json!([[2000, 1999000.0]])), "{}", r.text());
    others_are_served(&gw, &other).await;
}

async fn syntax_errors_and_server_details(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let (k, other) = (gw.create_project("shop").await, gw.create_project("other").await);
    for sql in ["SELEC 1", "", "  -- only a comment", "SELECT 1 FROM"] {
        let r = query(&gw, &k, sql).await;
        assert_eq!(r.status, 400, "{sql:?}: {}", r.text());
        let error = &r.json()["error"];
        assert!(
            error["errorLine"].as_u64().is_some() && error["charPositionInLine"].as_u64().is_some(),
            "{}",
            r.text()
        );
    }
    let r = query(&gw, &k, "DROP TABLE pageview").await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Nothing tells the server's file layout or the engine's build.
    gw.client.collect(&k.write, "pageview", &json!({"url": "/"})).await.expect("collect");
    commit(&gw, &k).await;
    let r = query(&gw, &k, "SELECT version()").await;
    assert_eq!(r.json()["result"][0][0].as_str().map(|v| v.starts_with("Weir")), Some(true), "{}", r.text());
    let data_dir = gw.data_dir.display().to_string();
    for (path, sql) in [
        ("/query/explain", "SELECT count(*) FROM pageview WHERE url LIKE '/%'"),
        ("/query/execute", "EXPLAIN ANALYZE SELECT count(*) FROM pageview WHERE url LIKE '/%'"),
    ] {
        let r = query_at(&gw, path, &k, sql).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("shop/pageview/_day="), "{}", r.text());
        assert!(!r.text().contains(&data_dir), "{path} shows the data folder: {}", r.text());
    }
    others_are_served(&gw, &other).await;
}

mod embedded {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_query_stops_and_other_projects_are_served() {
        super::a_timed_out_query_stops_and_other_projects_are_served(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_project_waits_its_turn_in_a_bounded_queue() {
        super::a_project_waits_its_turn_in_a_bounded_queue(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_cannot_take_more_memory_than_its_limit() {
        super::a_query_cannot_take_more_memory_than_its_limit(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn syntax_errors_and_server_details() {
        super::syntax_errors_and_server_details(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_http_layer_answers_in_json() {
        super::the_http_layer_answers_in_json().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_idle_and_surplus_connections_are_cut() {
        super::slow_idle_and_surplus_connections_are_cut().await
    }
}

/// The HTTP layer's own refusals (a URI or headers too large, a request
/// that is not HTTP) carry Rakam's JSON error like every other.
async fn the_http_layer_answers_in_json() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let k = gw.create_project("shop").await;
    let addr = gw.base().trim_start_matches("http://").to_owned();
    let long_uri = format!("/event/pixel?collection=open&api.api_key={}&prop.x={}", k.write, "a".repeat(90_000));
    let huge_header = format!("x-junk: {}\r\n", "b".repeat(2 << 20));
    for (request, status) in [
        (format!("GET {long_uri} HTTP/1.1\r\nhost: x\r\n\r\n"), "414"),
        (format!("GET /health HTTP/1.1\r\nhost: x\r\n{huge_header}\r\n"), "431"),
        ("NOT HTTP AT ALL\r\n\r\n".to_owned(), "400"),
    ] {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        // The server may answer and close before the whole request is sent.
        let _ = s.write_all(request.as_bytes()).await;
        let answer = read_until_closed(&mut s, Duration::from_secs(10)).await.expect("closed");
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{}", &answer[..answer.len().min(300)]);
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(json["error_code"].to_string(), status, "{answer}");
        assert!(json["error"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
    others_are_served(&gw, &k).await;
}

/// Reads what the server sends until it closes the connection or `wait`
/// passes; `None` if it is still open then.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| String::from_utf8_lossy(&got).into_owned())
}

/// 200 misbehaving clients against a process with 256 file descriptors: idle
/// connections, headers sent a byte at a time, bodies shorter than their
/// length. Past the connection budget they are refused with a JSON 503;
/// the others are cut at their deadlines (the body with a JSON 408); the
/// event log and the batch loop never run out of descriptors.
async fn slow_idle_and_surplus_connections_are_cut() {
    let options = Options {
        max_open_files: Some(256),
        ..env(&[
            ("WEIR_HTTP__HEADER_TIMEOUT_MS", "1500"),
            ("WEIR_HTTP__BODY_TIMEOUT_MS", "1500"),
            ("WEIR_BATCH__INTERVAL_MS", "200"),
        ])
    };
    let gw = Gateway::start_with(Backend::Sqlite, options).await;
    let (k, other) = (gw.create_project("shop").await, gw.create_project("other").await);
    let addr = gw.base().trim_start_matches("http://").to_owned();
    let mut sockets = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        match i % 3 {
            0 => {}
            1 => s.write_all(b"POST /event/collect HTTP/1.1\r\nHost: x\r\n").await.expect("write"),
            _ => {
                let head = "POST /event/collect HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
                            content-length: 1000\r\n\r\n{\"collection\":";
                s.write_all(head.as_bytes()).await.expect("write");
            }
        }
        sockets.push((i % 3, s));
    }
    let started = Instant::now();
    let (mut refused, mut timed_out_bodies, mut cut) = (0, 0, 0);
    for (kind, s) in &mut sockets {
        let answer = read_until_closed(s, Duration::from_secs(6).saturating_sub(started.elapsed()))
            .await
            .unwrap_or_else(|| panic!("a connection of kind {kind} was still open after 6 s"));
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("\"error_code\":503") && answer.contains("http.max_connections"), "{answer}");
            refused += 1;
        } else if answer.starts_with("HTTP/1.1 408") {
            assert!(answer.contains("\"error_code\":408") && answer.contains("http.body_timeout_ms"), "{answer}");
            timed_out_bodies += 1;
        } else {
            cut += 1;
        }
    }
    assert!(refused > 0, "nothing was refused past the budget");
    assert!(timed_out_bodies > 0 && cut > 0, "refused {refused}, 408 {timed_out_bodies}, cut {cut}");
    // Now a well-behaved client is served, and the loop still loads.
    gw.client.collect(&k.write, "pageview", &json!({"n": 1})).await.expect("collect");
    commit(&gw, &k).await;
    let r = query(&gw, &k, "SELECT count(*) FROM pageview").await;
    assert_eq!(r.json()["result"], json!([[1]]), "{}", r.text());
    let stderr = gw.stderr();
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    others_are_served(&gw, &other).await;
}

/// Collect, batch, bulk and pixel bodies that would store nonsense, or that
/// another tenant's query would trip over, are refused with 400 (a batch
/// lists them in its 409) and store nothing.
async fn malformed_events_are_refused(backend: Backend) {
    let options = env(&[("WEIR_BATCH__INTERVAL_MS", "3600000"), ("WEIR_PROJECTS__MAX_FIELDS", "50")]);
    let gw = Gateway::start_with(backend, options).await;
    let (k, other) = (gw.create_project("shop").await, gw.create_project("other").await);
    let collect =
        |properties: Value| json!({"collection": "pageview", "api": {"api_key": k.write}, "properties": properties});
    let long = "a".repeat(101);
    let cases = [
        (collect(json!({"_collection": "spoof"})), "reserved"),
        (collect(json!({"_day": "2024-01-01"})), "reserved"),
        (collect(json!({"b_x": 1, "bX": "two"})), "both become field"),
        (collect(json!({long.clone(): 1})), "longer than 100 characters"),
        (json!(["pageview", {"api_key": k.write}, {"url": "/"}]), "JSON object"),
        (collect(json!({"_time": 1e16 as i64, "url": "/"})), ""),
    ];
    for (body, says) in &cases[..5] {
        let r = gw.post("/event/collect", &[], body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.json()["error"].as_str().is_some_and(|m| m.contains(says)), "{body}: {}", r.text());
    }
    for upload_time in [json!(i64::MAX), json!(i64::MIN), json!(i64::MAX.to_string())] {
        let body = json!({"collection": "pageview", "api": {"api_key": k.write, "upload_time": upload_time},
                          "properties": {"_time": 1_700_000_000_000i64}});
        let r = gw.post("/event/collect", &[], &body).await;
        assert_eq!(r.status, 400, "{upload_time}: {}", r.text());
        assert!(r.text().contains("api.upload_time"), "{}", r.text());
    }
    // A batch keeps its good events and lists the others.
    let batch = json!({"api": {"api_key": k.write}, "events": [
        {"collection": "pageview", "properties": {"url": "/ok"}},
        {"collection": "pageview", "properties": {"_collection": "spoof"}},
        {"collection": "pageview", "properties": {"userId": "a", "user_id": "b"}},
    ]});
    let r = gw.post("/event/batch", &[], &batch).await;
    assert_eq!((r.status, r.json()), (409, json!([1, 2])), "{}", r.text());
    // A `_time` past the year 9999 is stored as the time of arrival, with a
    // row saying so.
    let r = gw.post("/event/collect", &[], &cases[5].0).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Loads: duplicate columns, an unterminated quote, a repeated pixel
    // parameter.
    let bulk = |q: &str| format!("/event/bulk?collection=sales&master_key={}{q}", k.master);
    for (csv, says) in [("sku,sku\nA,B\n", "both become field"), ("sku,qty\nA,1\n\"B,2\nC,3\n", "never ends")] {
        let r = gw.send("POST", &bulk(""), &[("content-type", "text/csv")], csv).await;
        assert_eq!(r.status, 400, "{csv:?}: {}", r.text());
        assert!(r.text().contains(says), "{}", r.text());
    }
    let pixel = format!("/event/pixel?collection=open&api.api_key={}&prop.x=1&prop.x=abc", k.write);
    let r = gw.send("GET", &pixel, &[], "").await;
    assert_eq!(r.status, 400, "{}", r.text());
    let pixel = format!("/event/pixel?collection=open&api.api_key={}&prop.x=1&_=1700000000000", k.write);
    let r = gw.send("GET", &pixel, &[], "").await;
    assert_eq!(r.status, 200, "the cache-buster is refused: {}", r.text());
    // Fields past the collection's cap.
    let wide: serde_json::Map<String, Value> = (0..60).map(|i| (format!("f{i}"), json!(i))).collect();
    let r = gw.post("/event/collect", &[], &collect(Value::Object(wide))).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("projects.max_fields"), "{}", r.text());

    commit(&gw, &k).await;
    let r = query(&gw, &k, "SELECT url FROM pageview ORDER BY url").await;
    assert_eq!(r.json()["result"], json!([["/"], ["/ok"]]), "{}", r.text());
    let r = query(&gw, &k, "SELECT _time < now() + INTERVAL '1 day' FROM pageview WHERE url = '/'").await;
    assert_eq!(r.json()["result"], json!([[true]]), "{}", r.text());
    let r = query(&gw, &k, "SELECT property, collection FROM \"$invalid_schema\"").await;
    assert_eq!(r.json()["result"], json!([["_time", "pageview"]]), "{}", r.text());
    let r = query(&gw, &k, "SELECT count(*) FROM sales").await;
    assert_ne!(r.status, 200, "a refused load created rows: {}", r.text());
    let r = query(&gw, &k, "SELECT _collection, count(*) FROM _all GROUP BY 1 ORDER BY 1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Counts of several projects come back together.
    let stats = gw.post("/project/stats", &[], &json!([k.read, other.read])).await;
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert_eq!(stats.json()[&k.read]["allEvents"], json!(3), "{}", stats.text());
    assert_eq!(stats.json()[&other.read]["allEvents"], json!(0), "{}", stats.text());
    others_are_served(&gw, &other).await;
}

/// With a lock key, nobody reads every project's schemas without a key;
/// an Authorization header of another scheme is refused, not ignored.
async fn the_registry_is_closed_with_a_lock_key(backend: Backend) {
    let gw = Gateway::start_with(backend, env(&[("WEIR_LOCK_KEY", "s3cret")])).await;
    let created = gw.post("/project/create", &[], &json!({"name": "shop", "lock_key": "s3cret"})).await;
    let k = weir_tests::keys_of(&created.json());
    gw.client.collect(&k.write, "pageview", &json!({"url": "/"})).await.expect("collect");
    let r = gw.send("GET", "/subjects", &[], "").await;
    assert_eq!(r.status, 401, "{}", r.text());
    for scheme in ["Bearer anything", "Digest x", "Basic not-base64!"] {
        let r = gw.send("GET", "/subjects", &[("authorization", scheme)], "").await;
        assert_eq!(r.status, 401, "{scheme}: {}", r.text());
        assert!(r.json()["error"].as_str().is_some_and(|m| m.contains("Basic")), "{}", r.text());
    }
    let r = gw.send("GET", "/subjects", &[("read_key", &k.read)], "").await;
    assert_eq!((r.status, r.json()), (200, json!([gw.broker_topic("shop.pageview-value")])), "{}", r.text());
}

/// `X-Forwarded-For` is believed only from trusted proxies.
async fn the_client_address_comes_from_trusted_proxies_only(backend: Backend) {
    let spoofed = [("content-type", "application/json"), ("x-forwarded-for", "6.6.6.6, 203.0.113.9")];
    for (trusted, seen) in [("[]", "127.0.0.1"), ("[\"127.0.0.0/8\"]", "203.0.113.9")] {
        let options = env(&[("WEIR_HTTP__TRUSTED_PROXIES", trusted), ("WEIR_BATCH__INTERVAL_MS", "3600000")]);
        let gw = Gateway::start_with(backend, options).await;
        let k = gw.create_project("shop").await;
        let body = json!({"collection": "visit", "api": {"api_key": k.write}, "properties": {"_ip": true}});
        let r = gw.send("POST", "/event/collect", &spoofed, body.to_string()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        commit(&gw, &k).await;
        let r = query(&gw, &k, "SELECT _ip FROM visit").await;
        assert_eq!(r.json()["result"], json!([[seen]]), "trusting {trusted}: {}", r.text());
    }
}

on_every_backend!(
    deep_queries_are_refused_and_the_process_keeps_serving,
    malformed_events_are_refused,
    the_registry_is_closed_with_a_lock_key,
);

mod addresses {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_client_address_comes_from_trusted_proxies_only() {
        super::the_client_address_comes_from_trusted_proxies_only(weir_tests::Backend::Sqlite).await
    }
}
