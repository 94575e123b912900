//! Other analytics SDKs against the real gateway: Segment's, RudderStack's
//! and PostHog's Python and Node.js SDKs, Snowplow's Python tracker and
//! PostHog's browser SDK in Chromium, installed from their registries, send
//! every call type they have; the
//! events are checked in SQL and the users in the user table. Each SDK also
//! sends through a proxy that loses the first answer, so that it re-sends:
//! every event is stored once. Then deduplication by id itself, across
//! loads, restarts and `kill -9`, and every protocol's bad input.

use std::path::Path;

use serde_json::{Value, json};
use weir_tests::lossy::LossyProxy;
use weir_tests::{Backend, Gateway, Keys, Options, on_every_backend};

fn options() -> Options {
    // The loop runs when the tests say so.
    Options { env: vec![("WEIR_BATCH__INTERVAL_MS".into(), "3600000".into())], ..Options::default() }
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the suite with scripts/test.sh"))
}

async fn rows(gw: &Gateway, k: &Keys, sql: &str) -> Vec<Vec<Value>> {
    let r = gw.post("/query/execute", &[("read_key", &k.read)], &json!({"query": sql})).await;
    assert_eq!(r.status, 200, "{sql}: {}", r.text());
    serde_json::from_value(r.json()["result"].clone()).expect("rows")
}

async fn commit(gw: &Gateway, k: &Keys) {
    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "commit: {}", r.text());
}

