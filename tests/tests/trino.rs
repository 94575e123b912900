//! The Trino client protocol served by the gateway (`/v1/statement`),
//! through the real binary: the Python clients from PyPI (`trino` with its
//! DB-API and SQLAlchemy dialect, `presto-python-client`) and npm's
//! `trino-client` and `presto-client`; the protocol's pages, retries,
//! errors, session headers and prepared statements over plain HTTP;
//! cancelling (both ways) and abandoned statements; keys and projects kept
//! apart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_tests::{Backend, Gateway, Keys, Options, goes_quiet, on_every_backend};

fn env(pairs: &[(&str, &str)]) -> Options {
    Options { env: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(), ..Options::default() }
}

async fn commit(gw: &Gateway, k: &Keys) {
    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn send(gw: &Gateway, k: &Keys, events: Vec<(&str, Value)>) {
    let events: Vec<(String, Value)> = events.into_iter().map(|(c, p)| (c.to_owned(), p)).collect();
    for chunk in events.chunks(500) {
        assert!(gw.client.batch(&k.write, chunk).await.expect("batch").is_stored());
    }
    commit(gw, k).await;
}

/// Two projects: `shop` with page views and clicks, `other` with a page
/// view of its own that `shop` must never see.
async fn two_projects(gw: &Gateway) -> (Keys, Keys) {
    let (shop, other) = (gw.create_project("shop").await, gw.create_project("other").await);
    send(
        gw,
        &shop,
        vec![
            ("pageview", json!({"url": "/a", "n": 1.5, "tags": ["x", "y"], "_time": 1_700_000_000_000_i64})),
            ("pageview", json!({"url": "/b", "n": 2, "_time": 1_700_000_001_000_i64})),
            ("click", json!({"button": "buy", "_time": 1_700_000_002_000_i64})),
        ],
    )
    .await;
    send(gw, &other, vec![("pageview", json!({"url": "/secret", "n": 99}))]).await;
    (shop, other)
}

fn script_output(out: &std::process::Output, name: &str) -> Value {
    assert!(
        out.status.success(),
        "{name} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{name}: {e}: {text}"))
}

