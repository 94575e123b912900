//! WebAssembly plugins through the real host and HTTP: the management API,
//! what enrichers do to stored events, every limit both ways, hot reload,
//! and rewriters that try to reach beyond their project.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use weir_tests::{Backend, Gateway, Keys, Options, of, on_every_backend, plugin_component};

fn collect(k: &Keys, collection: &str, properties: Value) -> Value {
    json!({"collection": collection, "api": {"api_key": k.write}, "properties": properties})
}

fn batch(k: &Keys, events: Vec<Value>) -> Value {
    json!({"api": {"api_key": k.write}, "events": events})
}

/// Uploads the test enricher. Unless `params` set one, its deadline is far
/// above its needs: the tests that are not about deadlines share the
/// machine with other suites and their servers.
async fn upload_test_enricher(gw: &Gateway, k: &Keys, params: &str) {
    let deadline = if params.contains("timeout_ms=") { "" } else { "&timeout_ms=1000" };
    let params = format!("hook=enrich&{params}{deadline}");
    let r = gw.upload_plugin(&k.master, "tagger", &params, plugin_component("test-enricher")).await;
    assert_eq!(r.status, 200, "upload: {}", r.text());
}

async fn configure(gw: &Gateway, k: &Keys, name: &str, config: Value) {
    let r = gw.post("/plugin/config", &[("master_key", &k.master)], &json!({"name": name, "config": config})).await;
    assert_eq!(r.status, 200, "config: {}", r.text());
}

