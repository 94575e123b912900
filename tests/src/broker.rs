//! A real Kafka-compatible broker for one test: tansu, from
//! `WEIRTEST_TANSU` (`scripts/test.sh` installs it), on a loopback port,
//! keeping its data in memory.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

pub struct Broker {
    /// Killed when dropped.
    _child: Child,
    pid: u32,
    pub port: u16,
}

/// The broker binary.
pub fn tansu_binary() -> String {
    std::env::var("WEIRTEST_TANSU").unwrap_or_else(|_| {
        panic!("WEIRTEST_TANSU is not set: run the suite with scripts/test.sh, which installs the broker")
    })
}

impl Broker {
    /// Starts a broker on a free port and waits until it accepts
    /// connections.
    pub async fn start() -> Broker {
        Self::start_on(free_port()).await
    }

    /// Starts a broker on `port`.
    pub async fn start_on(port: u16) -> Broker {
        let listener = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_binary())
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tansu");
        let pid = child.id().expect("pid");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Broker { _child: child, pid, port };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("tansu does not accept connections on port {port}");
    }

    /// The gateway's log URL.
    pub fn url(&self) -> String {
        url(self.port)
    }

    /// [`gateway_env`] for this broker.
    pub fn gateway_env(&self) -> Vec<(String, String)> {
        gateway_env(self.port)
    }

    /// `host:port`, as Kafka clients take it.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGSTOP: the broker stops answering but keeps its connections and
    /// everything it holds.
    pub fn pause(&self) {
        signal(self.pid, "-STOP");
    }

    /// SIGCONT after [`Broker::pause`].
    pub fn resume(&self) {
        signal(self.pid, "-CONT");
    }
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// The log URL of a broker on `port`.
pub fn url(port: u16) -> String {
    format!("kafka://127.0.0.1:{port}")
}

/// Settings for gateways on a broker on `port`: one partition per topic (as
/// the file log has by default) and short timeouts, so that suites written
/// for the file log read the same order and wait little.
pub fn gateway_env(port: u16) -> Vec<(String, String)> {
    [
        ("WEIR_LOG", url(port)),
        ("WEIR_KAFKA__PARTITIONS", "1".to_owned()),
        ("WEIR_KAFKA__DELIVERY_TIMEOUT_MS", "3000".to_owned()),
        ("WEIR_KAFKA__SETTLE_MS", "300".to_owned()),
        ("WEIR_KAFKA__PROBE_INTERVAL_MS", "200".to_owned()),
        ("WEIR_KAFKA__REQUEST_TIMEOUT_MS", "2000".to_owned()),
        // tansu answers a fetch with what its in-memory storage found
        // within the fetch's wait: at the default 20 ms, nothing at all
        // once a topic holds a few hundred thousand records.
        ("WEIR_KAFKA__FETCH_WAIT_MS", "200".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn signal(pid: u32, which: &str) {
    let status = std::process::Command::new("kill").arg(which).arg(pid.to_string()).status().expect("kill");
    assert!(status.success(), "kill {which} {pid}");
}
