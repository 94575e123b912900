//! `/materialized-view/*` and `materialized.<x>` against the real gateway:
//! Rakam's endpoints, keys and errors; snapshots swapped whole under
//! readers; incremental and real-time views equal to the full query after
//! many loads, compactions, a `kill -9` and restarts; refresh on read and in
//! the background; no project reading another's view.

use std::time::Duration;

use serde_json::{Value, json};
use weir_tests::sse::Sse;
use weir_tests::{Backend, Gateway, Keys, Options, on_every_backend};

fn options(extra: &[(&str, &str)]) -> Options {
    let mut env = vec![
        // The loop runs when the tests say so.
        ("WEIR_BATCH__INTERVAL_MS".to_owned(), "3600000".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Options { env, ..Options::default() }
}

async fn query(gw: &Gateway, k: &Keys, sql: &str) -> weir_tests::Response {
    gw.post("/query/execute", &[("read_key", &k.read)], &json!({"query": sql, "limit": 100000})).await
}

async fn rows(gw: &Gateway, k: &Keys, sql: &str) -> Vec<Vec<Value>> {
    let r = query(gw, k, sql).await;
    assert_eq!(r.status, 200, "{sql}: {}", r.text());
    serde_json::from_value(r.json()["result"].clone()).expect("rows")
}

async fn count(gw: &Gateway, k: &Keys, sql: &str) -> u64 {
    rows(gw, k, sql).await[0][0].as_u64().unwrap_or_else(|| panic!("{sql}: not a count"))
}

async fn commit(gw: &Gateway, k: &Keys) {
    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn send_pageviews(gw: &Gateway, k: &Keys, from: u64, n: u64) {
    let events: Vec<(String, Value)> = (from..from + n)
        .map(|i| {
            ("pageview".to_owned(), json!({"seq": i, "url": format!("/p/{}", i % 7), "_user": format!("u{}", i % 13)}))
        })
        .collect();
    for chunk in events.chunks(500) {
        assert!(gw.client.batch(&k.write, chunk).await.expect("batch").is_stored());
    }
}

async fn create(gw: &Gateway, k: &Keys, view: Value) -> weir_tests::Response {
    gw.post("/materialized-view/create", &[("master_key", &k.master)], &view).await
}

async fn created(gw: &Gateway, k: &Keys, view: Value) {
    let r = create(gw, k, view).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})), "{}", r.text());
}

/// `/materialized-view/update` as Rakam's clients call it: the `result`
/// event's payload.
async fn update(gw: &Gateway, k: &Keys, table_name: &str) -> Value {
    let data = json!({"name": table_name}).to_string();
    let path = format!("/materialized-view/update?read_key={}&data={}", k.read, urlencode(&data));
    let mut sse = Sse::connect(gw.base(), &path, &[]).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    serde_json::from_str(&result_event(&mut sse).await).expect("JSON")
}

