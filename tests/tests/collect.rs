//! The collection API over HTTP against the real gateway: what is stored in
//! the log for each rule of the API reference, and every bad input's answer.

use serde_json::{Value, json};
use weir_tests::{Backend, Gateway, Keys, of, on_every_backend};

fn event(key: &str, collection: &str, properties: Value) -> Value {
    json!({"collection": collection, "api": {"api_key": key}, "properties": properties})
}

async fn schema_of(gw: &Gateway, k: &Keys, collection: &str) -> Value {
    let r = gw.post("/project/schema", &[("read_key", &k.read)], &json!({"names": [collection]})).await;
    let fields = r.json()[0]["fields"].clone();
    let mut types = serde_json::Map::new();
    for f in fields.as_array().cloned().unwrap_or_default() {
        types.insert(f["name"].as_str().unwrap_or_default().to_owned(), f["type"].clone());
    }
    Value::Object(types)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn millis_of(ts: &Value) -> i64 {
    let text = ts.as_str().unwrap_or_else(|| panic!("{ts} is not a timestamp"));
    chrono_free_parse(text)
}

/// Parses `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the form the log decoder prints.
fn chrono_free_parse(text: &str) -> i64 {
    let n = |a: usize, b: usize| text[a..b].parse::<i64>().expect("digits");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (hh, mm, ss, micros) = (n(11, 13), n(14, 16), n(17, 19), n(20, 26));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + micros / 1000
}

async fn collect_stores_the_event_with_normalized_names(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let r =
        gw.post("/event/collect", &[], &event(&k.write, "PageView", json!({"userId": "u1", "PageURL": "/home"}))).await;
    assert_eq!((r.status, r.text().as_str()), (200, "1"));
    let events = gw.stop_and_read().await;
    let stored = of(&events, "pageview");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["user_id"], "u1");
    assert_eq!(stored[0]["page_url"], "/home");
    assert_eq!(events[0].topic, "shop.pageview");
}

async fn each_json_kind_infers_its_type(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let properties = json!({
        "n": 42, "f": 1.5, "b": true, "d": "2024-01-02", "ts": "2024-01-02T03:04:05Z", "ts2": "2024-1-2 3:4",
        "s": "hello", "as": ["a", "b"], "an": [1, 2], "aa": [[1], [2]], "mn": {"x": 1}, "mo": {"x": {"y": 1}},
        "nothing": null, "empty_a": [], "empty_o": {}, "md": {"x": "2024-01-02"}
    });
    assert_eq!(gw.post("/event/collect", &[], &event(&k.write, "kinds", properties)).await.status, 200);
    assert_eq!(
        schema_of(&gw, &k, "kinds").await,
        json!({
            "_time": "TIMESTAMP", "n": "DOUBLE", "f": "DOUBLE", "b": "BOOLEAN", "d": "DATE", "ts": "TIMESTAMP",
            "ts2": "TIMESTAMP", "s": "STRING", "as": "ARRAY_STRING", "an": "ARRAY_DOUBLE", "aa": "ARRAY_STRING",
            "mn": "MAP_DOUBLE", "mo": "MAP_STRING", "md": "MAP_DATE"
        })
    );
    // null, [] and {} add no field; a later non-empty value does.
    let later = json!({"nothing": "now", "empty_a": [true], "empty_o": {"k": "v"}});
    assert_eq!(gw.post("/event/collect", &[], &event(&k.write, "kinds", later)).await.status, 200);
    let types = schema_of(&gw, &k, "kinds").await;
    assert_eq!(
        (&types["nothing"], &types["empty_a"], &types["empty_o"]),
        (&json!("STRING"), &json!("ARRAY_BOOLEAN"), &json!("MAP_STRING"))
    );
}

