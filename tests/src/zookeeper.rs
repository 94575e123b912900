//! Real ZooKeeper servers for one test: Debian's `zookeeper` package
//! (`scripts/test.sh` installs it), standalone or as an ensemble, on
//! loopback ports, with `tickTime=500` so that short sessions are allowed.
//! And a TCP proxy that can cut a gateway off from them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::broker::free_port;

/// The Java class path of the server (`WEIRTEST_ZOOKEEPER_CP`, else
/// Debian's jars).
fn class_path() -> String {
    std::env::var("WEIRTEST_ZOOKEEPER_CP")
        .unwrap_or_else(|_| "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar".to_owned())
}

/// One server of an ensemble (or a standalone one).
pub struct Server {
    child: Option<Child>,
    config: PathBuf,
    standalone: bool,
    pub port: u16,
}

impl Server {
    async fn launch(&mut self) {
        let main = if self.standalone {
            "org.apache.zookeeper.server.ZooKeeperServerMain"
        } else {
            "org.apache.zookeeper.server.quorum.QuorumPeerMain"
        };
        let log = std::fs::File::create(self.config.with_extension("log")).expect("log file");
        let child = Command::new("java")
            .args(["-Xmx128m", "-cp", &class_path(), main])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn java (install Debian's zookeeper package)");
        self.child = Some(child);
    }

    /// Waits until the server serves: `srvr` names its mode.
    async fn ready(&self) -> bool {
        mode(self.port).await.is_some()
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again, on its data.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the server first");
        self.launch().await;
    }
}

/// `srvr`'s `Mode:` line: `standalone`, `leader` or `follower`.
pub async fn mode(port: u16) -> Option<String> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(("127.0.0.1", port))).await.ok()?.ok()?;
    stream.write_all(b"srvr").await.ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut out)).await.ok()?.ok()?;
    out.lines().find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned))
}

/// One or more servers.
pub struct ZooKeeper {
    pub servers: Vec<Server>,
    _dir: tempfile::TempDir,
}

impl ZooKeeper {
    /// A standalone server.
    pub async fn standalone() -> ZooKeeper {
        Self::start(1).await
    }

    /// An ensemble of `n` servers (1: standalone).
    pub async fn start(n: usize) -> ZooKeeper {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<(u16, u16, u16)> = (0..n).map(|_| (free_port(), free_port(), free_port())).collect();
        let mut servers = Vec::new();
        for (i, (client, peer, election)) in ports.iter().enumerate() {
            let data = dir.path().join(format!("zk{i}"));
            std::fs::create_dir_all(&data).expect("data dir");
            let mut config = format!(
                "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
                 clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=srvr,ruok\n",
                data.display()
            );
            if n > 1 {
                std::fs::write(data.join("myid"), format!("{}\n", i + 1)).expect("myid");
                for (j, (_, peer, election)) in ports.iter().enumerate() {
                    config.push_str(&format!("server.{}=127.0.0.1:{peer}:{election}\n", j + 1));
                }
            }
            let _ = (peer, election);
            let path = dir.path().join(format!("zk{i}.cfg"));
            std::fs::write(&path, config).expect("config");
            let mut server = Server { child: None, config: path, standalone: n == 1, port: *client };
            server.launch().await;
            servers.push(server);
        }
        let zk = ZooKeeper { servers, _dir: dir };
        zk.wait_ready(Duration::from_secs(120)).await;
        zk
    }

    /// Waits until every running server names its mode.
    pub async fn wait_ready(&self, within: Duration) {
        let until = tokio::time::Instant::now() + within;
        for server in self.servers.iter().filter(|s| s.child.is_some()) {
            while !server.ready().await {
                if tokio::time::Instant::now() >= until {
                    let log = std::fs::read_to_string(server.config.with_extension("log")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    panic!("ZooKeeper on port {} does not serve:\n{}", server.port, tail.join("\n"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// `host:port,…` of every server.
    pub fn hosts(&self) -> String {
        self.servers.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect::<Vec<_>>().join(",")
    }

    /// An election URL with a chroot of its own.
    pub fn url(&self, chroot: &str) -> String {
        format!("zookeeper://{}/{chroot}", self.hosts())
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

/// A TCP proxy on a loopback port in front of `target`. Cut, it keeps its
/// connections but forwards nothing and accepts no more: to the gateway the
/// servers fall silent, as behind a broken network.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                if flag.load(Ordering::Relaxed) {
                    // Held open and silent.
                    let flag = flag.clone();
                    tokio::spawn(async move {
                        while flag.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        drop(client);
                    });
                    continue;
                }
                let (target, flag) = (target.clone(), flag.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else { return };
                    relay(client, server, flag).await;
                });
            }
        });
        Proxy { port, cut, task }
    }

    /// Forwards nothing from now on.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }

    /// Forwards again (connections cut stay dead).
    pub fn heal(&self) {
        self.cut.store(false, Ordering::Relaxed);
    }

    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, cut: Arc<AtomicBool>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = pump(&mut cr, &mut sw, &cut);
    let down = pump(&mut sr, &mut cw, &cut);
    tokio::select! { () = up => {}, () = down => {} }
    // Once cut, hold the client's side open and silent until healed.
    while cut.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pump(from: &mut tokio::net::tcp::OwnedReadHalf, to: &mut tokio::net::tcp::OwnedWriteHalf, cut: &AtomicBool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => r,
            () = wait_cut(cut) => return,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if cut.load(Ordering::Relaxed) || to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn wait_cut(cut: &AtomicBool) {
    while !cut.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
