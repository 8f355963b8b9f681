//! `sluice plugin audit`: what a security reviewer needs to decide on a
//! plugin: world and contract version, exports, a guardrail's phases,
//! every import with its verdict, grants, limits, flagged file grants,
//! SHA-256, and the verdict.
//!
//! The verdict is the loader's own: the same manifest validation, import
//! checks (`loader::inspect_against`), linker, trial instantiation under
//! the manifest's limits and load-time calls (`validate-config`, `phases`;
//! `loader::start`), on an engine with the runtime
//! settings of the given `[plugins]` config. "Accepted" means the gateway
//! running that config would load the plugin.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::bindings::{Contract, PACKAGE, phase_names};
use super::capability::{self, Access, Baseline, Grant};
use super::config::PluginsConfig;
use super::engine;
use super::error::PluginError;
use super::loader::{self, LoadEnv, MAX_MANIFEST_BYTES};
use super::log::escaped;
use super::manifest::{Capabilities, FailureMode, Isolation, Limits, Manifest, PluginKind};

/// The audit of one component (and optionally its manifest).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuditReport {
    pub file: PathBuf,
    pub sha256: String,
    pub size_bytes: usize,
    /// `sluice:plugin/<kind>-plugin@<version>`, from the component's export.
    pub world: Option<String>,
    pub kind: Option<PluginKind>,
    /// The contract version spoken with it (`0.2`, `0.1`), if one is.
    pub contract: Option<Contract>,
    /// The checks a guardrail implements (`input`, `output`), as asked at
    /// the trial load; none when the trial did not get that far.
    pub phases: Option<Vec<&'static str>>,
    pub exports: Vec<String>,
    /// Uses the component-model async ABI (runs on the async engine).
    pub component_model_async: bool,
    pub imports: Vec<AuditImport>,
    pub manifest: Option<PathBuf>,
    pub failure_mode: FailureMode,
    pub order: Option<i64>,
    pub grants: Vec<Grant>,
    /// Whether inert interfaces were accepted without a grant
    /// (`[plugins] strict-imports`).
    pub baseline: Baseline,
    pub capabilities: Capabilities,
    pub limits: Limits,
    /// Whether calls share instances (`limits.calls-per-instance`).
    pub isolation: Isolation,
    /// Files grants exposing broad or sensitive host paths (acknowledged
    /// or not; unacknowledged ones are also problems).
    pub flagged: Vec<String>,
    /// Every reason the runtime would refuse to load it; empty = accepted.
    pub problems: Vec<String>,
    pub accepted: bool,
}

/// One import and its verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuditImport {
    pub name: String,
    pub functions: Vec<String>,
    #[serde(flatten)]
    pub access: Access,
}

