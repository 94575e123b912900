//! `/continuous-query/*` and `continuous.<x>` against the real gateway:
//! Rakam's endpoints, keys and errors; every aggregate equal to the same
//! query over all loaded events after every load, after a `kill -9` during
//! loading and after restarts; replay; merged state; isolation.

use std::time::Duration;

use serde_json::{Value, json};
use weir_tests::sse::Sse;
use weir_tests::{Backend, Gateway, Keys, Options, on_every_backend};

fn options(extra: &[(&str, &str)]) -> Options {
    let mut env = vec![("WEIR_BATCH__INTERVAL_MS".to_owned(), "3600000".to_owned())];
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

async fn commit(gw: &Gateway, k: &Keys) {
    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

fn pageviews(from: u64, n: u64) -> Vec<(String, Value)> {
    (from..from + n)
        .map(|i| {
            let day = 1_700_000_000_000_i64 + (i % 3) as i64 * 86_400_000;
            let event =
                json!({"seq": i, "url": format!("/p/{}", i % 7), "_user": format!("u{}", i % 53), "_time": day});
            ("pageview".to_owned(), event)
        })
        .collect()
}

async fn send(gw: &Gateway, k: &Keys, events: &[(String, Value)]) {
    for chunk in events.chunks(500) {
        assert!(gw.client.batch(&k.write, chunk).await.expect("batch").is_stored());
    }
}

async fn create(
    gw: &Gateway,
    k: &Keys,
    table_name: &str,
    query: &str,
    keys: &[&str],
    replay: bool,
) -> weir_tests::Response {
    let body = json!({"continuous_query": {"table_name": table_name, "name": table_name, "query": query,
        "partition_keys": keys}, "replay": replay});
    gw.post("/continuous-query/create", &[("master_key", &k.master)], &body).await
}

async fn created(gw: &Gateway, k: &Keys, table_name: &str, query: &str, keys: &[&str], replay: bool) {
    let r = create(gw, k, table_name, query, keys, replay).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})), "{table_name}: {}", r.text());
}

fn error_of(r: &weir_tests::Response) -> (u16, String) {
    (r.status, r.json()["error"].as_str().unwrap_or_default().to_owned())
}

const HITS: &str = "SELECT url, count(*) AS hits, sum(seq) AS total, min(seq) AS first_seq, max(seq) AS last_seq, \
                    avg(seq) AS mean FROM pageview GROUP BY url";
const HITS_DIRECT: &str =
    "SELECT url, count(*), sum(seq), min(seq), max(seq), avg(seq) FROM pageview GROUP BY url ORDER BY url";

/// Every continuous query against the same query over the raw events.
async fn check(gw: &Gateway, k: &Keys) {
    let direct = rows(gw, k, HITS_DIRECT).await;
    let kept =
        rows(gw, k, "SELECT url, hits, total, first_seq, last_seq, mean FROM continuous.hits ORDER BY url").await;
    assert_eq!(kept, direct, "count, sum, min, max, avg");
    let direct = rows(gw, k, "SELECT _collection, count(*) FROM _all GROUP BY 1 ORDER BY 1").await;
    let kept = rows(gw, k, "SELECT c, n FROM continuous.per_collection ORDER BY c").await;
    assert_eq!(kept, direct, "over _all");
    let direct =
        rows(gw, k, "SELECT date_trunc('day', _time), count(DISTINCT _user) FROM pageview GROUP BY 1 ORDER BY 1").await;
    let kept = rows(gw, k, "SELECT day, users FROM continuous.daily ORDER BY day").await;
    assert_eq!(kept.len(), direct.len(), "one row per day");
    for (kept, direct) in kept.iter().zip(&direct) {
        assert_eq!(kept[0], direct[0]);
        let (estimate, exact) = (kept[1].as_f64().expect("users"), direct[1].as_f64().expect("users"));
        // HyperLogLog's documented standard error is about 0.8% here.
        assert!((estimate - exact).abs() <= exact * 0.05 + 1.0, "approx_distinct {estimate} vs {exact}");
    }
    let direct = rows(gw, k, "SELECT count(*), min(seq), max(seq) FROM pageview").await;
    let kept = rows(gw, k, "SELECT n, lo, hi FROM continuous.totals").await;
    assert_eq!(kept, direct, "a global aggregate");
    let users = rows(gw, k, "SELECT users FROM continuous.totals").await[0][0].as_f64().expect("users");
    let exact = rows(gw, k, "SELECT count(DISTINCT _user) FROM pageview").await[0][0].as_f64().expect("users");
    assert!((users - exact).abs() <= exact * 0.05 + 1.0, "approx_distinct of all {users} vs {exact}");
    let median = rows(gw, k, "SELECT median FROM continuous.totals").await[0][0].as_f64().expect("median");
    let below = rows(gw, k, &format!("SELECT count(*) FROM pageview WHERE seq <= {median}")).await[0][0].as_f64();
    let n = direct[0][0].as_f64().expect("count");
    // A t-digest's median is off by a small share of the rows in rank.
    assert!(
        below.is_some_and(|b| (b - n / 2.0).abs() <= n * 0.02 + 2.0),
        "approximate median {median}: {below:?} of {n} below"
    );
}