async fn plugin_lifecycle(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let m = [("master_key", k.master.as_str())];
    let bytes = plugin_component("test-enricher");
    let r =
        gw.upload_plugin(&k.master, "tagger", "hook=enrich&order=5&on_error=pass&timeout_ms=1000", bytes.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sha = hex::encode(Sha256::digest(&bytes));
    assert_eq!(r.json(), json!({"name": "tagger", "version": 1, "sha256": sha, "hook": "enrich"}));

    let listed = gw.post("/plugin/list", &m, &json!({})).await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(
        (
            &listed[0]["name"],
            &listed[0]["order"],
            &listed[0]["on_error"],
            &listed[0]["enabled"],
            &listed[0]["memory_mb"]
        ),
        (&json!("tagger"), &json!(5), &json!("pass"), &json!(true), &json!(64))
    );
    let collect_one = |n: i64| collect(&k, "pageview", json!({"n": n}));
    assert_eq!(gw.post("/event/collect", &[], &collect_one(1)).await.status, 200);
    configure(&gw, &k, "tagger", json!({"tag": "configured"})).await;
    let got = gw.post("/plugin/get", &m, &json!({"name": "tagger"})).await.json();
    assert_eq!(got["config"], json!({"tag": "configured"}));
    assert_eq!(gw.post("/event/collect", &[], &collect_one(2)).await.status, 200);
    assert_eq!(gw.post("/plugin/disable", &m, &json!({"name": "tagger"})).await.status, 200);
    assert_eq!(gw.post("/event/collect", &[], &collect_one(3)).await.status, 200);
    assert_eq!(gw.post("/plugin/enable", &m, &json!({"name": "tagger"})).await.status, 200);
    assert_eq!(gw.post("/event/collect", &[], &collect_one(4)).await.status, 200);
    let again = gw.upload_plugin(&k.master, "tagger", "hook=enrich&on_error=pass&timeout_ms=1000", bytes).await.json();
    assert_eq!(again["version"], 2, "a new upload of a name is its next version");
    let got = gw.post("/plugin/get", &m, &json!({"name": "tagger"})).await.json();
    assert_eq!((&got["config"], &got["stats"]["calls"]), (&json!({"tag": "configured"}), &json!(3)));
    assert_eq!(gw.post("/plugin/delete", &m, &json!({"name": "tagger"})).await.status, 200);
    assert_eq!(gw.post("/event/collect", &[], &collect_one(5)).await.status, 200);
    assert_eq!(gw.post("/plugin/get", &m, &json!({"name": "tagger"})).await.status, 404);
    assert_eq!(gw.post("/plugin/delete", &m, &json!({"name": "tagger"})).await.status, 404);
    assert_eq!(gw.post("/plugin/list", &[("master_key", &k.read)], &json!({})).await.status, 403);
    assert_eq!(gw.post("/plugin/list", &[], &json!({})).await.status, 401);

    let events = gw.stop_and_read().await;
    let tags: Vec<(i64, Value)> = of(&events, "pageview")
        .iter()
        .map(|e| (e["n"].as_f64().unwrap_or(0.0) as i64, e["tagged_by"].clone()))
        .collect();
    assert_eq!(
        tags,
        vec![
            (1, json!("test")),
            (2, json!("configured")),
            (3, Value::Null),
            (4, json!("configured")),
            (5, Value::Null)
        ]
    );
}

async fn refused_uploads(backend: Backend) {
    let gw = Gateway::start_with(
        backend,
        Options { env: vec![("WEIR_PLUGINS__MAX_UPLOAD_BYTES".into(), "400000".into())], ..Options::default() },
    )
    .await;
    let k = gw.create_project("shop").await;
    let refused = |r: weir_tests::Response, status: u16, needle: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        assert!(r.text().contains(needle), "{:?} does not mention {needle:?}", r.text());
        assert_eq!(r.json()["error_code"], status);
    };
    refused(
        gw.upload_plugin(&k.master, "p", "hook=enrich", b"hello".to_vec()).await,
        400,
        "not a WebAssembly component",
    );
    refused(
        gw.upload_plugin(&k.master, "p", "hook=enrich", b"\0asm\x01\0\0\0".to_vec()).await,
        400,
        "core WebAssembly module",
    );
    let rewriter = plugin_component("test-rewriter");
    refused(gw.upload_plugin(&k.master, "p", "hook=enrich", rewriter.clone()).await, 400, "weir:plugin/enricher");
    let enricher = plugin_component("test-enricher");
    refused(
        gw.upload_plugin(&k.master, "p", "hook=rewrite", enricher.clone()).await,
        400,
        "weir:plugin/query-rewriter",
    );
    let mut truncated = enricher.clone();
    truncated.truncate(enricher.len() / 2);
    refused(gw.upload_plugin(&k.master, "p", "hook=enrich", truncated).await, 400, "does not compile");
    let mut oversize = enricher.clone();
    oversize.resize(400_001, 0);
    refused(gw.upload_plugin(&k.master, "p", "hook=enrich", oversize).await, 413, "");
    refused(gw.upload_plugin(&k.master, "p", "hook=crm", enricher.clone()).await, 400, "weir:plugin/crm-hook");
    refused(gw.upload_plugin(&k.master, "p", "hook=filter", enricher.clone()).await, 400, "enrich, rewrite or crm");
    refused(gw.upload_plugin(&k.master, "p", "", enricher.clone()).await, 400, "hook is missing");
    refused(gw.upload_plugin(&k.master, "Upper!", "hook=enrich", enricher.clone()).await, 400, "plugin name");
    refused(
        gw.upload_plugin(&k.master, "p", "hook=enrich&on_error=ignore", enricher.clone()).await,
        400,
        "pass or reject",
    );
    refused(gw.upload_plugin(&k.master, "p", "hook=rewrite&on_error=pass", rewriter).await, 400, "fail closed");
    refused(gw.upload_plugin(&k.master, "p", "hook=enrich&memory_mb=100000", enricher.clone()).await, 400, "memory_mb");
    refused(gw.upload_plugin(&k.read, "p", "hook=enrich", enricher.clone()).await, 403, "master_key");
    let listed = gw.post("/plugin/list", &[("master_key", &k.master)], &json!({})).await.json();
    assert_eq!(listed, json!([]), "nothing refused was stored");
}

