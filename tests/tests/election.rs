//! `election = "zookeeper://…"`: real ZooKeeper servers (an ensemble of
//! three), three gateways on PostgreSQL + Kafka (tansu) + S3 (the
//! server `scripts/test.sh` starts; a shared folder without one), two
//! clients streaming batches to every gateway and sending refused
//! batches again. Masters are killed, paused past their session and cut
//! off from ZooKeeper; ZooKeeper servers are killed. Every time: one new
//! master loads, a deposed one commits nothing, epochs in the manifest
//! never go back, and every acknowledged event is stored exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_tests::zookeeper::{Proxy, ZooKeeper};
use weir_tests::{Backend, BatchOutcome, Client, Gateway, Keys, Options, weir_binary};

/// One cluster at a time: three ZooKeeper servers and three gateways each
/// are what two cores can carry.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The session timeout the gateways ask for.
const SESSION_MS: u64 = 2_000;
const BATCH_INTERVAL_MS: u64 = 200;

/// How the gateways of a cluster are set: the tests' short session and
/// batch interval, or the defaults.
#[derive(Clone, Copy, PartialEq)]
enum Settings {
    Short,
    Default,
}

/// The gateways share the harness's S3 prefix, or else the folder
/// `warehouse`.
fn options(election: &str, warehouse: Option<&str>, settings: Settings) -> Options {
    let mut env = vec![("WEIR_ELECTION".into(), election.into())];
    match settings {
        Settings::Short => {
            env.push(("WEIR_ZOOKEEPER__SESSION_TIMEOUT_MS".into(), SESSION_MS.to_string()));
            env.push(("WEIR_BATCH__INTERVAL_MS".into(), BATCH_INTERVAL_MS.to_string()));
        }
        // The harness's own short session undone.
        Settings::Default => env.push(("WEIR_ZOOKEEPER__SESSION_TIMEOUT_MS".into(), "6000".into())),
    }
    env.extend(warehouse.map(|url| ("WEIR_WAREHOUSE".to_owned(), url.to_owned())));
    Options { env, ..Options::default() }
}

struct Cluster {
    zk: ZooKeeper,
    gateways: Vec<Gateway>,
    keys: Keys,
    _warehouse: tempfile::TempDir,
}

impl Cluster {
    /// Three gateways; the first joins through `first_hosts` when given
    /// (a proxy), the others straight.
    async fn start(zk: ZooKeeper, first_hosts: Option<String>) -> Cluster {
        Self::start_with(zk, first_hosts, Settings::Short).await
    }

    async fn start_with(zk: ZooKeeper, first_hosts: Option<String>, settings: Settings) -> Cluster {
        let warehouse = tempfile::tempdir().expect("tempdir");
        let folder = format!("file://{}", warehouse.path().display());
        let url = weir_tests::s3_config().is_none().then_some(folder.as_str());
        let chroot = "weir";
        let first_url = match &first_hosts {
            Some(hosts) => format!("zookeeper://{hosts}/{chroot}"),
            None => zk.url(chroot),
        };
        let first = Gateway::start_with(Backend::Kafka, options(&first_url, url, settings)).await;
        let keys = first.create_project("shop").await;
        let mut gateways = vec![first];
        for _ in 0..2 {
            let sibling = gateways[0].sibling(options(&zk.url(chroot), url, settings)).await;
            gateways.push(sibling);
        }
        Cluster { zk, gateways, keys, _warehouse: warehouse }
    }

    async fn roles(&self) -> Vec<(String, i64)> {
        let mut roles = Vec::new();
        for gw in &self.gateways {
            // A paused gateway does not answer: it is "down" meanwhile.
            let health = tokio::time::timeout(Duration::from_millis(500), gw.client.send("GET", "/health", &[], ""));
            roles.push(match health.await {
                Ok(Ok(r)) if r.status == 200 => {
                    let e = &r.json()["election"];
                    assert_eq!(e["backend"], "zookeeper");
                    (e["role"].as_str().unwrap_or_default().to_owned(), e["epoch"].as_i64().unwrap_or(0))
                }
                _ => ("down".to_owned(), 0),
            });
        }
        roles
    }

