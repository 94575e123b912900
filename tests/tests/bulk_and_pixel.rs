//! `/event/bulk` (JSON, NDJSON, CSV) and `/event/pixel` over HTTP.

use serde_json::{Value, json};
use weir_tests::{Backend, Gateway, of, on_every_backend};

async fn bulk_json_needs_a_master_key(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let body = |key: &str| {
        json!({"api": {"api_key": key}, "events": [
        {"collection": "imported", "properties": {"n": 1}}, {"collection": "imported", "properties": {"n": 2}}]})
    };
    let r = gw.post("/event/bulk", &[], &body(&k.write)).await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (403, json!(403)), "bulk is for master keys");
    let r = gw.post("/event/bulk", &[], &body(&k.master)).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    let bad = json!({"api": {"api_key": k.master}, "events": [
        {"collection": "imported", "properties": {"n": 3}}, {"collection": "", "properties": {}}]});
    let r = gw.post("/event/bulk", &[], &bad).await;
    assert_eq!(r.status, 400, "one bad event refuses the whole bulk load: {}", r.text());
    let stored: Vec<Value> = of(&gw.stop_and_read().await, "imported").into_iter().map(|e| e["n"].clone()).collect();
    assert_eq!(stored, [json!(1.0), json!(2.0)]);
}

async fn bulk_ndjson_takes_the_collection_per_line_or_from_the_query(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let ndjson = "{\"collection\":\"a\",\"properties\":{\"x\":1}}\n\n{\"properties\":{\"x\":2}}\n";
    let headers = [("content-type", "application/x-ndjson"), ("master_key", k.master.as_str())];
    let r = gw.send("POST", "/event/bulk?collection=b", &headers, ndjson).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    let r = gw.send("POST", "/event/bulk", &headers, "{\"properties\":{\"x\":3}}\n").await;
    assert_eq!(r.status, 400, "a line without a collection and no ?collection=");
    assert!(r.json()["error"].as_str().is_some_and(|e| e.contains("line 1")));
    let r = gw.send("POST", "/event/bulk?collection=b", &headers, "{\"properties\":{\"x\":4}}\n{broken\n").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().is_some_and(|e| e.contains("line 2")));
    let headers = [("content-type", "application/x-ndjson"), ("master_key", k.write.as_str())];
    assert_eq!(gw.send("POST", "/event/bulk?collection=b", &headers, ndjson).await.status, 403);
    let events = gw.stop_and_read().await;
    assert_eq!(of(&events, "a").len(), 1);
    assert_eq!(of(&events, "b").len(), 1, "refused bodies stored nothing");
}

async fn bulk_csv_types_its_cells(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let path = |q: &str| format!("/event/bulk?collection=Sales&master_key={}{q}", k.master);
    let csv = "sku,qty,price,paid,day\nA-1,2,9.5,true,2024-01-02\nB-2,1,,false,2024-01-03\n";
    let r = gw.send("POST", &path(""), &[("content-type", "text/csv")], csv).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    let schema = gw.post("/project/schema", &[("read_key", &k.read)], &json!({"names": ["sales"]})).await.json();
    let types: Vec<(String, String)> = schema[0]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| (f["name"].as_str().expect("n").to_owned(), f["type"].as_str().expect("t").to_owned()))
        .collect();
    let expected = [
        ("_time", "TIMESTAMP"),
        ("sku", "STRING"),
        ("qty", "DOUBLE"),
        ("price", "DOUBLE"),
        ("paid", "BOOLEAN"),
        ("day", "DATE"),
    ];
    assert_eq!(types, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));

    let r = gw.send("POST", &path("&column_separator=;"), &[("content-type", "text/csv")], "sku;qty\nC-3;7\n").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Without a header the columns are the collection's fields in order.
    let r = gw
        .send(
            "POST",
            &path("&use_header=false"),
            &[("content-type", "text/csv")],
            "2024-05-01T00:00:00Z,D-4,3,1.25,false,2024-05-01\n",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw.send("POST", &path(""), &[("content-type", "text/csv")], "sku,qty\nE-5,1\nF-6\n").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().is_some_and(|e| e.contains("row 2")), "{}", r.text());
    let r = gw
        .send("POST", "/event/bulk?collection=sales", &[("content-type", "text/csv"), ("master_key", &k.read)], csv)
        .await;
    assert_eq!(r.status, 403);

    let sales = of(&gw.stop_and_read().await, "sales");
    let skus: Vec<&str> = sales.iter().map(|s| s["sku"].as_str().unwrap_or("?")).collect();
    assert_eq!(skus, ["A-1", "B-2", "C-3", "D-4"], "the refused CSV stored nothing");
    assert_eq!(
        (&sales[0]["qty"], &sales[0]["paid"], &sales[0]["day"]),
        (&json!(2.0), &json!(true), &json!("2024-01-02"))
    );
    assert_eq!(sales[1]["price"], Value::Null);
    assert_eq!((&sales[3]["_time"], &sales[3]["price"]), (&json!("2024-05-01T00:00:00.000000Z"), &json!(1.25)));
}

async fn the_pixel_answers_a_gif_and_stores_its_properties(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let path = format!("/event/pixel?collection=Open&api.api_key={}&prop.campaign=spring&prop.count=3", k.write);
    let r = gw.send("GET", &path, &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"GIF89a"), "a GIF image");
    assert_eq!(gw.send("POST", &path, &[], "").await.status, 200);
    let r = gw.send("GET", "/event/pixel?collection=open&api.api_key=nope", &[], "").await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (403, json!(403)));
    let r = gw.send("GET", &format!("/event/pixel?api.api_key={}", k.write), &[], "").await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (400, json!(400)));
    let opens = of(&gw.stop_and_read().await, "open");
    assert_eq!(opens.len(), 2);
    assert_eq!((&opens[0]["campaign"], &opens[0]["count"]), (&json!("spring"), &json!(3.0)));
}

on_every_backend!(
    bulk_json_needs_a_master_key,
    bulk_ndjson_takes_the_collection_per_line_or_from_the_query,
    bulk_csv_types_its_cells,
    the_pixel_answers_a_gif_and_stores_its_properties,
);
