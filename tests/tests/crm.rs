//! `/crm/…` against a real HTTP upstream: npm's `json-server` serving a
//! contacts resource (with `tests/crm/echo.js`, which answers what it was
//! sent), started here per test. Forwarding with each method, the project's
//! key taken out and the configured headers put in, secrets never answered
//! back, the upstream stopped (502) and stalled (504), size caps, keys and
//! projects kept apart.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use weir_tests::broker::free_port;
use weir_tests::{Backend, Gateway, Keys, Options, on_every_backend};

/// A json-server on a port of its own, with a contacts resource.
struct Upstream {
    child: tokio::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Upstream {
    async fn start() -> Upstream {
        let modules = std::env::var("WEIRTEST_NODE_MODULES")
            .unwrap_or_else(|_| panic!("WEIRTEST_NODE_MODULES is not set: run the suite with scripts/test.sh"));
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db.json");
        let contacts = json!({"contacts": [
            {"id": 1, "name": "Ann", "email": "ann@example.com"},
            {"id": 2, "name": "Bob", "email": "bob@example.com"}]});
        std::fs::write(&db, contacts.to_string()).expect("db");
        let echo: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("crm").join("echo.js");
        let port = free_port();
        let child = tokio::process::Command::new(Path::new(&modules).join(".bin").join("json-server"))
            .arg(&db)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--middlewares"])
            .arg(echo)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start json-server");
        let upstream = Upstream { child, port, _dir: dir };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return upstream;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("json-server did not listen on {port}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn signal(&self, which: &str) {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill").arg(which).arg(pid.to_string()).status().expect("kill");
        assert!(status.success());
    }
}

async fn configure(gw: &Gateway, k: &Keys, body: Value) -> weir_tests::Response {
    gw.post("/crm/config", &[("master_key", &k.master)], &body).await
}

async fn call(gw: &Gateway, method: &str, path: &str, key: (&str, &str), body: &str) -> weir_tests::Response {
    let headers = [key, ("content-type", "application/json"), ("x-request-note", "kept")];
    gw.send(method, path, &headers, body.to_owned()).await
}

async fn requests_are_forwarded_with_the_configured_headers(backend: Backend) {
    let upstream = Upstream::start().await;
    let gw = Gateway::start_with(backend, Options::default()).await;
    let k = gw.create_project("shop").await;
    let r = call(&gw, "GET", "/crm/contacts", ("read_key", &k.read), "").await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (404, json!(404)), "no upstream yet: {}", r.text());

