//! `/query/execute` over HTTP against the real gateway: results equal a
//! reference computed from the events sent; every denial; isolation
//! between projects; errors and limits.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use weir_tests::{Backend, Gateway, Keys, Options, on_every_backend};

async fn query(gw: &Gateway, k: &Keys, sql: &str) -> weir_tests::Response {
    gw.post("/query/execute", &[("read_key", &k.read)], &json!({"query": sql})).await
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

fn options() -> Options {
    // The loop runs when the tests say so.
    Options { env: vec![("WEIR_BATCH__INTERVAL_MS".into(), "3600000".into())], ..Options::default() }
}

async fn results_equal_a_reference_computed_from_the_events(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    let countries = ["DE", "TR", "US"];
    let mut events = Vec::new();
    let mut reference: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    let mut users = BTreeSet::new();
    for i in 0..300u64 {
        let country = countries[(i * 7 % 3) as usize];
        let price = (i % 17) as f64 + 0.5;
        let user = format!("u{}", i % 40);
        users.insert(user.clone());
        if i % 3 == 0 {
            let e = reference.entry(country).or_default();
            e.0 += 1;
            e.1 += price;
            events.push(("purchase".to_owned(), json!({"seq": i, "_user": user, "country": country, "price": price})));
        } else {
            events.push(("pageview".to_owned(), json!({"seq": i, "_user": user, "url": format!("/p/{}", i % 5)})));
        }
    }
    for chunk in events.chunks(100) {
        assert!(gw.client.batch(&k.write, chunk).await.expect("batch").is_stored());
    }
    commit(&gw, &k).await;

    assert_eq!(rows(&gw, &k, "SELECT count(*) FROM pageview").await, [[json!(200)]]);
    let r = query(&gw, &k, "SELECT count(*) AS n FROM pageview").await;
    assert_eq!(r.json()["metadata"], json!([{"name": "n", "type": "LONG"}]));
    let by_country =
        rows(&gw, &k, "SELECT country, count(*), sum(price) FROM purchase GROUP BY country ORDER BY country").await;
    let expected: Vec<Vec<Value>> =
        reference.iter().map(|(c, (n, sum))| vec![json!(c), json!(n), json!(sum)]).collect();
    assert_eq!(by_country, expected);
    let distinct = rows(&gw, &k, "SELECT count(DISTINCT _user) FROM _all").await;
    assert_eq!(distinct, [[json!(users.len())]]);
    let per_collection = rows(&gw, &k, "SELECT _collection, count(*) FROM _all GROUP BY 1 ORDER BY 1").await;
    assert_eq!(per_collection, [[json!("pageview"), json!(200)], [json!("purchase"), json!(100)]]);
    let joined = rows(
        &gw,
        &k,
        "WITH buyers AS (SELECT DISTINCT _user FROM purchase) \
         SELECT count(*) FROM pageview p JOIN buyers b ON p._user = b._user",
    )
    .await;
    assert!(joined[0][0].as_u64().is_some_and(|n| n > 0 && n <= 200));

    // Schema evolution: a field added later reads as null in older files.
    let later: Vec<(String, Value)> =
        (0..10).map(|i| ("pageview".to_owned(), json!({"seq": 1000 + i, "campaign": "spring"}))).collect();
    assert!(gw.client.batch(&k.write, &later).await.expect("batch").is_stored());
    commit(&gw, &k).await;
    let evolved = rows(&gw, &k, "SELECT campaign IS NULL, count(*) FROM pageview GROUP BY 1 ORDER BY 1").await;
    assert_eq!(evolved, [[json!(false), json!(10)], [json!(true), json!(200)]]);
}

async fn nothing_outside_the_project_resolves(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    let other = gw.create_project("rival").await;
    let collect = |key: &str, c: &str| json!({"collection": c, "api": {"api_key": key}, "properties": {"x": 1}});
    assert_eq!(gw.post("/event/collect", &[], &collect(&k.write, "mine")).await.status, 200);
    assert_eq!(gw.post("/event/collect", &[], &collect(&other.write, "secret")).await.status, 200);
    commit(&gw, &k).await;
    assert_eq!(rows(&gw, &other, "SELECT count(*) FROM secret").await, [[json!(1)]]);
    for sql in [
        "SELECT * FROM secret",
        "SELECT * FROM rival.secret",
        r#"SELECT * FROM "rival"."secret""#,
        "SELECT * FROM mine m JOIN secret s ON true",
        "SELECT * FROM (SELECT * FROM secret) x",
        "SELECT * FROM mine WHERE x IN (SELECT x FROM secret)",
        "WITH s AS (SELECT * FROM secret) SELECT * FROM s",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM datafusion.public.mine",
        "SELECT * FROM generate_series(1, 3)",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
        "COPY mine TO '/tmp/out.csv'",
        "INSERT INTO mine VALUES (1)",
        "DROP TABLE mine",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let r = query(&gw, &k, sql).await;
        assert_eq!((r.status, r.json()["error_code"].clone()), (403, json!(403)), "{sql}: {}", r.text());
        assert!(r.json()["error"].as_str().is_some_and(|e| e.starts_with("denied")), "{sql}: {}", r.text());
    }
    for sql in ["SELECT * FROM materialized.daily", "SELECT * FROM continuous.totals"] {
        let r = query(&gw, &k, sql).await;
        assert_eq!(r.status, 404, "the project has no such view: {}", r.text());
    }
    assert_eq!(query(&gw, &k, "SELECT 1").await.status, 200);
    assert_eq!(gw.post("/query/execute", &[("read_key", &k.write)], &json!({"query": "SELECT 1"})).await.status, 403);
}

async fn errors_name_their_position_and_limits_apply(backend: Backend) {
    let mut options = options();
    options.env.push(("WEIR_QUERY__MAX_LIMIT".into(), "5".into()));
    let gw = Gateway::start_with(backend, options).await;
    let k = gw.create_project("shop").await;
    let events: Vec<(String, Value)> = (0..20).map(|i| ("c".to_owned(), json!({"i": i}))).collect();
    assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
    commit(&gw, &k).await;

    let r = query(&gw, &k, "SELECT i FROM c WHERE").await;
    assert_eq!(r.status, 400, "{}", r.text());
    let error = &r.json()["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(error["errorLine"], 1);
    assert!(error["charPositionInLine"].as_u64().is_some_and(|c| c > 0), "{error}");
    let r = query(&gw, &k, "SELECT no_such_column FROM c").await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (400, json!(400)), "{}", r.text());

    assert_eq!(rows(&gw, &k, "SELECT i FROM c").await.len(), 5, "capped at the maximum");
    assert_eq!(rows(&gw, &k, "SELECT i FROM c LIMIT 3").await.len(), 3);
    let r = gw.post("/query/execute", &[("read_key", &k.read)], &json!({"query": "SELECT i FROM c", "limit": 2})).await;
    assert_eq!(r.json()["result"].as_array().map(Vec::len), Some(2));
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

async fn every_analysis_endpoint_answers_in_rakam_shape(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    let events: Vec<(String, Value)> =
        (0..4).map(|i| ("c".to_owned(), json!({"i": i, "name": format!("n,{i}")}))).collect();
    assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
    commit(&gw, &k).await;

    // GET with data=: the answer as a server-sent event.
    let data = json!({"query": "SELECT count(*) AS n FROM c"}).to_string();
    let path = format!("/query/execute?read_key={}&data={}", k.read, percent_encode(&data));
    let r = gw.send("GET", &path, &[], "").await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let payload = text.strip_prefix("event: result\ndata: ").expect("a result event").trim();
    let answer: Value = serde_json::from_str(payload).expect("json");
    assert_eq!(answer["result"], json!([[4]]));
    let data = json!({"query": "SELECT * FROM elsewhere.t"}).to_string();
    let path = format!("/query/execute?read_key={}&data={}", k.read, percent_encode(&data));
    let text = gw.send("GET", &path, &[], "").await.text();
    assert!(text.starts_with("event: error\ndata: "), "{text}");
    assert!(text.contains("\"error_code\":403"), "{text}");

    let reader = [("read_key", k.read.as_str())];
    let r = gw.post("/query/metadata", &reader, &json!({"query": "SELECT count(*) AS n, max(name) AS m FROM c"})).await;
    assert_eq!(r.json(), json!([{"name": "n", "type": "LONG"}, {"name": "m", "type": "STRING"}]));
    let r = gw.post("/query/explain", &reader, &json!({"query": "SELECT i FROM c WHERE i > 1"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["plans"].as_array().is_some_and(|p| !p.is_empty()), "{}", r.text());
    let r = gw.post("/query/explain", &reader, &json!({"query": "SELECT * FROM other.t"})).await;
    assert_eq!(r.status, 403);

    let export = |kind: &str| json!({"query": "SELECT i, name FROM c ORDER BY i", "export_type": kind});
    let csv = gw.post("/query/export", &reader, &export("CSV")).await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.text(), "i,name\n0.0,\"n,0\"\n1.0,\"n,1\"\n2.0,\"n,2\"\n3.0,\"n,3\"\n");
    let as_json = gw.post("/query/export", &reader, &export("json")).await;
    assert_eq!(as_json.json()[1], json!({"i": 1.0, "name": "n,1"}));
    assert_eq!(gw.post("/query/export", &reader, &export("XML")).await.status, 400);
}

async fn every_rakam_type_reads_back_as_itself(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    let types = [
        "STRING",
        "INTEGER",
        "LONG",
        "DOUBLE",
        "DECIMAL",
        "BOOLEAN",
        "DATE",
        "TIME",
        "TIMESTAMP",
        "BINARY",
        "ARRAY_STRING",
        "ARRAY_LONG",
        "MAP_DOUBLE",
        "MAP_STRING",
    ];
    let fields: Vec<Value> =
        types.iter().map(|t| json!({"name": format!("f_{}", t.to_ascii_lowercase()), "type": t})).collect();
    let r = gw
        .post("/project/schema/add", &[("master_key", &k.master)], &json!({"collection": "typed", "fields": fields}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let values = json!({
        "f_string": "s", "f_integer": 7, "f_long": 9_000_000_000u64, "f_double": 1.5, "f_decimal": "12.25",
        "f_boolean": true, "f_date": "2024-02-29", "f_time": "13:14:15.5", "f_timestamp": "2024-02-29T13:14:15Z",
        "f_binary": "aGk=", "f_array_string": ["a", "b"], "f_array_long": [1, 2], "f_map_double": {"x": 1.5},
        "f_map_string": {"k": "v"}
    });
    let event = json!({"collection": "typed", "api": {"api_key": k.write}, "properties": values});
    assert_eq!(gw.post("/event/collect", &[], &event).await.status, 200);
    commit(&gw, &k).await;
    let names: Vec<String> = types.iter().map(|t| format!("f_{}", t.to_ascii_lowercase())).collect();
    let r = query(&gw, &k, &format!("SELECT {} FROM typed", names.join(", "))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let metadata: Vec<Value> = names.iter().zip(types).map(|(n, t)| json!({"name": n, "type": t})).collect();
    assert_eq!(r.json()["metadata"], Value::Array(metadata));
    let row = &r.json()["result"][0];
    assert_eq!(
        (&row[0], &row[1], &row[2], &row[3], &row[5]),
        (&json!("s"), &json!(7), &json!(9_000_000_000u64), &json!(1.5), &json!(true))
    );
    assert_eq!(row[4], json!("12.250000000"));
    assert_eq!((&row[6], &row[7]), (&json!("2024-02-29"), &json!("13:14:15.500")));
    assert!(row[8].as_str().is_some_and(|t| t.starts_with("2024-02-29T13:14:15")), "{}", row[8]);
    assert_eq!((&row[10], &row[11]), (&json!(["a", "b"]), &json!([1, 2])));
    let typed =
        rows(&gw, &k, "SELECT f_map_double['x'], f_timestamp = TIMESTAMP '2024-02-29 13:14:15+00:00' FROM typed").await;
    assert_eq!(typed, [[json!(1.5), json!(true)]]);
}

async fn the_loop_loads_by_itself(backend: Backend) {
    let gw = Gateway::start_with(
        backend,
        Options { env: vec![("WEIR_BATCH__INTERVAL_MS".into(), "200".into())], ..Options::default() },
    )
    .await;
    let k = gw.create_project("shop").await;
    let event = json!({"collection": "c", "api": {"api_key": k.write}, "properties": {"x": 1}});
    assert_eq!(gw.post("/event/collect", &[], &event).await.status, 200);
    // No /event/bulk/commit: the loop runs every 200 ms on its own.
    for _ in 0..100 {
        if rows(&gw, &k, "SELECT count(*) FROM c").await == [[json!(1)]] {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("the event never became queryable");
}

async fn a_slow_query_is_stopped_and_a_large_result_refused(backend: Backend) {
    let mut options = options();
    options.env.push(("WEIR_QUERY__TIMEOUT_S".into(), "1".into()));
    options.env.push(("WEIR_QUERY__MAX_RESULT_BYTES".into(), "1000".into()));
    let gw = Gateway::start_with(backend, options).await;
    let k = gw.create_project("shop").await;
    let events: Vec<(String, Value)> = (0..300).map(|i| ("c".to_owned(), json!({"i": i}))).collect();
    for chunk in events.chunks(100) {
        assert!(gw.client.batch(&k.write, chunk).await.expect("batch").is_stored());
    }
    commit(&gw, &k).await;
    let slow = "SELECT sum(a.i * b.i * d.i * e.i) FROM c a CROSS JOIN c b CROSS JOIN c d CROSS JOIN c e";
    let r = query(&gw, &k, slow).await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (504, json!(504)), "{}", r.text());
    let r = query(&gw, &k, "SELECT i FROM c").await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (413, json!(413)), "{}", r.text());
    assert_eq!(rows(&gw, &k, "SELECT i FROM c ORDER BY i LIMIT 3").await.len(), 3, "a small answer is fine");
}

async fn a_full_backlog_runs_the_loop_before_its_interval(backend: Backend) {
    let gw = Gateway::start_with(
        backend,
        Options {
            env: vec![
                ("WEIR_BATCH__INTERVAL_MS".into(), "3600000".into()),
                ("WEIR_BATCH__MAX_RECORDS".into(), "50".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let k = gw.create_project("shop").await;
    let events: Vec<(String, Value)> = (0..60).map(|i| ("c".to_owned(), json!({"i": i}))).collect();
    assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
    // The interval is an hour: only the backlog can have started the loop.
    for _ in 0..100 {
        if rows(&gw, &k, "SELECT count(*) FROM c").await == [[json!(60)]] {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("60 waiting records did not start the loop");
}

on_every_backend!(
    a_full_backlog_runs_the_loop_before_its_interval,
    a_slow_query_is_stopped_and_a_large_result_refused,
    every_rakam_type_reads_back_as_itself,
    the_loop_loads_by_itself,
    every_analysis_endpoint_answers_in_rakam_shape,
    results_equal_a_reference_computed_from_the_events,
    nothing_outside_the_project_resolves,
    errors_name_their_position_and_limits_apply,
);

mod stats {
    use super::*;

    async fn project_stats_count_events_by_age(backend: Backend) {
        let gw = Gateway::start_with(backend, options()).await;
        let k = gw.create_project("shop").await;
        let empty = gw.create_project("empty").await;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
        let day = 86_400_000i64;
        let events: Vec<(String, Value)> = [now - 1000, now - 10 * day, now - 60 * day, now - 61 * day]
            .iter()
            .map(|t| ("c".to_owned(), json!({"_time": t})))
            .collect();
        assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
        commit(&gw, &k).await;
        let body = json!([k.read, k.write, empty.read, "nonsense"]);
        let r = gw.post("/project/stats", &[], &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let mut expected = serde_json::Map::new();
        expected.insert(k.read.clone(), json!({"allEvents": 4, "monthlyEvents": 2, "dailyEvents": 1}));
        expected.insert(empty.read.clone(), json!({"allEvents": 0, "monthlyEvents": 0, "dailyEvents": 0}));
        assert_eq!(r.json(), Value::Object(expected), "only read keys are answered");
        let r = gw.post("/project/stats", &[], &json!({"not": "a list"})).await;
        assert_eq!((r.status, r.json()["error_code"].clone()), (400, json!(400)));
    }

    on_every_backend!(project_stats_count_events_by_age);
}
