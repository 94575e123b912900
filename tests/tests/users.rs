//! `/user/*` against the real gateway on every backend: each endpoint with
//! its key kinds and bad inputs, Rakam's bugs fixed, the user table in SQL
//! (read-your-writes, joined with events), the anonymous id mapping, and
//! isolation between projects.

use serde_json::{Value, json};
use weir_tests::{Backend, Gateway, Keys, Options, on_every_backend};

fn options() -> Options {
    // The loop runs when the tests say so.
    Options { env: vec![("WEIR_BATCH__INTERVAL_MS".into(), "3600000".into())], ..Options::default() }
}

fn api(key: &str) -> Value {
    json!({"api_key": key, "library": {"name": "test", "version": "1"}})
}

async fn ok(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: Value) -> Value {
    let r = gw.post(path, headers, &body).await;
    assert_eq!(r.status, 200, "{path} {body}: {}", r.text());
    r.json()
}

async fn status(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: Value) -> (u16, String) {
    let r = gw.post(path, headers, &body).await;
    if r.status != 200 {
        let error = r.json();
        assert_eq!(error["error_code"], json!(r.status), "Rakam's error shape: {}", r.text());
        return (r.status, error["error"].as_str().unwrap_or_default().to_owned());
    }
    (r.status, r.text())
}

async fn get_user(gw: &Gateway, k: &Keys, id: Value) -> Value {
    ok(gw, "/user/get", &[("read_key", &k.read)], json!({"user": id})).await
}

async fn rows(gw: &Gateway, k: &Keys, sql: &str) -> Vec<Vec<Value>> {
    let answer = ok(gw, "/query/execute", &[("read_key", &k.read)], json!({"query": sql})).await;
    serde_json::from_value(answer["result"].clone()).expect("rows")
}

async fn set(gw: &Gateway, k: &Keys, id: Value, properties: Value) {
    let body = json!({"id": id, "api": api(&k.write), "properties": properties});
    assert_eq!(ok(gw, "/user/set_properties", &[], body).await, json!(1));
}

