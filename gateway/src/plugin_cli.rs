//! `weir plugin ...`: manage a project's plugins on a running gateway.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use weir_sdk::Client;

#[derive(Args)]
pub struct PluginArgs {
    /// The gateway's address.
    #[arg(long, default_value = "http://127.0.0.1:9999", global = true)]
    url: String,
    /// The project's master key.
    #[arg(long, global = true)]
    master_key: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Upload a component (a new plugin, or the next version of one).
    Upload {
        /// The component (`cargo build --release --target wasm32-wasip2`).
        file: PathBuf,
        /// The plugin's name in the project (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Where it runs: enrich (events), rewrite (queries) or crm (CRM
        /// pass-through requests and answers).
        #[arg(long)]
        hook: String,
        /// Plugins of a hook run in ascending order.
        #[arg(long)]
        order: Option<i64>,
        /// What happens to events (a CRM request or answer) when an enricher
        /// (a CRM hook) fails: pass or reject.
        #[arg(long)]
        on_error: Option<String>,
        /// Memory cap in MiB.
        #[arg(long)]
        memory_mb: Option<u64>,
        /// Deadline per call in milliseconds.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// A configuration to set after the upload (JSON).
        #[arg(long)]
        config: Option<String>,
    },
    /// Set a plugin's configuration (JSON).
    Config { name: String, config: String },
    /// List the project's plugins.
    List,
    /// Run a plugin (stored, or a component file) without storing anything.
    Test {
        /// A stored plugin's name, or a component file to run instead.
        plugin: String,
        /// Events for an enricher: a JSON array of {collection, properties}.
        #[arg(long, conflicts_with = "query")]
        events: Option<String>,
        /// A query for a rewriter.
        #[arg(long, conflicts_with = "request")]
        query: Option<String>,
        /// A request for a CRM hook (JSON: {method, path, query, headers,
        /// body}); with --response, its `on-response` runs.
        #[arg(long, conflicts_with = "events")]
        request: Option<String>,
        /// An upstream's answer for a CRM hook (JSON: {status, headers,
        /// body}).
        #[arg(long, requires = "request")]
        response: Option<String>,
        /// A configuration to run with instead of the stored one (JSON).
        #[arg(long)]
        config: Option<String>,
    },
    /// Delete a plugin.
    Delete { name: String },
}

fn parse_json(what: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON"))
}

pub async fn run(args: PluginArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.url).context("--url")?;
    let key = args.master_key.context("--master-key is required")?;
    let headers = [("master_key", key.as_str())];
    let answer = match args.action {
        Action::Upload { file, name, hook, order, on_error, memory_mb, timeout_ms, config } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let name = match name {
                Some(n) => n,
                None => {
                    let stem = file.file_stem().and_then(|s| s.to_str()).context("name the plugin with --name")?;
                    stem.replace('_', "-")
                }
            };
            let mut path = format!("/plugin/upload?name={name}&hook={hook}");
            let params = [
                ("order", order.map(|v| v.to_string())),
                ("on_error", on_error),
                ("memory_mb", memory_mb.map(|v| v.to_string())),
                ("timeout_ms", timeout_ms.map(|v| v.to_string())),
            ];
            for (k, v) in params {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={v}"));
                }
            }
            let upload = [("master_key", key.as_str()), ("content-type", "application/wasm")];
            let answer = checked(client.send("POST", &path, &upload, bytes).await?)?;
            if let Some(config) = config {
                let body = json!({"name": name, "config": parse_json("--config", &config)?});
                checked(client.post("/plugin/config", &headers, &body).await?)?;
            }
            answer
        }
        Action::Config { name, config } => {
            let body = json!({"name": name, "config": parse_json("the configuration", &config)?});
            checked(client.post("/plugin/config", &headers, &body).await?)?
        }
        Action::List => checked(client.post("/plugin/list", &headers, &json!({})).await?)?,
        Action::Test { plugin, events, query, request, response, config } => {
            let mut body = if plugin.ends_with(".wasm") || Path::new(&plugin).is_file() {
                let bytes = std::fs::read(&plugin).with_context(|| format!("reading {plugin}"))?;
                json!({"component": base64::engine::general_purpose::STANDARD.encode(bytes)})
            } else {
                json!({"name": plugin})
            };
            match (events, query, request) {
                (Some(events), _, _) => body["events"] = parse_json("--events", &events)?,
                (None, Some(query), _) => body["query"] = json!(query),
                (None, None, Some(request)) => {
                    body["request"] = parse_json("--request", &request)?;
                    if let Some(response) = response {
                        body["response"] = parse_json("--response", &response)?;
                    }
                }
                (None, None, None) => bail!("give --events (enricher), --query (rewriter) or --request (CRM hook)"),
            }
            if let Some(config) = config {
                body["config"] = parse_json("--config", &config)?;
            }
            checked(client.post("/plugin/test", &headers, &body).await?)?
        }
        Action::Delete { name } => checked(client.post("/plugin/delete", &headers, &json!({"name": name})).await?)?,
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

fn checked(response: weir_sdk::Response) -> anyhow::Result<Value> {
    if response.status != 200 {
        let body = response.json();
        let message = body["error"].as_str().map_or_else(|| response.text(), str::to_owned);
        bail!("the gateway answered {}: {message}", response.status);
    }
    Ok(response.json())
}