async fn values_are_coerced_or_reported_in_invalid_schema(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let send = |p: Value| event(&k.write, "buy", p);
    assert_eq!(
        gw.post("/event/collect", &[], &send(json!({"price": 10, "tags": ["a"], "name": "x"}))).await.status,
        200
    );
    let coerced = json!({"price": "42", "tags": "solo", "name": 7});
    assert_eq!(gw.post("/event/collect", &[], &send(coerced)).await.status, 200);
    let lossy = json!({"price": "abc", "tags": {"not": "an array"}, "name": "ok"});
    let r = gw
        .post(
            "/event/collect",
            &[],
            &json!({"collection": "buy", "api": {"api_key": k.write, "uuid": "req-1"}, "properties": lossy}),
        )
        .await;
    assert_eq!(r.status, 200, "a value that cannot be coerced is not an error for the event");
    let events = gw.stop_and_read().await;
    let buys = of(&events, "buy");
    assert_eq!(buys.len(), 3);
    assert_eq!((&buys[1]["price"], &buys[1]["tags"], &buys[1]["name"]), (&json!(42.0), &json!(["solo"]), &json!("7")));
    assert_eq!((&buys[2]["price"], &buys[2]["tags"], &buys[2]["name"]), (&Value::Null, &Value::Null, &json!("ok")));
    let mut invalid = of(&events, "$invalid_schema");
    invalid.sort_by_key(|r| r["property"].as_str().map(str::to_owned));
    assert_eq!(invalid.len(), 2);
    assert_eq!(invalid[0]["collection"], "buy");
    assert_eq!(invalid[0]["property"], "price");
    assert_eq!(invalid[0]["expected_type"], "DOUBLE");
    assert_eq!(invalid[0]["encoded_value"], "\"abc\"");
    assert_eq!(invalid[0]["event_id"], "req-1");
    assert!(invalid[0]["error"].as_str().is_some_and(|e| e.contains("DOUBLE")));
    assert_eq!((&invalid[1]["property"], &invalid[1]["expected_type"]), (&json!("tags"), &json!("ARRAY_STRING")));
}

async fn time_comes_from_the_event_or_the_server_and_skew_is_corrected(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let before = now_ms();
    assert_eq!(gw.post("/event/collect", &[], &event(&k.write, "t", json!({"case": "server"}))).await.status, 200);
    let own = json!({"case": "own", "_time": "2024-01-02T03:04:05Z"});
    assert_eq!(gw.post("/event/collect", &[], &event(&k.write, "t", own)).await.status, 200);
    // The client's clock is an hour behind: its _time moves an hour ahead.
    let client_now = now_ms() - 3_600_000;
    let skewed = json!({"collection": "t", "api": {"api_key": k.write, "upload_time": client_now},
        "properties": {"case": "skewed", "_time": client_now - 60_000}});
    assert_eq!(gw.post("/event/collect", &[], &skewed).await.status, 200);
    let after = now_ms();
    let events = of(&gw.stop_and_read().await, "t");
    let time_of = |case: &str| millis_of(&events.iter().find(|e| e["case"] == case).expect(case)["_time"]);
    let server = time_of("server");
    assert!(server >= before && server <= after, "{before} <= {server} <= {after}");
    assert_eq!(time_of("own"), 1_704_164_645_000);
    let shifted = time_of("skewed");
    let expected = client_now - 60_000 + 3_600_000;
    assert!((shifted - expected).abs() < 5_000, "{shifted} is not about {expected}");
}

async fn the_user_type_is_chosen_once_per_project(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    assert_eq!(gw.post("/event/collect", &[], &event(&k.write, "a", json!({"_user": 5}))).await.status, 200);
    assert_eq!(gw.post("/event/collect", &[], &event(&k.write, "b", json!({"_user": "7"}))).await.status, 200);
    assert_eq!(gw.post("/event/collect", &[], &event(&k.write, "b", json!({"_user": "anna"}))).await.status, 200);
    assert_eq!(schema_of(&gw, &k, "b").await["_user"], "LONG", "the type of the first _user in the project");
    let other = gw.create_project("other").await;
    assert_eq!(gw.post("/event/collect", &[], &event(&other.write, "a", json!({"_user": "anna"}))).await.status, 200);
    assert_eq!(schema_of(&gw, &other, "a").await["_user"], "STRING", "each project chooses its own");
    let events = gw.stop_and_read().await;
    let b: Vec<Value> = events.iter().filter(|e| e.topic == "shop.b").map(|e| e.fields["_user"].clone()).collect();
    assert_eq!(b, [json!(7), Value::Null]);
}

async fn batches_store_all_or_name_the_failures(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let outcome = gw.client.batch(&k.write, &[("a".into(), json!({"i": 0})), ("b".into(), json!({"i": 1}))]).await;
    assert_eq!(outcome.expect("batch"), weir_tests::BatchOutcome::Stored);
    let mixed = json!({"api": {"api_key": k.write}, "events": [
        {"collection": "a", "properties": {"i": 2}},
        {"collection": "", "properties": {}},
        {"collection": "a", "properties": [1]},
        {"collection": "a", "properties": {"i": 3}, "extra": true},
        {"collection": "a/b", "properties": {}},
        {"collection": "c", "properties": {"i": 4}}
    ]});
    let r = gw.post("/event/batch", &[], &mixed).await;
    assert_eq!((r.status, r.json()), (409, json!([1, 2, 3, 4])));

    // The checksum: right, and wrong.
    let events = r#"[{"collection":"a","properties":{"i":5}}]"#;
    let sum = weir_sdk::checksum(&k.write, "2", "", events);
    let body =
        format!(r#"{{"api":{{"api_key":"{}","api_version":"2","checksum":"{sum}"}},"events":{events}}}"#, k.write);
    assert_eq!(gw.send("POST", "/event/batch", &[], body).await.text(), "1");
    let body = format!(r#"{{"api":{{"api_key":"{}","checksum":"{sum}"}},"events":{events}}}"#, k.write);
    let r = gw.send("POST", "/event/batch", &[], body).await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (400, json!(400)));

    let events = gw.stop_and_read().await;
    let mut seen: Vec<i64> =
        events.iter().filter_map(|e| e.fields.get("i").and_then(Value::as_f64)).map(|f| f as i64).collect();
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 4, 5], "the good events of the mixed batch are stored, the refused ones not");
}