async fn every_endpoint_does_what_it_says(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    let created = json!({"id": "ann", "api": api(&k.write),
        "properties": {"plan": "pro", "seats": 3, "id": "crm-1", "signup": "2024-03-01T10:00:00Z",
                       "tags": ["a", "b"], "trial": true, "createdAt": "2024-01-01T00:00:00Z"}});
    assert_eq!(ok(&gw, "/user/create", &[], created).await, json!(1));
    let ann = get_user(&gw, &k, json!("ann")).await;
    assert_eq!(ann["id"], json!("ann"));
    let p = &ann["properties"];
    assert_eq!(p["plan"], json!("pro"));
    assert_eq!(p["seats"], json!(3.0));
    assert_eq!(p["_id"], json!("crm-1"), "a property named id is kept as _id");
    assert_eq!(p["tags"], json!(["a", "b"]));
    assert_eq!(p["trial"], json!(true));
    assert!(p["signup"].as_str().is_some_and(|s| s.starts_with("2024-03-01T10:00:00")), "{p}");
    assert!(p["created_at"].as_str().is_some_and(|s| s.starts_with("2024-01-01T00:00:00")), "{p}");

    // Upsert: create on an existing id sets its properties.
    let again = json!({"id": "ann", "api": api(&k.write), "properties": {"plan": "team"}});
    assert_eq!(ok(&gw, "/user/create", &[], again).await, json!(1));
    assert_eq!(get_user(&gw, &k, json!("ann")).await["properties"]["plan"], json!("team"));

    let once = json!({"id": "ann", "api": api(&k.write), "properties": {"plan": "free", "country": "DE"}});
    assert_eq!(ok(&gw, "/user/set_properties_once", &[], once).await, json!(1));
    let p = get_user(&gw, &k, json!("ann")).await["properties"].clone();
    assert_eq!((p["plan"].clone(), p["country"].clone()), (json!("team"), json!("DE")), "only nulls are filled");

    set(&gw, &k, json!("bob"), json!({"plan": "free", "seats": 1})).await;
    let inc = json!({"id": "ann", "api": api(&k.write), "property": "seats", "value": 2});
    assert_eq!(ok(&gw, "/user/increment_property", &[], inc).await, json!({"success": true}));
    let inc_new = json!({"id": "bob", "api": api(&k.write), "property": "logins", "value": 1});
    ok(&gw, "/user/increment_property", &[], inc_new).await;
    assert_eq!(get_user(&gw, &k, json!("ann")).await["properties"]["seats"], json!(5.0));
    // Rakam's increment had no WHERE clause and changed every user.
    let bob = get_user(&gw, &k, json!("bob")).await;
    assert_eq!((bob["properties"]["seats"].clone(), bob["properties"]["logins"].clone()), (json!(1.0), json!(1.0)));

    let unset = json!({"id": "bob", "api": api(&k.write), "properties": ["seats", "never_seen"]});
    assert_eq!(ok(&gw, "/user/unset_properties", &[], unset).await, json!({"success": true}));
    let bob = get_user(&gw, &k, json!("bob")).await;
    assert!(bob["properties"].get("seats").is_none(), "null properties are left out: {bob}");

    // A batch of operations on one user, answered once durable: the next
    // read sees all of them.
    let batch = json!({"id": "cat", "api": api(&k.write), "data": [
        {"set_properties": {"plan": "pro"}, "increment_properties": {"visits": 1}, "time": 1},
        {"set_properties_once": {"plan": "free", "country": "TR"}, "increment_properties": {"visits": 2}},
        {"unset_properties": ["country"]}]});
    assert_eq!(ok(&gw, "/user/batch", &[], batch).await, json!(1));
    let cat = get_user(&gw, &k, json!("cat")).await["properties"].clone();
    assert_eq!((cat["plan"].clone(), cat["visits"].clone()), (json!("pro"), json!(3.0)));
    assert!(cat.get("country").is_none(), "{cat}");

    let ops = json!({"api": api(&k.master), "data": [
        {"id": "dan", "set_properties": {"plan": "pro"}},
        {"id": "bob", "set_properties": {"plan": "team"}, "increment_properties": {"logins": 1}}]});
    assert_eq!(ok(&gw, "/user/batch_operations", &[], ops).await, json!(1));
    assert_eq!(get_user(&gw, &k, json!("dan")).await["properties"]["plan"], json!("pro"));
    assert_eq!(get_user(&gw, &k, json!("bob")).await["properties"]["logins"], json!(2.0));

    let users = json!({"users": [{"id": "eve", "properties": {"plan": "free"}}, {"id": 77, "properties": {}}]});
    assert_eq!(ok(&gw, "/user/batch/create", &[("write_key", &k.write)], users).await, json!(["eve", "77"]));

    let metadata = gw.client.send("GET", "/user/metadata", &[("read_key", &k.read)], "").await.expect("metadata");
    assert_eq!(metadata.status, 200, "{}", metadata.text());
    let metadata = metadata.json();
    assert_eq!(metadata["identifierColumn"], json!("id"));
    let columns: Vec<(String, String)> = metadata["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| (c["name"].as_str().unwrap_or("").to_owned(), c["type"].as_str().unwrap_or("").to_owned()))
        .collect();
    for expected in [
        ("id", "STRING"),
        ("created_at", "TIMESTAMP"),
        ("plan", "STRING"),
        ("seats", "DOUBLE"),
        ("tags", "ARRAY_STRING"),
        ("trial", "BOOLEAN"),
        ("signup", "TIMESTAMP"),
        ("visits", "DOUBLE"),
    ] {
        assert!(columns.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{expected:?} in {columns:?}");
    }

    // Search: a filter-only search filters (Rakam ignored it), offset pages
    // (Rakam ignored it), totalResult counts every match.
    let search = |body: Value| {
        let gw = &gw;
        let k = &k;
        async move { ok(gw, "/user/search", &[("read_key", &k.read)], body).await }
    };
    let pros = search(json!({"filter": "plan = 'pro'", "columns": ["id", "plan"]})).await;
    assert_eq!(pros["result"], json!([["cat", "pro"], ["dan", "pro"]]));
    assert_eq!(pros["properties"]["totalResult"], json!(2));
    assert_eq!(pros["metadata"], json!([{"name": "id", "type": "STRING"}, {"name": "plan", "type": "STRING"}]));
    let page = |offset: Value| search(json!({"columns": ["id"], "limit": 2, "offset": offset}));
    assert_eq!(page(json!(0)).await["result"], json!([["77"], ["ann"]]));
    assert_eq!(page(json!("2")).await["result"], json!([["bob"], ["cat"]]));
    assert_eq!(page(json!(4)).await["result"], json!([["dan"], ["eve"]]));
    assert_eq!(page(json!(4)).await["properties"]["totalResult"], json!(6));
    let sorted = search(json!({"columns": ["id"], "filter": "seats IS NOT NULL",
                               "sorting": {"column": "seats", "order": "desc"}}))
    .await;
    assert_eq!(sorted["result"], json!([["ann"]]));

    // Events: get_events, and a search by what users did.
    let events = json!({"api": api(&k.write), "events": [
        {"collection": "pageview", "properties": {"_user": "ann", "url": "/a", "_time": 1_700_000_000_000_i64}},
        {"collection": "pageview", "properties": {"_user": "ann", "url": "/b", "_time": 1_700_000_001_000_i64}},
        {"collection": "purchase", "properties": {"_user": "bob", "amount": 20, "_time": 1_700_000_002_000_i64}},
        {"collection": "purchase", "properties": {"_user": "cat", "amount": 5, "_time": 1_700_000_003_000_i64}},
        {"collection": "purchase", "properties": {"_user": "ann", "amount": 50, "_time": 1_600_000_000_000_i64}}]});
    ok(&gw, "/event/batch", &[], events).await;
    ok(&gw, "/event/bulk/commit", &[("master_key", &k.master)], json!({})).await;
    let timeline = ok(&gw, "/user/get_events", &[("read_key", &k.read)], json!({"user": "ann", "limit": 2})).await;
    let got: Vec<(Value, Value)> = timeline
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["collection"].clone(), e["properties"]["url"].clone()))
        .collect();
    assert_eq!(got, [(json!("pageview"), json!("/b")), (json!("pageview"), json!("/a"))]);
    let older = ok(
        &gw,
        "/user/get_events",
        &[("read_key", &k.read)],
        json!({"user": "ann", "offset": "2023-01-01T00:00:00Z", "properties": ["amount"]}),
    )
    .await;
    assert_eq!(
        older,
        json!([{"collection": "purchase",
        "properties": {"amount": 50.0, "_time": "2020-09-13T12:26:40Z"}}])
    );
    let buyers = search(json!({"columns": ["id"], "event_filters": [
        {"collection": "purchase", "filter": "amount > 10", "timeframe": {"start": "2023-01-01"}}]}))
    .await;
    assert_eq!(buyers["result"], json!([["bob"]]));
    let big = search(json!({"columns": ["id"], "filter": "plan <> 'free'", "event_filters": [
        {"collection": "purchase", "aggregation": {"aggregation": "SUM", "field": "amount", "minimum": 10}}]}))
    .await;
    assert_eq!(big["result"], json!([["ann"], ["bob"]]));

    // A segment is a materialized view of the users its event filters select.
    let segment = json!({"name": "buyers", "table_name": "buyers", "cache_eviction": "PT1H",
                         "event_filters": [{"collection": "purchase", "filter": "amount > 10"}]});
    let created = ok(&gw, "/user/create_segment", &[("master_key", &k.master)], segment.clone()).await;
    assert_eq!(created, json!({"success": true}));
    assert_eq!(rows(&gw, &k, "SELECT id FROM materialized.buyers ORDER BY id").await, [[json!("ann")], [json!("bob")]]);
    let listed = ok(&gw, "/materialized-view/list", &[("read_key", &k.read)], json!({})).await;
    assert_eq!(
        (listed[0]["table_name"].clone(), listed[0]["update_interval"].clone()),
        (json!("buyers"), json!(3600.0))
    );
    let (code, _) = status(&gw, "/user/create_segment", &[("master_key", &k.master)], segment.clone()).await;
    assert_eq!(code, 400, "a segment of that name exists");
    let bad_interval = json!({"name": "x", "table_name": "x", "cache_eviction": "soon",
                              "event_filters": [{"collection": "purchase"}]});
    let (code, message) = status(&gw, "/user/create_segment", &[("master_key", &k.master)], bad_interval).await;
    assert_eq!((code, message.contains("cache_eviction")), (400, true), "{message}");
    let unknown = json!({"name": "x", "table_name": "x", "event_filters": [{"collection": "nothing"}]});
    let (code, message) = status(&gw, "/user/create_segment", &[("master_key", &k.master)], unknown).await;
    assert_eq!((code, message.contains("not a collection")), (400, true), "{message}");
    let filter_only = json!({"name": "x", "table_name": "x", "filter_expression": "plan = 'pro'"});
    let (code, message) = status(&gw, "/user/create_segment", &[("master_key", &k.master)], filter_only).await;
    assert_eq!((code, message.as_str()), (400, "User segment must have at least one event filter"));
    assert_eq!(status(&gw, "/user/create_segment", &[("master_key", &k.read)], segment).await.0, 403);
}