/// Audit `wasm` against `manifest` (none = nothing granted, default limits)
/// as a gateway running with `cfg` would load it (`cfg.strict-imports`
/// included).
pub fn audit(
    wasm: &Path,
    manifest: Option<&Path>,
    cfg: &PluginsConfig,
) -> Result<AuditReport, PluginError> {
    let name = wasm
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let load = |path: &Path, reason: String| PluginError::Load {
        plugin: name.clone(),
        reason: format!("{}: {reason}", path.display()),
    };
    let bytes = loader::read_regular(wasm, cfg.max_component_bytes()).map_err(|e| load(wasm, e))?;
    let m = match manifest {
        Some(path) => {
            let text = loader::read_regular(path, MAX_MANIFEST_BYTES)
                .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
                .map_err(|e| load(path, e))?;
            let base = path.parent().unwrap_or(Path::new("."));
            Some(Manifest::parse(&text, base).map_err(|e| load(path, e.to_string()))?)
        }
        None => None,
    };
    let shared = engine::shared(cfg.engine_settings()).map_err(PluginError::Runtime)?;
    let env = LoadEnv {
        engine: &shared,
        // An audit never writes the compile cache.
        disk: None,
        max_memory_mb: cfg.max_memory_mb,
        pool_size: 0,
        pool_threshold: Duration::MAX,
        stdio_cap: cfg.log_capture_bytes,
        refill: None,
        protected: cfg.protected_dirs(),
        baseline: cfg.baseline(),
    };
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    let inspected = loader::inspect_against(&env, &name, m.as_ref(), &bytes, sha)?;
    let component_model_async = inspected.engine.component_model_async;
    let info = inspected.info.clone();
    let grants = inspected.grants.clone();
    let mut problems = inspected.problems.clone();
    let mut flagged = Vec::new();
    if let Some(m) = &m {
        if let Err(e) = m.validate(cfg.max_memory_mb, &env.protected) {
            problems.push(e.to_string());
        }
        flagged = m.sensitive_grants(&env.protected);
    }
    // The trial instantiation only when everything before it passed, as
    // in the loader; without a manifest, with the defaults it implies.
    let trial = m.clone().or_else(|| info.kind.map(Manifest::with_defaults));
    let mut phases = None;
    if let (true, Some(trial)) = (problems.is_empty(), trial) {
        match loader::start(&env, &name, trial, hex::encode(sha), inspected) {
            Ok(p) if p.kind() == PluginKind::Guardrail => phases = Some(phase_names(p.phases())),
            Ok(_) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    let caps = m
        .as_ref()
        .map(|m| m.capabilities.clone())
        .unwrap_or_default();
    let imports = info
        .imports
        .iter()
        .map(|(name, functions)| AuditImport {
            name: name.clone(),
            functions: functions.clone(),
            access: capability::classify(name, &grants, env.baseline),
        })
        .collect();
    Ok(AuditReport {
        file: wasm.to_path_buf(),
        sha256: hex::encode(sha),
        size_bytes: bytes.len(),
        world: info.kind.map(|k| {
            format!(
                "{PACKAGE}/{k}-plugin@{}",
                info.version.as_deref().unwrap_or("?")
            )
        }),
        kind: info.kind,
        contract: info.version.as_deref().and_then(Contract::of),
        phases,
        exports: info.exports,
        component_model_async,
        imports,
        manifest: manifest.map(Path::to_path_buf),
        failure_mode: m.as_ref().map(|m| m.failure_mode).unwrap_or_default(),
        order: m.as_ref().map(|m| m.order),
        grants,
        baseline: env.baseline,
        capabilities: caps,
        limits: m.as_ref().map(|m| m.limits.clone()).unwrap_or_default(),
        isolation: m.as_ref().map_or(Isolation::Fresh, Manifest::isolation),
        flagged,
        accepted: problems.is_empty(),
        problems,
    })
}

impl AuditReport {
    /// Human-readable report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "file:      {}", self.file.display());
        let _ = writeln!(s, "sha256:    {}", self.sha256);
        let _ = writeln!(s, "size:      {} bytes", self.size_bytes);
        let _ = writeln!(
            s,
            "world:     {}",
            self.world.as_deref().unwrap_or("(none recognised)")
        );
        let contract = match self.contract {
            Some(c) if c == Contract::CURRENT => format!("{c} (current)"),
            Some(c) => format!("{c} (older: converted by the host)"),
            None => "(none spoken here)".into(),
        };
        let _ = writeln!(s, "contract:  {contract}");
        if let Some(p) = &self.phases {
            let _ = writeln!(s, "phases:    {}", p.join(", "));
        }
        let _ = writeln!(s, "exports:   {}", self.exports.join(", "));
        if self.component_model_async {
            let _ = writeln!(
                s,
                "abi:       component-model async (loaded on the async engine)"
            );
        }
        let manifest = match &self.manifest {
            Some(m) => m.display().to_string(),
            None => "(none: nothing granted, default limits)".into(),
        };
        let _ = writeln!(s, "manifest:  {manifest}");
        let _ = writeln!(
            s,
            "imports:   (as loaded with [plugins] strict-imports = {})",
            self.baseline == Baseline::Strict
        );
        for i in &self.imports {
            let _ = writeln!(s, "  {:<44} {}", i.name, i.access);
            if !i.functions.is_empty() {
                let _ = writeln!(s, "  {:<44}   uses: {}", "", i.functions.join(", "));
            }
        }
        let grants: Vec<&str> = self.grants.iter().map(|g| g.key()).collect();
        let _ = writeln!(
            s,
            "grants:    {}",
            if grants.is_empty() {
                "(none)".into()
            } else {
                grants.join(", ")
            }
        );
        let c = &self.capabilities;
        if !c.env.is_empty() {
            let _ = writeln!(s, "  env:     {}", c.env.join(", "));
        }
        for f in &c.files {
            let _ = writeln!(
                s,
                "  files:   {} -> {} ({:?})",
                f.host.display(),
                f.guest,
                f.mode
            );
        }
        for f in &self.flagged {
            let _ = writeln!(s, "  FLAGGED: {f}");
        }
        if !c.http.is_empty() {
            let _ = writeln!(s, "  http:    {}", c.http.join(", "));
        }
        if !c.sockets.is_empty() {
            let _ = writeln!(s, "  sockets: {}", c.sockets.join(", "));
        }
        let l = &self.limits;
        let fuel = l.fuel.map_or("none".to_string(), |f| f.to_string());
        let _ = writeln!(
            s,
            "limits:    deadline {} ms, memory {} MiB, fuel {fuel}, output {} KiB / {} entries, failure-mode {:?}",
            l.deadline_ms, l.memory_mb, l.max_output_kb, l.max_output_entries, self.failure_mode
        );
        let _ = match self.isolation {
            Isolation::Fresh => writeln!(s, "isolation: fresh instance per call"),
            Isolation::Reused => writeln!(
                s,
                "isolation: WEAKENED: an instance serves up to {} calls (limits.calls-per-instance), \
                 one at a time; a call sees the memory earlier calls (other requests) left",
                l.calls_per_instance
            ),
        };
        if self.accepted {
            let _ = writeln!(s, "verdict:   ACCEPTED");
        } else {
            let _ = writeln!(s, "verdict:   REFUSED");
            for p in &self.problems {
                let _ = writeln!(s, "  - {}", escaped(p));
            }
        }
        s
    }
}