async fn bad_plugin_requests_get_clear_errors(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    upload_test_enricher(&gw, &k, "on_error=pass").await;
    let m = [("master_key", k.master.as_str())];
    let refused = |r: weir_tests::Response, status: u16, needle: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        let body = r.json();
        assert_eq!(body["error_code"], status, "{body}");
        assert!(body["error"].as_str().unwrap_or_default().contains(needle), "{body} does not mention {needle:?}");
    };
    refused(gw.post("/plugin/config", &m, &json!({"name": "nope", "config": 1})).await, 404, "no plugin \"nope\"");
    refused(gw.post("/plugin/enable", &m, &json!({"name": "nope"})).await, 404, "no plugin");
    refused(gw.post("/plugin/disable", &m, &json!({"name": "nope"})).await, 404, "no plugin");
    refused(gw.post("/plugin/config", &m, &json!({"name": "tagger", "config": 1, "extra": 2})).await, 400, "extra");
    refused(gw.post("/plugin/get", &m, &json!({})).await, 400, "name");
    refused(gw.send("POST", "/plugin/config", &m, "{not json").await, 400, "JSON");
    let json_type = [("master_key", k.master.as_str()), ("content-type", "application/json")];
    refused(gw.send("POST", "/plugin/upload?name=p&hook=enrich", &json_type, "{}").await, 415, "application/wasm");
    refused(
        gw.upload_plugin(&k.master, "p", "hook=enrich&order=99999999", plugin_component("identity")).await,
        400,
        "order must be a whole number from -1000000 to 1000000",
    );
    refused(
        gw.upload_plugin(&k.master, "p", "hook=enrich&timeout_ms=0", plugin_component("identity")).await,
        400,
        "timeout_ms",
    );
    refused(gw.post("/plugin/test", &m, &json!({"events": []})).await, 400, "name of a stored plugin, or a component");
    refused(gw.post("/plugin/test", &m, &json!({"component": "%%%", "events": []})).await, 400, "not base64");
    refused(gw.post("/plugin/test", &m, &json!({"name": "tagger"})).await, 400, "tested with events");
    refused(
        gw.post("/plugin/test", &m, &json!({"name": "tagger", "query": "SELECT 1"})).await,
        400,
        "tested with events",
    );
    refused(
        gw.post("/plugin/test", &m, &json!({"name": "tagger", "events": [{"collection": "", "properties": {}}]})).await,
        400,
        "event 0",
    );
    refused(gw.post("/plugin/test", &m, &json!({"name": "nope", "events": []})).await, 404, "no plugin");
    use base64::Engine as _;
    let rewriter = base64::engine::general_purpose::STANDARD.encode(plugin_component("test-rewriter"));
    refused(
        gw.post("/plugin/test", &m, &json!({"component": rewriter, "hook": "rewrite"})).await,
        400,
        "tested with a query",
    );
    refused(
        gw.post("/plugin/test", &m, &json!({"component": rewriter, "hook": "filter", "query": "SELECT 1"})).await,
        400,
        "enrich, rewrite or crm",
    );
    let hook = base64::engine::general_purpose::STANDARD.encode(plugin_component("test-crm-hook"));
    refused(
        gw.post("/plugin/test", &m, &json!({"component": hook, "hook": "crm", "query": "SELECT 1"})).await,
        400,
        "tested with a request",
    );
    refused(
        gw.post("/plugin/test", &m, &json!({"component": hook, "request": {"path": "x", "verb": "GET"}})).await,
        400,
        "verb",
    );
}

async fn enricher_outcomes_reach_the_client(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    upload_test_enricher(&gw, &k, "on_error=reject").await;
    let events = vec![
        json!({"collection": "click", "properties": {"n": 0}}),
        json!({"collection": "click", "properties": {"n": 1, "action": "drop"}}),
        json!({"collection": "click", "properties": "malformed"}),
        json!({"collection": "click", "properties": {"n": 3, "action": "reject"}}),
        json!({"collection": "click", "properties": {"n": 4}}),
    ];
    let r = gw.post("/event/batch", &[], &batch(&k, events)).await;
    assert_eq!((r.status, r.json()), (409, json!([2, 3])), "the malformed and the rejected event are listed");
    let r = gw.post("/event/collect", &[], &collect(&k, "click", json!({"n": 5, "action": "reject"}))).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("plugin tagger") && r.text().contains("asked to be rejected"), "{}", r.text());
    let r = gw.post("/event/collect", &[], &collect(&k, "click", json!({"n": 6, "action": "drop"}))).await;
    assert_eq!((r.status, r.text().as_str()), (200, "1"), "a dropped event is not an error");
    let bulk = "{\"collection\":\"click\",\"properties\":{\"n\":7}}\n{\"collection\":\"click\",\"properties\":{\"n\":8,\"action\":\"reject\"}}\n";
    let r = gw
        .send("POST", "/event/bulk", &[("master_key", &k.master), ("content-type", "application/x-ndjson")], bulk)
        .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("nothing was stored"), "{}", r.text());

    let stored = gw.stop_and_read().await;
    let clicks = of(&stored, "click");
    let ns: Vec<i64> = clicks.iter().filter_map(|e| e["n"].as_f64()).map(|n| n as i64).collect();
    assert_eq!(ns, vec![0, 4], "kept events only; a bulk load with a rejected event stores nothing");
    assert!(clicks.iter().all(|e| e["tagged_by"] == "test"), "fields a plugin adds are inferred and stored");
}