async fn keys_are_checked_per_endpoint(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    set(&gw, &k, json!("ann"), json!({"plan": "pro"})).await;
    let writes = [
        ("/user/create", json!({"id": "x", "properties": {}})),
        ("/user/set_properties", json!({"id": "x", "properties": {}})),
        ("/user/set_properties_once", json!({"id": "x", "properties": {}})),
        ("/user/unset_properties", json!({"id": "x", "properties": []})),
        ("/user/increment_property", json!({"id": "x", "property": "n", "value": 1})),
        ("/user/batch", json!({"id": "x", "data": []})),
        ("/user/merge", json!({"id": "x", "anonymous_id": "y"})),
    ];
    for (path, body) in &writes {
        let with = |key: &str| {
            let mut b = body.clone();
            b["api"] = api(key);
            b
        };
        assert_eq!(status(&gw, path, &[], with(&k.write)).await.0, 200, "{path} with the write key");
        assert_eq!(status(&gw, path, &[], with(&k.read)).await.0, 403, "{path} with the read key");
        assert_eq!(status(&gw, path, &[], with("nonsense")).await.0, 403, "{path} with a wrong key");
        assert_eq!(status(&gw, path, &[], body.clone()).await.0, 401, "{path} without a key");
        assert_eq!(status(&gw, path, &[("write_key", &k.write)], body.clone()).await.0, 200, "{path}: header key");
    }
    let ops = |key: &str| json!({"api": api(key), "data": [{"id": "x", "set_properties": {"a": 1}}]});
    assert_eq!(status(&gw, "/user/batch_operations", &[], ops(&k.master)).await.0, 200);
    assert_eq!(status(&gw, "/user/batch_operations", &[], ops(&k.write)).await.0, 403, "master key only");
    let create = json!({"users": [{"id": "y", "properties": {}}]});
    assert_eq!(status(&gw, "/user/batch/create", &[("write_key", &k.write)], create.clone()).await.0, 200);
    assert_eq!(status(&gw, "/user/batch/create", &[("write_key", &k.read)], create.clone()).await.0, 403);
    assert_eq!(status(&gw, "/user/batch/create", &[], create).await.0, 401);
    let reads = [
        ("/user/get", json!({"user": "ann"})),
        ("/user/search", json!({})),
        ("/user/get_events", json!({"user": "ann"})),
    ];
    for (path, body) in &reads {
        assert_eq!(status(&gw, path, &[("read_key", &k.read)], body.clone()).await.0, 200, "{path}");
        assert_eq!(status(&gw, path, &[("read_key", &k.write)], body.clone()).await.0, 403, "{path} write key");
        assert_eq!(status(&gw, path, &[], body.clone()).await.0, 401, "{path} without a key");
    }
    let metadata = gw.client.send("GET", &format!("/user/metadata?read_key={}", k.read), &[], "").await.expect("m");
    assert_eq!(metadata.status, 200);
    let metadata = gw.client.send("GET", "/user/metadata", &[("read_key", &k.write)], "").await.expect("m");
    assert_eq!(metadata.status, 403);
}