async fn bad_inputs_get_json_errors_and_store_nothing(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let w = k.write.as_str();
    let long_name = "a".repeat(101);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/event/collect", b"{not json".to_vec(), 400, "invalid JSON"),
        (
            "/event/collect",
            event(w, "c", json!({})).to_string().replace("\"properties\"", "\"extra\":1,\"properties\"").into_bytes(),
            400,
            "unknown field",
        ),
        (
            "/event/collect",
            event(w, "c", json!([1, 2])).to_string().into_bytes(),
            400,
            "properties must be a JSON object",
        ),
        (
            "/event/collect",
            event(w, "c", json!("text")).to_string().into_bytes(),
            400,
            "properties must be a JSON object",
        ),
        ("/event/collect", event(w, "", json!({})).to_string().into_bytes(), 400, "collection name is empty"),
        ("/event/collect", event(w, &long_name, json!({})).to_string().into_bytes(), 400, "longer than 100"),
        ("/event/collect", event(w, "../etc", json!({})).to_string().into_bytes(), 400, "may only contain"),
        ("/event/collect", event(w, "a b", json!({})).to_string().into_bytes(), 400, "may only contain"),
        ("/event/collect", event(w, "$invalid_schema", json!({})).to_string().into_bytes(), 400, "reserved"),
        ("/event/collect", event(w, "c", json!({"--": 1})).to_string().into_bytes(), 400, "property name"),
        (
            "/event/collect",
            [
                b"{\"collection\":\"c\",\"api\":{\"api_key\":\"".as_slice(),
                w.as_bytes(),
                b"\"},\"properties\":{\"a\":\"\xff\"}}",
            ]
            .concat(),
            400,
            "UTF-8",
        ),
        (
            "/event/collect",
            event(w, "c", json!({"big": "x".repeat(1_100_000)})).to_string().into_bytes(),
            413,
            "larger than",
        ),
        (
            "/event/collect",
            json!({"collection": "c", "api": {"api_key": w, "upload_time": "soon"}}).to_string().into_bytes(),
            400,
            "upload_time",
        ),
        (
            "/event/batch",
            json!({"api": {"api_key": w}, "events": {"collection": "c"}}).to_string().into_bytes(),
            400,
            "JSON array",
        ),
        (
            "/event/batch",
            json!({"api": {"api_key": w}, "events": [], "more": 1}).to_string().into_bytes(),
            400,
            "unknown field",
        ),
        ("/event/batch", json!({"api": {"api_key": w}}).to_string().into_bytes(), 400, "missing field"),
        (
            "/event/batch",
            json!({"api": {"api_key": w}, "events": [{"collection": "c", "properties": {"pad": "y".repeat(500_000)}}]})
                .to_string()
                .into_bytes(),
            413,
            "/event/bulk",
        ),
    ];
    for (path, body, status, message) in cases {
        let r = gw.send("POST", path, &[("content-type", "application/json")], body).await;
        let json = r.json();
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(json["error_code"], status, "{path}: {}", r.text());
        let text = json["error"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{path}: {text:?} should mention {message:?}");
    }
    let r = gw.send("GET", "/event/collect", &[], "").await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (405, json!(405)));
    let r = gw.send("POST", "/no/such/endpoint", &[], "").await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (404, json!(404)));
    let events = gw.stop_and_read().await;
    assert!(events.is_empty(), "nothing refused was stored: {events:?}");
}

on_every_backend!(
    collect_stores_the_event_with_normalized_names,
    each_json_kind_infers_its_type,
    values_are_coerced_or_reported_in_invalid_schema,
    time_comes_from_the_event_or_the_server_and_skew_is_corrected,
    the_user_type_is_chosen_once_per_project,
    batches_store_all_or_name_the_failures,
    bad_inputs_get_json_errors_and_store_nothing,
);
