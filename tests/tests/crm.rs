//! `/crm/…` against a real HTTP upstream: npm's `json-server` serving a
//! contacts resource (with `tests/crm/echo.js`, which answers what it was
//! sent), started here per test. Forwarding with each method, the project's
//! key taken out and the configured headers put in, secrets never answered
//! back, the upstream stopped (502) and stalled (504), size caps, keys and
//! projects kept apart; and the project's CRM hooks (the `test-crm-hook`
//! component, through the real binary) denying, rewriting and redacting,
//! under their failure policy.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use weir_tests::broker::free_port;
use weir_tests::{Backend, Gateway, Keys, Options, on_every_backend, plugin_component};

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
    let encoded = call(&gw, "GET", "/crm/echo%3Fx=1", ("read_key", &k.read), "").await;
    assert_eq!(encoded.status, 404, "the path goes on as sent, %3F not a query: {}", encoded.text());

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

/// Uploads the test hook under `name` and sets its configuration. Its
/// deadline is a second unless `params` say otherwise, so that a busy
/// machine does not fail it.
async fn hook(gw: &Gateway, k: &Keys, name: &str, params: &str, config: Value) {
    let params = format!("hook=crm&{params}&timeout_ms=1000");
    let r = gw.upload_plugin(&k.master, name, &params, plugin_component("test-crm-hook")).await;
    assert_eq!((r.status, r.json()["hook"].clone()), (200, json!("crm")), "{}", r.text());
    let r = gw.post("/plugin/config", &[("master_key", &k.master)], &json!({"name": name, "config": config})).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn a_hook_denies_one_path_rewrites_another_and_redacts_answers(backend: Backend) {
    let upstream = Upstream::start().await;
    let gw = Gateway::start_with(backend, Options::default()).await;
    let k = gw.create_project("shop").await;
    let other = gw.create_project("other").await;
    let config = json!({"url": upstream.url(), "headers": {"Authorization": "Bearer s3cret"}});
    assert_eq!(configure(&gw, &k, config.clone()).await.status, 200);
    assert_eq!(configure(&gw, &other, config).await.status, 200);
    hook(
        &gw,
        &k,
        "guard",
        "",
        json!({
        "deny": ["secrets"], "rename": {"people": "contacts"}, "set_headers": {"x-hooked": "yes"},
        "add_to_body": {"source": "weir"}, "redact": ["email"], "header_for_key_kind": "x-key-kind"}),
    )
    .await;
    let read = ("read_key", k.read.as_str());

    // Denied: never forwarded, the hook's status and reason in the
    // gateway's error shape.
    let r = call(&gw, "GET", "/crm/secrets/1", read, "").await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (403, json!(403)), "{}", r.text());
    let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("guard") && error.contains("secrets is closed"), "{error}");

    // Rewritten on the way out (people → contacts), redacted on the way back.
    let r = call(&gw, "GET", "/crm/people/1", read, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"id": 1, "name": "Ann"}));
    assert_eq!(r.header("x-redacted"), Some("1"));
    assert_eq!(r.header("content-length"), Some(r.text().len().to_string().as_str()));
    let r = call(&gw, "GET", &format!("/crm/people?name=Bob&read_key={}", k.read), ("x-other", "1"), "").await;
    assert_eq!(r.json(), json!([{"id": 2, "name": "Bob"}]));

    // What the upstream received: the body and headers the hook made, the
    // configured headers added after it, no key.
    let echo = call(&gw, "POST", "/crm/echo?x=1&write_key=hidden", ("write_key", &k.write), r#"{"a":1}"#).await;
    assert_eq!(echo.status, 200, "{}", echo.text());
    let seen = echo.json();
    assert_eq!((seen["method"].clone(), seen["url"].clone()), (json!("POST"), json!("/echo?x=1")));
    let body: Value = serde_json::from_str(seen["body"].as_str().unwrap_or("null")).expect("a JSON body");
    assert_eq!(body, json!({"a": 1, "source": "weir"}));
    assert_eq!(seen["headers"]["content-length"], body.to_string().len().to_string());
    assert_eq!(seen["headers"]["x-hooked"], "yes");
    assert_eq!(seen["headers"]["x-key-kind"], "write");
    assert_eq!(seen["headers"]["authorization"], "Bearer s3cret");
    assert_eq!(seen["headers"]["x-request-note"], "kept");
    assert!(!seen.to_string().contains(&k.write), "the project's key is not passed on: {seen}");
    let master = call(&gw, "GET", "/crm/echo", ("read_key", &k.master), "").await;
    assert_eq!(master.json()["headers"]["x-key-kind"], "master", "the key's own kind, whatever its name");

    // The hook is the project's only: another project's requests pass as sent.
    let r = call(&gw, "GET", "/crm/contacts/1", ("read_key", &other.read), "").await;
    assert_eq!(r.json()["email"], "ann@example.com");
    assert_eq!(call(&gw, "GET", "/crm/secrets/1", ("read_key", &other.read), "").await.status, 404);

    // Listed with its calls; disabled, it is out of the way.
    let listed = gw.post("/plugin/list", &[("master_key", &k.master)], &json!({})).await.json();
    assert_eq!(listed[0]["hook"], "crm");
    assert!(listed[0]["stats"]["calls"].as_u64().is_some_and(|n| n >= 8), "{listed}");
    let r = gw.post("/plugin/disable", &[("master_key", &k.master)], &json!({"name": "guard"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(call(&gw, "GET", "/crm/secrets/1", read, "").await.status, 404, "json-server's own 404");
    assert_eq!(call(&gw, "GET", "/crm/contacts/1", read, "").await.json()["email"], "ann@example.com");
}

/// Hooks in order on the way out and in reverse on the way back; an answer
/// denied; a failing hook under `on_error`; bodies past the hooks' cap;
/// `/plugin/test` on requests and answers.
async fn hooks_chain_fail_by_their_policy_and_are_tested_without_forwarding(backend: Backend) {
    let upstream = Upstream::start().await;
    let options = Options { env: vec![("WEIR_CRM__HOOK_BODY_BYTES".into(), "2000".into())], ..Options::default() };
    let gw = Gateway::start_with(backend, options).await;
    let k = gw.create_project("shop").await;
    assert_eq!(configure(&gw, &k, json!({"url": upstream.url(), "timeout_ms": 2000})).await.status, 200);
    let read = ("read_key", k.read.as_str());
    // First renames people → folks, second folks → contacts: order matters.
    hook(&gw, &k, "first", "order=1", json!({"rename": {"people": "folks"}, "redact": ["email"]})).await;
    hook(&gw, &k, "second", "order=2", json!({"rename": {"folks": "contacts"}, "deny_answers_from": 404})).await;
    let r = call(&gw, "GET", "/crm/people/2", read, "").await;
    assert_eq!((r.status, r.json()), (200, json!({"id": 2, "name": "Bob"})), "{}", r.text());
    // The second hook (last out, first back) turns a 404 into its denial.
    let r = call(&gw, "GET", "/crm/people/99", read, "").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("second") && r.text().contains("answered 404 to contacts/99"), "{}", r.text());

    // Bodies the hooks would see whole, past their cap.
    let r = call(&gw, "POST", "/crm/echo", ("write_key", &k.write), &"x".repeat(3000)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("crm.hook_body_bytes"), "{}", r.text());
    let r = call(&gw, "GET", "/crm/big?bytes=5000", read, "").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("crm.hook_body_bytes"), "{}", r.text());

    // A failing hook: refused by default (on_error=reject), passed over
    // with on_error=pass.
    hook(&gw, &k, "second", "order=2", json!({"fail": "request"})).await;
    let r = call(&gw, "GET", "/crm/people/2", read, "").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("second") && r.text().contains("trapped"), "{}", r.text());
    hook(&gw, &k, "second", "order=2&on_error=pass&timeout_ms=50", json!({"fail": "response", "spin": true})).await;
    let r = call(&gw, "GET", "/crm/contacts/2", read, "").await;
    assert_eq!((r.status, r.json()), (200, json!({"id": 2, "name": "Bob"})), "passed over, the first still ran");
    let second = gw.post("/plugin/get", &[("master_key", &k.master)], &json!({"name": "second"})).await.json();
    assert!(second["stats"]["last_failure"].as_str().is_some_and(|f| f.contains("deadline")), "{second}");

    // /plugin/test runs either end without forwarding anything.
    let test = |body: Value| {
        let gw = &gw;
        let master = k.master.clone();
        async move { gw.post("/plugin/test", &[("master_key", &master)], &body).await.json() }
    };
    let denied =
        test(json!({"name": "first", "config": {"deny": ["secrets"]}, "request": {"path": "secrets/1"}})).await;
    assert_eq!(
        (denied["outcome"].clone(), denied["status"].clone(), denied["message"].clone()),
        (json!("deny"), json!(403), json!("secrets is closed"))
    );
    let changed = test(json!({"name": "first", "request": {"method": "POST", "path": "people/1",
        "headers": [["content-type", "application/json"]], "body": "{}"}}))
    .await;
    assert_eq!(
        (changed["outcome"].clone(), changed["request"]["path"].clone()),
        (json!("forward-changed"), json!("folks/1"))
    );
    let same = test(json!({"name": "first", "request": {"path": "contacts"}})).await;
    assert_eq!(same["outcome"], "forward", "{same}");
    assert_eq!(same["log"]["lines"][0]["message"], "GET contacts for project shop");
    let answer = test(json!({"name": "first", "request": {"path": "contacts/1"},
        "response": {"status": 200, "body": "{\"id\":1,\"email\":\"a@b\"}"}}))
    .await;
    assert_eq!(answer["outcome"], "answer-changed", "{answer}");
    assert_eq!(answer["response"]["body"], r#"{"id":1}"#);
    let failed = test(json!({"name": "second", "config": {"fail": "request"}, "request": {"path": "x"}})).await;
    assert!(failed["failure"].as_str().is_some_and(|f| f.contains("trapped")), "{failed}");

    // The same from the command line.
    let output = tokio::process::Command::new(weir_tests::weir_binary())
        .args(["plugin", "test", "first", "--url", gw.base(), "--master-key", &k.master])
        .args(["--request", r#"{"path": "people/3"}"#, "--response", r#"{"status": 200, "body": "{\"email\": 1}"}"#])
        .output()
        .await
        .expect("run weir plugin test");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("the answer as JSON");
    assert_eq!((answer["outcome"].clone(), answer["response"]["body"].clone()), (json!("answer-changed"), json!("{}")));
}

/// Stopped: 502; stalled: 504 within its time; bodies past the cap.
async fn an_upstream_down_slow_or_too_large_is_answered_plainly(backend: Backend) {
    let upstream = Upstream::start().await;
    let options = Options { env: vec![("WEIR_CRM__MAX_BODY_BYTES".into(), "100000".into())], ..Options::default() };
    let gw = Gateway::start_with(backend, options).await;
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

on_every_backend!(
    requests_are_forwarded_with_the_configured_headers,
    bad_configurations_are_refused,
    an_upstream_down_slow_or_too_large_is_answered_plainly,
    a_hook_denies_one_path_rewrites_another_and_redacts_answers,
    hooks_chain_fail_by_their_policy_and_are_tested_without_forwarding,
);