async fn bad_input_is_refused_and_writes_nothing(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    set(&gw, &k, json!("ann"), json!({"seats": 3, "plan": "pro"})).await;
    let w = [("write_key", k.write.as_str())];
    // batch/create checks every user before creating any (Rakam created
    // the users before refusing one with `api`).
    for users in [
        json!([{"id": "n1", "properties": {}}, {"id": "n2", "properties": {"seats": "many"}}]),
        json!([{"id": "n1", "properties": {}}, {"id": "n2", "api": api(&k.write), "properties": {}}]),
        json!([{"id": "n1", "properties": {}}, {"properties": {}}]),
        json!([{"id": "n1", "properties": {}}, {"id": {"a": 1}, "properties": {}}]),
    ] {
        let (code, message) = status(&gw, "/user/batch/create", &w, json!({"users": users})).await;
        assert_eq!(code, 400, "{users}: {message}");
    }
    let (code, _) = status(&gw, "/user/get", &[("read_key", &k.read)], json!({"user": "n1"})).await;
    assert_eq!(code, 404, "no user of a refused batch was created");

    // A batch is all or none too.
    let batch = json!({"id": "ann", "api": api(&k.write), "data": [
        {"set_properties": {"plan": "team"}}, {"increment_properties": {"plan": 1}}]});
    let (code, message) = status(&gw, "/user/batch", &[], batch).await;
    assert_eq!(code, 400, "{message}");
    assert_eq!(get_user(&gw, &k, json!("ann")).await["properties"]["plan"], json!("pro"));

    let write = |body: Value| {
        let mut body = body;
        body["api"] = api(&k.write);
        body
    };
    for (path, body, naming) in [
        ("/user/set_properties", write(json!({"properties": {"a": 1}})), "id"),
        ("/user/set_properties", write(json!({"id": "ann", "properties": {"seats": "many"}})), "seats"),
        ("/user/set_properties", write(json!({"id": "ann", "properties": {"created_at": null}})), "created_at"),
        ("/user/set_properties", write(json!({"id": "ann", "properties": {"a": 1, "A": 2}})), "a"),
        ("/user/set_properties", write(json!({"id": "x".repeat(300), "properties": {}})), "255"),
        ("/user/set_properties", write(json!({"id": "ann", "properties": [1]})), "expected a map"),
        ("/user/set_properties", write(json!({"id": "ann", "nonsense": 1})), "nonsense"),
        ("/user/increment_property", write(json!({"id": "ann", "property": "plan", "value": 1})), "plan"),
        ("/user/increment_property", write(json!({"id": "ann", "property": "seats", "value": "x"})), "number"),
        ("/user/unset_properties", write(json!({"id": "ann", "properties": ["created_at"]})), "created_at"),
        ("/user/batch", write(json!({"id": "ann", "data": [{"delete": true}]})), "delete"),
        ("/user/merge", write(json!({"id": "ann"})), "anonymous_id"),
        ("/user/merge", write(json!({"id": "ann", "anonymous_id": "a", "merged_at": i64::MAX})), "merged_at"),
    ] {
        let (code, message) = status(&gw, path, &[], body.clone()).await;
        assert_eq!(code, 400, "{path} {body}: {message}");
        assert!(message.contains(naming), "{path} {body}: {message:?} should name {naming:?}");
    }
    for text in ["", "[1]", "{\"id\": ", "\u{0}"] {
        let r = gw.send("POST", "/user/set_properties", &w, text.to_owned()).await;
        assert_eq!(r.status, 400, "{text:?}: {}", r.text());
    }
    let r = ["/user/search"];
    for bad in [
        json!({"filter": "plan = 'pro') UNION SELECT 1 --"}),
        json!({"filter": "1 = 1; DROP TABLE users"}),
        json!({"columns": ["secret"]}),
        json!({"limit": 5001}),
        json!({"offset": "ten"}),
        json!({"sorting": {"column": "plan", "order": "sideways"}}),
        json!({"event_filters": [{"collection": "nothing"}]}),
    ] {
        let (code, message) = status(&gw, r[0], &[("read_key", &k.read)], bad.clone()).await;
        assert_eq!(code, 400, "{bad}: {message}");
    }
    let (code, _) = status(&gw, "/user/get_events", &[("read_key", &k.read)], json!({"user": "ann", "limit": 0})).await;
    assert_eq!(code, 400);
    assert_eq!(get_user(&gw, &k, json!("ann")).await["properties"]["seats"], json!(3.0), "nothing changed");
}