async fn create_the_queries(gw: &Gateway, k: &Keys, replay: bool) {
    created(gw, k, "hits", HITS, &[], replay).await;
    created(gw, k, "per_collection", "SELECT _collection AS c, count(*) AS n FROM _all GROUP BY 1", &[], replay).await;
    let daily = "SELECT date_trunc('day', _time) AS day, approx_distinct(_user) AS users FROM pageview GROUP BY 1";
    created(gw, k, "daily", daily, &["day"], replay).await;
    let totals = "SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi, approx_distinct(_user) AS users, \
                  approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY seq) AS median FROM pageview";
    created(gw, k, "totals", totals, &[], replay).await;
}

async fn every_aggregate_equals_the_full_query(backend: Backend) {
    let settings = [("WEIR_BATCH__VIEWS_INTERVAL_MS", "100"), ("WEIR_BATCH__MAX_RECORDS", "400")];
    let mut gw = Gateway::start_with(backend, options(&settings)).await;
    let k = gw.create_project("shop").await;
    // The collections exist before the queries over them.
    send(&gw, &k, &pageviews(0, 10)).await;
    send(&gw, &k, &[("signup".to_owned(), json!({"seq": 0}))]).await;
    commit(&gw, &k).await;
    create_the_queries(&gw, &k, true).await;
    check(&gw, &k).await;
    let mut sent = 10;
    for round in 0..12 {
        send(&gw, &k, &pageviews(sent, 250)).await;
        sent += 250;
        if round % 3 == 0 {
            send(&gw, &k, &[("signup".to_owned(), json!({"seq": round}))]).await;
        }
        commit(&gw, &k).await;
        check(&gw, &k).await;
    }
    // The master merged each partition's many state files.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let store = weir_gateway::metadata::open(&gw.metadata_url).await.expect("metadata");
    let hits_states = store.continuous_state("shop", "hits").await.expect("state").len();
    check(&gw, &k).await;

    // kill -9 while loads fold into the states: after the restart every
    // acknowledged event is in each state exactly once.
    let loading = {
        let (base, key) = (gw.base().to_owned(), k.clone());
        tokio::spawn(async move {
            let client = weir_tests::Client::new(&base).expect("client");
            for i in 0..20u64 {
                if client.batch(&key.write, &pageviews(100_000 + i * 100, 100)).await.is_err() {
                    return;
                }
                let _ = client.post("/event/bulk/commit", &[("master_key", &key.master)], &json!({})).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    gw.kill9().await;
    let _ = loading.await;
    gw.restart().await;
    commit(&gw, &k).await;
    check(&gw, &k).await;
    gw.stop().await;
    gw.restart().await;
    send(&gw, &k, &pageviews(500_000, 120)).await;
    commit(&gw, &k).await;
    check(&gw, &k).await;
    assert!(hits_states < 8, "{hits_states} state files after 13 loads: merged");
}

/// Without replay a query starts from the loads after it; with replay it
/// starts with every event before it, once.
async fn replay_folds_in_history_once(backend: Backend) {
    let gw = Gateway::start_with(
        backend,
        options(&[("WEIR_BATCH__COMPACT_INTERVAL_MS", "100"), ("WEIR_BATCH__COMPACT_MIN_FILES", "2")]),
    )
    .await;
    let k = gw.create_project("shop").await;
    for round in 0..4 {
        send(&gw, &k, &pageviews(round * 100, 100)).await;
        commit(&gw, &k).await;
    }
    created(&gw, &k, "history", "SELECT count(*) AS n, sum(seq) AS s FROM pageview", &[], true).await;
    created(&gw, &k, "fresh", "SELECT count(*) AS n, sum(seq) AS s FROM pageview", &[], false).await;
    let all = |n: u64| vec![vec![json!(n), json!((0..n).sum::<u64>() as f64)]];
    assert_eq!(rows(&gw, &k, "SELECT n, s FROM continuous.history").await, all(400), "{}", gw.stderr());
    assert_eq!(rows(&gw, &k, "SELECT n, s FROM continuous.fresh").await, [[json!(0), Value::Null]]);
    for round in 4..8 {
        send(&gw, &k, &pageviews(round * 100, 100)).await;
        commit(&gw, &k).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(rows(&gw, &k, "SELECT n, s FROM continuous.history").await, all(800));
    let later = (400..800).sum::<u64>() as f64;
    assert_eq!(rows(&gw, &k, "SELECT n, s FROM continuous.fresh").await, [[json!(400), json!(later)]]);
}

async fn endpoints_answer_as_rakam_s(backend: Backend) {
    let gw = Gateway::start_with(backend, options(&[])).await;
    let k = gw.create_project("shop").await;
    let other = gw.create_project("rival").await;
    send(&gw, &k, &pageviews(0, 30)).await;
    send(&gw, &other, &pageviews(0, 3)).await;
    commit(&gw, &k).await;
    let body = json!({"continuous_query": {"table_name": "per_url", "name": "Per URL",
        "query": "SELECT url, count(*) AS n FROM pageview GROUP BY url", "partition_keys": ["url"], "options": {"a": 1}},
        "replay": true});
    let r = gw.post("/continuous-query/create", &[("master_key", &k.read)], &body).await;
    assert_eq!(error_of(&r), (403, "master_key is invalid".to_owned()));
    let r = gw.post("/continuous-query/create", &[("master_key", &k.master)], &body).await;
    assert_eq!(r.json(), json!({"success": true}), "{}", r.text());
    let r = gw.post("/continuous-query/create", &[("master_key", &k.master)], &body).await;
    assert_eq!(error_of(&r), (400, "Continuous query already exists".to_owned()));
    let r = create(&gw, &k, "bad_keys", "SELECT url, count(*) AS n FROM pageview GROUP BY url", &["day"], false).await;
    assert_eq!(error_of(&r), (400, "Partition keys are not valid.".to_owned()));
    let r = create(&gw, &k, "agg_key", "SELECT url, count(*) AS n FROM pageview GROUP BY url", &["n"], false).await;
    assert_eq!(r.status, 400, "an aggregate is no partition key: {}", r.text());

    let test = |sql: &str| {
        let sql = sql.to_owned();
        let (gw, read) = (&gw, k.read.clone());
        async move { gw.post("/continuous-query/test", &[("read_key", &read)], &json!({"query": sql})).await }
    };
    let r = test("SELECT url, count(*) AS n, approx_distinct(_user) AS u FROM pageview GROUP BY url").await;
    assert_eq!((r.status, r.json()), (200, json!(true)), "{}", r.text());
    for (sql, says) in [
        ("SELECT * FROM pageview", "Wildcard"),
        ("SELECT count(*) FROM pageview", "Alias for count(*) is missing"),
        ("DELETE FROM pageview", "must be SELECT"),
        ("SELECT url FROM pageview", "must aggregate"),
        ("SELECT url, count(*) AS n FROM rival.pageview GROUP BY url", "rival.pageview"),
        ("SELECT p.url, count(*) AS n FROM pageview p JOIN pageview q ON p.seq = q.seq GROUP BY p.url", "Join"),
        ("SELECT count(DISTINCT _user) AS n FROM pageview", "approx_distinct"),
        (
            "SELECT n, count(*) AS c FROM (SELECT url, count(*) AS n FROM pageview GROUP BY url) x GROUP BY n",
            "Aggregate",
        ),
        ("SELECT url, count(*) AS n FROM (SELECT url FROM pageview LIMIT 5) x GROUP BY url", "come from"),
        ("SELECT count(*) AS n FROM materialized.x", "not views"),
    ] {
        let r = test(sql).await;
        assert_eq!(r.status, 400, "{sql}: {}", r.text());
        assert!(r.text().contains(says), "{sql}: {}", r.text());
    }

    let r = gw.post("/continuous-query/list", &[("read_key", &k.read)], &json!({})).await;
    assert_eq!(
        r.json(),
        json!([{"table_name": "per_url", "name": "Per URL", "query": "SELECT url, count(*) AS n FROM pageview GROUP BY url",
            "partition_keys": ["url"], "options": {"a": 1}}])
    );
    let r = gw.post("/continuous-query/list", &[("read_key", &other.read)], &json!({})).await;
    assert_eq!(r.json(), json!([]));
    let r = gw.post("/continuous-query/get", &[("read_key", &k.read)], &json!({"table_name": "per_url"})).await;
    assert_eq!(r.json()["name"], "Per URL");
    let r = gw.post("/continuous-query/get", &[("read_key", &other.read)], &json!({"table_name": "per_url"})).await;
    assert_eq!(error_of(&r), (404, "Continuous query table continuous.per_url does not exist".to_owned()));
    let r = gw.post("/continuous-query/schema", &[("read_key", &k.read)], &json!({"names": ["per_url"]})).await;
    assert_eq!(
        r.json(),
        json!([{"name": "per_url", "fields": [{"name": "url", "type": "STRING"}, {"name": "n", "type": "LONG"}]}])
    );

    let r = query(&gw, &k, "SELECT sum(n) FROM continuous.per_url").await;
    assert_eq!(r.json()["result"], json!([[30]]), "{}", r.text());
    let r = query(&gw, &k, "SELECT 1 FROM continuous.nope").await;
    assert_eq!(error_of(&r), (404, "Continuous query table continuous.nope does not exist".to_owned()));

    let data: String = json!({"table_name": "per_url"}).to_string().bytes().map(|b| format!("%{b:02X}")).collect();
    let mut sse =
        Sse::connect(gw.base(), &format!("/continuous-query/refresh?master_key={}&data={data}", k.master), &[]).await;
    let message = loop {
        let m = sse.next(Duration::from_secs(30)).await.expect("an answer");
        if m.event.is_some() {
            break m;
        }
    };
    assert_eq!(message.event.as_deref(), Some("result"));
    let answer: Value = serde_json::from_str(&message.data).expect("JSON");
    assert_eq!(answer["success"], json!(true), "{answer}");
    assert_eq!(answer["result"].as_array().map(Vec::len), Some(7));

    let r = gw.post("/continuous-query/delete", &[("master_key", &k.master)], &json!({"table_name": "per_url"})).await;
    assert_eq!(r.json(), json!({"success": true}));
    let r = gw.post("/continuous-query/delete", &[("master_key", &k.master)], &json!({"table_name": "per_url"})).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Error while deleting continuous query"), "{}", r.text());
    let r = query(&gw, &k, "SELECT 1 FROM continuous.per_url").await;
    assert_eq!(r.status, 404);
}

/// Another project's continuous query is not reachable by any spelling.
async fn another_project_s_queries_cannot_be_read(backend: Backend) {
    let gw = Gateway::start_with(backend, options(&[])).await;
    let a = gw.create_project("alpha").await;
    let b = gw.create_project("beta").await;
    send(&gw, &a, &pageviews(0, 40)).await;
    send(&gw, &b, &pageviews(0, 2)).await;
    commit(&gw, &a).await;
    created(&gw, &a, "secret", "SELECT url AS alpha_url, count(*) AS n FROM pageview GROUP BY url", &[], true).await;
    assert_eq!(rows(&gw, &a, "SELECT sum(n) FROM continuous.secret").await, [[json!(40)]]);
    for sql in [
        "SELECT * FROM continuous.secret",
        r#"SELECT * FROM "continuous"."secret""#,
        "SELECT * FROM CONTINUOUS.Secret",
        "SELECT * FROM (SELECT * FROM (SELECT alpha_url FROM continuous.secret) x) y",
        "WITH s AS (SELECT * FROM continuous.secret) SELECT * FROM s",
    ] {
        let r = query(&gw, &b, sql).await;
        assert_eq!(r.status, 404, "{sql}: {}", r.text());
    }
    for sql in [
        "SELECT * FROM alpha.continuous.secret",
        r#"SELECT * FROM "$continuous:secret""#,
        "SELECT * FROM weir.alpha.continuous.secret",
    ] {
        let r = query(&gw, &b, sql).await;
        assert_eq!(r.status, 403, "{sql}: {}", r.text());
    }
    created(&gw, &b, "secret", "SELECT url AS beta_url, count(*) AS n FROM pageview GROUP BY url", &[], true).await;
    assert_eq!(rows(&gw, &b, "SELECT sum(n) FROM continuous.secret").await, [[json!(2)]]);
    assert_eq!(rows(&gw, &a, "SELECT sum(n) FROM continuous.secret").await, [[json!(40)]]);
}

/// A sale sent: collection, bucket, country, user, amount.
type Sale = (&'static str, i64, &'static str, String, i64);

/// Real-time reports: measures per 5 s bucket over a window, in Rakam's
/// four shapes, current to the last load.
async fn realtime_reports_answer_windows_of_buckets(backend: Backend) {
    let gw = Gateway::start_with(backend, options(&[])).await;
    let k = gw.create_project("shop").await;
    let now_s =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64) / 5 * 5;
    let base = now_s - 300;
    // (collection, bucket, country, user, amount); amount 0 is filtered out.
    let mut sent: Vec<Sale> = Vec::new();
    for i in 0..60i64 {
        let collection = if i % 4 == 0 { "refund" } else { "buy" };
        let country = ["DE", "TR", "US"][(i % 3) as usize];
        sent.push((collection, i % 6, country, format!("u{}", i % 11), i % 5));
    }
    let events = |part: &[Sale]| -> Vec<(String, Value)> {
        part.iter()
            .map(|(c, bucket, country, user, amount)| {
                let time = (base + bucket * 5 + 1) * 1000;
                ((*c).to_owned(), json!({"_time": time, "country": country, "_user": user, "amount": amount}))
            })
            .collect()
    };
    send(&gw, &k, &events(&sent[..30])).await;
    commit(&gw, &k).await;
    let report = json!({"name": "Sales", "table_name": "sales", "collections": ["buy", "refund"], "filter": "amount > 0",
        "dimensions": ["country"], "measures": [{"column": "amount", "aggregation": "SUM"},
        {"column": "_user", "aggregation": "APPROXIMATE_UNIQUE"}, {"column": "amount", "aggregation": "count"}]});
    let r = gw.post("/realtime/create", &[("master_key", &k.read)], &report).await;
    assert_eq!(r.status, 403);
    let r = gw.post("/realtime/create", &[("master_key", &k.master)], &report).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})), "{}", r.text());
    for (aggregation, says) in [("AVERAGE", "Average"), ("COUNT_UNIQUE", "Unsupported aggregation types")] {
        let mut bad = report.clone();
        bad["table_name"] = json!("bad");
        bad["measures"] = json!([{"column": "amount", "aggregation": aggregation}]);
        let r = gw.post("/realtime/create", &[("master_key", &k.master)], &bad).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains(says), "{}", r.text());
    }
    // Loads after the report are in it.
    send(&gw, &k, &events(&sent[30..])).await;
    commit(&gw, &k).await;

    let get = |body: Value| {
        let (gw, read) = (&gw, k.read.clone());
        async move {
            let r = gw.post("/realtime/get", &[("read_key", &read)], &body).await;
            assert_eq!(r.status, 200, "{body}: {}", r.text());
            r.json()
        }
    };
    let window = json!({"date_start": base, "date_end": base + 30});
    let with = |extra: Value| {
        let mut body = json!({"table_name": "sales", "measure": {"column": "amount", "aggregation": "SUM"}});
        let fields = |v: &Value| v.as_object().cloned().expect("an object");
        for (key, value) in fields(&window).into_iter().chain(fields(&extra)) {
            body[key] = value;
        }
        body
    };
    let kept: Vec<_> = sent.iter().filter(|e| e.4 > 0).collect();
    let sum = |f: &dyn Fn(&&Sale) -> bool| kept.iter().filter(|e| f(e)).map(|e| e.4).sum::<i64>();

    let answer = get(with(json!({}))).await;
    assert_eq!((answer["start"].clone(), answer["end"].clone()), (json!(base), json!(base + 30)));
    let dense: Vec<Value> = (0..6).map(|b| json!([(base + b * 5) * 1000, sum(&|e| e.1 == b) as f64])).collect();
    assert_eq!(answer["result"], Value::Array(dense), "one value per bucket");
    let answer = get(with(json!({"aggregate": true}))).await;
    assert_eq!(answer["result"], json!(sum(&|_| true) as f64), "one value for the window");
    let answer = get(with(json!({"aggregate": true, "dimensions": ["country"]}))).await;
    let mut by_country = answer["result"].as_array().cloned().expect("rows");
    by_country.sort_by_key(|r| r[1].as_str().unwrap_or_default().to_owned());
    let expected: Vec<Value> =
        ["DE", "TR", "US"].iter().map(|c| json!([(base + 30) * 1000, c, sum(&|e| e.2 == *c) as f64])).collect();
    assert_eq!(by_country, expected);
    let answer = get(with(json!({"dimensions": ["country"]}))).await;
    let rows = answer["result"].as_array().cloned().expect("rows");
    assert_eq!(rows.len(), kept.iter().map(|e| (e.1, e.2)).collect::<std::collections::BTreeSet<_>>().len());
    assert!(rows.windows(2).all(|w| w[0][0].as_i64() <= w[1][0].as_i64()), "by bucket");
    let mut count = with(json!({"aggregate": true}));
    count["measure"] = json!({"column": "amount", "aggregation": "COUNT"});
    assert_eq!(get(count).await["result"], json!(kept.len()));
    let mut users = with(json!({"aggregate": true}));
    users["measure"] = json!({"column": "_user", "aggregation": "APPROXIMATE_UNIQUE"});
    let distinct = kept.iter().map(|e| e.3.clone()).collect::<std::collections::BTreeSet<_>>().len();
    let estimate = get(users).await["result"].as_f64().expect("estimate");
    assert!((estimate - distinct as f64).abs() <= 1.0, "approximately {distinct} users: {estimate}");
    let answer =
        get(json!({"table_name": "sales", "measure": {"column": "amount", "aggregation": "SUM"}, "aggregate": true}))
            .await;
    assert_eq!(answer["result"], json!(0), "the last two minutes have no sales");

    let r = gw.post("/realtime/list", &[("read_key", &k.read)], &json!({})).await;
    assert_eq!(
        r.json().as_array().map(|a| a.iter().map(|q| q["table_name"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("sales")])
    );
    assert_eq!(r.json()[0]["options"]["realtime"], json!(true));
    let r = gw.post("/realtime/get", &[("read_key", &k.read)], &with(json!({"filter": "amount > 3"}))).await;
    assert_eq!(r.status, 400);
    let r = gw.post("/realtime/delete", &[("master_key", &k.master)], &json!({"table_name": "sales"})).await;
    assert_eq!(r.json(), json!({"success": true}));
    let r = gw.post("/realtime/delete", &[("master_key", &k.master)], &json!({"table_name": "sales"})).await;
    assert_eq!(error_of(&r), (400, "Couldn't delete report. It doesn't exist".to_owned()));
}

