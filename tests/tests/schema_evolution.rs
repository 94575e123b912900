//! Schemas evolve only by appending nullable fields, across restarts, and
//! two gateways on one metadata store end with one schema.

use serde_json::{Value, json};
use weir_tests::{Backend, Gateway, Options, of, on_every_backend};

async fn schemas_evolve_across_restarts_and_old_records_read_with_nulls(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let send = |p: Value| json!({"collection": "e", "api": {"api_key": k.write}, "properties": p});
    assert_eq!(gw.post("/event/collect", &[], &send(json!({"a": 1}))).await.status, 200);
    gw.stop().await;
    gw.restart().await;
    assert_eq!(gw.post("/event/collect", &[], &send(json!({"a": 2, "b": "x"}))).await.status, 200);
    gw.kill9().await;
    gw.restart().await;
    assert_eq!(gw.post("/event/collect", &[], &send(json!({"c": true, "a": "3"}))).await.status, 200);
    let fields = gw.post("/project/schema", &[("read_key", &k.read)], &json!({})).await.json()[0]["fields"].clone();
    assert_eq!(
        fields,
        json!([{"name": "_time", "type": "TIMESTAMP"}, {"name": "a", "type": "DOUBLE"},
               {"name": "b", "type": "STRING"}, {"name": "c", "type": "BOOLEAN"}])
    );
    let events = gw.stop_and_read().await;
    let ids: Vec<u32> = events.iter().map(|e| e.schema_id).collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "each record carries the version it was written with: {ids:?}");
    let e = of(&events, "e");
    assert_eq!((&e[0]["a"], &e[0]["b"], &e[0]["c"]), (&json!(1.0), &Value::Null, &Value::Null));
    assert_eq!((&e[1]["a"], &e[1]["b"], &e[1]["c"]), (&json!(2.0), &json!("x"), &Value::Null));
    assert_eq!((&e[2]["a"], &e[2]["b"], &e[2]["c"]), (&json!(3.0), &Value::Null, &json!(true)));
}

async fn two_gateways_adding_fields_at_once_end_with_one_schema(backend: Backend) {
    let first = Gateway::start(backend).await;
    let second = first.sibling(Options::default()).await;
    let k = first.create_project("shop").await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = if i % 2 == 0 { first.client.clone() } else { second.client.clone() };
        let key = k.write.clone();
        tasks.push(tokio::spawn(async move {
            let p = json!({"shared": "s", format!("own_{i}"): i, "also_shared": 1});
            client.collect(&key, "race", &p).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("every request succeeds");
    }
    let from_first = first.post("/project/schema", &[("read_key", &k.read)], &json!({})).await.json();
    let from_second = second.post("/project/schema", &[("read_key", &k.read)], &json!({})).await.json();
    assert_eq!(from_first, from_second);
    let names: Vec<&str> =
        from_first[0]["fields"].as_array().expect("fields").iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(names.len(), 1 + 2 + 16, "{names:?}");
    for name in ["_time", "shared", "also_shared"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name} once in {names:?}");
    }
}

on_every_backend!(schemas_evolve_across_restarts_and_old_records_read_with_nulls);

/// Several gateways on one metadata store share a log (a second one on a
/// log of its own is refused: tests/cluster.rs). The metadata store's own
/// race is tested on every database in tests/metadata_store.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_a_shared_log_adding_fields_at_once_end_with_one_schema() {
    two_gateways_adding_fields_at_once_end_with_one_schema(Backend::Kafka).await
}