async fn numeric_ids_are_numbers_everywhere(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    set(&gw, &k, json!(42), json!({"plan": "pro"})).await;
    set(&gw, &k, json!("43"), json!({"plan": "free"})).await;
    assert_eq!(get_user(&gw, &k, json!(42)).await["id"], json!(42));
    assert_eq!(get_user(&gw, &k, json!("43")).await["id"], json!(43));
    let body = json!({"id": "ann", "api": api(&k.write), "properties": {}});
    let (code, message) = status(&gw, "/user/set_properties", &[], body).await;
    assert_eq!(code, 400, "{message}");
    let events = json!({"api": api(&k.write), "events": [
        {"collection": "pageview", "properties": {"_user": 42, "url": "/a"}},
        {"collection": "pageview", "properties": {"_user": 43, "url": "/b"}},
        {"collection": "pageview", "properties": {"_user": 43, "url": "/c"}}]});
    ok(&gw, "/event/batch", &[], events).await;
    ok(&gw, "/event/bulk/commit", &[("master_key", &k.master)], json!({})).await;
    let joined =
        rows(&gw, &k, "SELECT u.plan, count(*) FROM pageview e JOIN users u ON u.id = e._user GROUP BY 1 ORDER BY 1")
            .await;
    assert_eq!(joined, [[json!("free"), json!(2)], [json!("pro"), json!(1)]]);
}