/// A second project that must be served normally while `shop`'s plugin
/// misbehaves.
async fn other_tenant_keeps_working(gw: &Gateway, other: &Keys, until: Instant) -> usize {
    let mut served = 0;
    while Instant::now() < until {
        let r = gw.post("/event/collect", &[], &collect(other, "visit", json!({"n": served}))).await;
        assert_eq!(r.status, 200, "the other project was refused: {}", r.text());
        served += 1;
    }
    served
}

async fn limits_both_ways(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let other = gw.create_project("other").await;
    // A deadline far above an 8 MiB allocation's needs until the deadline
    // itself is tested: the machine is shared with other suites.
    upload_test_enricher(&gw, &k, "on_error=reject&memory_mb=32&timeout_ms=1000").await;
    let send = |n: i64| {
        let (gw, body) = (&gw, collect(&k, "click", json!({"n": n})));
        async move { gw.post("/event/collect", &[], &body).await }
    };

    // Within the memory cap it works; past it the call traps, named.
    configure(&gw, &k, "tagger", json!({"behavior": "allocate", "mb": 8})).await;
    assert_eq!(send(1).await.status, 200);
    configure(&gw, &k, "tagger", json!({"behavior": "allocate", "mb": 64})).await;
    let r = send(2).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("plugin tagger") && r.text().contains("memory cap of 32 MiB"), "{}", r.text());

    // An infinite loop is stopped at its deadline, while the other project
    // is served normally.
    upload_test_enricher(&gw, &k, "on_error=reject&memory_mb=32&timeout_ms=50").await;
    configure(&gw, &k, "tagger", json!({"behavior": "spin"})).await;
    let until = Instant::now() + Duration::from_millis(1500);
    let (spins, served) = tokio::join!(
        async {
            let mut answers = Vec::new();
            while Instant::now() < until {
                let started = Instant::now();
                let r = send(3).await;
                answers.push((r.status, r.text(), started.elapsed()));
            }
            answers
        },
        other_tenant_keeps_working(&gw, &other, until)
    );
    assert!(served > 0);
    for (status, text, took) in &spins {
        assert_eq!(*status, 500, "{text}");
        assert!(text.contains("deadline of 50 ms"), "{text}");
        assert!(*took < Duration::from_secs(5), "a spinning plugin held a request for {took:?}");
    }

    // A trap, and an answer of the wrong length.
    configure(&gw, &k, "tagger", json!({"behavior": "trap"})).await;
    let r = send(4).await;
    assert!(r.status == 500 && r.text().contains("trapped"), "{}", r.text());
    configure(&gw, &k, "tagger", json!({"behavior": "short"})).await;
    let r = gw
        .post(
            "/event/batch",
            &[],
            &batch(
                &k,
                vec![
                    json!({"collection": "click", "properties": {"n": 5}}),
                    json!({"collection": "click", "properties": {"n": 6}}),
                ],
            ),
        )
        .await;
    assert!(r.status == 500 && r.text().contains("answered 1 results for 2 events"), "{}", r.text());

    // With on_error=pass the same failure lets the events through untouched.
    upload_test_enricher(&gw, &k, "on_error=pass&memory_mb=32&timeout_ms=50").await;
    configure(&gw, &k, "tagger", json!({"behavior": "spin"})).await;
    assert_eq!(send(7).await.status, 200);
    let stats = gw.post("/plugin/get", &[("master_key", &k.master)], &json!({"name": "tagger"})).await.json();
    assert!(stats["stats"]["failures"].as_u64().unwrap_or(0) >= 4, "{stats}");
    assert!(stats["stats"]["last_failure"].as_str().unwrap_or_default().contains("deadline"), "{stats}");

    let stored = gw.stop_and_read().await;
    let clicks: Vec<(i64, Value)> =
        of(&stored, "click").iter().map(|e| (e["n"].as_f64().unwrap_or(-1.0) as i64, e["tagged_by"].clone())).collect();
    assert_eq!(clicks, vec![(1, json!("test")), (7, Value::Null)], "refused events were not stored");
}