/// The data of the stream's `result` event (after Rakam's `retry:`).
async fn result_event(sse: &mut Sse) -> String {
    loop {
        let message = sse.next(Duration::from_secs(60)).await.expect("a result event");
        if message.event.is_some() {
            assert_eq!(message.event.as_deref(), Some("result"), "{message:?}");
            return message.data;
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn error_of(r: &weir_tests::Response) -> (u16, String) {
    (r.status, r.json()["error"].as_str().unwrap_or_default().to_owned())
}

async fn endpoints_answer_as_rakam_s(backend: Backend) {
    let gw = Gateway::start_with(backend, options(&[])).await;
    let k = gw.create_project("shop").await;
    let other = gw.create_project("rival").await;
    send_pageviews(&gw, &k, 0, 70).await;
    send_pageviews(&gw, &other, 0, 5).await;
    commit(&gw, &k).await;
    let daily = json!({"table_name": "Hits", "name": "Hits per URL", "update_interval": "PT1H",
        "query": "SELECT url, count(*) AS hits FROM pageview GROUP BY url", "options": {"owner": "ann"}});

    // Keys: create, delete and change take the master key only.
    for key in [&k.read, &k.write] {
        let r = gw.post("/materialized-view/create", &[("master_key", key)], &daily).await;
        assert_eq!(error_of(&r), (403, "master_key is invalid".to_owned()));
    }
    let r = gw.post("/materialized-view/create", &[], &daily).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = gw.post("/materialized-view/list", &[("read_key", &k.master)], &json!({})).await;
    assert_eq!(error_of(&r), (403, "read_key is invalid".to_owned()));

    created(&gw, &k, daily.clone()).await;
    let r = create(&gw, &k, daily.clone()).await;
    assert_eq!(error_of(&r), (400, "Materialized view already exists".to_owned()));
    for (view, says) in [
        (json!({"table_name": "a", "name": "A", "query": "SELECT url FROM pageview LIMIT 5"}), "LIMIT"),
        (json!({"table_name": "a", "name": "A", "query": "SELECT * FROM pageview"}), "Wildcard"),
        (json!({"table_name": "a", "name": "A", "query": "SELECT count(*) FROM pageview"}), "must have alias"),
        (json!({"table_name": "2a", "name": "A", "query": "SELECT url FROM pageview"}), "table_name"),
        (
            json!({"table_name": "a", "name": "A", "query": "SELECT url FROM pageview", "update_interval": "soon"}),
            "ISO-8601",
        ),
        (json!({"table_name": "a", "name": "A", "query": "SELECT nope FROM pageview"}), "nope"),
        (json!({"table_name": "a", "name": "A", "query": "SELECT x FROM materialized.hits"}), "not other views"),
    ] {
        let r = create(&gw, &k, view.clone()).await;
        assert_eq!(r.status, 400, "{view}: {}", r.text());
        assert!(r.text().contains(says), "{view}: {}", r.text());
    }
    let r = create(&gw, &k, json!({"table_name": "a", "name": "A", "query": "SELECT url FROM rival.pageview"})).await;
    assert_eq!(r.status, 403, "another project's table: {}", r.text());

    // list, get, schema as Rakam's bean: seconds for durations.
    let r = gw.post("/materialized-view/list", &[("read_key", &k.read)], &json!({})).await;
    assert_eq!(
        r.json(),
        json!([{"table_name": "hits", "name": "Hits per URL", "update_interval": 3600.0, "incremental": false,
            "real_time": false, "options": {"owner": "ann"},
            "query": "SELECT url, count(*) AS hits FROM pageview GROUP BY url"}])
    );
    let r = gw.post("/materialized-view/list", &[("read_key", &other.read)], &json!({})).await;
    assert_eq!(r.json(), json!([]), "another project's views are not listed");
    let r = gw.post("/materialized-view/get", &[("read_key", &k.read)], &json!({"table_name": "hits"})).await;
    assert_eq!(r.json()["name"], "Hits per URL");
    for (key, table) in [(&k.read, "nope"), (&other.read, "hits")] {
        let r = gw.post("/materialized-view/get", &[("read_key", key)], &json!({"table_name": table})).await;
        assert_eq!(error_of(&r), (404, "Materialized view does not exist".to_owned()));
    }
    let expected_schema =
        json!([{"name": "hits", "fields": [{"name": "url", "type": "STRING"}, {"name": "hits", "type": "LONG"}]}]);
    let r = gw.post("/materialized-view/schema", &[("read_key", &k.read)], &json!({})).await;
    assert_eq!(r.json(), expected_schema);
    let r = gw.post("/materialized-view/schema", &[("read_key", &k.read)], &json!({"names": ["hits"]})).await;
    assert_eq!(r.json(), expected_schema, "names filter by table name (Rakam's found nothing)");
    let r = gw.post("/materialized-view/schema", &[("read_key", &k.read)], &json!({"names": ["x"]})).await;
    assert_eq!(r.json(), json!([]));

    // The first read builds the snapshot and says when.
    let r = query(&gw, &k, "SELECT sum(hits) FROM materialized.hits").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"], json!([[70]]));
    let first = r.json()["properties"]["materializedViews"]["hits"].as_i64().expect("last update");
    assert!(first > 0);
    let r = gw.post("/materialized-view/get", &[("read_key", &k.read)], &json!({"table_name": "hits"})).await;
    let last_update = r.json()["last_update"].as_f64().expect("last_update in seconds");
    assert!((last_update * 1000.0 - first as f64).abs() < 1.0);
    let r = query(&gw, &k, "SELECT 1 FROM materialized.nope").await;
    assert_eq!(error_of(&r), (404, "Referenced materialized table nope does not exist".to_owned()));

    // update: SSE with the read key, `data.name` holding the table name.
    send_pageviews(&gw, &k, 70, 30).await;
    commit(&gw, &k).await;
    assert_eq!(rows(&gw, &k, "SELECT sum(hits) FROM materialized.hits").await, [[json!(70)]], "fresh: not refreshed");
    let answer = update(&gw, &k, "hits").await;
    assert_eq!(answer["success"], json!(true), "{answer}");
    assert_eq!(answer["result"], json!([[7]]), "rows of the snapshot");
    assert!(answer["properties"]["materializedViews"]["hits"].as_i64() > Some(first));
    assert_eq!(rows(&gw, &k, "SELECT sum(hits) FROM materialized.hits").await, [[json!(100)]]);
    let answer = update(&gw, &k, "nope").await;
    assert_eq!(answer["success"], json!(false), "{answer}");
    assert_eq!(answer["error"]["message"], "Materialized view does not exist");
    let data = urlencode(&json!({"name": "hits"}).to_string());
    let plain = Sse::connect(
        gw.base(),
        &format!("/materialized-view/update?read_key={}&data={data}", k.read),
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(plain.status, 406);
    let mut foreign =
        Sse::connect(gw.base(), &format!("/materialized-view/update?read_key={}&data={data}", other.read), &[]).await;
    let message = result_event(&mut foreign).await;
    assert!(message.contains("Materialized view does not exist"), "{message}");

    // change, delete.
    let r = gw
        .post(
            "/materialized-view/change",
            &[("master_key", &k.master)],
            &json!({"table_name": "hits", "real_time": true}),
        )
        .await;
    assert_eq!(r.json(), json!({"success": true}));
    let r = gw.post("/materialized-view/get", &[("read_key", &k.read)], &json!({"table_name": "hits"})).await;
    assert_eq!(r.json()["real_time"], json!(true));
    let r = gw
        .post("/materialized-view/change", &[("master_key", &k.master)], &json!({"table_name": "x", "real_time": true}))
        .await;
    assert_eq!(r.status, 404);
    let r = gw.post("/materialized-view/delete", &[("master_key", &k.master)], &json!({"table_name": "hits"})).await;
    assert_eq!(r.json(), json!({"success": true}));
    let r = gw.post("/materialized-view/delete", &[("master_key", &k.master)], &json!({"table_name": "hits"})).await;
    assert_eq!(error_of(&r), (404, "Materialized view does not exist".to_owned()));
    let r = query(&gw, &k, "SELECT 1 FROM materialized.hits").await;
    assert_eq!(r.status, 404, "{}", r.text());
}

/// Readers never see an empty or half snapshot while views are rebuilt:
/// by reads (an interval of a millisecond), by `update` and by the master
/// in the background.
async fn a_full_refresh_under_readers_never_shows_an_empty_view(backend: Backend) {
    let gw = Gateway::start_with(backend, options(&[("WEIR_BATCH__VIEWS_INTERVAL_MS", "20")])).await;
    let k = gw.create_project("shop").await;
    send_pageviews(&gw, &k, 0, 2_000).await;
    commit(&gw, &k).await;
    created(
        &gw,
        &k,
        json!({"table_name": "per_user", "name": "u", "update_interval": 0.001,
        "query": "SELECT _user, count(*) AS n FROM pageview GROUP BY _user"}),
    )
    .await;
    created(
        &gw,
        &k,
        json!({"table_name": "rows", "name": "r", "update_interval": 0.05,
        "query": "SELECT seq, url FROM pageview"}),
    )
    .await;
    let mut readers = Vec::new();
    for reader in 0..4 {
        let (base, key) = (gw.base().to_owned(), k.read.clone());
        readers.push(tokio::spawn(async move {
            let client = weir_tests::Client::new(&base).expect("client");
            let mut seen = Vec::new();
            for i in 0..25 {
                let sql = if (i + reader) % 2 == 0 {
                    "SELECT count(*), sum(n) FROM materialized.per_user"
                } else {
                    "SELECT count(*), count(DISTINCT seq) FROM materialized.rows"
                };
                let r = client
                    .post("/query/execute", &[("read_key", &key)], &json!({"query": sql}))
                    .await
                    .expect("request");
                assert_eq!(r.status, 200, "{}", r.text());
                seen.push((sql, r.json()["result"].clone()));
            }
            seen
        }));
    }
    for _ in 0..5 {
        let answer = update(&gw, &k, "rows").await;
        let busy = answer["error"]["message"].as_str().is_some_and(|m| m.contains("another process"));
        assert!(answer["success"] == json!(true) || busy, "{answer}");
    }
    for reader in readers {
        for (sql, result) in reader.await.expect("reader") {
            let expected = if sql.contains("per_user") { json!([[13, 2000]]) } else { json!([[2000, 2000]]) };
            assert_eq!(result, expected, "{sql}");
        }
    }
    let r = gw.post("/materialized-view/get", &[("read_key", &k.read)], &json!({"table_name": "rows"})).await;
    let before = r.json()["last_update"].as_f64().expect("refreshed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = gw.post("/materialized-view/get", &[("read_key", &k.read)], &json!({"table_name": "rows"})).await;
    assert!(r.json()["last_update"].as_f64() > Some(before), "the master refreshes views without reads");
}

/// Refresh on read: a stale full view waits for its refresh; a view
/// without an interval is refreshed on its first read and when asked only.
async fn stale_views_are_refreshed_on_read(backend: Backend) {
    let gw = Gateway::start_with(backend, options(&[("WEIR_BATCH__VIEWS_INTERVAL_MS", "0")])).await;
    let k = gw.create_project("shop").await;
    send_pageviews(&gw, &k, 0, 10).await;
    commit(&gw, &k).await;
    created(
        &gw,
        &k,
        json!({"table_name": "timed", "name": "t", "update_interval": 5,
        "query": "SELECT count(*) AS n FROM pageview"}),
    )
    .await;
    created(&gw, &k, json!({"table_name": "manual", "name": "m", "query": "SELECT count(*) AS n FROM pageview"})).await;
    assert_eq!(count(&gw, &k, "SELECT n FROM materialized.timed").await, 10);
    assert_eq!(count(&gw, &k, "SELECT n FROM materialized.manual").await, 10);
    send_pageviews(&gw, &k, 10, 5).await;
    commit(&gw, &k).await;
    assert_eq!(count(&gw, &k, "SELECT n FROM materialized.timed").await, 10, "within its interval");
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    assert_eq!(count(&gw, &k, "SELECT n FROM materialized.timed").await, 15, "stale: refreshed before the read");
    assert_eq!(count(&gw, &k, "SELECT n FROM materialized.manual").await, 10, "no interval: as built");
    assert_eq!(update(&gw, &k, "manual").await["success"], json!(true));
    assert_eq!(count(&gw, &k, "SELECT n FROM materialized.manual").await, 15);
    // Both in one query, each named in the properties.
    let r = query(&gw, &k, "SELECT t.n + m.n FROM materialized.timed t, materialized.manual m").await;
    assert_eq!(r.json()["result"], json!([[30]]));
    let read = r.json()["properties"]["materializedViews"].clone();
    assert!(read["timed"].as_i64() > Some(0) && read["manual"].as_i64() > Some(0), "{read}");
}

/// Incremental and real-time views after many loads with compaction
/// running, a `kill -9` during loading, and restarts: equal to the full
/// query over every stored event.
async fn incremental_views_equal_the_full_query(backend: Backend) {
    let settings = [
        ("WEIR_BATCH__COMPACT_INTERVAL_MS", "150"),
        ("WEIR_BATCH__COMPACT_MIN_FILES", "2"),
        ("WEIR_BATCH__VIEWS_INTERVAL_MS", "0"),
    ];
    let mut gw = Gateway::start_with(backend, options(&settings)).await;
    let k = gw.create_project("shop").await;
    send_pageviews(&gw, &k, 0, 300).await;
    commit(&gw, &k).await;
    let hits = "SELECT url, count(*) AS hits, count(DISTINCT _user) AS users_seen FROM pageview GROUP BY url";
    created(&gw, &k, json!({"table_name": "hits", "name": "h", "incremental": true, "query": hits})).await;
    created(
        &gw,
        &k,
        json!({"table_name": "seqs", "name": "s", "incremental": true,
        "query": "SELECT seq, url FROM pageview WHERE seq % 3 = 0"}),
    )
    .await;
    created(
        &gw,
        &k,
        json!({"table_name": "live", "name": "l", "incremental": true, "real_time": true,
        "query": "SELECT url, count(*) AS hits FROM pageview GROUP BY url"}),
    )
    .await;
    let mut sent = 300;
    for round in 0..8 {
        send_pageviews(&gw, &k, sent, 300).await;
        sent += 300;
        commit(&gw, &k).await;
        if round % 2 == 0 {
            for view in ["hits", "seqs"] {
                assert_eq!(update(&gw, &k, view).await["success"], json!(true));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        check(&gw, &k, round % 2 == 0).await;
    }
    assert!(count(&gw, &k, "SELECT count(*) FROM materialized.seqs").await > 0);
    let files = gw.warehouse().list_all().await.expect("list");
    assert!(
        files.iter().any(|(path, _)| path.starts_with("shop/pageview/") && path.contains("/compacted-")),
        "compaction ran over files the views had read: {files:?}"
    );

    // kill -9 while events load and views refresh; acknowledged events
    // are folded in exactly once after the restart.
    let loading = {
        let (base, key) = (gw.base().to_owned(), k.clone());
        tokio::spawn(async move {
            let client = weir_tests::Client::new(&base).expect("client");
            for i in 0..20u64 {
                let events: Vec<(String, Value)> = (0..50)
                    .map(|j| {
                        let seq = 100_000 + i * 50 + j;
                        ("pageview".to_owned(), json!({"seq": seq, "url": format!("/p/{}", seq % 7), "_user": "k"}))
                    })
                    .collect();
                if client.batch(&key.write, &events).await.is_err() {
                    return;
                }
                let _ = client.post("/event/bulk/commit", &[("master_key", &key.master)], &json!({})).await;
            }
        })
    };
    for _ in 0..3 {
        let data = urlencode(&json!({"name": "hits"}).to_string());
        let mut sse =
            Sse::connect(gw.base(), &format!("/materialized-view/update?read_key={}&data={data}", k.read), &[]).await;
        let _ = result_event(&mut sse).await;
    }
    gw.kill9().await;
    let _ = loading.await;
    gw.restart().await;
    commit(&gw, &k).await;
    check(&gw, &k, false).await;
    for view in ["hits", "seqs"] {
        assert_eq!(update(&gw, &k, view).await["success"], json!(true));
    }
    check(&gw, &k, true).await;
    gw.stop().await;
    gw.restart().await;
    send_pageviews(&gw, &k, 200_000, 100).await;
    commit(&gw, &k).await;
    check(&gw, &k, false).await;
    for view in ["hits", "seqs"] {
        assert_eq!(update(&gw, &k, view).await["success"], json!(true));
    }
    check(&gw, &k, true).await;
}

/// The real-time view equals its query over every stored event; so do
/// the others once `refreshed`.
async fn check(gw: &Gateway, k: &Keys, refreshed: bool) {
    let full = rows(gw, k, "SELECT url, count(*) FROM pageview GROUP BY url ORDER BY url").await;
    let live = rows(gw, k, "SELECT url, sum(hits) FROM materialized.live GROUP BY url ORDER BY url").await;
    assert_eq!(live, full, "real-time: the snapshot plus the rows newer than it");
    if !refreshed {
        return;
    }
    let folded = rows(gw, k, "SELECT url, sum(hits) FROM materialized.hits GROUP BY url ORDER BY url").await;
    assert_eq!(folded, full, "incremental aggregate, re-aggregated");
    let every = rows(gw, k, "SELECT count(*), count(DISTINCT seq), sum(seq) FROM pageview WHERE seq % 3 = 0").await;
    let seqs = rows(gw, k, "SELECT count(*), count(DISTINCT seq), sum(seq) FROM materialized.seqs").await;
    assert_eq!(seqs, every, "each row folded in exactly once");
}

/// Another project's view is not reachable by any spelling.
async fn another_project_s_views_cannot_be_read(backend: Backend) {
    let gw = Gateway::start_with(backend, options(&[])).await;
    let a = gw.create_project("alpha").await;
    let b = gw.create_project("beta").await;
    send_pageviews(&gw, &a, 0, 40).await;
    send_pageviews(&gw, &b, 0, 3).await;
    commit(&gw, &a).await;
    created(&gw, &a, json!({"table_name": "secret", "name": "s", "query": "SELECT seq AS alpha_seq FROM pageview"}))
        .await;
    assert_eq!(count(&gw, &a, "SELECT count(*) FROM materialized.secret").await, 40);
    for sql in [
        "SELECT * FROM materialized.secret",
        r#"SELECT * FROM "materialized"."secret""#,
        "SELECT * FROM MATERIALIZED.SECRET",
        "SELECT * FROM (SELECT * FROM (SELECT alpha_seq FROM materialized.secret) x) y",
        "WITH s AS (SELECT * FROM materialized.secret) SELECT * FROM s",
        "SELECT seq FROM pageview WHERE seq IN (SELECT alpha_seq FROM materialized.secret)",
    ] {
        let r = query(&gw, &b, sql).await;
        assert_eq!(r.status, 404, "{sql}: {}", r.text());
        assert!(!r.text().contains("alpha_seq\""), "{sql}: {}", r.text());
    }
    for sql in [
        "SELECT * FROM alpha.materialized.secret",
        "SELECT * FROM weir.alpha.materialized.secret",
        r#"SELECT * FROM "$view:secret""#,
        r#"SELECT * FROM "alpha"."$view:secret""#,
        "SELECT * FROM alpha.secret",
    ] {
        let r = query(&gw, &b, sql).await;
        assert_eq!(r.status, 403, "{sql}: {}", r.text());
    }
    // beta's own view of the same name reads beta's rows only.
    created(&gw, &b, json!({"table_name": "secret", "name": "s", "query": "SELECT seq AS beta_seq FROM pageview"}))
        .await;
    assert_eq!(count(&gw, &b, "SELECT count(*) FROM materialized.secret").await, 3);
    assert_eq!(count(&gw, &a, "SELECT count(*) FROM materialized.secret").await, 40);
    let r = gw.post("/materialized-view/delete", &[("master_key", &b.master)], &json!({"table_name": "secret"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(count(&gw, &a, "SELECT count(*) FROM materialized.secret").await, 40, "deleting beta's left alpha's");
}

/// Rakam's Python client (`rakam-client` 0.5, `MaterializedViewApi`), run
/// by `tests/python/rakam_views.py`.
async fn rakam_python_client_drives_the_view_api(backend: Backend) {
    let gw = Gateway::start_with(backend, options(&[])).await;
    let k = gw.create_project("shop").await;
    send_pageviews(&gw, &k, 0, 21).await;
    commit(&gw, &k).await;
    let python = std::env::var("WEIRTEST_PYTHON")
        .unwrap_or_else(|_| panic!("WEIRTEST_PYTHON is not set: run the suite with scripts/test.sh"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("rakam_views.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([gw.base(), &k.read, &k.master])
        .output()
        .await
        .expect("run python");
    assert!(out.status.success(), "rakam_views.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(got["create"], json!(true), "{got}");
    assert_eq!(got["list"], json!([["by_url", "By URL", "3600.0", false]]), "{got}");
    assert_eq!(got["get"], json!("SELECT url, count(*) AS hits FROM pageview GROUP BY url"), "{got}");
    assert_eq!(got["schema"], json!([["by_url", ["url", "hits"]]]), "{got}");
    assert_eq!(got["missing"], json!(404), "{got}");
    assert_eq!(got["duplicate"], json!(400), "{got}");
    assert_eq!(got["delete"], json!(true), "{got}");
    assert_eq!(got["after_delete"], json!([]), "{got}");
}

on_every_backend!(
    endpoints_answer_as_rakam_s,
    a_full_refresh_under_readers_never_shows_an_empty_view,
    stale_views_are_refreshed_on_read,
    incremental_views_equal_the_full_query,
    another_project_s_views_cannot_be_read,
    rakam_python_client_drives_the_view_api
);