    /// Waits until exactly one gateway (other than `not`) leads; its index
    /// and epoch.
    async fn master(&self, not: Option<usize>, within: Duration) -> (usize, i64) {
        let since = Instant::now();
        loop {
            let roles = self.roles().await;
            let masters: Vec<usize> = (0..roles.len()).filter(|i| roles[*i].0 == "master").collect();
            if let [one] = masters[..]
                && Some(one) != not
            {
                return (one, roles[one].1);
            }
            assert!(since.elapsed() < within, "no single master within {within:?}: {roles:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn clients(&self) -> Vec<Client> {
        self.gateways.iter().map(|g| g.client.clone()).collect()
    }

    /// Loads what is waiting on the master and checks every acknowledged
    /// event is in the table once, read through every gateway.
    async fn check_exactly_once(&self, acked: &[u64]) {
        let (master, _) = self.master(None, Duration::from_secs(30)).await;
        let m = &self.gateways[master];
        let r = m.post("/event/bulk/commit", &[("master_key", &self.keys.master)], &json!({})).await;
        assert_eq!(r.status, 200, "{}; the gateways' logs:\n{}", r.text(), self.logs());
        let sql = "SELECT count(*), count(DISTINCT seq) FROM load";
        for gw in &self.gateways {
            let r = gw.post("/query/execute", &[("read_key", &self.keys.read)], &json!({"query": sql})).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let row = &r.json()["result"][0];
            assert_eq!(row[0], row[1], "an event is stored twice");
        }
        let chunks: Vec<String> = acked.iter().map(u64::to_string).collect();
        let mut found = 0;
        for chunk in chunks.chunks(2_000) {
            let sql = format!("SELECT count(*) FROM load WHERE seq IN ({})", chunk.join(","));
            let r =
                m.post("/query/execute", &[("read_key", &self.keys.read)], &json!({"query": sql, "limit": 1})).await;
            assert_eq!(r.status, 200, "{}", r.text());
            found += r.json()["result"][0][0].as_u64().unwrap_or(0);
        }
        if found != acked.len() as u64 {
            let store = weir_gateway::metadata::open(&m.metadata_url).await.expect("metadata");
            let offsets = store.committed_offsets().await.expect("offsets");
            panic!(
                "{found} of {} acknowledged events are stored; committed offsets {offsets:?}; the gateways' logs:\n{}",
                acked.len(),
                self.logs()
            );
        }
        self.check_epochs().await;
    }

    /// The last lines each gateway logged, for a failure's message.
    fn logs(&self) -> String {
        let tails: Vec<String> = self
            .gateways
            .iter()
            .map(|g| {
                let text = g.stderr();
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(30)..].join("\n")
            })
            .collect();
        tails.join("\n---\n")
    }

    /// Every commit recorded its epoch, and per partition epochs never go
    /// back as offsets go forward.
    async fn check_epochs(&self) {
        let store = weir_gateway::metadata::open(&self.gateways[0].metadata_url).await.expect("metadata");
        let manifest = store.manifest().await.expect("manifest");
        assert!(manifest.iter().all(|f| f.epoch > 0), "a file without an epoch");
        let mut partitions: std::collections::BTreeMap<(String, u32), Vec<_>> = Default::default();
        for f in manifest {
            partitions.entry((f.topic.clone(), f.partition)).or_default().push(f);
        }
        for files in partitions.values_mut() {
            files.sort_by_key(|f| f.first_offset);
            assert!(files.windows(2).all(|w| w[0].epoch <= w[1].epoch), "epochs interleave: {files:?}");
        }
    }
}

/// Streams 50-event batches to the gateways in turn until stopped. A
/// refused batch is sent again to the next gateway; one whose answer was
/// lost (a killed gateway) is not, since it may be stored.
async fn stream(clients: Vec<Client>, key: String, id: u64, acked: Arc<Mutex<Vec<u64>>>, stop: Arc<AtomicBool>) {
    let mut turn = 0;
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let seqs: Vec<u64> = (0..50).map(|i| id * 100_000_000 + n * 50 + i).collect();
        let events: Vec<(String, Value)> = seqs.iter().map(|s| ("load".to_owned(), json!({"seq": s}))).collect();
        loop {
            turn += 1;
            let client = &clients[turn % clients.len()];
            // A paused gateway holds the request: its answer is lost.
            let Ok(answer) = tokio::time::timeout(Duration::from_secs(3), client.batch(&key, &events)).await else {
                break;
            };
            match answer {
                Ok(BatchOutcome::Stored) => {
                    acked.lock().expect("lock").extend(&seqs);
                    break;
                }
                Err(weir_sdk::Error::Status { status, .. }) if status == 503 || status == 500 => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(other) => panic!("unexpected answer {other:?}"),
                Err(_) => break,
            }
        }
    }
}

struct Load {
    acked: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(cluster: &Cluster) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..2)
            .map(|id| {
                let (c, key, acked, stop) =
                    (cluster.clients(), cluster.keys.write.clone(), acked.clone(), stop.clone());
                tokio::spawn(stream(c, key, id, acked, stop))
            })
            .collect();
        Load { acked, stop, clients }
    }

    async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            tokio::time::timeout(Duration::from_secs(60), c).await.expect("client ends").expect("client");
        }
        let acked = self.acked.lock().expect("lock").clone();
        assert!(acked.len() > 500, "the load ran: {} events acknowledged", acked.len());
        acked
    }
}