async fn test_endpoint_runs_without_storing(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    let m = [("master_key", k.master.as_str())];
    upload_test_enricher(&gw, &k, "on_error=pass").await;
    let events = json!([{"collection": "click", "properties": {"n": 1}}, {"collection": "click", "properties": {"action": "reject"}}]);
    let r = gw.post("/plugin/test", &m, &json!({"name": "tagger", "events": events})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    assert_eq!(out["results"][0], json!({"outcome": "replace", "properties": {"n": 1, "tagged_by": "test"}}));
    assert_eq!(out["results"][1], json!({"outcome": "reject", "reason": "this event asked to be rejected"}));
    assert_eq!(out["log"]["lines"][0]["message"], "2 events of project shop");

    // A trap's panic message reaches the log; a flood of lines is capped.
    let r = gw
        .post("/plugin/test", &m, &json!({"name": "tagger", "config": {"behavior": "trap"}, "events": events}))
        .await
        .json();
    assert!(r["failure"].as_str().unwrap_or_default().contains("trapped"), "{r}");
    assert!(r["log"].to_string().contains("told to trap"), "{r}");
    let r = gw
        .post(
            "/plugin/test",
            &m,
            &json!({"name": "tagger", "config": {"behavior": "log_flood", "lines": 500}, "events": events}),
        )
        .await
        .json();
    assert_eq!(r["log"]["lines"].as_array().map(Vec::len), Some(100));
    assert_eq!(r["log"]["dropped"], 401);

    // An uploaded component, not stored.
    use base64::Engine as _;
    let component = base64::engine::general_purpose::STANDARD.encode(plugin_component("test-rewriter"));
    let r = gw
        .post(
            "/plugin/test",
            &m,
            &json!({"component": component, "config": {"replace_with": "SELECT 1"}, "query": "SELECT 2"}),
        )
        .await;
    assert_eq!(
        (r.json()["outcome"].clone(), r.json()["query"].clone()),
        (json!("rewritten"), json!("SELECT 1")),
        "{}",
        r.text()
    );
    let listed = gw.post("/plugin/list", &m, &json!({})).await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    assert!(gw.stop_and_read().await.is_empty(), "tests store nothing");
}

async fn hot_reload_under_load(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let k = gw.create_project("shop").await;
    upload_test_enricher(&gw, &k, "on_error=reject").await;
    let sibling = gw.sibling(Options::default()).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, k, stop) = (gw.client.clone(), k.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = batch(&k, (0..20).map(|n| json!({"collection": "click", "properties": {"n": n}})).collect());
                let r = client.post("/event/batch", &[], &body).await.expect("request");
                if r.status == 200 { ok += 1 } else { failed.push((r.status, r.text())) }
            }
            (ok, failed)
        })
    };
    for round in 0..6 {
        let tag = format!("v{round}");
        // A deadline far above the plugin's needs: this test is about
        // reloads, and the machine is shared with the load and the servers.
        let params = format!("hook=enrich&on_error=reject&order={round}&timeout_ms=1000");
        let r = gw.upload_plugin(&k.master, "tagger", &params, plugin_component("test-enricher")).await;
        assert_eq!(r.status, 200);
        configure(&gw, &k, "tagger", json!({"tag": tag})).await;
        // In force at once on this gateway...
        let test = gw.post("/event/collect", &[], &collect(&k, "probe", json!({"round": round}))).await;
        assert_eq!(test.status, 200);
        // ...and within 5 s on the other one.
        let started = Instant::now();
        loop {
            let r = sibling
                .post(
                    "/plugin/test",
                    &[("master_key", &k.master)],
                    &json!({"name": "tagger", "events": [{"collection": "x", "properties": {}}]}),
                )
                .await;
            assert_eq!(r.status, 200);
            let seen =
                sibling.post("/event/collect", &[], &collect(&k, "sibling_probe", json!({"round": round}))).await;
            assert_eq!(seen.status, 200);
            if r.json()["results"][0]["properties"]["tagged_by"] == tag.as_str() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "the other gateway did not pick up {tag} within 5 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.await.expect("load");
    assert!(ok > 0);
    assert_eq!(failed, Vec::<(u16, String)>::new(), "no request failed during the reloads");
    let mut gw = gw;
    let stored = gw.stop_and_read().await;
    let probes: Vec<Value> = of(&stored, "probe").iter().map(|e| e["tagged_by"].clone()).collect();
    assert_eq!(
        probes,
        (0..6).map(|r| json!(format!("v{r}"))).collect::<Vec<_>>(),
        "each change was in force for the next request"
    );
}

async fn rewriters_stay_in_their_project(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let a = gw.create_project("alpha").await;
    let b = gw.create_project("beta").await;
    for (k, n) in [(&a, 2), (&b, 5)] {
        let events = (0..n).map(|i| json!({"collection": "pageview", "properties": {"i": i}})).collect();
        assert_eq!(gw.post("/event/batch", &[], &batch(k, events)).await.status, 200);
    }
    assert_eq!(gw.send("POST", "/event/bulk/commit", &[("master_key", &a.master)], "").await.status, 200);
    let r = gw.upload_plugin(&a.master, "sql", "hook=rewrite&timeout_ms=1000", plugin_component("test-rewriter")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let query = |sql: &str| {
        let (gw, key, body) = (&gw, a.read.clone(), json!({"query": sql}));
        async move { gw.post("/query/execute", &[("read_key", &key)], &body).await }
    };
    let r = query("SELECT count(*) AS n FROM pageview").await;
    assert_eq!(r.json()["result"], json!([[2]]), "{}", r.text());

    configure(&gw, &a, "sql", json!({"replace_with": "SELECT count(*) AS n FROM pageview WHERE i > 0"})).await;
    assert_eq!(query("SELECT 1").await.json()["result"], json!([[1]]));
    for escape in [
        "SELECT count(*) FROM beta.pageview",
        "SELECT count(*) FROM \"beta\".\"pageview\"",
        "SELECT count(*) FROM (SELECT * FROM collection.pageview UNION ALL SELECT * FROM beta.pageview) t",
        "SELECT count(*) FROM weir.beta_pageview",
        "SELECT * FROM information_schema.tables",
    ] {
        configure(&gw, &a, "sql", json!({"replace_with": escape})).await;
        let r = query("SELECT 1").await;
        assert!(r.status == 403 || r.status == 400, "{escape} was not refused: {}", r.text());
        assert!(!r.text().contains("\"result\""), "{escape} answered rows: {}", r.text());
    }
    configure(&gw, &a, "sql", json!({"deny": "analysts may not run this"})).await;
    let r = query("SELECT 1").await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("denied by plugin sql: analysts may not run this"), "{}", r.text());
    configure(&gw, &a, "sql", json!({"spin": true})).await;
    let r = query("SELECT 1").await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("deadline"), "a failing rewriter refuses the query: {}", r.text());
    let r =
        gw.post("/query/execute", &[("read_key", &b.read)], &json!({"query": "SELECT count(*) FROM pageview"})).await;
    assert_eq!(r.json()["result"], json!([[5]]), "the other project has no rewriter");
}

on_every_backend!(
    plugin_lifecycle,
    refused_uploads,
    bad_plugin_requests_get_clear_errors,
    enricher_outcomes_reach_the_client,
    limits_both_ways,
    test_endpoint_runs_without_storing,
    rewriters_stay_in_their_project,
);

/// Two gateways on one metadata store share a log (a second one on a log
/// of its own is refused: tests/cluster.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_on_two_gateways() {
    hot_reload_under_load(Backend::Kafka).await
}
