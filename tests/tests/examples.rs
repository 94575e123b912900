//! The README's walk-through, `examples/quickstart.sh`, run against the real
//! gateway: it must keep working as written.

use std::path::Path;

use weir_tests::{Backend, Gateway, of, on_every_backend};

async fn the_quickstart_walk_through_works(backend: Backend) {
    let mut gw = Gateway::start(backend).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.sh");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .arg("shop")
        .env("WEIR", gw.base())
        .output()
        .await
        .expect("run the walk-through");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let schema_start = stdout.find('[').expect("the schema is printed");
    let schema: serde_json::Value = serde_json::from_str(&stdout[schema_start..]).expect("schema JSON");
    let pageview = schema.as_array().and_then(|c| c.iter().find(|c| c["name"] == "pageview")).expect("pageview");
    let field = |name: &str| pageview["fields"].as_array().and_then(|f| f.iter().find(|f| f["name"] == name)).cloned();
    assert_eq!(field("load_ms").map(|f| f["type"].clone()), Some("DOUBLE".into()));
    assert_eq!(field("page_url").map(|f| f["type"].clone()), Some("STRING".into()));
    let events = gw.stop_and_read().await;
    assert_eq!(of(&events, "pageview").len(), 2);
    assert_eq!(of(&events, "signup").len(), 1);
}

/// The plugin SDK's README walk-through, `examples/plugin.sh`: a new crate
/// built from the README's code, uploaded and tested with `weir plugin`.
async fn the_plugin_walk_through_works(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugin.sh");
    // A target folder of its own: the one this test runs from is locked by
    // the cargo that runs it.
    let target = weir_tests::weir_binary().parent().and_then(Path::parent).expect("target").join("example-plugin");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .env("WEIR", gw.base())
        .env("WEIR_CMD", weir_tests::weir_binary())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .await
        .expect("run the plugin walk-through");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let test_start = stdout.rfind("{\n  \"failure\"").or_else(|| stdout.rfind("{\n")).expect("the test's answer");
    let answer: serde_json::Value = serde_json::from_str(&stdout[test_start..]).expect("the test's JSON");
    assert_eq!(answer["failure"], serde_json::Value::Null, "{answer}");
    assert_eq!(
        answer["results"],
        serde_json::json!([{"outcome": "replace", "properties": {"_user": "u1", "plan": "pro"}}]),
        "{stdout}"
    );
}

on_every_backend!(the_quickstart_walk_through_works, the_plugin_walk_through_works);