async fn clients_query_a_project_through_the_trino_protocol(backend: Backend) {
    // One query slot for the project: a statement that was not really
    // cancelled would hold it for minutes.
    let options = env(&[("WEIR_QUERY__PROJECT_CONCURRENCY", "1"), ("WEIR_QUERY__TIMEOUT_S", "300")]);
    let gw = Gateway::start_with(backend, options).await;
    let (shop, _) = two_projects(&gw).await;
    let python = std::env::var("WEIRTEST_PYTHON")
        .unwrap_or_else(|_| panic!("WEIRTEST_PYTHON is not set: run the suite with scripts/test.sh"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("trino_clients.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([gw.base(), "shop", &shop.read, "other"])
        .output()
        .await
        .expect("run python");
    let got = script_output(&out, "trino_clients.py");

    // What /query/execute answers for the same query, as the Python
    // client reads it.
    let rakam = gw
        .post(
            "/query/execute",
            &[("read_key", &shop.read)],
            &json!({"query": "SELECT url, n FROM pageview ORDER BY url"}),
        )
        .await;
    assert_eq!(rakam.json()["result"], json!([["/a", 1.5], ["/b", 2.0]]), "{}", rakam.text());
    assert_eq!(
        got["rows"],
        json!([["/a", 1.5, ["x", "y"], "2023-11-14T22:13:20+00:00"], ["/b", 2.0, null, "2023-11-14T22:13:21+00:00"]])
    );
    assert_eq!(
        got["description"],
        json!([
            ["url", "varchar"],
            ["n", "double"],
            ["tags", "array(varchar)"],
            ["_time", "timestamp(6) with time zone"]
        ])
    );
    assert_eq!(got["typed"], json!([["1.25", "2024-02-03", "2024-02-03T04:05:06.789000", "bytes:6869"]]));
    assert_eq!(got["typed_description"], json!(["decimal(10,2)", "date", "timestamp(9)", "varbinary"]));
    assert_eq!(got["qualified"], json!([[2]]), "weir.shop.pageview and shop.click are the project's tables");
    assert_eq!(got["params"], json!([["/b"]]), "EXECUTE IMMEDIATE … USING");
    assert_eq!(got["params_quoted"], json!([["it's", null]]));
    assert_eq!(got["legacy_params"], json!([["/a"]]), "PREPARE and X-Trino-Prepared-Statement");
    assert_eq!(got["show_tables"], json!([["_all"], ["click"], ["pageview"], ["users"]]));
    assert_eq!(got["show_schemas"], json!([["information_schema"], ["shop"]]));
    assert_eq!(got["show_catalogs"], json!([["weir"]]));
    assert_eq!(
        got["describe"],
        json!([
            ["_time", "timestamp(6) with time zone", "", null],
            ["n", "double", "", null],
            ["tags", "array(varchar)", "", null],
            ["url", "varchar", "", null]
        ])
    );
    assert_eq!(
        got["show_columns"],
        json!([["_time", "timestamp(6) with time zone", "", null], ["button", "varchar", "", null]])
    );
    let listed = got["information_tables"].as_array().expect("tables");
    assert!(listed.contains(&json!(["shop", "pageview", "BASE TABLE"])), "{listed:?}");
    assert!(listed.iter().all(|t| t[0] == "shop" || t[0] == "information_schema"), "only this project: {listed:?}");
    assert_eq!(got["use_schema"], "information_schema", "USE answers X-Trino-Set-Schema");
    assert_eq!(
        got["jdbc_tables"],
        json!([["_all", "VIEW"], ["click", "BASE TABLE"], ["pageview", "BASE TABLE"], ["users", "BASE TABLE"]])
    );
    assert_eq!(
        got["jdbc_columns"],
        json!([["_time", "timestamp(6) with time zone", 2014], ["button", "varchar", 12]]),
        "JDBC's metadata, java.sql.Types codes"
    );

    let errors = &got["errors"];
    let name = |which: &str| errors[which]["name"].clone();
    assert_eq!(errors["syntax"]["location"], json!([1, 1]), "{errors}");
    for (which, expected) in [
        ("syntax", "SYNTAX_ERROR"),
        ("missing_table", "TABLE_NOT_FOUND"),
        ("missing_column", "COLUMN_NOT_FOUND"),
        ("other_project", "PERMISSION_DENIED"),
        ("other_schema", "PERMISSION_DENIED"),
        ("other_show", "SCHEMA_NOT_FOUND"),
        ("other_use", "SCHEMA_NOT_FOUND"),
        ("other_catalog", "CATALOG_NOT_FOUND"),
        ("describe_missing", "TABLE_NOT_FOUND"),
        ("not_a_query", "PERMISSION_DENIED"),
    ] {
        assert_eq!(name(which), json!(expected), "{which}: {}", errors[which]);
        assert_eq!(errors[which]["type"], "USER_ERROR", "{which}");
    }
    assert!(!got.to_string().contains("/secret"), "nothing of the other project: {got}");

    let cancel = &got["cancel"];
    assert!(cancel["outcome"]["error"].as_str().is_some_and(|e| e.contains("USER_CANCELED")), "{cancel}");
    assert_eq!(cancel["worker_done"], true);
    assert_eq!(cancel["after"], json!([[1]]), "the slot the cancelled statement held is free: {cancel}");

    let sa = &got["sqlalchemy"];
    assert_eq!(sa["schemas"], json!(["information_schema", "shop"]));
    assert_eq!(sa["tables"], json!(["click", "pageview", "users"]));
    assert_eq!(
        sa["columns"],
        json!([
            ["_time", "TIMESTAMP", true, null],
            ["n", "DOUBLE", true, null],
            ["tags", "ARRAY", true, null],
            ["url", "VARCHAR", true, null]
        ])
    );
    assert_eq!(
        (sa["has_click"].clone(), sa["has_nope"].clone(), sa["has_other"].clone()),
        (json!(true), json!(false), json!(false))
    );
    assert_eq!(sa["comment"], json!({"text": null}), "system.metadata.table_comments");
    assert_eq!(sa["select"], json!([["/b", 2.0]]));
    assert_eq!(got["presto"]["rows"], json!([["/a", 1.5], ["/b", 2.0]]));
    assert_eq!(got["presto"]["description"], json!([["url", "varchar"], ["n", "double"]]));
    assert_eq!(got["presto"]["other"], "PERMISSION_DENIED");

    let modules = std::env::var("WEIRTEST_NODE_MODULES")
        .unwrap_or_else(|_| panic!("WEIRTEST_NODE_MODULES is not set: run the suite with scripts/test.sh"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("trino").join("clients.js");
    let out = tokio::process::Command::new("node")
        .env("NODE_PATH", modules)
        .arg(script)
        .args([gw.base(), "shop", &shop.read, "other"])
        .output()
        .await
        .expect("run node");
    let got = script_output(&out, "clients.js");
    for client in ["trino", "presto"] {
        let answer = &got[client];
        assert_eq!(answer["rows"], json!([["/a", 1.5], ["/b", 2]]), "{client}: {answer}");
        assert_eq!(answer["columns"], json!([["url", "varchar"], ["n", "double"]]), "{client}");
        assert_eq!(answer["state"], "FINISHED", "{client}");
        assert_eq!(got[format!("{client}_other")]["error"], "PERMISSION_DENIED", "{client}: {got}");
    }
    assert_eq!(got["trino_tables"]["rows"], json!([["_all"], ["click"], ["pageview"], ["users"]]));
}

/// A response's body as JSON.
trait JsonBody {
    fn value(self) -> impl std::future::Future<Output = Value>;
}

impl JsonBody for reqwest::Response {
    async fn value(self) -> Value {
        let bytes = self.bytes().await.expect("body");
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
    }
}

/// A client of the protocol over plain HTTP.
struct Protocol {
    http: reqwest::Client,
    base: String,
}

fn basic(key: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("analyst:{key}")))
}

impl Protocol {
    fn new(gw: &Gateway) -> Protocol {
        Protocol { http: reqwest::Client::new(), base: gw.base().to_owned() }
    }

    async fn post(&self, key: &str, sql: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/v1/statement", self.base))
            .header("authorization", basic(key))
            .body(sql.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("POST /v1/statement")
    }

    async fn get(&self, key: &str, uri: &str) -> reqwest::Response {
        self.http.get(uri).header("authorization", basic(key)).send().await.expect("GET nextUri")
    }

    async fn delete(&self, key: &str, uri: &str) -> reqwest::Response {
        self.http.delete(uri).header("authorization", basic(key)).send().await.expect("DELETE")
    }

    /// Every answer of a statement, from the POST to the one without a
    /// `nextUri`, and the headers of the last.
    async fn walk(&self, key: &str, sql: &str, headers: &[(&str, &str)]) -> (Vec<Value>, reqwest::header::HeaderMap) {
        let first = self.post(key, sql, headers).await;
        assert_eq!(first.status(), 200);
        let mut answers = vec![first.value().await];
        let mut last_headers = reqwest::header::HeaderMap::new();
        while let Some(next) = answers.last().and_then(|a| a["nextUri"].as_str()).map(str::to_owned) {
            let r = self.get(key, &next).await;
            assert_eq!(r.status(), 200, "{next}");
            last_headers = r.headers().clone();
            answers.push(r.value().await);
            assert!(answers.len() < 10_000, "the statement never ended");
        }
        (answers, last_headers)
    }
}

fn rows_of(answers: &[Value]) -> Vec<Value> {
    answers.iter().flat_map(|a| a["data"].as_array().cloned().unwrap_or_default()).collect()
}

async fn pages_retries_and_the_protocol_s_shapes(backend: Backend) {
    let gw = Gateway::start_with(backend, env(&[("WEIR_TRINO__PAGE_BYTES", "200")])).await;
    let (shop, _) = two_projects(&gw).await;
    send(&gw, &shop, (0..300).map(|i| ("c", json!({"i": i}))).collect()).await;
    let p = Protocol::new(&gw);

    let info: Value = p.http.get(format!("{}/v1/info", p.base)).send().await.expect("info").value().await;
    assert_eq!((info["coordinator"].clone(), info["starting"].clone()), (json!(true), json!(false)), "{info}");
    assert!(info["nodeVersion"]["version"].is_string(), "{info}");

    // A chunked body; the first answer is queued, without columns or data.
    let chunks =
        futures::stream::iter(["SELECT i FROM c ", "ORDER BY i"].map(|c| Ok::<_, std::io::Error>(c.to_owned())));
    let first = p
        .http
        .post(format!("{}/v1/statement", p.base))
        .header("authorization", basic(&shop.read))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("POST");
    assert_eq!(first.status(), 200);
    let first: Value = first.value().await;
    assert_eq!(first["stats"]["state"], "QUEUED", "{first}");
    assert!(first.get("columns").is_none() && first.get("data").is_none(), "{first}");
    assert!(first["infoUri"].as_str().is_some_and(|u| u.contains(first["id"].as_str().expect("id"))));
    let mut answers = vec![first];
    let mut retried = false;
    while let Some(next) = answers.last().and_then(|a| a["nextUri"].as_str()).map(str::to_owned) {
        let answer: Value = p.get(&shop.read, &next).await.value().await;
        if answer.get("data").is_some() && !retried {
            // The same token again: the same page (a client's retry).
            let again: Value = p.get(&shop.read, &next).await.value().await;
            assert_eq!(again["data"], answer["data"]);
            assert_eq!(again["nextUri"], answer["nextUri"]);
            retried = true;
        }
        answers.push(answer);
    }
    let data_pages: Vec<&Value> = answers.iter().filter(|a| a.get("data").is_some()).collect();
    assert!(data_pages.len() > 5, "200-byte pages: {}", data_pages.len());
    for page in &data_pages {
        assert_eq!(page["columns"][0]["name"], "i", "columns on every data page");
        assert_eq!(page["columns"][0]["typeSignature"]["rawType"], "double");
    }
    let last = answers.last().expect("answers");
    assert_eq!(last["stats"]["state"], "FINISHED");
    let expected: Vec<Value> = (0..300).map(|i| json!(f64::from(i))).map(|v| json!([v])).collect();
    assert_eq!(rows_of(&answers), expected);
    for field in [
        "state",
        "queued",
        "scheduled",
        "nodes",
        "totalSplits",
        "queuedSplits",
        "runningSplits",
        "completedSplits",
        "cpuTimeMillis",
        "wallTimeMillis",
        "queuedTimeMillis",
        "elapsedTimeMillis",
        "processedRows",
        "processedBytes",
        "peakMemoryBytes",
        "spilledBytes",
    ] {
        assert!(last["stats"].get(field).is_some(), "stats.{field}: {last}");
    }
    assert_eq!(last["stats"]["processedRows"], 300);
    // A token from before the last is gone.
    let old = answers[1]["nextUri"].as_str().expect("a nextUri").to_owned();
    assert_eq!(p.get(&shop.read, &old).await.status(), 410);

    // An empty statement is refused in the gateway's JSON error shape.
    let empty = p.post(&shop.read, "  ", &[]).await;
    assert_eq!(empty.status(), 400);
    let body = empty.value().await;
    assert_eq!((body["error"].clone(), body["error_code"].clone()), (json!("SQL statement is empty"), json!(400)));

    // Errors in Trino's shape, the statement FAILED.
    let (answers, _) = p.walk(&shop.read, "SELECT count(*) FROM pageview WHERE", &[]).await;
    let last = answers.last().expect("answers");
    assert_eq!(last["stats"]["state"], "FAILED");
    let error = &last["error"];
    assert_eq!(
        (error["errorName"].clone(), error["errorType"].clone(), error["errorCode"].clone()),
        (json!("SYNTAX_ERROR"), json!("USER_ERROR"), json!(1)),
        "{error}"
    );
    let failure = &error["failureInfo"];
    assert!(failure["type"].is_string() && failure["message"] == error["message"], "{error}");
    assert!(failure["suppressed"].is_array() && failure["stack"].is_array(), "{error}");

    // USE answers the session's new catalog and schema in the client's
    // own headers.
    let (_, headers) = p.walk(&shop.read, "USE information_schema", &[]).await;
    assert_eq!(headers.get("x-trino-set-schema").and_then(|v| v.to_str().ok()), Some("information_schema"));
    assert_eq!(headers.get("x-trino-set-catalog").and_then(|v| v.to_str().ok()), Some("weir"));
    let (answers, headers) = p.walk(&shop.read, "USE weir.shop", &[("x-presto-user", "analyst")]).await;
    assert_eq!(headers.get("x-presto-set-schema").and_then(|v| v.to_str().ok()), Some("shop"));
    assert_eq!(answers.last().expect("answers")["updateType"], "USE");

    // PREPARE answers the statement; EXECUTE reads it from the header.
    let (_, headers) = p.walk(&shop.read, "PREPARE q FROM SELECT i FROM c WHERE i = ?", &[]).await;
    let added =
        headers.get("x-trino-added-prepare").and_then(|v| v.to_str().ok()).expect("X-Trino-Added-Prepare").to_owned();
    let (answers, _) = p.walk(&shop.read, "EXECUTE q USING 7", &[("x-trino-prepared-statement", &added)]).await;
    assert_eq!(rows_of(&answers), vec![json!([7.0])]);
    let (answers, _) = p.walk(&shop.read, "EXECUTE q USING 7, 8", &[("x-trino-prepared-statement", &added)]).await;
    assert_eq!(answers.last().expect("answers")["error"]["errorName"], "INVALID_PARAMETER_USAGE");
    let (answers, _) = p.walk(&shop.read, "EXECUTE q USING 7", &[]).await;
    assert_eq!(answers.last().expect("answers")["error"]["errorName"], "NOT_FOUND", "no such prepared statement");
    let (_, headers) = p.walk(&shop.read, "DEALLOCATE PREPARE q", &[]).await;
    assert_eq!(headers.get("x-trino-deallocated-prepare").and_then(|v| v.to_str().ok()), Some("q"));
}

/// Nine generated tables of ten rows crossed: minutes of work.
fn slow_query() -> String {
    let ten = "(SELECT x FROM (VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)) t(x))";
    let from: Vec<String> = "abcdefghi".chars().map(|n| format!("{ten} {n}")).collect();
    format!("SELECT sum(a.x * b.x + c.x * d.x + e.x * f.x + g.x * h.x + i.x) FROM {}", from.join(", "))
}

async fn cancelling_and_abandoned_statements(backend: Backend) {
    let options = env(&[
        ("WEIR_QUERY__PROJECT_CONCURRENCY", "1"),
        ("WEIR_QUERY__TIMEOUT_S", "300"),
        ("WEIR_TRINO__ABANDON_AFTER_S", "2"),
    ]);
    let gw = Gateway::start_with(backend, options).await;
    let (shop, _) = two_projects(&gw).await;
    let p = Protocol::new(&gw);
    let slow = slow_query();

    for how in ["nextUri", "query"] {
        let first: Value = p.post(&shop.read, &slow, &[]).await.value().await;
        let running: Value = p.get(&shop.read, first["nextUri"].as_str().expect("nextUri")).await.value().await;
        assert_eq!(running["stats"]["state"], "RUNNING", "{running}");
        let next = running["nextUri"].as_str().expect("nextUri").to_owned();
        let uri = if how == "nextUri" {
            next.clone()
        } else {
            format!("{}/v1/query/{}", p.base, first["id"].as_str().expect("id"))
        };
        assert_eq!(p.delete(&shop.read, &uri).await.status(), 204, "{how}");
        let answer: Value = p.get(&shop.read, &next).await.value().await;
        assert_eq!(answer["stats"]["state"], "FAILED", "{how}: {answer}");
        assert_eq!(answer["error"]["errorName"], "USER_CANCELED", "{how}");
        // The project's only query slot is free again.
        let started = Instant::now();
        let (answers, _) = p.walk(&shop.read, "SELECT count(*) FROM pageview", &[]).await;
        assert_eq!(rows_of(&answers), vec![json!([2])], "{how}");
        assert!(started.elapsed() < Duration::from_secs(60), "{how}: waited {:?}", started.elapsed());
        goes_quiet(gw.pid()).await;
    }

    // Nobody asks for this one's pages: it is abandoned.
    let first: Value = p.post(&shop.read, &slow, &[]).await.value().await;
    let next = first["nextUri"].as_str().expect("nextUri").to_owned();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(p.get(&shop.read, &next).await.status(), 404, "an abandoned statement is forgotten");
    let r =
        gw.post("/query/execute", &[("read_key", &shop.read)], &json!({"query": "SELECT count(*) FROM click"})).await;
    assert_eq!(r.json()["result"], json!([[1]]), "{}", r.text());
    goes_quiet(gw.pid()).await;
}

async fn keys_and_projects_stay_apart(backend: Backend) {
    let gw = Gateway::start_with(backend, Options::default()).await;
    let (shop, other) = two_projects(&gw).await;
    let p = Protocol::new(&gw);
    let url = format!("{}/v1/statement", p.base);
    let none = p.http.post(&url).body("SELECT 1").send().await.expect("POST");
    assert_eq!(none.status(), 401);
    assert!(none.headers().get("www-authenticate").is_some_and(|v| v.to_str().is_ok_and(|v| v.starts_with("Basic"))));
    let body: Value = none.value().await;
    assert_eq!(body["error_code"], 401, "{body}");
    for key in ["wrong", shop.write.as_str(), shop.master.as_str()] {
        assert_eq!(p.post(key, "SELECT 1", &[]).await.status(), 401, "only read keys");
    }
    // The read_key header works as well as Basic.
    let r = p.http.post(&url).header("read_key", &shop.read).body("SELECT 1").send().await.expect("POST");
    assert_eq!(r.status(), 200);

    // A statement is its project's alone: another key neither reads nor
    // cancels it.
    let first: Value = p.post(&shop.read, "SELECT url FROM pageview ORDER BY url", &[]).await.value().await;
    let next = first["nextUri"].as_str().expect("nextUri").to_owned();
    let id = first["id"].as_str().expect("id").to_owned();
    assert_eq!(p.get(&other.read, &next).await.status(), 404);
    assert_eq!(p.delete(&other.read, &next).await.status(), 404);
    assert_eq!(p.delete(&other.read, &format!("{}/v1/query/{id}", p.base)).await.status(), 404);
    let mut answers = vec![first];
    while let Some(next) = answers.last().and_then(|a| a["nextUri"].as_str()).map(str::to_owned) {
        answers.push(p.get(&shop.read, &next).await.value().await);
    }
    assert_eq!(rows_of(&answers), vec![json!(["/a"]), json!(["/b"])]);

    // The other project's tables, by every name, are out of reach; its
    // metadata is not listed.
    for sql in [
        "SELECT * FROM weir.other.pageview",
        "SELECT * FROM other.pageview",
        "SELECT * FROM weir.other.information_schema.tables",
        "SELECT * FROM system.runtime.queries",
        "SHOW TABLES FROM other",
        "SHOW COLUMNS FROM other.pageview",
        "EXECUTE IMMEDIATE 'SELECT * FROM other.pageview'",
    ] {
        let (answers, _) = p.walk(&shop.read, sql, &[]).await;
        let last = answers.last().expect("answers");
        assert_eq!(last["stats"]["state"], "FAILED", "{sql}: {last}");
        assert!(!last.to_string().contains("/secret"), "{sql}");
    }
    let (answers, _) = p.walk(&shop.read, "SELECT DISTINCT table_schema FROM information_schema.columns", &[]).await;
    let schemas = rows_of(&answers);
    assert!(!schemas.contains(&json!(["other"])) && schemas.contains(&json!(["shop"])), "{schemas:?}");
    // The other project reads its own.
    let (answers, _) = p.walk(&other.read, "SELECT url FROM pageview", &[]).await;
    assert_eq!(rows_of(&answers), vec![json!(["/secret"])]);
}

on_every_backend!(
    clients_query_a_project_through_the_trino_protocol,
    pages_retries_and_the_protocol_s_shapes,
    cancelling_and_abandoned_statements,
    keys_and_projects_stay_apart,
);