/// How long a failover may take: the session, a batch interval, and room
/// for a loaded machine.
fn failover() -> Duration {
    Duration::from_millis(SESSION_MS + BATCH_INTERVAL_MS) + Duration::from_secs(8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn masters_killed_and_paused_hand_over_and_nothing_is_stored_twice() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(ZooKeeper::start(3).await, None).await;
    let (mut master, mut epoch) = cluster.master(None, Duration::from_secs(30)).await;
    let load = Load::start(&cluster);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // kill -9 the master, three times.
    for _ in 0..3 {
        cluster.gateways[master].kill9().await;
        let killed = Instant::now();
        let (next, next_epoch) = cluster.master(Some(master), failover()).await;
        assert!(next_epoch > epoch, "epoch {next_epoch} after {epoch}");
        eprintln!("failover after kill -9: {:?}", killed.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.gateways[master].restart().await;
        (master, epoch) = (next, next_epoch);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // SIGSTOP the master past its session; another leads and commits; the
    // paused one, resumed, is refused by the fence and steps down.
    let paused = master;
    let pid = cluster.gateways[paused].pid();
    signal(pid, "-STOP");
    let (next, next_epoch) = cluster.master(Some(paused), failover() + Duration::from_secs(10)).await;
    assert!(next_epoch > epoch);
    let r =
        cluster.gateways[next].post("/event/bulk/commit", &[("master_key", &cluster.keys.master)], &json!({})).await;
    assert_eq!(r.status, 200, "the new master commits: {}", r.text());
    signal(pid, "-CONT");
    let since = Instant::now();
    loop {
        let roles = cluster.roles().await;
        if roles[paused].0 != "master" {
            break;
        }
        assert!(since.elapsed() < failover(), "the resumed master never stepped down: {roles:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let acked = load.finish().await;
    cluster.check_exactly_once(&acked).await;
    let _ = &mut cluster.zk;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_cut_off_from_zookeeper_is_deposed_and_commits_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let zk = ZooKeeper::start(3).await;
    let proxy = Proxy::start(format!("127.0.0.1:{}", zk.servers[0].port)).await;
    let cluster = Cluster::start(zk, Some(proxy.hosts())).await;
    let (master, epoch) = cluster.master(None, Duration::from_secs(30)).await;
    assert_eq!(master, 0, "the first gateway joined first");
    let load = Load::start(&cluster);
    tokio::time::sleep(Duration::from_secs(1)).await;

    proxy.cut();
    let cut = Instant::now();
    // It pauses on its own, before its session can have expired...
    loop {
        let roles = cluster.roles().await;
        if roles[0].0 != "master" {
            assert!(cut.elapsed() < Duration::from_millis(SESSION_MS) + Duration::from_secs(2), "{roles:?}");
            break;
        }
        assert!(cut.elapsed() < failover(), "the cut-off master never paused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("a cut-off master paused after {:?}", cut.elapsed());
    // ...and another takes over.
    let (_, next_epoch) = cluster.master(Some(0), failover()).await;
    assert!(next_epoch > epoch);
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.heal();
    tokio::time::sleep(Duration::from_millis(SESSION_MS * 2)).await;
    let roles = cluster.roles().await;
    assert_eq!(roles.iter().filter(|r| r.0 == "master").count(), 1, "{roles:?}");
    assert_ne!(roles[0].0, "master", "the old master does not take the lead back: {roles:?}");

    let acked = load.finish().await;
    cluster.check_exactly_once(&acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zookeeper_down_pauses_loading_but_not_ingestion() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(ZooKeeper::start(3).await, None).await;
    let (master, epoch) = cluster.master(None, Duration::from_secs(30)).await;
    let load = Load::start(&cluster);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // One server of three down (a follower of ZooKeeper's own election):
    // nothing changes.
    let mut follower = None;
    for (i, s) in cluster.zk.servers.iter().enumerate() {
        if weir_tests::zookeeper::mode(s.port).await.as_deref() == Some("follower") {
            follower = Some(i);
        }
    }
    cluster.zk.servers[follower.expect("an ensemble has followers")].kill().await;
    tokio::time::sleep(Duration::from_millis(SESSION_MS * 2)).await;
    assert_eq!(cluster.master(None, Duration::from_secs(15)).await, (master, epoch));

    // All three down: ingestion goes on, loading pauses.
    for s in cluster.zk.servers.iter_mut() {
        s.kill().await;
    }
    let since = Instant::now();
    loop {
        let roles = cluster.roles().await;
        if roles.iter().all(|r| r.0 != "master") {
            break;
        }
        assert!(since.elapsed() < failover(), "a master kept leading without ZooKeeper: {roles:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = cluster.load_probe().await;
    let store = weir_gateway::metadata::open(&cluster.gateways[0].metadata_url).await.expect("metadata");
    let before = store.committed_offsets().await.expect("offsets");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(store.committed_offsets().await.expect("offsets"), before, "no gateway loads without ZooKeeper");

    // Back: one master loads everything.
    for s in cluster.zk.servers.iter_mut() {
        s.restart().await;
    }
    cluster.zk.wait_ready(Duration::from_secs(60)).await;
    cluster.master(None, Duration::from_secs(60)).await;
    let mut acked = load.finish().await;
    acked.extend(during);
    cluster.check_exactly_once(&acked).await;
}

impl Cluster {
    /// Sends one batch to each gateway; every one answers `1`.
    async fn load_probe(&self) -> Vec<u64> {
        let mut seqs = Vec::new();
        for (i, gw) in self.gateways.iter().enumerate() {
            let seq = 9_000_000_000 + i as u64;
            let outcome = gw.client.batch(&self.keys.write, &[("load".to_owned(), json!({"seq": seq}))]).await;
            assert!(matches!(outcome, Ok(BatchOutcome::Stored)), "ingestion without ZooKeeper: {outcome:?}");
            seqs.push(seq);
        }
        seqs
    }
}

/// A gateway on a log of its own cannot join: a master could not load
/// what it acknowledged.
#[tokio::test]
async fn zookeeper_needs_a_shared_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = tokio::process::Command::new(weir_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--election", "zookeeper://127.0.0.1:1/weir"])
        .output()
        .await
        .expect("run weir");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("needs a log every gateway shares"), "{stderr}");
}

/// The failover benchmark (not a test; figures in BENCHMARKS.md): with
/// default settings and under load, five times each, the time from a
/// master's `kill -9` to the first commit of the next one, and the window
/// in which a master cut off from ZooKeeper still says it leads after
/// another one does (negative: it paused first). Run with
/// `bash scripts/test.sh --test election -- --ignored --nocapture failover_times`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark, not a test"]
async fn failover_times() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let zk = ZooKeeper::start(3).await;
    let proxy = Proxy::start(format!("127.0.0.1:{}", zk.servers[0].port)).await;
    let mut cluster = Cluster::start_with(zk, Some(proxy.hosts()), Settings::Default).await;
    let store = weir_gateway::metadata::open(&cluster.gateways[0].metadata_url).await.expect("metadata");
    let load = Load::start(&cluster);
    let (mut master, mut epoch) = cluster.master(None, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut failovers = Vec::new();
    for _ in 0..5 {
        cluster.gateways[master].kill9().await;
        let killed = Instant::now();
        loop {
            let newest = store.manifest().await.expect("manifest").iter().map(|f| f.epoch).max().unwrap_or(0);
            if newest > epoch {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(60), "no commit within 60 s of a kill -9");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        failovers.push(killed.elapsed());
        let next = cluster.master(Some(master), Duration::from_secs(30)).await;
        cluster.gateways[master].restart().await;
        (master, epoch) = next;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let mut windows = Vec::new();
    for _ in 0..5 {
        cluster.lead_with_first().await;
        proxy.cut();
        let cut = Instant::now();
        let (mut paused, mut replaced) = (None, None);
        while paused.is_none() || replaced.is_none() {
            let roles = cluster.roles().await;
            let at = cut.elapsed().as_millis() as i64;
            if roles[0].0 != "master" {
                paused.get_or_insert(at);
            }
            if roles[1..].iter().any(|r| r.0 == "master") {
                replaced.get_or_insert(at);
            }
            assert!(cut.elapsed() < Duration::from_secs(60), "no handover within 60 s: {roles:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        windows.push(paused.unwrap_or(0) - replaced.unwrap_or(0));
        proxy.heal();
    }

    let acked = load.finish().await;
    cluster.check_exactly_once(&acked).await;
    let mut ms: Vec<i64> = failovers.iter().map(|d| d.as_millis() as i64).collect();
    ms.sort_unstable();
    windows.sort_unstable();
    println!("failover (kill -9 to the next master's first commit), ms: {ms:?}; median {}, max {}", ms[2], ms[4]);
    println!(
        "a cut-off master's window (its pause minus the next master's lead), ms: {windows:?}; median {}, max {}",
        windows[2], windows[4]
    );
    println!("every acknowledged event stored once ({}); no epoch interleaves in the manifest", acked.len());
}

impl Cluster {
    /// Makes the first gateway (the one behind the proxy) lead: the others
    /// stop, and join again after it.
    async fn lead_with_first(&mut self) {
        for gw in &mut self.gateways[1..] {
            gw.stop().await;
        }
        let since = Instant::now();
        while self.roles().await[0].0 != "master" {
            assert!(since.elapsed() < Duration::from_secs(60), "the first gateway does not lead");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for gw in &mut self.gateways[1..] {
            gw.restart().await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill").arg(sig).arg(pid.to_string()).status().expect("kill");
    assert!(status.success());
}
