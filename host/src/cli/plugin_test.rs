//! `sluice plugin test FILE.wasm --cases CASES`: load one plugin exactly as
//! the gateway would (its manifest's limits, grants and config, the same
//! runtime, pools included) and run a case file against it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use super::cases::{self, Case, Outcome};
use crate::plugin::audit;
use crate::plugin::log::escaped;
use crate::plugin::{Manifest, Plugin, PluginRuntime, PluginState, PluginsConfig};

/// What `sluice plugin test` was asked to do.
#[derive(Debug, Clone)]
pub struct TestRun {
    pub wasm: PathBuf,
    pub cases: PathBuf,
    /// Default: `NAME.toml` beside the component, else a manifest with
    /// nothing but the kind the component exports.
    pub manifest: Option<PathBuf>,
    /// Plugin name cases are matched against (`plugin:`); default the file stem.
    pub name: Option<String>,
    pub strict_imports: bool,
}

/// One row of the result table.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub expected: String,
    pub outcome: Outcome,
}

/// The results of a run.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub plugin: String,
    pub results: Vec<CaseResult>,
    /// Cases for other plugins.
    pub skipped: usize,
}

impl TestReport {
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.outcome.passed).count()
    }

    /// The table: one row per case with its time, failures explained.
    pub fn to_text(&self) -> String {
        let width = self
            .results
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 60);
        let mut s = String::new();
        let _ = writeln!(s, "{:<width$}  RESULT  {:>9}", "CASE", "TIME");
        for r in &self.results {
            let verdict = if r.outcome.passed { "ok" } else { "FAIL" };
            let ms = r.outcome.elapsed.as_secs_f64() * 1e3;
            let _ = writeln!(s, "{:<width$}  {verdict:<6}  {ms:>6.2} ms", r.name);
            if !r.outcome.passed {
                let _ = writeln!(s, "    expected {}", r.expected);
                let _ = writeln!(s, "    got      {}", r.outcome.got);
            }
        }
        let passed = self.results.len() - self.failed();
        let _ = write!(
            s,
            "plugin {}: {passed} of {} case(s) ok, {} failed",
            self.plugin,
            self.results.len(),
            self.failed()
        );
        if self.skipped > 0 {
            let _ = write!(s, " ({} for other plugins skipped)", self.skipped);
        }
        s.push('\n');
        s
    }
}

/// Load the plugin and run every case that applies to it, one after the
/// other.
pub async fn run(t: &TestRun) -> anyhow::Result<TestReport> {
    let name = match &t.name {
        Some(n) => n.clone(),
        None => t
            .wasm
            .file_stem()
            .and_then(|s| s.to_str())
            .context("the component's file name is not UTF-8")?
            .to_owned(),
    };
    let all = cases::load(&t.cases)?;
    let (mine, other): (Vec<Case>, Vec<Case>) = all.into_iter().partition(|c| c.applies_to(&name));
    if mine.is_empty() {
        bail!(
            "{} has no case for plugin `{name}` ({} for other plugins)",
            t.cases.display(),
            other.len()
        );
    }
    let (dir, plugin) = load(t, &name)?;
    let mut results = Vec::with_capacity(mine.len());
    for c in &mine {
        results.push(CaseResult {
            name: c.name.clone(),
            expected: cases::describe_expect(&c.expect),
            outcome: cases::run(&plugin, c).await,
        });
    }
    drop(dir);
    Ok(TestReport {
        plugin: name,
        results,
        skipped: other.len(),
    })
}

/// A one-plugin directory (the component and its manifest, relative paths
/// resolved where the manifest lives) loaded by a real runtime.
fn load(t: &TestRun, name: &str) -> anyhow::Result<(tempfile::TempDir, Arc<Plugin>)> {
    let dir = tempfile::tempdir().context("creating a scratch plugin directory")?;
    let cfg = PluginsConfig {
        dir: dir.path().to_path_buf(),
        watch: false,
        strict_imports: t.strict_imports,
        ..PluginsConfig::default()
    };
    let sibling = t.wasm.with_extension("toml");
    let manifest_path = t
        .manifest
        .clone()
        .or_else(|| sibling.is_file().then_some(sibling));
    let manifest = match &manifest_path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let base = path.parent().unwrap_or(Path::new("."));
            Manifest::parse(&text, base).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => {
            let report = audit::audit(&t.wasm, None, &cfg)?;
            let kind = report.kind.with_context(|| {
                format!(
                    "{} exports no sluice:plugin world: {}",
                    t.wasm.display(),
                    escaped(report.problems.join("; "))
                )
            })?;
            Manifest::with_defaults(kind)
        }
    };
    std::fs::copy(&t.wasm, dir.path().join(format!("{name}.wasm")))
        .with_context(|| format!("reading {}", t.wasm.display()))?;
    std::fs::write(
        dir.path().join(format!("{name}.toml")),
        toml::to_string(&manifest).context("writing the manifest")?,
    )?;
    let rt = PluginRuntime::start(cfg)?;
    if let Some(plugin) = rt.current().get(name) {
        return Ok((dir, plugin.clone()));
    }
    let why = rt
        .statuses()
        .into_iter()
        .find_map(|s| match s.state {
            PluginState::Failed { error, .. } => Some(error),
            PluginState::Loaded => None,
        })
        .unwrap_or_else(|| "not loaded".into());
    // May quote the guest (a start function's stderr).
    bail!("{}", escaped(why))
}
