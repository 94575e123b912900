//! What the benchmarks share: realistic events, load generation over
//! keep-alive connections, and starting the real `weir` process.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

pub fn seconds() -> Duration {
    Duration::from_secs(std::env::var("WEIRBENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10))
}

/// Realistic product-analytics events: a few collections, skewed users.
pub fn events(rng: &mut StdRng, n: usize) -> Vec<Value> {
    let collections = ["pageview", "pageview", "pageview", "click", "click", "purchase", "signup"];
    let browsers = ["Chrome", "Safari", "Firefox", "Edge"];
    let countries = ["US", "DE", "GB", "TR", "IN", "BR", "FR"];
    (0..n)
        .map(|_| {
            let user = (rng.random::<f64>().powi(3) * 100_000.0) as u64;
            let collection = collections[rng.random_range(0..collections.len())];
            let width = [360, 390, 414, 1080, 1440][rng.random_range(0..5)];
            json!({
                "collection": collection,
                "properties": {
                    "_user": format!("user-{user}"),
                    "url": format!("/products/{}?ref=home", rng.random_range(0..5000)),
                    "referrer": "https://www.example.com/search?q=running+shoes",
                    "browser": browsers[rng.random_range(0..browsers.len())],
                    "os": "Android 14",
                    "country": countries[rng.random_range(0..countries.len())],
                    "price": (rng.random_range(100..100_000) as f64) / 100.0,
                    "session_id": format!("{:016x}", rng.random::<u64>()),
                    "logged_in": rng.random_bool(0.4),
                    "screen_width": width,
                }
            })
        })
        .collect()
}

pub fn batch_body(key: &str, events: &[Value]) -> Bytes {
    Bytes::from(json!({"api": {"api_key": key}, "events": events}).to_string())
}

/// Requests/s of keep-alive connections posting `bodies` in turn.
pub async fn load(
    addr: SocketAddr,
    path: &str,
    bodies: &[Bytes],
    connections: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    load_with(addr, path, bodies, connections, &[]).await
}

/// [`load`], with extra request headers.
pub async fn load_with(
    addr: SocketAddr,
    path: &str,
    bodies: &[Bytes],
    connections: usize,
    headers: &[(&'static str, &'static str)],
) -> Result<f64, Box<dyn std::error::Error>> {
    let bodies = Arc::new(bodies.to_vec());
    let headers: Arc<Vec<(&'static str, &'static str)>> = Arc::new(headers.to_vec());
    let deadline = Instant::now() + seconds();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (bodies, path, headers) = (bodies.clone(), path.to_owned(), headers.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut done = 0u64;
            let mut i = c;
            while Instant::now() < deadline {
                let mut request =
                    Request::post(&path).header("host", "bench").header("content-type", "application/json");
                for (name, value) in headers.iter() {
                    request = request.header(*name, *value);
                }
                let request = request.body(Full::new(bodies[i % bodies.len()].clone()))?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                if !status.is_success() {
                    return Err(format!("{path} answered {status}: {}", String::from_utf8_lossy(&body)).into());
                }
                done += 1;
                i += connections;
            }
            Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(done)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?.map_err(|e| e.to_string())?;
    }
    Ok(total as f64 / seconds().as_secs_f64())
}

pub async fn start_gateway(dir: &Path) -> Result<(tokio::process::Child, SocketAddr), Box<dyn std::error::Error>> {
    start_gateway_with(dir, &[]).await
}

/// [`start_gateway`] with extra `WEIR_*` settings.
pub async fn start_gateway_with(
    dir: &Path,
    env: &[(&str, &str)],
) -> Result<(tokio::process::Child, SocketAddr), Box<dyn std::error::Error>> {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .envs(env.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let addr = listening_addr(&mut child, "weir listening on http://").await?;
    Ok((child, addr))
}

pub async fn listening_addr(
    child: &mut tokio::process::Child,
    prefix: &str,
) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(addr) = line.strip_prefix(prefix) {
            let addr = addr.parse()?;
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(addr);
        }
    }
    Err("the server exited before listening".into())
}

pub async fn post_json(addr: SocketAddr, path: &str, body: Value) -> Result<Value, Box<dyn std::error::Error>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = Request::post(path).header("host", "bench").body(Full::new(Bytes::from(body.to_string())))?;
    let response = sender.send_request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

/// The gateway's encoder, in process: an [`Ingestor`] of project `bench` on
/// a metadata store and file log in `dir`, with the context its requests
/// get.
pub async fn encoder(
    dir: &Path,
) -> Result<(weir_gateway::ingest::Ingestor, weir_gateway::ingest::Context), Box<dyn std::error::Error>> {
    let store = weir_gateway::metadata::open(&format!("sqlite://{}/encoder.db", dir.display())).await?;
    store.create_project("bench", 0).await?;
    let registry = Arc::new(weir_gateway::schema::SchemaRegistry::new(store.clone()));
    let settings = weir_gateway::log::LogSettings {
        file: &weir_gateway::log::file::FileLogConfig::default(),
        kafka: &weir_gateway::log::kafka::KafkaLogConfig::default(),
    };
    let log = weir_gateway::log::open(&format!("file://{}/log", dir.display()), settings, store).await?;
    let ctx = weir_gateway::ingest::Context {
        project: "bench".into(),
        received_ms: 1_700_000_000_000,
        ..weir_gateway::ingest::Context::default()
    };
    Ok((weir_gateway::ingest::Ingestor::new(registry, log), ctx))
}

/// Times queries on DuckDB (`benches/duckdb_queries.py`, the Python
/// package) over Parquet files: `spec` is `{"tables": {name: [files]},
/// "queries": [sql], "runs": n}`; the answer `{"seconds": [...], "rows":
/// [...]}`.
pub fn duckdb(spec: &Value) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/duckdb_queries.py");
    let mut child =
        std::process::Command::new("python3").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    child.stdin.take().ok_or("stdin")?.write_all(spec.to_string().as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err("DuckDB failed: is it installed (pip install duckdb pytz)?".into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}
