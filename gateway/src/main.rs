//! The `weir` command.

mod plugin_cli;

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use weir_gateway::config::{Config, Overrides};

/// Request handling allocates many small, short-lived objects; mimalloc
/// serves them several times faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long mimalloc keeps freed memory before giving it back to the
/// system, in milliseconds. Its default (1,000) lets a burst of ingest hold
/// tens of megabytes for a second after it ends; 10 ms keeps nearly all of
/// the speed (BENCHMARKS.md, "memory under load").
const PURGE_DELAY_MS: &str = "10";
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// mimalloc reads its options from the environment once, before `main`;
/// setting one from Rust takes `unsafe`, so the server starts itself again,
/// in place (same process id), with the option in its environment. A value
/// the operator set is kept.
fn with_allocator_options() {
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    let error = std::process::Command::new(exe).arg0(arg0).args(args).env(PURGE_DELAY_VAR, PURGE_DELAY_MS).exec();
    eprintln!("weir: could not set {PURGE_DELAY_VAR} ({error}); going on with mimalloc's default");
}

#[derive(Parser)]
#[command(name = "weir", version, about = "Weir: an analytics event gateway that speaks Rakam's HTTP API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn serve_help() -> String {
    format!(
        "Every setting can also come from a TOML file (--config) and from WEIR_*
environment variables; '__' separates nested keys. Precedence: flags, then
environment, then the file, then defaults. `metadata` takes sqlite://<file>,
postgres://user:pass@host/db or mysql://user:pass@host/db.

Settings (TOML key, environment variable, default):
{}
Logging: RUST_LOG (for example RUST_LOG=weir_gateway=debug).",
        Config::settings_table()
    )
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    #[command(after_long_help = serve_help(), after_help = "See --help for every setting.")]
    Serve {
        /// TOML configuration file.
        #[arg(long, env = "WEIR_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "WEIR_LISTEN", value_name = "HOST:PORT")]
        listen: Option<String>,
        /// Folder for the embedded backends' data.
        #[arg(long, env = "WEIR_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Key that guards /project/create and /project/list.
        #[arg(long, env = "WEIR_LOCK_KEY", value_name = "KEY", hide_env_values = true)]
        lock_key: Option<String>,
        /// Metadata store URL: sqlite://, postgres:// or mysql://.
        #[arg(long, env = "WEIR_METADATA", value_name = "URL", hide_env_values = true)]
        metadata: Option<String>,
        /// Event log URL: file://<folder> or kafka://<host:port>[,…].
        #[arg(long, env = "WEIR_LOG", value_name = "URL")]
        log: Option<String>,
        /// Who does master work: single or zookeeper://host:port[,…]/chroot.
        #[arg(long, env = "WEIR_ELECTION", value_name = "URL")]
        election: Option<String>,
    },
    /// Manage a project's WebAssembly plugins on a running gateway.
    Plugin(plugin_cli::PluginArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve { .. }) {
        with_allocator_options();
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve { config, listen, data_dir, lock_key, metadata, log, election } => {
            let overrides = Overrides { listen, data_dir, lock_key, metadata, log, election };
            let config = Config::load(config.as_deref(), &overrides)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(weir_gateway::app::serve(config)).context("weir serve")?;
        }
        Command::Plugin(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(plugin_cli::run(args))?;
        }
    }
    Ok(())
}
