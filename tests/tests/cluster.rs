//! `election = "single"` with more than one gateway on a metadata store:
//! the fence keeps a second one from loading beside the first. On a log of
//! its own it is refused at start; on a shared log (Kafka) it follows and
//! takes over when the first is gone, and every acknowledged event is
//! stored once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_tests::{Backend, Gateway, Keys, Options, on_every_backend, weir_binary};

fn election(gw: &Value) -> (String, String, i64) {
    let e = &gw["election"];
    (
        e["backend"].as_str().unwrap_or_default().to_owned(),
        e["role"].as_str().unwrap_or_default().to_owned(),
        e["epoch"].as_i64().unwrap_or(-1),
    )
}

async fn health(gw: &Gateway) -> (String, String, i64) {
    let r = gw.send("GET", "/health", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    election(&r.json())
}

/// `single`, with a short lease so that a follower takes over within the
/// test.
fn short_lease() -> Options {
    let env = [("WEIR_ELECTION", "single"), ("WEIR_SINGLE__LEASE_MS", "1500")];
    Options { env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Options::default() }
}

async fn counts(gw: &Gateway, k: &Keys) -> (u64, u64) {
    let r = gw
        .post(
            "/query/execute",
            &[("read_key", &k.read)],
            &json!({"query": "SELECT count(*), count(DISTINCT seq) FROM e"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let row = &r.json()["result"][0];
    (row[0].as_u64().unwrap_or(0), row[1].as_u64().unwrap_or(0))
}

async fn a_second_gateway_never_loads_beside_the_first(backend: Backend) {
    let mut first = Gateway::start_with(backend, short_lease()).await;
    let (name, role, epoch) = health(&first).await;
    assert_eq!((name.as_str(), role.as_str()), ("single", "master"));
    assert!(epoch >= 1);
    let k = first.create_project("shop").await;

    if backend != Backend::Kafka {
        // A log of its own: refused at start, with the reason.
        let dir = tempfile::tempdir().expect("tempdir");
        let output = tokio::process::Command::new(weir_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(["--metadata", &first.metadata_url])
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("run weir");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "a second gateway started:\n{stderr}");
        assert!(stderr.contains("another gateway") && stderr.contains("leads on this metadata store"), "{stderr}");
        assert_eq!(health(&first).await.1, "master", "the first leads on");

        // Stopped cleanly, the first hands the lead over at once; killed,
        // it takes it back itself on restart (same data folder).
        first.stop().await;
        first.restart().await;
        let (_, role, again) = health(&first).await;
        assert_eq!((role.as_str(), again), ("master", epoch + 1));
        first.kill9().await;
        first.restart().await;
        assert_eq!(health(&first).await, ("single".into(), "master".into(), epoch + 2));
        return;
    }

    // A shared log: the second follows, and what it acknowledges is loaded
    // by the first.
    // Gateways that share a log share a warehouse too (S3 across hosts;
    // a folder when no S3 server runs).
    let mut options = short_lease();
    if weir_tests::s3_config().is_none() {
        let warehouse = format!("file://{}", first.data_dir.join("warehouse").display());
        options.env.push(("WEIR_WAREHOUSE".into(), warehouse));
    }
    let mut second = first.sibling(options).await;
    assert_eq!(health(&second).await, ("single".into(), "follower".into(), epoch));
    for seq in 0..20 {
        let gw = if seq % 2 == 0 { &first } else { &second };
        gw.client.collect(&k.write, "e", &json!({"seq": seq})).await.expect("collect");
    }
    let r = first.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(counts(&first, &k).await, (20, 20));
    assert_eq!(counts(&second, &k).await, (20, 20));
    // A commit sent to the follower answers once the master has loaded.
    for seq in 100..110 {
        second.client.collect(&k.write, "e", &json!({"seq": seq})).await.expect("collect");
    }
    let r = second.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(counts(&second, &k).await, (30, 30));

    // The first dies: the second takes the lead once the lease has run
    // out, under a newer epoch, and loads the rest exactly once.
    for seq in 20..30 {
        second.client.collect(&k.write, "e", &json!({"seq": seq})).await.expect("collect");
    }
    first.kill9().await;
    let since = Instant::now();
    let taken = loop {
        let (_, role, now) = health(&second).await;
        if role == "master" {
            break now;
        }
        assert!(since.elapsed() < Duration::from_secs(20), "the follower never took the lead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(taken > epoch, "{taken} after {epoch}");
    let r = second.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(counts(&second, &k).await, (40, 40));

    // The first comes back: it follows now.
    first.restart().await;
    assert_eq!(health(&first).await.1, "follower");
    assert_eq!(health(&second).await.1, "master");
    second.stop().await;
}

on_every_backend!(a_second_gateway_never_loads_beside_the_first);
