//! `kill -9` while two clients stream batches and the batch loop runs:
//! after a restart every event that was answered `1` is in the log exactly
//! once, and in the queryable table exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use weir_tests::{Backend, BatchOutcome, Client, Gateway, on_every_backend};

/// Streams 100-event batches until the gateway stops answering; returns the
/// sequence numbers of every acknowledged event.
async fn stream(client: Client, key: String, id: u64, acked: Arc<Mutex<Vec<u64>>>) {
    let pad = "p".repeat(200);
    for n in 0u64.. {
        let seqs: Vec<u64> = (0..100).map(|i| id * 10_000_000 + n * 100 + i).collect();
        let events: Vec<(String, Value)> =
            seqs.iter().map(|s| ("load".to_owned(), json!({"seq": s, "client": id, "pad": pad}))).collect();
        match client.batch(&key, &events).await {
            Ok(BatchOutcome::Stored) => acked.lock().expect("lock").extend(seqs),
            Ok(other) => panic!("unexpected answer {other:?}"),
            Err(_) => return,
        }
    }
}

async fn load_then_kill(gw: &mut Gateway, key: &str, round: u64, acked: &Arc<Mutex<Vec<u64>>>) {
    let clients: Vec<_> =
        (0..2).map(|c| tokio::spawn(stream(gw.client.clone(), key.to_owned(), round * 2 + c, acked.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.kill9().await;
    for c in clients {
        tokio::time::timeout(Duration::from_secs(30), c).await.expect("client ends").expect("client task");
    }
}

async fn acknowledged_events_survive_kill_9_exactly_once(backend: Backend) {
    // The batch loop runs all the time, so the kills land in loads too.
    let options =
        weir_tests::Options { env: vec![("WEIR_BATCH__INTERVAL_MS".into(), "50".into())], ..Default::default() };
    let mut gw = Gateway::start_with(backend, options).await;
    let k = gw.create_project("shop").await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    for round in 0..2 {
        if round > 0 {
            gw.restart().await;
        }
        load_then_kill(&mut gw, &k.write, round, &acked).await;
    }
    gw.restart().await;
    let after: Vec<(String, Value)> = vec![("load".to_owned(), json!({"seq": 99_999_999u64}))];
    assert!(gw.client.batch(&k.write, &after).await.expect("serves after restart").is_stored());
    acked.lock().expect("lock").push(99_999_999);

    // Everything acknowledged is in the table once: no duplicates from
    // ranges loaded again after a crash, none lost at batch boundaries.
    let r = gw.post("/event/bulk/commit", &[("master_key", &k.master)], &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw
        .post(
            "/query/execute",
            &[("read_key", &k.read)],
            &json!({"query": "SELECT count(*), count(DISTINCT seq) FROM load"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (total, distinct) = (r.json()["result"][0][0].as_u64(), r.json()["result"][0][1].as_u64());
    assert_eq!(total, distinct, "no event is stored twice");
    let sql = format!(
        "SELECT count(*) FROM load WHERE seq IN ({})",
        acked.lock().expect("lock").iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    );
    let r = gw.post("/query/execute", &[("read_key", &k.read)], &json!({"query": sql, "limit": 1})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["result"][0][0].as_u64(),
        Some(acked.lock().expect("lock").len() as u64),
        "every acknowledged event"
    );

    let events = gw.stop_and_read().await;
    let mut count: HashMap<u64, usize> = HashMap::new();
    for e in events.iter().filter(|e| e.collection == "load") {
        let seq = e.fields["seq"].as_f64().expect("seq") as u64;
        *count.entry(seq).or_default() += 1;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() > 1000, "the load ran: {} events acknowledged", acked.len());
    let lost: Vec<u64> = acked.iter().copied().filter(|s| !count.contains_key(s)).collect();
    assert!(lost.is_empty(), "{} acknowledged events lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    let doubled: Vec<u64> = count.iter().filter(|(_, n)| **n > 1).map(|(s, _)| *s).collect();
    assert!(doubled.is_empty(), "events stored twice: {:?}", &doubled[..doubled.len().min(5)]);
}

on_every_backend!(acknowledged_events_survive_kill_9_exactly_once);
