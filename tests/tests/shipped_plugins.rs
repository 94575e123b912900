//! The plugins Weir ships, built to components, uploaded to the real
//! gateway and run on real events and queries.

use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use weir_tests::{Backend, Gateway, Keys, of, on_every_backend, plugin_component};

fn batch(k: &Keys, events: Vec<Value>) -> Value {
    json!({"api": {"api_key": k.write}, "events": events})
}

fn ev(collection: &str, properties: Value) -> Value {
    json!({"collection": collection, "properties": properties})
}

async fn install(gw: &Gateway, k: &Keys, name: &str, hook: &str, config: Value) {
    install_with_deadline(gw, k, name, hook, config, 1000).await;
}

async fn install_with_deadline(gw: &Gateway, k: &Keys, name: &str, hook: &str, config: Value, timeout_ms: u64) {
    let params = format!("hook={hook}&timeout_ms={timeout_ms}");
    let r = gw.upload_plugin(&k.master, name, &params, plugin_component(name)).await;
    assert_eq!(r.status, 200, "upload {name}: {}", r.text());
    let r = gw.post("/plugin/config", &[("master_key", &k.master)], &json!({"name": name, "config": config})).await;
    assert_eq!(r.status, 200, "config {name}: {}", r.text());
}

fn pick(e: &Map<String, Value>, fields: &[&str]) -> Value {
    Value::Object(fields.iter().map(|f| ((*f).to_owned(), e.get(*f).cloned().unwrap_or(Value::Null))).collect())
}

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.129 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

