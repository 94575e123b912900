//! Plugin benchmark. Prints, from one run:
//!
//! - events/s through `/event/batch` (100 events per request) of three
//!   projects of the real `weir` process: without a plugin, with the identity
//!   enricher, with the user-agent enricher; and what the identity plugin
//!   adds per event;
//! - in process, on the gateway's runtime: the cost of one call with an
//!   empty batch (a fresh store, an instance from the pre-instantiated
//!   component, the call: the per-call instantiation cost), and of a
//!   100-event batch through each plugin;
//! - the same two transformations compiled natively and run in process,
//!   with the ratios.
//!
//! Run: `cd plugins && cargo build --release --target wasm32-wasip2
//! && cd .. && cargo bench -p weir-gateway --bench plugins`
//! (`WEIRBENCH_SECONDS` sets the length of each load phase, default 10;
//! `WEIRBENCH_IN_PROCESS_ONLY=1` skips the HTTP phases).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use weir_gateway::ingest::Event;
use weir_gateway::plugin::assets::Assets;
use weir_gateway::plugin::bindings::types;
use weir_gateway::plugin::enrich::to_wire;
use weir_gateway::plugin::host::LogCaps;
use weir_gateway::plugin::runtime::{CallLimits, Prepared, Runtime, RuntimeLimits};
use weir_gateway::plugin::{Hook, bindings::enricher::EnricherPre, host::HostState};
use weir_plugin::Enricher as _;

use common::{batch_body, events, load, post_json, seconds, start_gateway_with};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS_PER_BATCH: usize = 100;
const CONNECTIONS: usize = 8;

/// User agents as they arrive: mostly current browsers, some apps and bots.
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.129 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run())
}

fn component(name: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    let path = target.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).map_err(|e| {
        format!(
            "{}: {e}; build the plugins first (cd plugins && cargo build --release --target wasm32-wasip2)",
            path.display()
        )
        .into()
    })
}

/// Events of the ingest benchmark, each with a user agent.
fn events_with_user_agents(rng: &mut StdRng, n: usize) -> Vec<Value> {
    let mut out = events(rng, n);
    for (i, e) in out.iter_mut().enumerate() {
        e["properties"]["_user_agent"] = json!(USER_AGENTS[i % USER_AGENTS.len()]);
    }
    out
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = StdRng::seed_from_u64(11);
    let identity = component("identity")?;
    let user_agent = component("user-agent")?;
    println!(
        "Weir plugin benchmark: {} s per load phase, {CONNECTIONS} connections, batches of {EVENTS_PER_BATCH} events",
        seconds().as_secs()
    );

    // Through HTTP, one project per case.
    let dir = tempfile::tempdir()?;
    let http = std::env::var("WEIRBENCH_IN_PROCESS_ONLY").is_err();
    // One tenant alone: its plugin calls may use every core (by default a
    // project gets half of them, to leave the rest to other tenants).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
    let (gateway, addr) = start_gateway_with(dir.path(), &[("WEIR_PLUGINS__PROJECT_CALLS", &cores)]).await?;
    let sample: Vec<Vec<Value>> = (0..200).map(|_| events_with_user_agents(&mut rng, EVENTS_PER_BATCH)).collect();
    let mut rates = Vec::new();
    for (project, plugin) in [("plain", None), ("identity", Some(&identity)), ("useragent", Some(&user_agent))] {
        if !http {
            rates.push(1.0);
            continue;
        }
        let keys = post_json(addr, "/project/create", json!({"name": project})).await?;
        let write = keys["write_key"].as_str().ok_or("no write key")?.to_owned();
        let master = keys["master_key"].as_str().ok_or("no master key")?.to_owned();
        if let Some(bytes) = plugin {
            upload(addr, &master, project, bytes.clone()).await?;
        }
        let bodies: Vec<Bytes> = sample.iter().map(|events| batch_body(&write, events)).collect();
        let rate = load(addr, "/event/batch", &bodies, CONNECTIONS).await? * EVENTS_PER_BATCH as f64;
        println!("/event/batch, {:<28} {rate:>10.0} events/s", format!("{project} project:"));
        rates.push(rate);
    }
    drop(gateway);
    let (plain, with_identity, with_ua) = (rates[0], rates[1], rates[2]);
    let added_us = (1.0 / with_identity - 1.0 / plain) * 1e6;

    // In process, on the gateway's runtime.
    let runtime = Runtime::new(
        RuntimeLimits { instances: 16, max_memory_bytes: 256 << 20, log: LogCaps { lines: 100, bytes: 16 << 10 } },
        Arc::new(Assets::new(dir.path().to_owned())),
    )?;
    let Prepared::Enrich(identity_pre) = runtime.prepare(&identity, Hook::Enrich)? else { return Err("hook".into()) };
    let Prepared::Enrich(ua_pre) = runtime.prepare(&user_agent, Hook::Enrich)? else { return Err("hook".into()) };
    let limits = CallLimits { memory_bytes: 64 << 20, timeout: Duration::from_secs(1) };
    let wire: Vec<types::Event> = sample[0]
        .iter()
        .map(|e| {
            Event::new(e["collection"].as_str().unwrap_or("x"), Some(e["properties"].clone())).map(|e| to_wire(&e))
        })
        .collect::<Result<_, _>>()?;
    let empty_call = per_call(&runtime, &identity_pre, limits, &[]);
    let identity_call = per_call(&runtime, &identity_pre, limits, &wire);
    let ua_call = per_call(&runtime, &ua_pre, limits, &wire);
    let native_identity =
        native(&wire, |events| identity::Identity::enrich(&weir_plugin::RequestContext::default(), events));
    let native_ua =
        native(&wire, |events| user_agent::UserAgentEnricher::enrich(&weir_plugin::RequestContext::default(), events));
    println!("in process, one call with an empty batch (store + instance + call): {:>8.1} us", empty_call * 1e6);
    println!(
        "in process, identity plugin, {EVENTS_PER_BATCH} events:                       {:>8.1} us",
        identity_call * 1e6
    );
    println!("in process, user-agent plugin, {EVENTS_PER_BATCH} events:                     {:>8.1} us", ua_call * 1e6);
    println!(
        "native, identity, {EVENTS_PER_BATCH} events:                                  {:>8.1} us",
        native_identity * 1e6
    );
    println!(
        "native, user agent, {EVENTS_PER_BATCH} events:                                {:>8.1} us",
        native_ua * 1e6
    );

    println!();
    println!("| measure | figure | target | met |");
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, figure: String, target: &str, met: bool| {
        let met = if target.is_empty() {
            "-"
        } else if met {
            "yes"
        } else {
            "no"
        };
        println!("| {name} | {figure} | {target} | {met} |");
    };
    row("/event/batch, no plugin", format!("{plain:.0} events/s"), "", true);
    row("/event/batch, identity plugin", format!("{with_identity:.0} events/s"), "", true);
    row("/event/batch, user-agent plugin", format!("{with_ua:.0} events/s"), "", true);
    row("identity plugin, added per event (HTTP)", format!("{added_us:.2} us"), "<= 1 us", added_us <= 1.0);
    let in_process_added = (identity_call - native_identity) / EVENTS_PER_BATCH as f64 * 1e6;
    row(
        "identity plugin, added per event (in process)",
        format!("{in_process_added:.2} us"),
        "<= 1 us",
        in_process_added <= 1.0,
    );
    row("per-call instantiation", format!("{:.1} us", empty_call * 1e6), "<= 20 us", empty_call * 1e6 <= 20.0);
    let ratio = ua_call / native_ua;
    row("user-agent plugin / native", format!("{ratio:.2}"), "<= 2.0", ratio <= 2.0);
    Ok(())
}

