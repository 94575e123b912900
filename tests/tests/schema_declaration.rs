//! `/project/schema/add` and `/project/schema/add/custom`: fields declared
//! ahead of any event, with the master key.

use serde_json::json;
use weir_tests::{Backend, Gateway, of, on_every_backend};

async fn declared_fields_shape_the_schema_events_are_stored_with(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let master = [("master_key", k.master.as_str())];
    let add = json!({"collection": "Orders", "fields": [
        {"name": "orderId", "type": "LONG"}, {"name": "total", "type": "DECIMAL"},
        {"name": "items", "type": "ARRAY_STRING"}, {"name": "_user", "type": "STRING"}
    ]});
    let r = gw.post("/project/schema/add", &[("master_key", &k.read)], &add).await;
    assert_eq!(r.status, 403, "the master key only");
    let r = gw.post("/project/schema/add", &master, &add).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!([{"name": "_time", "type": "TIMESTAMP"}, {"name": "order_id", "type": "LONG"},
               {"name": "total", "type": "DECIMAL"}, {"name": "items", "type": "ARRAY_STRING"},
               {"name": "_user", "type": "STRING"}])
    );
    // Declaring again is harmless; another type for an existing field is not.
    assert_eq!(gw.post("/project/schema/add", &master, &add).await.status, 200);
    let clash = json!({"collection": "orders", "fields": [{"name": "total", "type": "DOUBLE"}]});
    let r = gw.post("/project/schema/add", &master, &clash).await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (409, json!(409)));
    for bad in [
        json!({"collection": "orders", "fields": [{"name": "x", "type": "TEXT"}]}),
        json!({"collection": "orders", "fields": [{"name": "_time", "type": "DATE"}]}),
        json!({"collection": "no/pe", "fields": []}),
        json!({"collection": "orders"}),
    ] {
        let r = gw.post("/project/schema/add", &master, &bad).await;
        assert_eq!((r.status, r.json()["error_code"].clone()), (400, json!(400)), "{bad}: {}", r.text());
    }

    // Events are coerced to the declared types.
    let event = json!({"collection": "orders", "api": {"api_key": k.write},
        "properties": {"orderId": "42", "total": 19.99, "items": "book", "_user": 7}});
    assert_eq!(gw.post("/event/collect", &[], &event).await.status, 200);
    let orders = of(&gw.stop_and_read().await, "orders");
    assert_eq!(orders.len(), 1);
    assert_eq!(
        (&orders[0]["order_id"], &orders[0]["total"], &orders[0]["items"], &orders[0]["_user"]),
        (&json!(42), &json!("19.99"), &json!(["book"]), &json!("7"))
    );
}

async fn an_avro_record_schema_declares_fields(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let master = [("master_key", k.master.as_str())];
    let avro = json!({"type": "record", "name": "signup", "fields": [
        {"name": "plan", "type": "string"}, {"name": "seats", "type": ["null", "int"]},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}}
    ]});
    let body = json!({"collection": "signup", "schema_type": "avro", "schema": avro.to_string()});
    let r = gw.post("/project/schema/add/custom", &master, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!([{"name": "_time", "type": "TIMESTAMP"}, {"name": "plan", "type": "STRING"},
               {"name": "seats", "type": "INTEGER"}, {"name": "day", "type": "DATE"}])
    );
    let csv = json!({"collection": "signup", "schema_type": "csv", "schema": "a,b"});
    assert_eq!(gw.post("/project/schema/add/custom", &master, &csv).await.status, 400);
    let broken = json!({"collection": "signup", "schema_type": "avro", "schema": "{"});
    assert_eq!(gw.post("/project/schema/add/custom", &master, &broken).await.status, 400);
}

on_every_backend!(declared_fields_shape_the_schema_events_are_stored_with, an_avro_record_schema_declares_fields);