    let config = json!({"url": upstream.url(), "headers": {"Authorization": "Bearer s3cret", "X-Tenant": "shop"},
                        "timeout_ms": 2000});
    assert_eq!(configure(&gw, &Keys { master: k.read.clone(), ..k.clone() }, config.clone()).await.status, 403);
    let r = configure(&gw, &k, config).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("s3cret"), "secrets are never answered back: {}", r.text());
    let shown = gw.send("GET", "/crm/config", &[("master_key", &k.master)], "").await;
    assert_eq!(
        shown.json(),
        json!({"url": upstream.url(), "headers": ["authorization", "x-tenant"], "timeout_ms": 2000})
    );

    // Each method, the query kept but for the key.
    let r = call(&gw, "GET", &format!("/crm/contacts?name=Ann&read_key={}", k.read), ("x-other", "1"), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!([{"id": 1, "name": "Ann", "email": "ann@example.com"}]));
    let created = call(&gw, "POST", "/crm/contacts", ("write_key", &k.write), r#"{"name":"Cat"}"#).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].clone();
    let path = format!("/crm/contacts/{id}");
    let r = call(&gw, "PATCH", &path, ("write_key", &k.write), r#"{"email":"cat@example.com"}"#).await;
    assert_eq!(r.json()["email"], "cat@example.com");
    assert_eq!(call(&gw, "GET", &path, ("read_key", &k.read), "").await.json()["name"], "Cat");
    assert_eq!(call(&gw, "DELETE", &path, ("master_key", &k.master), "").await.status, 200);
    assert_eq!(call(&gw, "GET", &path, ("read_key", &k.read), "").await.status, 404, "the upstream's own 404");

    // What the upstream received: the configured headers, the caller's
    // other headers, and no key anywhere.
    let echo = call(&gw, "PUT", "/crm/echo?x=1&write_key=hidden", ("write_key", &k.write), r#"{"a":1}"#).await;
    let seen = echo.json();
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["url"], "/echo?x=1");
    assert_eq!(seen["body"], r#"{"a":1}"#);
    assert_eq!(seen["headers"]["authorization"], "Bearer s3cret");
    assert_eq!(seen["headers"]["x-tenant"], "shop");
    assert_eq!(seen["headers"]["x-request-note"], "kept");
    assert!(!seen.to_string().contains(&k.write), "the project's key is not passed on: {seen}");

    // Keys: reads take a read key, writes a write key, both the master.
    assert_eq!(call(&gw, "POST", "/crm/contacts", ("read_key", &k.read), "{}").await.status, 403);
    assert_eq!(call(&gw, "GET", "/crm/contacts", ("write_key", &k.write), "").await.status, 403);
    assert_eq!(call(&gw, "GET", "/crm/contacts", ("read_key", "nonsense"), "").await.status, 403);
    assert_eq!(gw.send("GET", "/crm/contacts", &[], "").await.status, 401);
    assert_eq!(call(&gw, "GET", "/crm/contacts", ("master_key", &k.master), "").await.status, 200);

    // Another project reaches only its own upstream.
    let other = gw.create_project("other").await;
    assert_eq!(call(&gw, "GET", "/crm/contacts", ("read_key", &other.read), "").await.status, 404);
    let theirs = gw.send("GET", "/crm/config", &[("master_key", &other.master)], "").await;
    assert_eq!(theirs.status, 404);
    assert!(!theirs.text().contains(&upstream.url()));
}

async fn bad_configurations_are_refused(backend: Backend) {
    let gw = Gateway::start_with(backend, Options::default()).await;
    let k = gw.create_project("shop").await;
    for (body, naming) in [
        (json!({"url": "ftp://example.com"}), "http"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "http://127.0.0.1:1", "timeout_ms": 0}), "timeout_ms"),
        (json!({"url": "http://127.0.0.1:1", "timeout_ms": 999_999_999}), "timeout_ms"),
        (json!({"url": "http://127.0.0.1:1", "headers": {"bad header": "x"}}), "header"),
        (json!({"url": "http://127.0.0.1:1", "other": 1}), "other"),
    ] {
        let r = configure(&gw, &k, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.json()["error"].as_str().is_some_and(|e| e.contains(naming)), "{body}: {}", r.text());
    }
}

on_every_backend!(requests_are_forwarded_with_the_configured_headers, bad_configurations_are_refused);

/// Stopped: 502; stalled: 504 within its time; bodies past the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_down_slow_or_too_large_is_answered_plainly() {
    let upstream = Upstream::start().await;
    let options = Options { env: vec![("WEIR_CRM__MAX_BODY_BYTES".into(), "100000".into())], ..Options::default() };
    let gw = Gateway::start_with(Backend::Sqlite, options).await;
    let k = gw.create_project("shop").await;
    let config = json!({"url": upstream.url(), "timeout_ms": 1000});
    assert_eq!(configure(&gw, &k, config).await.status, 200);
    let read = ("read_key", k.read.as_str());

    let r = call(&gw, "GET", "/crm/big?bytes=1000", read, "").await;
    assert_eq!((r.status, r.text().len()), (200, 1000));
    let r = call(&gw, "GET", "/crm/big?bytes=200000", read, "").await;
    assert_eq!(r.status, 502, "an answer past the cap: {}", r.text());
    assert!(r.json()["error"].as_str().is_some_and(|e| e.contains("crm.max_body_bytes")));
    let large = "x".repeat(200_000);
    let r = call(&gw, "POST", "/crm/echo", ("write_key", &k.write), &large).await;
    assert_eq!(r.status, 413, "a request past the cap: {}", r.text());

    upstream.signal("-STOP");
    let started = std::time::Instant::now();
    let r = call(&gw, "GET", "/crm/contacts", read, "").await;
    upstream.signal("-CONT");
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error_code"], 504);
    assert!(started.elapsed() < Duration::from_secs(5), "answered at its time, not later: {:?}", started.elapsed());
    assert_eq!(call(&gw, "GET", "/crm/contacts", read, "").await.status, 200, "back once it answers");

    drop(upstream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = call(&gw, "GET", "/crm/contacts", read, "").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.json()["error"].as_str().is_some_and(|e| e.contains("cannot be reached")), "{}", r.text());
}