/// Runs `tests/python/sdk_clients.py` for `sdk` against `base`.
async fn python_sdk(sdk: &str, base: &str, key: &str, gzip: bool) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("sdk_clients.py");
    let out = tokio::process::Command::new(var("WEIRTEST_PYTHON"))
        .arg(script)
        .args([sdk, base, key, if gzip { "1" } else { "0" }])
        .output()
        .await
        .expect("run python");
    assert!(out.status.success(), "{sdk} (Python) failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `tests/node/sdk_clients.mjs` for `sdk` against `base`.
async fn node_sdk(sdk: &str, base: &str, key: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("node").join("sdk_clients.mjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .args([&var("WEIRTEST_NODE_MODULES"), sdk, base, key])
        .output()
        .await
        .expect("run node");
    assert!(out.status.success(), "{sdk} (Node.js) failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// An SDK and how it is run.
#[derive(Clone, Copy)]
enum Sdk {
    /// `sdk_clients.py`'s name for it, and whether it compresses.
    Python(&'static str, bool),
    /// `sdk_clients.mjs`'s name for it.
    Node(&'static str),
}

impl Sdk {
    async fn send(self, base: &str, key: &str) {
        match self {
            Sdk::Python(name, gzip) => python_sdk(name, base, key, gzip).await,
            Sdk::Node(name) => node_sdk(name, base, key).await,
        }
    }
}

/// The SDK sends straight to the gateway into one project, and through a
/// proxy that loses its first answer into another; both must hold what
/// `check` expects, each event once.
async fn twice(gw: &Gateway, name: &str, sdk: Sdk, check: impl AsyncFn(&Gateway, &Keys)) {
    let direct = gw.create_project(&format!("{name}_direct")).await;
    sdk.send(gw.base(), &direct.write).await;
    commit(gw, &direct).await;
    check(gw, &direct).await;

    let resent = gw.create_project(&format!("{name}_resent")).await;
    let proxy = LossyProxy::start(gw.base(), 1).await;
    sdk.send(&proxy.base, &resent.write).await;
    let forwarded = proxy.forwarded.load(std::sync::atomic::Ordering::SeqCst);
    assert!(forwarded >= 2, "{name}: the SDK re-sent what got no success ({forwarded} requests)");
    commit(gw, &resent).await;
    check(gw, &resent).await;
}

/// What Segment's protocol stores for the calls of `sdk_clients`.
async fn segment_calls_are_stored(gw: &Gateway, k: &Keys, library: &str) {
    let order = rows(gw, k, "SELECT _user, total, items, _ip, context_library_name FROM order_completed").await;
    assert_eq!(order, [[json!("u1"), json!(12.5), json!(2.0), json!("203.0.113.7"), json!(library)]]);
    let recent = "SELECT count(*) FROM order_completed WHERE _id IS NOT NULL \
                  AND _time BETWEEN now() - INTERVAL '1' HOUR AND now() + INTERVAL '1' MINUTE";
    assert_eq!(rows(gw, k, recent).await, [[json!(1)]], "the time is the SDK's, corrected; the id is kept");
    let signed = rows(gw, k, "SELECT _user, _device_id, plan FROM signed_up").await;
    assert_eq!(signed, [[json!("anon1"), json!("anon1"), json!("pro")]]);
    let page = rows(gw, k, "SELECT _user, name, category, url FROM pageview").await;
    assert_eq!(page, [[json!("u1"), json!("Home"), json!("Docs"), json!("https://example.com/")]]);
    assert_eq!(rows(gw, k, "SELECT _user, name FROM screen").await, [[json!("u1"), json!("Main")]]);
    assert_eq!(
        rows(gw, k, "SELECT _user, group_id, name FROM \"group\"").await,
        [[json!("u1"), json!("g1"), json!("Acme")]]
    );
    let users = rows(gw, k, "SELECT id, email, plan, group_id FROM users").await;
    assert_eq!(users, [[json!("u1"), json!("u1@example.com"), json!("pro"), json!("g1")]]);
    let mapping = rows(gw, k, r#"SELECT id, _user FROM "$anonymous_id_mapping""#).await;
    assert_eq!(mapping, [[json!("anon1"), json!("u1")]]);
}

/// What PostHog's protocol stores for the calls of `sdk_clients`.
async fn posthog_calls_are_stored(gw: &Gateway, k: &Keys, library: &str) {
    let order = rows(gw, k, "SELECT _user, total, items, _ip, _lib FROM order_completed WHERE _id IS NOT NULL").await;
    assert_eq!(order, [[json!("u1"), json!(12.5), json!(2.0), json!("203.0.113.7"), json!(library)]]);
    let page = rows(gw, k, "SELECT _user, _current_url FROM pageview").await;
    assert_eq!(page, [[json!("anon1"), json!("https://example.com/")]]);
    let group = rows(gw, k, "SELECT group_type, group_id, name FROM \"group\"").await;
    assert_eq!(group, [[json!("company"), json!("g1"), json!("Acme")]]);
    let users = rows(gw, k, "SELECT id, email, plan FROM users").await;
    assert_eq!(users, [[json!("u1"), json!("u1@example.com"), json!("pro")]]);
    let mapping = rows(gw, k, r#"SELECT id, _user FROM "$anonymous_id_mapping""#).await;
    assert_eq!(mapping, [[json!("anon1"), json!("u1")]]);
}

async fn segment_python(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    twice(&gw, "segment_py", Sdk::Python("segment", true), async |gw, k| {
        segment_calls_are_stored(gw, k, "analytics-python").await
    })
    .await;
}

async fn rudderstack_python(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    twice(&gw, "rudder_py", Sdk::Python("rudderstack", false), async |gw, k| {
        segment_calls_are_stored(gw, k, "analytics-python").await
    })
    .await;
}

async fn segment_node(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    twice(&gw, "segment_js", Sdk::Node("segment"), async |gw, k| {
        segment_calls_are_stored(gw, k, "@segment/analytics-node").await
    })
    .await;
}

async fn rudderstack_node(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    twice(&gw, "rudder_js", Sdk::Node("rudderstack"), async |gw, k| {
        segment_calls_are_stored(gw, k, "analytics-node").await
    })
    .await;
}

async fn posthog_python(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    twice(&gw, "posthog_py", Sdk::Python("posthog", true), async |gw, k| {
        posthog_calls_are_stored(gw, k, "posthog-python").await;
        let once = rows(gw, k, "SELECT first_seen FROM users").await;
        assert_eq!(once, [[json!("docs")]]);
    })
    .await;
}

async fn posthog_node(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    twice(&gw, "posthog_js", Sdk::Node("posthog"), async |gw, k| posthog_calls_are_stored(gw, k, "posthog-node").await)
        .await;
}

async fn snowplow_python(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    twice(&gw, "snowplow_py", Sdk::Python("snowplow", false), async |gw, k| {
        let carts = rows(gw, k, "SELECT _user, category, label, value, app_id FROM add_to_cart ORDER BY _user").await;
        assert_eq!(
            carts,
            [
                [json!("u1"), json!("shop"), json!("sku-1"), json!(2.0), json!("shop")],
                [json!("u2"), json!("shop"), json!("sku-2"), json!(1.0), json!("shop")]
            ]
        );
        let page = rows(gw, k, "SELECT _user, page_url, page_title, page_referrer FROM pageview").await;
        assert_eq!(
            page,
            [[json!("u1"), json!("https://example.com/docs"), json!("Docs"), json!("https://example.com/")]]
        );
        let click =
            rows(gw, k, "SELECT _user, target, context_device_model FROM link_click WHERE _id IS NOT NULL").await;
        assert_eq!(click, [[json!("u1"), json!("https://example.com/a"), json!("x1")]]);
    })
    .await;
}

macro_rules! on_both_logs {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(weir_tests::Backend::Sqlite).await } )*
        }
        mod kafka_log {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(weir_tests::Backend::Kafka).await } )*
        }
    };
}

on_both_logs!(
    segment_python,
    rudderstack_python,
    segment_node,
    rudderstack_node,
    posthog_python,
    posthog_node,
    snowplow_python
);

fn batch(key: &str, events: Value) -> Value {
    json!({"api": {"api_key": key}, "events": events})
}

async fn send_batch(gw: &Gateway, k: &Keys, events: Value) {
    let r = gw.post("/event/batch", &[], &batch(&k.write, events)).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Counts of each (collection, n) as SQL sees them.
async fn counts(gw: &Gateway, k: &Keys) -> Vec<Vec<Value>> {
    rows(
        gw,
        k,
        "SELECT 'a', n, count(*) FROM a GROUP BY n UNION ALL SELECT 'b', n, count(*) FROM b GROUP BY n ORDER BY 1, 2",
    )
    .await
}

/// Events with an `_id` are stored once per collection, whether sent again
/// in the same batch, before or after a load, or after a restart; events
/// without one as often as sent.
async fn events_with_ids_are_stored_once(backend: Backend) {
    let mut gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    let first = json!([
        {"collection": "a", "properties": {"_id": "e1", "n": 1}},
        {"collection": "a", "properties": {"_id": "e2", "n": 2}},
        {"collection": "a", "properties": {"_id": "e2", "n": 2}},
        {"collection": "a", "properties": {"n": 3}},
        {"collection": "b", "properties": {"_id": 7, "n": 7}}
    ]);
    send_batch(&gw, &k, first.clone()).await;
    send_batch(&gw, &k, first.clone()).await;
    // The same id in another collection is another event.
    send_batch(&gw, &k, json!([{"collection": "b", "properties": {"_id": "e1", "n": 1}}])).await;
    commit(&gw, &k).await;
    let expected = json!([["a", 1.0, 1], ["a", 2.0, 1], ["a", 3.0, 2], ["b", 1.0, 1], ["b", 7.0, 1]]);
    assert_eq!(json!(counts(&gw, &k).await), expected);

    // After a load, and after a restart, the ids are still known.
    send_batch(&gw, &k, first.clone()).await;
    commit(&gw, &k).await;
    gw.stop().await;
    gw.restart().await;
    send_batch(
        &gw,
        &k,
        json!([{"collection": "a", "properties": {"_id": "e1", "n": 1}},
                               {"collection": "b", "properties": {"_id": "7", "n": 7}}]),
    )
    .await;
    commit(&gw, &k).await;
    let expected = json!([["a", 1.0, 1], ["a", 2.0, 1], ["a", 3.0, 3], ["b", 1.0, 1], ["b", 7.0, 1]]);
    assert_eq!(json!(counts(&gw, &k).await), expected);
    assert_eq!(rows(&gw, &k, "SELECT DISTINCT _id FROM b ORDER BY 1").await, [[json!("7")], [json!("e1")]]);

    // Another project's ids are its own.
    let other = gw.create_project("other").await;
    send_batch(&gw, &other, json!([{"collection": "a", "properties": {"_id": "e1", "n": 1}}])).await;
    commit(&gw, &other).await;
    assert_eq!(rows(&gw, &other, "SELECT count(*) FROM a").await, [[json!(1)]]);
}

/// `batch.dedup_window_ms`: 0 stores events as sent; otherwise an id is
/// forgotten once the window has passed since its event was stored.
async fn the_window_is_configurable(backend: Backend) {
    let event = json!([{"collection": "a", "properties": {"_id": "e1", "n": 1}}]);
    let mut off = options();
    off.env.push(("WEIR_BATCH__DEDUP_WINDOW_MS".into(), "0".into()));
    let gw = Gateway::start_with(backend, off).await;
    let k = gw.create_project("shop").await;
    send_batch(&gw, &k, event.clone()).await;
    send_batch(&gw, &k, event.clone()).await;
    commit(&gw, &k).await;
    assert_eq!(rows(&gw, &k, "SELECT count(*) FROM a").await, [[json!(2)]]);
    drop(gw);

    let mut short = options();
    short.env.push(("WEIR_BATCH__DEDUP_WINDOW_MS".into(), "10000".into()));
    let gw = Gateway::start_with(backend, short).await;
    let k = gw.create_project("shop").await;
    send_batch(&gw, &k, event.clone()).await;
    commit(&gw, &k).await;
    send_batch(&gw, &k, event.clone()).await;
    commit(&gw, &k).await;
    assert_eq!(rows(&gw, &k, "SELECT count(*) FROM a").await, [[json!(1)]], "within the window");
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await;
    send_batch(&gw, &k, event.clone()).await;
    commit(&gw, &k).await;
    assert_eq!(rows(&gw, &k, "SELECT count(*) FROM a").await, [[json!(2)]], "after the window");
}

/// The gateway is killed while it loads; the client then re-sends
/// everything (it cannot know what was stored): each event is stored once.
async fn a_crash_while_loading_stores_each_event_once(backend: Backend) {
    let fast = Options {
        env: vec![("WEIR_BATCH__INTERVAL_MS".into(), "20".into()), ("WEIR_BATCH__MAX_RECORDS".into(), "100".into())],
        ..Options::default()
    };
    let mut gw = Gateway::start_with(backend, fast).await;
    let k = gw.create_project("shop").await;
    let events = |from: usize| -> Value {
        (from..from + 200).map(|i| json!({"collection": "a", "properties": {"_id": format!("e{i}"), "n": i}})).collect()
    };
    for chunk in 0..10 {
        send_batch(&gw, &k, events(chunk * 200)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    gw.kill9().await;
    gw.restart().await;
    for chunk in 0..10 {
        send_batch(&gw, &k, events(chunk * 200)).await;
    }
    commit(&gw, &k).await;
    assert_eq!(
        rows(&gw, &k, "SELECT count(*), count(DISTINCT _id), sum(n) FROM a").await,
        [[json!(2000), json!(2000), json!(1_999_000.0)]]
    );
}

on_every_backend!(
    events_with_ids_are_stored_once,
    the_window_is_configurable,
    a_crash_while_loading_stores_each_event_once,
    every_protocol_refuses_bad_input_and_stores_nothing
);

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("write");
    gz.finish().expect("gzip")
}

fn basic(key: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")))
}

/// Each protocol's bad input: a clear error in Rakam's shape with the right
/// status, and nothing stored. Then the shapes the SDKs did not send:
/// Segment's single calls with the key in the body, RudderStack's gzip
/// labelled as a form, PostHog's browser forms and Snowplow's root paths.
async fn every_protocol_refuses_bad_input_and_stores_nothing(backend: Backend) {
    let gw = Gateway::start_with(backend, options()).await;
    let k = gw.create_project("shop").await;
    let auth = basic(&k.write);
    let track = json!({"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "m1"});
    let pixel_path = format!("/snowplow/{}/i?e=zz", k.write);
    let bomb = gzip(&vec![b' '; 6 << 20]);
    // (method, path, headers, body, status, what the error says)
    type Refused<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let refused: Vec<Refused<'_>> = vec![
        (
            "POST",
            "/v1/batch",
            vec![],
            json!({"batch": [track]}).to_string().into_bytes(),
            401,
            "the write key is missing",
        ),
        (
            "POST",
            "/v1/batch",
            vec![("authorization", "Basic eDo=")],
            json!({"batch": [track]}).to_string().into_bytes(),
            403,
            "the write key is invalid",
        ),
        ("POST", "/v1/batch", vec![("authorization", &auth)], b"{not json".to_vec(), 400, "invalid JSON body"),
        (
            "POST",
            "/v1/batch",
            vec![("authorization", &auth)],
            json!({"batch": [track, {"type": "track", "event": "x"}]}).to_string().into_bytes(),
            400,
            "batch[1]: userId or anonymousId is required",
        ),
        (
            "POST",
            "/v1/batch",
            vec![("authorization", &auth)],
            json!({"batch": [track, 7]}).to_string().into_bytes(),
            400,
            "batch[1]: a message must be an object",
        ),
        (
            "POST",
            "/v1/batch",
            vec![("authorization", &auth)],
            json!({"batch": [{"type": "track", "event": "x", "userId": "u", "properties": [1]}]})
                .to_string()
                .into_bytes(),
            400,
            "batch[0]: properties must be an object",
        ),
        (
            "POST",
            "/v1/batch",
            vec![("authorization", &auth)],
            br#"{"batch": [{"type": "track", "type": "page", "event": "x", "userId": "u"}]}"#.to_vec(),
            400,
            "duplicate field `type`",
        ),
        ("POST", "/v1/batch", vec![("authorization", &auth)], b"[]".to_vec(), 400, "the body must be a JSON object"),
        (
            "POST",
            "/v1/batch",
            vec![("authorization", &auth), ("content-encoding", "gzip")],
            b"not gzip".to_vec(),
            400,
            "not valid gzip",
        ),
        (
            "POST",
            "/v1/batch",
            vec![("authorization", &auth), ("content-encoding", "br")],
            b"{}".to_vec(),
            415,
            "Content-Encoding",
        ),
        (
            "POST",
            "/v1/batch",
            vec![("authorization", &auth), ("content-encoding", "gzip")],
            bomb,
            413,
            "inflates to more than",
        ),
        (
            "POST",
            "/v1/track",
            vec![("authorization", &auth)],
            json!({"userId": "u1"}).to_string().into_bytes(),
            400,
            "track needs an event name",
        ),
        ("POST", "/v1/launch", vec![("authorization", &auth)], b"{}".to_vec(), 404, "no such endpoint"),
        (
            "POST",
            "/batch/",
            vec![],
            json!({"batch": [{"event": "x", "distinct_id": "u"}]}).to_string().into_bytes(),
            401,
            "api_key is missing",
        ),
        (
            "POST",
            "/batch/",
            vec![],
            json!({"api_key": k.write, "batch": [{"event": "x", "distinct_id": "u"}, {"event": "y"}]})
                .to_string()
                .into_bytes(),
            400,
            "batch[1]: distinct_id is missing",
        ),
        (
            "POST",
            "/e/",
            vec![("content-type", "application/x-www-form-urlencoded")],
            b"data=%21%21".to_vec(),
            400,
            "neither JSON nor base64",
        ),
        (
            "POST",
            "/snowplow/nope/com.snowplowanalytics.snowplow/tp2",
            vec![],
            json!({"data": [{"e": "pv"}]}).to_string().into_bytes(),
            403,
            "the write key is invalid",
        ),
        (
            "POST",
            "/com.snowplowanalytics.snowplow/tp2",
            vec![],
            json!({"data": [{"e": "pv"}]}).to_string().into_bytes(),
            401,
            "the write key is missing",
        ),
        ("GET", &pixel_path, vec![], Vec::new(), 400, "unknown event type"),
    ];
    for (method, path, headers, body, status, message) in refused {
        let r = gw.send(method, path, &headers, body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        let error = r.json();
        assert_eq!(error["error_code"], json!(status), "Rakam's error shape: {}", r.text());
        let text = error["error"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{path}: {text:?} should say {message:?}");
    }
    commit(&gw, &k).await;
    let collections = gw.post("/project/collection", &[("read_key", &k.read)], &json!({})).await;
    assert_eq!(collections.json(), json!([]), "nothing was stored: {}", collections.text());

    // Accepted shapes no SDK above sent.
    let single = json!({"writeKey": k.write, "event": "Order Completed", "userId": "u1", "properties": {"total": 1}});
    let r = gw.send("POST", "/v1/track", &[("content-type", "application/json")], single.to_string()).await;
    assert_eq!((r.status, r.json()), (200, json!({"success": true})), "{}", r.text());
    let rudder = gzip(json!({"batch": [{"type": "page", "anonymousId": "a1", "name": "Home"}]}).to_string().as_bytes());
    let form_gzip = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
        ("content-encoding", "gzip"),
    ];
    assert_eq!(gw.send("POST", "/v1/batch", &form_gzip, rudder).await.status, 200);
    use base64::Engine;
    let browser =
        json!([{"event": "$pageview", "properties": {"token": k.write, "distinct_id": "d1", "$current_url": "/x"}}]);
    let data = base64::engine::general_purpose::STANDARD.encode(browser.to_string());
    let form: String = form_urlencoded::Serializer::new(String::new()).append_pair("data", &data).finish();
    let r =
        gw.send("POST", "/e/?compression=base64", &[("content-type", "application/x-www-form-urlencoded")], form).await;
    assert_eq!((r.status, r.json()), (200, json!({"status": 1})), "{}", r.text());
    let packed = gzip(json!({"event": "$autocapture", "distinct_id": "d1", "api_key": k.write}).to_string().as_bytes());
    assert_eq!(
        gw.send("POST", "/i/v0/e/?compression=gzip-js", &[("content-type", "text/plain")], packed).await.status,
        200
    );
    // RudderStack's Python SDK sends batches of up to 4 MB, Segment's events
    // of up to 32 KB.
    let big: Vec<Value> = (0..128)
        .map(|i| {
            json!({"type": "track", "event": "Big", "anonymousId": format!("a{i}"), "messageId": format!("big{i}"),
                        "properties": {"blob": "x".repeat(31 * 1024)}})
        })
        .collect();
    let big = json!({"batch": big}).to_string();
    assert!(big.len() > 4_000_000);
    let packed = [("authorization", auth.as_str()), ("content-encoding", "gzip")];
    let r = gw.send("POST", "/v1/batch", &packed, gzip(big.as_bytes())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let pixel = gw.send("GET", &format!("/i?e=pv&url=%2Fy&aid={}&eid=s1", k.write), &[], Vec::new()).await;
    assert_eq!((pixel.status, pixel.header("content-type")), (200, Some("image/gif")));
    commit(&gw, &k).await;
    assert_eq!(rows(&gw, &k, "SELECT _user, total FROM order_completed").await, [[json!("u1"), json!(1.0)]]);
    let pages = rows(
        &gw,
        &k,
        "SELECT coalesce(_user, 'none'), coalesce(name, _current_url, page_url) FROM pageview ORDER BY 2",
    )
    .await;
    assert_eq!(pages, [[json!("d1"), json!("/x")], [json!("none"), json!("/y")], [json!("a1"), json!("Home")]]);
    assert_eq!(rows(&gw, &k, "SELECT _user FROM autocapture").await, [[json!("d1")]]);
    let big = rows(&gw, &k, "SELECT count(*), min(length(blob)) FROM big").await;
    assert_eq!(big, [[json!(128), json!(31 * 1024)]]);
}

/// Browsers' preflights are answered on every collection, user and SDK
/// endpoint: the origin echoed, credentials allowed (rakam-js sends them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_on_every_ingest_endpoint() {
    let gw = Gateway::start_with(Backend::Sqlite, options()).await;
    let origin = "https://shop.example";
    for path in [
        "/event/collect",
        "/event/batch",
        "/event/bulk",
        "/event/pixel",
        "/user/create",
        "/user/set_properties",
        "/user/set_properties_once",
        "/user/unset_properties",
        "/user/increment_property",
        "/user/batch",
        "/user/batch_operations",
        "/user/merge",
        "/v1/batch",
        "/v1/track",
        "/batch/",
        "/capture/",
        "/e/",
        "/i/v0/e/",
        "/com.snowplowanalytics.snowplow/tp2",
    ] {
        let headers = [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ];
        let r = gw.send("OPTIONS", path, &headers, Vec::new()).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some(origin), "{path}");
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"), "{path}");
        assert!(r.header("access-control-allow-methods").is_some_and(|m| m.contains("POST")), "{path}");
    }
}

/// PostHog's browser SDK (npm `posthog-js`) in Chromium, from a page on
/// another origin: its page view, an event and an identify reach the
/// gateway's `/e/` (gzip bodies it does not label) and are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posthog_js_captures_from_a_browser() {
    let gw = Gateway::start_with(Backend::Sqlite, options()).await;
    let k = gw.create_project("shop").await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser").join("posthog_js.mjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .args([&var("WEIRTEST_NODE_MODULES"), &var("WEIRTEST_CHROMIUM"), gw.base(), &k.write])
        .output()
        .await
        .expect("run node");
    assert!(out.status.success(), "posthog_js.mjs failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let statuses: Vec<&Value> = got["sent"].as_array().expect("sent").iter().map(|s| &s["status"]).collect();
    assert_eq!(statuses, [&json!(200); 3], "{got}");
    commit(&gw, &k).await;
    let page = format!("{}/docs", got["origin"].as_str().expect("origin"));
    let order = rows(&gw, &k, "SELECT total, _current_url FROM order_completed WHERE _id IS NOT NULL").await;
    assert_eq!(order, [[json!(12.5), json!(page)]]);
    assert_eq!(rows(&gw, &k, "SELECT _current_url FROM pageview").await, [[json!(page)]]);
    let anonymous = rows(&gw, &k, "SELECT _user FROM order_completed").await[0][0].clone();
    let mapping = rows(&gw, &k, r#"SELECT id, _user FROM "$anonymous_id_mapping""#).await;
    assert_eq!(mapping, [[anonymous, json!("u1")]]);
    assert_eq!(rows(&gw, &k, "SELECT email FROM users WHERE id = 'u1'").await, [[json!("u1@example.com")]]);
}