async fn user_agent(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    install(&gw, &k, "user-agent", "enrich", Value::Null).await;
    let body = batch(
        &k,
        vec![ev("visit", json!({"n": 1, "_user_agent": true})), ev("visit", json!({"n": 2, "_user_agent": IPHONE}))],
    );
    let r = gw
        .send("POST", "/event/batch", &[("content-type", "application/json"), ("user-agent", CHROME)], body.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let crawler =
        json!({"collection": "visit", "api": {"api_key": k.write}, "properties": {"n": 3, "_user_agent": GOOGLEBOT}});
    let r = gw.post("/event/collect", &[], &crawler).await;
    assert_eq!(r.status, 403, "a known crawler is refused as Rakam does: {}", r.text());
    assert!(r.text().contains("Googlebot is a known crawler"), "{}", r.text());

    let stored = gw.stop_and_read().await;
    let fields = ["_user_agent_family", "_user_agent_version", "_os", "_os_version", "_device_family"];
    let got: Vec<Value> = of(&stored, "visit").iter().map(|e| pick(e, &fields)).collect();
    assert_eq!(
        got,
        vec![
            json!({"_user_agent_family": "Chrome", "_user_agent_version": "120", "_os": "Windows", "_os_version": "10", "_device_family": "Other"}),
            json!({"_user_agent_family": "Mobile Safari", "_user_agent_version": "17", "_os": "iOS", "_os_version": "17.1", "_device_family": "iPhone"}),
        ]
    );
}

async fn referrer(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    install(&gw, &k, "referrer", "enrich", Value::Null).await;
    let body = batch(
        &k,
        vec![
            ev(
                "visit",
                json!({"n": 1, "_referrer": "https://www.google.de/search?q=weir+gateway&hl=de", "_host": "shop.example"}),
            ),
            ev("visit", json!({"n": 2, "_referrer": "https://shop.example/cart?x=1", "_host": "shop.example"})),
            ev("visit", json!({"n": 3, "_referrer": true})),
            ev("visit", json!({"n": 4})),
        ],
    );
    let headers = [("content-type", "application/json"), ("referer", "https://t.co/xyz")];
    assert_eq!(gw.send("POST", "/event/batch", &headers, body.to_string()).await.status, 200);
    let stored = gw.stop_and_read().await;
    let fields = ["_referrer_medium", "_referrer_source", "_referrer_term", "_referrer_domain", "_referrer_path"];
    let got: Vec<Value> = of(&stored, "visit").iter().map(|e| pick(e, &fields)).collect();
    assert_eq!(
        got,
        vec![
            json!({"_referrer_medium": "search", "_referrer_source": "Google", "_referrer_term": "weir gateway", "_referrer_domain": "www.google.de", "_referrer_path": "/search"}),
            json!({"_referrer_medium": "internal", "_referrer_source": null, "_referrer_term": null, "_referrer_domain": "shop.example", "_referrer_path": "/cart"}),
            json!({"_referrer_medium": "social", "_referrer_source": "Twitter", "_referrer_term": null, "_referrer_domain": "t.co", "_referrer_path": "/xyz"}),
            json!({"_referrer_medium": null, "_referrer_source": null, "_referrer_term": null, "_referrer_domain": null, "_referrer_path": null}),
        ]
    );
}

fn test_city_database() -> Vec<u8> {
    weir_tests::mmdb::city_database(&[
        (
            Ipv4Addr::new(81, 2, 69, 0),
            24,
            json!({
                "city": {"names": {"en": "London", "de": "London"}},
                "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
                "location": {"latitude": 51.5142, "longitude": -0.0931, "time_zone": "Europe/London", "accuracy_radius": 10},
                "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}]
            }),
        ),
        (
            Ipv4Addr::new(203, 0, 113, 0),
            25,
            json!({"country": {"iso_code": "JP"}, "location": {"latitude": 35.69, "longitude": 139.69, "time_zone": "Asia/Tokyo"}}),
        ),
    ])
}

async fn geoip(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let assets = gw.data_dir.join("plugin-assets");
    std::fs::create_dir_all(&assets).expect("asset folder");
    std::fs::write(assets.join("test-city.mmdb"), test_city_database()).expect("write database");
    let real = std::env::var("WEIRTEST_GEOLITE2")
        .expect("WEIRTEST_GEOLITE2 names GeoLite2-City.mmdb from PyPI's maxminddb-geolite2 (scripts/test.sh sets it)");
    std::fs::copy(real, assets.join("GeoLite2-City.mmdb")).expect("copy GeoLite2");
    // The gateway reads a database into memory at its first use, inside
    // that call's deadline (the 2018 GeoLite2 City file is 60 MB): past 1 s
    // on a loaded machine.
    install_with_deadline(&gw, &k, "geoip", "enrich", json!({"database": "test-city.mmdb"}), 10_000).await;
    let body = batch(
        &k,
        vec![
            ev("visit", json!({"n": 1, "_ip": "81.2.69.77"})),
            ev("visit", json!({"n": 2, "_ip": "203.0.113.5"})),
            ev("visit", json!({"n": 3, "_ip": "203.0.113.200"})),
            ev("visit", json!({"n": 4, "_ip": true})),
        ],
    );
    assert_eq!(gw.post("/event/batch", &[], &body).await.status, 200);

    // The 2018 GeoLite2 City database, IPv4 and IPv6.
    let r = gw
        .post(
            "/plugin/config",
            &[("master_key", &k.master)],
            &json!({"name": "geoip", "config": {"database": "GeoLite2-City.mmdb"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let body = batch(
        &k,
        vec![
            ev("visit", json!({"n": 5, "_ip": "81.2.69.160"})),
            ev("visit", json!({"n": 6, "_ip": "2001:4860:4860::8888"})),
        ],
    );
    assert_eq!(gw.post("/event/batch", &[], &body).await.status, 200);

    // A database outside the asset folder is refused; the upload's policy
    // (on_error=reject by default) refuses the events.
    let r = gw
        .post(
            "/plugin/config",
            &[("master_key", &k.master)],
            &json!({"name": "geoip", "config": {"database": "../metadata.db"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = gw.post("/event/batch", &[], &batch(&k, vec![ev("visit", json!({"n": 7, "_ip": "81.2.69.77"}))])).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("plugin geoip failed"), "{}", r.text());
    let t = gw
        .post(
            "/plugin/test",
            &[("master_key", &k.master)],
            &json!({"name": "geoip", "events": [ev("visit", json!({"_ip": "81.2.69.77"}))]}),
        )
        .await
        .json();
    assert!(
        t["log"].to_string().contains("leads outside the asset folder") || t["log"].to_string().contains("without .."),
        "{t}"
    );

    let stored = gw.stop_and_read().await;
    let fields = ["_country_code", "_region", "_city", "_latitude", "_longitude", "_timezone"];
    let got: Vec<Value> = of(&stored, "visit").iter().map(|e| pick(e, &fields)).collect();
    assert_eq!(
        got,
        vec![
            json!({"_country_code": "GB", "_region": "England", "_city": "London", "_latitude": 51.5142, "_longitude": -0.0931, "_timezone": "Europe/London"}),
            json!({"_country_code": "JP", "_region": null, "_city": null, "_latitude": 35.69, "_longitude": 139.69, "_timezone": "Asia/Tokyo"}),
            json!({"_country_code": null, "_region": null, "_city": null, "_latitude": null, "_longitude": null, "_timezone": null}),
            json!({"_country_code": null, "_region": null, "_city": null, "_latitude": null, "_longitude": null, "_timezone": null}),
            json!({"_country_code": "GB", "_region": "England", "_city": "Willesden", "_latitude": 51.5333, "_longitude": -0.2333, "_timezone": "Europe/London"}),
            json!({"_country_code": "US", "_region": "California", "_city": "Mountain View", "_latitude": 37.4192, "_longitude": -122.0574, "_timezone": "America/Los_Angeles"}),
        ]
    );
}

fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = Sha256::new().chain_update(k.map(|b| b ^ 0x36)).chain_update(message).finalize().to_vec();
    hex::encode(Sha256::new().chain_update(k.map(|b| b ^ 0x5c)).chain_update(inner).finalize())
}

async fn pii_hasher(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let shop = gw.create_project("shop").await;
    let blog = gw.create_project("blog").await;
    install(&gw, &shop, "pii-hasher", "enrich", json!({"salt": "shop-salt", "fields": ["email"], "lowercase": true}))
        .await;
    install(&gw, &blog, "pii-hasher", "enrich", json!({"salt": "blog-salt", "fields": ["email"], "lowercase": true}))
        .await;
    for k in [&shop, &blog] {
        let body = batch(k, vec![ev("signup", json!({"email": "Ann@Example.com", "plan": "pro"}))]);
        assert_eq!(gw.post("/event/batch", &[], &body).await.status, 200);
    }
    let stored = gw.stop_and_read().await;
    let mut emails: Vec<(String, Value, Value)> =
        stored.iter().map(|e| (e.topic.clone(), e.fields["email"].clone(), e.fields["plan"].clone())).collect();
    emails.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        emails,
        vec![
            ("blog.signup".to_owned(), json!(hmac_sha256_hex(b"blog-salt", b"ann@example.com")), json!("pro")),
            ("shop.signup".to_owned(), json!(hmac_sha256_hex(b"shop-salt", b"ann@example.com")), json!("pro")),
        ],
        "the address never reaches storage; each project's salt gives its own hash"
    );
}

async fn row_filter(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let views: Vec<Value> = [("u1", "DE"), ("u2", "DE"), ("u3", "FR"), ("u4", "US")]
        .iter()
        .map(|(u, c)| ev("pageview", json!({"_user": u, "country": c})))
        .collect();
    let buys: Vec<Value> =
        ["u1", "u3", "u4"].iter().map(|u| ev("purchase", json!({"_user": u, "amount": 10.0}))).collect();
    assert_eq!(gw.post("/event/batch", &[], &batch(&k, [views, buys].concat())).await.status, 200);
    assert_eq!(gw.send("POST", "/event/bulk/commit", &[("master_key", &k.master)], "").await.status, 200);
    install(&gw, &k, "row-filter", "rewrite", json!({"filters": {"pageview": "country = {{country}}"}})).await;
    let query = |sql: &str, country: &str| {
        let (gw, key, body, country) = (&gw, k.read.clone(), json!({"query": sql}), country.to_owned());
        async move { gw.post("/query/execute", &[("read_key", &key), ("x-weir-country", &country)], &body).await }
    };
    for (sql, de, fr) in [
        ("SELECT count(*) FROM pageview", 2, 1),
        ("SELECT count(*) FROM collection.pageview p JOIN purchase b ON p._user = b._user", 1, 1),
        ("WITH v AS (SELECT _user FROM pageview) SELECT count(*) FROM v", 2, 1),
        ("SELECT count(*) FROM purchase WHERE _user IN (SELECT _user FROM pageview)", 1, 1),
        ("SELECT count(*) FROM (SELECT * FROM pageview UNION ALL SELECT * FROM pageview) t", 4, 2),
    ] {
        for (country, want) in [("DE", de), ("FR", fr)] {
            let r = query(sql, country).await;
            assert_eq!(r.json()["result"], json!([[want]]), "{sql} as {country}: {}", r.text());
        }
    }
    let r = query("SELECT count(*) FROM purchase", "DE").await;
    assert_eq!(r.json()["result"], json!([[3]]), "collections without a filter are whole");
    let r = query("SELECT count(*) FROM _all", "DE").await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r =
        gw.post("/query/execute", &[("read_key", &k.read)], &json!({"query": "SELECT count(*) FROM pageview"})).await;
    assert_eq!(r.status, 403, "a caller without the attribute is refused: {}", r.text());
    assert!(r.text().contains("X-Weir-country"), "{}", r.text());
}

on_every_backend!(user_agent, referrer, geoip, pii_hasher, row_filter);
