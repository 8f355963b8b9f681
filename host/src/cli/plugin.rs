//! `sluice plugin audit|list|new|test`: inspect, scaffold and test plugins
//! without running the gateway.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::plugin_new::{self, Lang, NewPlugin};
use super::plugin_test::{self, TestRun};
use crate::config::Config;
use crate::plugin::audit;
use crate::plugin::log::escaped;
use crate::plugin::{PACKAGE_VERSION, PluginKind, PluginRuntime, PluginState, PluginsConfig};

#[derive(Subcommand, Debug)]
pub enum PluginCmd {
    /// Show a component's world, exports, every import with its verdict
    /// (contract / baseline / baseline (inert) / granted / REFUSED), grants,
    /// flagged file grants, limits and SHA-256, then load it as the gateway
    /// would (same checks, linker and trial instantiation). Exits non-zero
    /// when the runtime would refuse it.
    Audit {
        /// The component (`NAME.wasm`).
        file: PathBuf,
        /// Its manifest; without one nothing is granted.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The gateway config whose `[plugins]` settings (memory cap, fuel,
        /// instance limits, directories, strict imports) the plugin must
        /// load under. Default: the built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Judge as a gateway with `[plugins] strict-imports = true` would
        /// (whatever `--config` says): inert interfaces need their grant too.
        #[arg(long)]
        strict_imports: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a new plugin project NAME/ that builds and loads as is: the
    /// manifest, a case file, the source, the contract (`wit/`) and a
    /// `build` script that installs the language's toolchain on first use.
    New {
        /// The plugin's name (`NAME.wasm`, `NAME.toml`).
        name: String,
        /// What it is.
        #[arg(long, value_parser = ["guardrail", "router", "cost-policy"])]
        kind: String,
        /// What it is written in.
        #[arg(long)]
        lang: Lang,
        /// Where to create it. Default: ./NAME.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a plugin against a case file (YAML, or JSON Lines as `.jsonl`)
    /// of inputs and expected verdicts, under its manifest's limits and
    /// grants; prints a table with each case's time. Exits non-zero when a
    /// case fails. Case format: `sluice::cli::cases`, docs/plugins.md.
    Test {
        /// The component (`NAME.wasm`).
        file: PathBuf,
        /// The case file.
        #[arg(long)]
        cases: PathBuf,
        /// Its manifest. Default: `NAME.toml` beside the component, else
        /// nothing granted and default limits.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The plugin name matched against a case's `plugin:`. Default:
        /// the component's file name without `.wasm`.
        #[arg(long)]
        name: Option<String>,
        /// Load as a gateway with `[plugins] strict-imports = true` would.
        #[arg(long)]
        strict_imports: bool,
    },
    /// Load a plugin directory as the gateway would and show the chains and
    /// every plugin's state.
    List {
        /// Directory of `NAME.wasm` + `NAME.toml` pairs.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Run a `sluice plugin` subcommand, printing to stdout.
pub fn run(cmd: PluginCmd) -> anyhow::Result<()> {
    match cmd {
        PluginCmd::Audit {
            file,
            manifest,
            config,
            strict_imports,
            json,
        } => {
            let mut plugins = match config {
                Some(path) => Config::load(&path)?.plugins,
                None => PluginsConfig::default(),
            };
            plugins.strict_imports |= strict_imports;
            let report = audit::audit(&file, manifest.as_deref(), &plugins)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            if !report.accepted {
                anyhow::bail!(
                    "{} would be refused: {}",
                    file.display(),
                    escaped(report.problems.join("; "))
                );
            }
            Ok(())
        }
        PluginCmd::New {
            name,
            kind,
            lang,
            dir,
        } => {
            let kind = PluginKind::from_interface(&kind)
                .with_context(|| format!("unknown kind `{kind}`"))?;
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let files = plugin_new::create(&NewPlugin {
                name: name.clone(),
                kind,
                lang,
                dir: dir.clone(),
            })?;
            println!("created {} ({lang} {kind}):", dir.display());
            for f in files.iter().filter(|f| !f.starts_with("wit")) {
                println!("  {}", f.display());
            }
            println!("  wit/ (the contract, sluice:plugin@{PACKAGE_VERSION})");
            println!(
                "next: cd {} && ./build && sluice plugin test dist/{name}.wasm --cases cases.yaml",
                dir.display()
            );
            Ok(())
        }
        PluginCmd::Test {
            file,
            cases,
            manifest,
            name,
            strict_imports,
        } => {
            let report = super::runtime()?.block_on(plugin_test::run(&TestRun {
                wasm: file,
                cases,
                manifest,
                name,
                strict_imports,
            }))?;
            print!("{}", report.to_text());
            if report.failed() > 0 {
                anyhow::bail!("{} case(s) failed", report.failed());
            }
            Ok(())
        }
        PluginCmd::List { dir, json } => {
            let (text, failed) = list(dir, json)?;
            print!("{text}");
            if failed > 0 {
                anyhow::bail!("{failed} plugin(s) failed to load");
            }
            Ok(())
        }
    }
}

/// Render the listing of `dir`; returns the text and the number of failed plugins.
pub fn list(dir: PathBuf, json: bool) -> anyhow::Result<(String, usize)> {
    let rt = PluginRuntime::start(PluginsConfig {
        dir: dir.clone(),
        watch: false,
        pool_size: 0,
        ..PluginsConfig::default()
    })
    .with_context(|| format!("loading {}", dir.display()))?;
    let statuses = rt.statuses();
    let failed = statuses
        .iter()
        .filter(|s| matches!(s.state, PluginState::Failed { .. }))
        .count();
    if json {
        return Ok((serde_json::to_string_pretty(&statuses)? + "\n", failed));
    }
    let set = rt.current();
    let mut s = String::new();
    for (title, chain) in [
        ("guardrails", set.guardrails()),
        ("routers", set.routers()),
        ("cost policies", set.cost_policies()),
    ] {
        let names: Vec<String> = chain
            .iter()
            .map(|p| format!("{} ({})", p.name(), p.manifest().order))
            .collect();
        let _ = writeln!(
            s,
            "{title:<14} {}",
            if names.is_empty() {
                "-".into()
            } else {
                names.join(" -> ")
            }
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<20} {:<12} {:<9} {:<13} {:<7} {:<14} {:<22} SHA-256",
        "NAME", "KIND", "CONTRACT", "PHASES", "MODE", "STATE", "GRANTS"
    );
    for st in &statuses {
        let kind = st.kind.map_or("-".into(), |k| k.to_string());
        let mode = st
            .failure_mode
            .map_or("-".into(), |m| format!("{m:?}").to_lowercase());
        let grants: Vec<&str> = st.grants.iter().map(|g| g.key()).collect();
        let grants = if grants.is_empty() {
            "-".into()
        } else {
            grants.join(",")
        };
        let sha = st.sha256.as_deref().map_or("-", |h| &h[..16.min(h.len())]);
        let contract = st.contract.as_deref().unwrap_or("-");
        let phases = match &st.phases {
            Some(p) if p.is_empty() => "none".to_string(),
            Some(p) => p.join(","),
            None => "-".into(),
        };
        let state = match &st.state {
            PluginState::Loaded => "loaded".to_string(),
            PluginState::Failed {
                serving_previous: true,
                ..
            } => "FAILED(old)".into(),
            PluginState::Failed { .. } => "FAILED".into(),
        };
        let _ = writeln!(
            s,
            "{:<20} {kind:<12} {contract:<9} {phases:<13} {mode:<7} {state:<14} {grants:<22} {sha}",
            st.name
        );
        if let PluginState::Failed { error, .. } = &st.state {
            // May quote the guest (a start function's stderr).
            let _ = writeln!(s, "    {}", escaped(error));
        }
    }
    Ok((s, failed))
}
