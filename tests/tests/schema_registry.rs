//! The read-only Schema Registry API against the real gateway: Confluent's
//! paths and shapes, who may read what, and ids that match the records.

use base64::Engine as _;
use serde_json::{Value, json};
use weir_tests::{Backend, Gateway, Keys, Options, on_every_backend};

async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let r = gw.send("GET", path, headers, "").await;
    (r.status, r.json())
}

async fn send(gw: &Gateway, k: &Keys, collection: &str, properties: Value) {
    let body = json!({"collection": collection, "api": {"api_key": k.write}, "properties": properties});
    assert_eq!(gw.post("/event/collect", &[], &body).await.status, 200);
}

async fn subjects_versions_and_ids(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let shop = gw.create_project("shop").await;
    let blog = gw.create_project("blog").await;
    send(&gw, &shop, "pageview", json!({"a": "x"})).await;
    send(&gw, &shop, "pageview", json!({"a": "y", "b": 2})).await;
    send(&gw, &blog, "signup", json!({"plan": "pro"})).await;

    // Subjects are `<topic>-value`, with the topic as Kafka consumers see it.
    let subject = |topic: &str| format!("{}-value", gw.broker_topic(topic));
    let (pageview, signup) = (subject("shop.pageview"), subject("blog.signup"));
    assert_eq!(get(&gw, "/subjects", &[]).await, (200, json!([signup, pageview])));
    assert_eq!(get(&gw, &format!("/subjects/{pageview}/versions"), &[]).await, (200, json!([1, 2])));
    let (status, latest) = get(&gw, &format!("/subjects/{pageview}/versions/latest"), &[]).await;
    assert_eq!((status, &latest["subject"], &latest["version"]), (200, &json!(pageview), &json!(2)));
    let (_, first) = get(&gw, &format!("/subjects/{pageview}/versions/1"), &[]).await;
    assert_ne!(first["id"], latest["id"], "each version has its own id");
    let schema: Value = serde_json::from_str(latest["schema"].as_str().expect("schema text")).expect("schema JSON");
    let fields: Vec<&str> =
        schema["fields"].as_array().expect("fields").iter().filter_map(|f| f["name"].as_str()).collect();
    assert!(fields.contains(&"a") && fields.contains(&"b") && fields.contains(&"_time"), "{fields:?}");

    let id = latest["id"].as_i64().expect("id");
    let (status, by_id) = get(&gw, &format!("/schemas/ids/{id}"), &[]).await;
    assert_eq!((status, &by_id["schema"]), (200, &latest["schema"]));
    assert_eq!(get(&gw, &format!("/schemas/ids/{id}/schema"), &[]).await, (200, schema));

    // Confluent's error codes.
    let nothing = subject("shop.nothing");
    assert_eq!(get(&gw, &format!("/subjects/{nothing}/versions"), &[]).await.1["error_code"], 40401);
    assert_eq!(get(&gw, &format!("/subjects/{pageview}/versions/9"), &[]).await.1["error_code"], 40402);
    assert_eq!(get(&gw, "/schemas/ids/987654", &[]).await.1["error_code"], 40403);
    let (status, bad) = get(&gw, &format!("/subjects/{pageview}/versions/x"), &[]).await;
    assert_eq!((status, &bad["error_code"]), (422, &json!(42202)));

    // A read key opens its own project only, as a header or as Basic auth.
    let blog_only = (200, json!([signup]));
    assert_eq!(get(&gw, "/subjects", &[("read_key", &blog.read)]).await, blog_only);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("blog:{}", blog.read)));
    assert_eq!(get(&gw, "/subjects", &[("authorization", &basic)]).await, blog_only);
    assert_eq!(get(&gw, &format!("/subjects/{pageview}/versions"), &[("read_key", &blog.read)]).await.0, 404);
    assert_eq!(get(&gw, &format!("/schemas/ids/{id}"), &[("read_key", &blog.read)]).await.0, 404);
    let (status, wrong) = get(&gw, "/subjects", &[("read_key", &blog.write)]).await;
    assert_eq!((status, &wrong["error_code"]), (403, &json!(403)), "{wrong}");

    // Every record names a schema id the registry answers, under its subject.
    let events = gw.stop_and_read().await;
    assert_eq!(events.len(), 3);

    // Off loopback's open door, a key is needed.
    gw.restart_with(Options {
        env: vec![("WEIR_SCHEMA_REGISTRY__OPEN_ON_LOOPBACK".into(), "false".into())],
        ..Options::default()
    })
    .await;
    let (status, missing) = get(&gw, "/subjects", &[]).await;
    assert_eq!((status, &missing["error_code"]), (401, &json!(401)), "{missing}");
    assert!(missing["error"].as_str().unwrap_or_default().contains("read_key is missing"), "{missing}");
    assert_eq!(get(&gw, "/subjects", &[("read_key", &shop.read)]).await, (200, json!([pageview])));

    let topic_subject = |topic: &str| format!("{}-value", gw.broker_topic(topic));
    for e in &events {
        let key = if e.topic.starts_with("shop.") { &shop.read } else { &blog.read };
        let (status, body) = get(&gw, &format!("/schemas/ids/{}", e.schema_id), &[("read_key", key)]).await;
        assert_eq!(status, 200, "{body}");
        let (_, versions) =
            get(&gw, &format!("/subjects/{}/versions", topic_subject(&e.topic)), &[("read_key", key)]).await;
        let mut found = false;
        for v in versions.as_array().expect("versions") {
            let (_, version) =
                get(&gw, &format!("/subjects/{}/versions/{v}", topic_subject(&e.topic)), &[("read_key", key)]).await;
            found |= version["id"] == e.schema_id;
        }
        assert!(found, "schema {} is a version of {}", e.schema_id, e.topic);
    }
    gw.stop().await;
}

on_every_backend!(subjects_versions_and_ids);