async fn upload(
    addr: std::net::SocketAddr,
    master: &str,
    project: &str,
    bytes: Vec<u8>,
) -> Result<(), Box<dyn std::error::Error>> {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::post(format!("/plugin/upload?name={project}&hook=enrich&on_error=reject"))
        .header("host", "bench")
        .header("master_key", master)
        .header("content-type", "application/wasm")
        .body(Full::new(Bytes::from(bytes)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("upload answered {status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(())
}

/// Seconds per call, over about two seconds of calls.
fn per_call(runtime: &Runtime, pre: &EnricherPre<HostState>, limits: CallLimits, events: &[types::Event]) -> f64 {
    let context = types::RequestContext {
        project: "bench".into(),
        collection_names: vec!["pageview".into()],
        client_address: Some("203.0.113.9".into()),
        user_agent: None,
        headers: vec![],
    };
    let config: Arc<str> = Arc::from("null");
    let mut run = || {
        let called = runtime.enrich(pre, limits, config.clone(), &context, events);
        assert!(called.result.is_ok(), "{:?}", called.result);
    };
    timed(&mut run)
}

/// Seconds per batch of the transformation compiled natively, including
/// reading the events and writing back the changed ones, as the plugin does.
fn native(wire: &[types::Event], mut transform: impl FnMut(&mut [weir_plugin::Event])) -> f64 {
    let mut run = || {
        let mut events: Vec<weir_plugin::Event> =
            wire.iter().map(|e| weir_plugin::Event::from_json(e.collection.clone(), e.properties.clone())).collect();
        transform(&mut events);
        let out: Vec<_> = events.into_iter().map(weir_plugin::Event::into_verdict).collect();
        std::hint::black_box(out);
    };
    timed(&mut run)
}

fn timed(run: &mut dyn FnMut()) -> f64 {
    for _ in 0..200 {
        run();
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(2) {
        for _ in 0..50 {
            run();
        }
        n += 50;
    }
    started.elapsed().as_secs_f64() / n as f64
}