/// Rakam's Python client (`rakam-client` 0.5, `ContinuousqueryApi` and
/// `RealtimeApi`), run by `tests/python/rakam_continuous.py`. Its
/// `create_query` sends the query unwrapped (no `replay`), which Rakam's
/// server would not have read; it is taken here.
async fn rakam_python_client_drives_continuous_queries_and_reports(backend: Backend) {
    let gw = Gateway::start_with(backend, options(&[])).await;
    let k = gw.create_project("shop").await;
    let start = 1_700_000_000i64;
    let events: Vec<(String, Value)> = (0..12)
        .map(|i| ("pageview".to_owned(), json!({"url": format!("/p/{i}"), "_time": (start + 1 + i * 4) * 1000})))
        .collect();
    send(&gw, &k, &events).await;
    commit(&gw, &k).await;
    let python = std::env::var("WEIRTEST_PYTHON")
        .unwrap_or_else(|_| panic!("WEIRTEST_PYTHON is not set: run the suite with scripts/test.sh"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("rakam_continuous.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([gw.base(), &k.read, &k.master, &start.to_string()])
        .output()
        .await
        .expect("run python");
    assert!(out.status.success(), "rakam_continuous.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let expected = json!({
        "create": true, "duplicate": 400, "list": ["SELECT url, count(*) AS n FROM pageview GROUP BY url"],
        "get": "SELECT url, count(*) AS n FROM pageview GROUP BY url", "test": true, "test_wildcard": 400,
        "delete": true, "report": true, "reports": ["Views"], "views": 12, "drop": true,
    });
    assert_eq!(got, expected);
}

on_every_backend!(
    rakam_python_client_drives_continuous_queries_and_reports,
    realtime_reports_answer_windows_of_buckets,
    endpoints_answer_as_rakam_s,
    every_aggregate_equals_the_full_query,
    replay_folds_in_history_once,
    another_project_s_queries_cannot_be_read
);