async fn sql_reads_its_writes_and_joins_events(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    let events: Vec<(String, Value)> = (0..30)
        .map(|i| ("pageview".to_owned(), json!({"_user": format!("u{}", i % 3), "url": format!("/p{i}")})))
        .collect();
    assert!(gw.client.batch(&k.write, &events).await.expect("batch").is_stored());
    ok(&gw, "/event/bulk/commit", &[("master_key", &k.master)], json!({})).await;
    assert_eq!(rows(&gw, &k, "SELECT count(*) FROM users").await, [[json!(0)]], "no users yet");
    for (i, plan) in ["pro", "free", "pro"].iter().enumerate() {
        set(&gw, &k, json!(format!("u{i}")), json!({"plan": plan})).await;
        // Each write is in the next query's answer.
        assert_eq!(rows(&gw, &k, "SELECT count(*) FROM users").await, [[json!(i + 1)]]);
    }
    let joined =
        rows(&gw, &k, "SELECT u.plan, count(*) FROM pageview e JOIN users u ON u.id = e._user GROUP BY 1 ORDER BY 1")
            .await;
    assert_eq!(joined, [[json!("free"), json!(10)], [json!("pro"), json!(20)]]);
    set(&gw, &k, json!("u1"), json!({"plan": "pro", "score": 2.5})).await;
    let joined =
        rows(&gw, &k, "SELECT u.plan, count(*) FROM pageview e JOIN users u ON u.id = e._user GROUP BY 1").await;
    assert_eq!(joined, [[json!("pro"), json!(30)]], "a property set before a query is in its answer");
    assert_eq!(rows(&gw, &k, "SELECT sum(score) FROM users").await, [[json!(2.5)]]);
}

