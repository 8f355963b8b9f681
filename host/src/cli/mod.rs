//! The `sluice` command line.
//!
//! ```text
//! sluice serve --config FILE          run the gateway
//! sluice mock-upstream [--listen ..]  a deterministic OpenAI-compatible upstream
//! sluice plugin audit|list|new|test   inspect, scaffold and test plugins
//! sluice config check FILE            validate a config, report every problem
//! sluice prompt list|show|render|activate|history   the prompt registry
//! sluice eval run|compare ...         evaluation suites and the CI gate
//! sluice usage --by key|user|feature|model|day [--since ..] [--until ..] [--json]
//! sluice keys create|list|revoke      virtual keys in the state store
//! sluice review list|show|approve|reject   the human review queue
//! sluice cache stats|purge [--model M] [--key K]   the response cache
//! sluice logs tail [-f] [-n N] | query --key .. --since ..   the request log
//! ```
//! Logs go to stderr, `pretty` (default) or `json` (`--log-format` or
//! `SLUICE_LOG_FORMAT`), filtered by `RUST_LOG` (default `info`).

pub mod cache;
pub mod cases;
pub mod eval;
pub mod logs;
pub mod plugin;
pub mod plugin_new;
pub mod plugin_test;
pub mod prompt;
pub mod review;
pub mod state;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::Config;
use crate::pipeline::Gateway;

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "An LLM gateway with WebAssembly guardrails"
)]
pub struct Cli {
    /// Log line format on stderr.
    #[arg(
        long,
        global = true,
        env = "SLUICE_LOG_FORMAT",
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// The TOML config file (see examples/sluice.toml).
        #[arg(long, short, env = "SLUICE_CONFIG")]
        config: PathBuf,
    },
    /// Run the deterministic mock upstream (demo, tests, benchmarks).
    MockUpstream(crate::mock::MockConfig),
    /// Inspect plugins: audit a component, list a plugin directory.
    #[command(subcommand)]
    Plugin(plugin::PluginCmd),
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// The prompt registry: list, show, render, activate (roll back), history.
    #[command(subcommand)]
    Prompt(prompt::PromptCmd),
    /// Evaluation suites: run one through a gateway, compare two runs.
    #[command(subcommand)]
    Eval(eval::EvalCmd),
    /// Usage and cost from the ledger, grouped.
    Usage(state::UsageArgs),
    /// Manage virtual keys (the secret is shown once, at creation).
    #[command(subcommand)]
    Keys(state::KeysCmd),
    /// The human review queue of flagged answers.
    #[command(subcommand)]
    Review(review::ReviewCmd),
    /// The response cache: stats and hit rates, purge.
    #[command(subcommand)]
    Cache(cache::CacheCmd),
    /// The request log (`[request-log]`): tail it, query it.
    #[command(subcommand)]
    Logs(logs::LogsCmd),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Validate FILE: every problem is printed with its file:line:col.
    Check { file: PathBuf },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` starts its log with the trace exporter its config names.
    if !matches!(cli.command, Command::Serve { .. }) {
        init_logging(cli.log_format, None);
    }
    let result = match cli.command {
        Command::Serve { config: path } => runtime().and_then(|rt| {
            let config = Config::load(&path)?;
            let telemetry = crate::telemetry::Telemetry::start(&config.telemetry)?;
            init_logging(cli.log_format, telemetry.as_ref());
            let result = rt.block_on(serve(path, config));
            // What is still batched goes out before the exit.
            if let Some(t) = &telemetry {
                t.shutdown();
            }
            // Requests cut at the drain deadline may leave plugin calls on
            // blocking threads; they must not hold the exit.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            result
        }),
        Command::MockUpstream(args) => runtime().and_then(|rt| rt.block_on(mock(args))),
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Config(ConfigCmd::Check { file }) => check(&file),
        Command::Prompt(cmd) => prompt::run(cmd),
        Command::Eval(cmd) => eval::run(cmd),
        Command::Usage(args) => runtime().and_then(|rt| rt.block_on(state::usage(args))),
        Command::Keys(cmd) => runtime().and_then(|rt| rt.block_on(state::keys(cmd))),
        Command::Review(cmd) => review::run(cmd),
        Command::Cache(cmd) => runtime().and_then(|rt| rt.block_on(cache::run(cmd))),
        Command::Logs(cmd) => logs::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_logging(format: LogFormat, telemetry: Option<&crate::telemetry::Telemetry>) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colours only for a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = traced_subscriber(format, filter, ansi, std::io::stderr, telemetry).try_init();
}

/// The gateway's log lines in `format`, filtered by `filter`, written to
/// `writer` (stderr when serving; a buffer in tests that read the log),
/// with ANSI colours when `ansi` (pretty format only).
pub fn log_subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    traced_subscriber(format, filter, ansi, writer, None)
}

/// [`log_subscriber`], plus the trace exporter's layer when `telemetry` is
/// set. Each layer has its own filter: the log never shows the stage spans
/// (`telemetry::log_filter`), the exporter sees only them.
pub fn traced_subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    ansi: bool,
    writer: W,
    telemetry: Option<&crate::telemetry::Telemetry>,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    let filter = crate::telemetry::log_filter(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let log = match format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Pretty => fmt.with_filter(filter).boxed(),
    };
    let spans = telemetry.map(|t| t.layer());
    Box::new(tracing_subscriber::registry().with(log).with(spans))
}

/// The same validation `serve` runs before it compiles anything
/// ([`Config::load`]), so the two never disagree.
fn check(file: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(file)?;
    // Not an error: the plugin directory is often built after the config is
    // written (and hot reload picks plugins up later), but worth saying.
    for name in config.referenced_plugins() {
        let wasm = config.plugins.dir.join(format!("{name}.wasm"));
        if !wasm.is_file() {
            println!(
                "warning: plugin `{name}` is referenced but {} does not exist yet; its models answer 503 until it loads",
                wasm.display()
            );
        }
    }
    println!(
        "{}: ok ({} provider(s), {} model(s), {} key(s){})",
        file.display(),
        config.providers.len(),
        config.models.len(),
        config.keys.len(),
        if config.keys.is_empty() {
            "; auth is OFF unless the state store holds keys"
        } else {
            ""
        }
    );
    Ok(())
}

async fn serve(path: PathBuf, config: Config) -> anyhow::Result<()> {
    let listen = config.server.listen;
    // Opening the state blocks on the runtime (sled, or Redis's first
    // connection): keep it off the async workers.
    let gw = tokio::task::spawn_blocking(move || Gateway::starting(config))
        .await
        .context("starting the gateway")??;
    let gw = Arc::new(prompt::attach(gw).await?);
    let mut signals = Signals::new().context("listening for SIGINT / SIGTERM")?;
    let server = &gw.config.server;
    let listeners = crate::server::threads::bind(listen, server.runtime, server.serving_threads())
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(addr = %listeners.local_addr()?, config = %path.display(), "sluice listening");
    // Listen first, then compile: `/healthz` answers and `/readyz` says
    // 503 while plugins compile (CPU work, kept off the async workers).
    // A failure here (the watcher) leaves the gateway not ready for good,
    // so it ends the process like any other start-up error.
    let loading = {
        let gw = gw.clone();
        tokio::task::spawn_blocking(move || {
            gw.plugins.initial_load()?;
            let missing = gw.missing_plugins();
            if !missing.is_empty() {
                tracing::warn!(
                    ?missing,
                    "plugins named in the config are not loaded; their models answer 503 until they are"
                );
            }
            Ok::<_, crate::plugin::PluginError>(())
        })
    };
    let grace = gw.config.server.shutdown_grace_ms;
    let shutdown = async move {
        let first = signals.next().await;
        tracing::info!(
            signal = first,
            grace_ms = grace,
            "shutdown signal received; finishing in-flight requests (a second signal exits now)"
        );
        tokio::spawn(async move {
            let second = signals.next().await;
            tracing::warn!(signal = second, "second signal: exiting without waiting");
            std::process::exit(128 + second);
        });
    };
    let state = gw.state.clone();
    let reqlog = gw.reqlog.clone();
    let serving = crate::server::threads::serve_on(listeners, gw, shutdown);
    tokio::pin!(serving);
    tokio::select! {
        served = &mut serving => served?,
        loaded = loading => {
            loaded
                .context("loading plugins")?
                .context("loading plugins")?;
            serving.await?;
        }
    }
    // Group commit may hold the last few ms of ledger records.
    if let Err(e) = state.flush().await {
        tracing::error!(error = %e, "flushing the state at shutdown failed");
    }
    reqlog.flush().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The mock until it fails or a shutdown signal arrives.
async fn mock(args: crate::mock::MockConfig) -> anyhow::Result<()> {
    let mut signals = Signals::new().context("listening for SIGINT / SIGTERM")?;
    tokio::select! {
        r = crate::mock::run(args) => r,
        _ = signals.next() => Ok(()),
    }
}

/// SIGINT (Ctrl-C) and SIGTERM (container stop), listened to once for the
/// whole run so a second signal is never missed.
pub struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// The next signal's number (2 = SIGINT, 15 = SIGTERM).
    pub async fn next(&mut self) -> i32 {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => 2,
                _ = self.term.recv() => 15,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            2
        }
    }
}
