//! Configuration of the real binary: a TOML file, `WEIR_*` variables over
//! it, and a file with a mistake refusing to start.

use serde_json::json;
use weir_tests::{Backend, Gateway, Options, on_every_backend, weir_binary};

fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("weir.toml");
    std::fs::write(&path, text).expect("write config");
    let path = path.display().to_string();
    (dir, path)
}

async fn a_toml_file_configures_the_gateway_and_the_environment_overrides_it(backend: Backend) {
    let (_dir, path) = config_file("lock_key = \"from-file\"\n\n[http]\nbatch_max_bytes = 2000\n");
    let options = Options { args: vec!["--config".into(), path.clone()], ..Options::default() };
    let gw = Gateway::start_with(backend, options).await;
    let r = gw.post("/project/create", &[], &json!({"name": "shop", "lock_key": "from-file"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let k = weir_tests::keys_of(&r.json());
    let big =
        json!({"api": {"api_key": k.write}, "events": [{"collection": "c", "properties": {"pad": "x".repeat(3000)}}]});
    let r = gw.post("/event/batch", &[], &big).await;
    assert_eq!((r.status, r.json()["error_code"].clone()), (413, json!(413)), "the file's batch limit");

    let options = Options {
        args: vec!["--config".into(), path],
        env: vec![("WEIR_LOCK_KEY".into(), "from-env".into())],
        ..Options::default()
    };
    let gw = Gateway::start_with(backend, options).await;
    let from_file = gw.post("/project/create", &[], &json!({"name": "shop", "lock_key": "from-file"})).await;
    assert_eq!(from_file.status, 403, "the environment wins over the file");
    let from_env = gw.post("/project/create", &[], &json!({"name": "shop", "lock_key": "from-env"})).await;
    assert_eq!(from_env.status, 200);
}

async fn a_mistake_in_the_configuration_stops_the_start(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let metadata = backend.fresh_metadata_url(dir.path()).await;
    let (_cfg, path) = config_file("[file_log]\nsegment_size = 4096\n");
    let (_kafka_cfg, kafka_path) = config_file("[kafka]\nproducer = { acks = \"1\" }\n");
    // (arguments, environment, what the error names)
    type Case = (Vec<String>, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<Case> = vec![
        (vec!["--config".into(), path], vec![], "segment_size"),
        (vec!["--listen".into(), "not-an-address".into()], vec![], "listen address"),
        (vec!["--log".into(), "kafka-ish://x".into()], vec![], "unsupported log URL"),
        (vec!["--log".into(), "kafka://no-port".into()], vec![], "unsupported log URL"),
        (vec![], vec![("WEIR_KAFKA__TOPIC_PREFIX", "weir/")], "kafka.topic_prefix"),
        (vec![], vec![("WEIR_HTTP__TRUSTED_PROXIES", "[\"10.0.0.0/33\"]")], "http.trusted_proxies"),
        (vec![], vec![("WEIR_HTTP__MAX_CONNECTIONS", "0")], "http.max_connections"),
        (vec![], vec![("WEIR_QUERY__MAX_MEMORY_BYTES", "1000")], "query.max_memory_bytes"),
        (vec!["--config".into(), kafka_path], vec![], "kafka.producer.acks is set by the gateway"),
    ];
    for (args, env, expected) in cases {
        let listen = if args.iter().any(|a| a == "--listen") { vec![] } else { vec!["--listen", "127.0.0.1:0"] };
        let output = tokio::process::Command::new(weir_binary())
            .arg("serve")
            .args(listen)
            .args(["--metadata", &metadata, "--data-dir"])
            .arg(dir.path())
            .args(&args)
            .envs(env.iter().copied())
            .output()
            .await
            .expect("run weir");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?} should not start");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// Variables that name no setting are what orchestrators inject (a
/// Kubernetes service named `weir` gives every pod `WEIR_PORT`,
/// `WEIR_SERVICE_HOST`…): the gateway starts, names them and the closest
/// setting, and a misspelt one does not take effect.
async fn unknown_variables_are_named_and_left_alone(backend: Backend) {
    let env = [
        ("WEIR_SERVICE_HOST", "10.0.0.1"),
        ("WEIR_PORT", "tcp://10.0.0.1:9999"),
        ("WEIR_PORT_9999_TCP_ADDR", "10.0.0.1"),
        ("WEIR_FILE_LOG__PARTITONS", "4"),
        ("WEIR_PROJECTS__ALLOW_DELETION", "true"),
    ];
    let options =
        Options { env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Options::default() };
    let gw = Gateway::start_with(backend, options).await;
    let k = gw.create_project("shop").await;
    gw.client.collect(&k.write, "pageview", &json!({"n": 1})).await.expect("collect");
    let stderr = gw.stderr();
    for (name, _) in &env[..4] {
        assert!(stderr.contains(name), "{name} is not named:\n{stderr}");
    }
    assert!(stderr.contains("WEIR_FILE_LOG__PARTITIONS"), "the closest setting is not named:\n{stderr}");
    // Known variables still apply.
    let deleted = gw.post("/project/delete", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
}

on_every_backend!(
    unknown_variables_are_named_and_left_alone,
    a_toml_file_configures_the_gateway_and_the_environment_overrides_it,
    a_mistake_in_the_configuration_stops_the_start,
);

/// The allocator gives freed memory back after 10 ms unless the operator
/// chose otherwise; the setting reaches the serving process itself.
#[tokio::test]
async fn the_allocator_purge_delay_is_set_unless_chosen() {
    fn purge_delay(gw: &Gateway) -> Option<String> {
        let environ = std::fs::read(format!("/proc/{}/environ", gw.pid())).expect("read the environment");
        environ
            .split(|b| *b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| v.strip_prefix("MIMALLOC_PURGE_DELAY=").map(str::to_owned))
    }
    let gw = Gateway::start(Backend::Sqlite).await;
    assert_eq!(purge_delay(&gw).as_deref(), Some("10"));
    let k = gw.create_project("shop").await;
    gw.client.collect(&k.write, "pageview", &json!({"n": 1})).await.expect("collect");

    let options = Options { env: vec![("MIMALLOC_PURGE_DELAY".into(), "250".into())], ..Options::default() };
    let gw = Gateway::start_with(Backend::Sqlite, options).await;
    assert_eq!(purge_delay(&gw).as_deref(), Some("250"));
}