async fn merge_maps_anonymous_ids_usable_in_sql(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    let events = json!({"api": api(&k.write), "events": [
        {"collection": "pageview", "properties": {"_device_id": "dev-1", "url": "/before-login"}},
        {"collection": "pageview", "properties": {"_device_id": "dev-1", "_user": "ann", "url": "/after"}}]});
    ok(&gw, "/event/batch", &[], events).await;
    let merge = json!({"id": "ann", "api": api(&k.write), "anonymous_id": "dev-1",
                       "created_at": 1_700_000_000_000_i64, "merged_at": 1_700_000_005_000_i64});
    assert_eq!(ok(&gw, "/user/merge", &[], merge).await, json!(1));
    ok(&gw, "/event/bulk/commit", &[("master_key", &k.master)], json!({})).await;
    let mapping = rows(&gw, &k, r#"SELECT id, _user, merged_at FROM "$anonymous_id_mapping""#).await;
    assert_eq!(mapping, [[json!("dev-1"), json!("ann"), json!("2023-11-14T22:13:25Z")]]);
    let resolved = rows(
        &gw,
        &k,
        r#"SELECT coalesce(e._user, m._user) AS who, count(*) FROM pageview e
           LEFT JOIN "$anonymous_id_mapping" m ON m.id = e._device_id GROUP BY 1"#,
    )
    .await;
    assert_eq!(resolved, [[json!("ann"), json!(2)]]);
}

async fn no_project_reaches_another_projects_users(backend: Backend) {
    let mut opts = options();
    opts.env.push(("WEIR_PROJECTS__ALLOW_DELETION".into(), "true".into()));
    let gw = Gateway::start_with(backend, opts).await;
    let a = gw.create_project("alpha").await;
    let b = gw.create_project("beta").await;
    set(&gw, &a, json!("ann"), json!({"secret": "alpha-only"})).await;
    set(&gw, &b, json!("bob"), json!({"plan": "free"})).await;
    // Beta's keys on every user endpoint touch beta's users only.
    let (code, _) = status(&gw, "/user/get", &[("read_key", &b.read)], json!({"user": "ann"})).await;
    assert_eq!(code, 404);
    let search = ok(&gw, "/user/search", &[("read_key", &b.read)], json!({})).await;
    assert_eq!(search["properties"]["totalResult"], json!(1));
    assert!(!search.to_string().contains("alpha-only"));
    let (code, message) = status(&gw, "/user/search", &[("read_key", &b.read)], json!({"columns": ["secret"]})).await;
    assert_eq!(code, 400, "{message}");
    let metadata = gw.client.send("GET", "/user/metadata", &[("read_key", &b.read)], "").await.expect("m").json();
    assert!(!metadata.to_string().contains("secret"), "{metadata}");
    let overwrite = json!({"id": "ann", "api": api(&b.write), "properties": {"secret": "beta"}});
    ok(&gw, "/user/set_properties", &[], overwrite).await;
    let inc = json!({"id": "ann", "api": api(&b.write), "property": "n", "value": 1});
    ok(&gw, "/user/increment_property", &[], inc).await;
    let ops = json!({"api": api(&b.master), "data": [{"id": "ann", "unset_properties": ["secret"]}]});
    ok(&gw, "/user/batch_operations", &[], ops).await;
    assert_eq!(get_user(&gw, &a, json!("ann")).await["properties"]["secret"], json!("alpha-only"));
    // In SQL, `users` is the caller's; no other name reaches another's.
    assert_eq!(rows(&gw, &b, "SELECT id FROM users ORDER BY id").await, [[json!("ann")], [json!("bob")]]);
    for sql in [
        "SELECT * FROM alpha.users",
        r#"SELECT * FROM "$users""#,
        "SELECT * FROM users.alpha",
        "SELECT * FROM collection.users",
        "SELECT * FROM _users",
    ] {
        let r = gw.post("/query/execute", &[("read_key", &b.read)], &json!({"query": sql})).await;
        assert!(r.status == 403 || r.status == 400, "{sql}: {}", r.text());
        assert!(!r.text().contains("alpha-only"), "{sql}");
    }
    // A deleted project's users are gone with it.
    let r = gw.post("/project/delete", &[("master_key", &a.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let again = gw.create_project("alpha").await;
    assert_eq!(rows(&gw, &again, "SELECT count(*) FROM users").await, [[json!(0)]]);
    let (code, _) = status(&gw, "/user/get", &[("read_key", &again.read)], json!({"user": "ann"})).await;
    assert_eq!(code, 404);
}

/// Rakam's Python client (`rakam-client` 0.5, `UserApi`), run by
/// `tests/python/rakam_users.py`: what each call answered.
async fn rakam_python_client_drives_the_user_api(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    let events = json!({"api": api(&k.write), "events": [
        {"collection": "purchase", "properties": {"_user": "ann", "amount": 20, "_time": 1_700_000_000_000_i64}},
        {"collection": "purchase", "properties": {"_user": "bob", "amount": 5, "_time": 1_700_000_001_000_i64}}]});
    ok(&gw, "/event/batch", &[], events).await;
    ok(&gw, "/event/bulk/commit", &[("master_key", &k.master)], json!({})).await;
    let python = std::env::var("WEIRTEST_PYTHON")
        .unwrap_or_else(|_| panic!("WEIRTEST_PYTHON is not set: run the suite with scripts/test.sh"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("rakam_users.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([gw.base(), &k.write, &k.read, &k.master])
        .output()
        .await
        .expect("run python");
    assert!(out.status.success(), "rakam_users.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for (call, answer) in [
        ("create", json!(1)),
        ("set_properties", json!(1)),
        ("set_properties_once", json!(1)),
        ("increment", json!(true)),
        ("unset", json!(true)),
        ("create_users", json!(["cat"])),
        ("missing", json!(404)),
    ] {
        assert_eq!(got[call], answer, "{call}: {got}");
    }
    assert_eq!(got["get"]["id"], json!("ann"));
    let p = &got["get"]["properties"];
    assert_eq!((p["plan"].clone(), p["seats"].clone(), p["country"].clone()), (json!("pro"), json!(5.0), json!("DE")));
    assert_eq!(got["metadata"]["identifier_column"], json!("id"));
    assert!(got["metadata"]["columns"].as_array().is_some_and(|c| c.contains(&json!(["seats", "DOUBLE"]))));
    assert_eq!(got["search"], json!({"result": [["ann", "pro"], ["cat", "team"]], "total": 2}));
    assert_eq!(got["search_by_events"], json!([["ann"]]));
    assert_eq!(
        got["get_events"],
        json!([{"collection": "purchase",
        "properties": {"_time": "2023-11-14T22:13:20Z", "_user": "ann", "amount": 20.0}}])
    );
}

on_every_backend!(
    rakam_python_client_drives_the_user_api,
    every_endpoint_does_what_it_says,
    keys_are_checked_per_endpoint,
    bad_input_is_refused_and_writes_nothing,
    numeric_ids_are_numbers_everywhere,
    sql_reads_its_writes_and_joins_events,
    merge_maps_anonymous_ids_usable_in_sql,
    no_project_reaches_another_projects_users,
);

/// `users = "postgres://…"`: the tables live in that database, under
/// Rakam's `users."<project>"`, while the metadata stays in SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_user_database_holds_the_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users_url = Backend::Postgres.fresh_metadata_url(dir.path()).await;
    let mut opts = options();
    opts.env.push(("WEIR_USERS".into(), users_url.clone()));
    let gw = Gateway::start_with(Backend::Sqlite, opts).await;
    let k = gw.create_project("shop").await;
    set(&gw, &k, json!("ann"), json!({"plan": "pro", "seats": 2})).await;
    assert_eq!(rows(&gw, &k, "SELECT id, plan, seats FROM users").await, [[json!("ann"), json!("pro"), json!(2.0)]]);
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&users_url).await.expect("connect");
    let (plan,): (String,) =
        sqlx::query_as(r#"SELECT plan FROM users."shop" WHERE id = 'ann'"#).fetch_one(&mut conn).await.expect("row");
    assert_eq!(plan, "pro");
    let metadata = sqlx::query(r#"SELECT 1 FROM information_schema.tables WHERE table_name = 'user_columns'"#)
        .fetch_optional(&mut conn)
        .await
        .expect("tables");
    assert!(metadata.is_none(), "the metadata stays in the metadata store");
}

/// Rakam's browser library (npm `rakam-js`) in Chromium, from a page on
/// another origin: its `/event/batch` and `/user/*` calls are cross-origin
/// with credentials (events as `text/plain`), so they are answered only
/// when the gateway's CORS allows that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rakam_js_logs_events_and_sets_user_properties_from_a_browser() {
    let gw = Gateway::start_with(Backend::Sqlite, options()).await;
    let k = gw.create_project("shop").await;
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the suite with scripts/test.sh"))
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser").join("rakam_js.mjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .args([&var("WEIRTEST_NODE_MODULES"), &var("WEIRTEST_CHROMIUM"), gw.base(), &k.write, "ann"])
        .output()
        .await
        .expect("run node");
    assert!(out.status.success(), "rakam_js.mjs failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let answers = &got["answers"];
    assert_eq!(answers["event"], json!({"status": 200, "body": "1"}), "{got}");
    assert_eq!(answers["set"], json!({"status": 200, "body": "1"}), "{got}");
    assert_eq!(answers["setOnce"], json!({"status": 200, "body": "1"}), "{got}");
    assert_eq!(answers["increment"], json!({"status": 200, "body": "{\"success\":true}"}), "{got}");
    assert_eq!(answers["unset"], json!({"status": 200, "body": "{\"success\":true}"}), "{got}");
    let ann = get_user(&gw, &k, json!("ann")).await["properties"].clone();
    assert_eq!((ann["plan"].clone(), ann["seats"].clone()), (json!("pro"), json!(5.0)));
    assert!(ann.get("country").is_none(), "{ann}");
    ok(&gw, "/event/bulk/commit", &[("master_key", &k.master)], json!({})).await;
    assert_eq!(rows(&gw, &k, "SELECT _user, plan FROM signed_up").await, [[json!("ann"), json!("pro")]]);
}
