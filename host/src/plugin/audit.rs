//! `sluice plugin audit`: what a security reviewer needs to decide on a
//! plugin, computed by the same code the loader uses (so the audit and the
//! runtime can never disagree): world, exports, every import with its
//! verdict, grants, limits, SHA-256.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::bindings::PACKAGE;
use super::capability::{self, Access, Baseline, Grant};
use super::engine::{self, EngineSettings};
use super::error::PluginError;
use super::loader;
use super::manifest::{Capabilities, FailureMode, Limits, Manifest, PluginKind};
use super::registry::RuntimeConfig;

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
/// as a gateway with `baseline` (`[plugins] strict-imports`) would load it.
pub fn audit(
    wasm: &Path,
    manifest: Option<&Path>,
    baseline: Baseline,
) -> Result<AuditReport, PluginError> {
    let name = wasm
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let load = |reason: String| PluginError::Load {
        plugin: name.clone(),
        reason,
    };
    let bytes =
        std::fs::read(wasm).map_err(|e| load(format!("reading {}: {e}", wasm.display())))?;
    let m = match manifest {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| load(format!("reading {}: {e}", path.display())))?;
            let base = path.parent().unwrap_or(Path::new("."));
            Some(
                Manifest::parse(&text, base)
                    .map_err(|e| load(format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let d = RuntimeConfig::default();
    let shared = engine::shared(EngineSettings {
        fuel: d.fuel,
        max_instances: d.max_instances,
        max_memory_mb: d.max_memory_mb,
    })
    .map_err(PluginError::Runtime)?;
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    let (component, _, shared) = shared
        .compile_any(&bytes, sha, None)
        .map_err(|e| load(format!("compiling {}: {e:#}", wasm.display())))?;
    let info = loader::inspect(&shared.engine, &component);
    let caps = m
        .as_ref()
        .map(|m| m.capabilities.clone())
        .unwrap_or_default();
    let grants = capability::granted(&caps);
    let mut problems = loader::check(&info, m.as_ref(), &grants, baseline);
    if let Some(m) = &m
        && let Err(e) = m.validate(d.max_memory_mb)
    {
        problems.push(e);
    }
    let imports = info
        .imports
        .iter()
        .map(|(name, functions)| AuditImport {
            name: name.clone(),
            functions: functions.clone(),
            access: capability::classify(name, &grants, baseline),
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
        exports: info.exports,
        component_model_async: shared.component_model_async,
        imports,
        manifest: manifest.map(Path::to_path_buf),
        failure_mode: m.as_ref().map(|m| m.failure_mode).unwrap_or_default(),
        order: m.as_ref().map(|m| m.order),
        grants,
        baseline,
        capabilities: caps,
        limits: m.as_ref().map(|m| m.limits.clone()).unwrap_or_default(),
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
            "limits:    deadline {} ms, memory {} MiB, fuel {fuel}, output {} KiB, failure-mode {:?}",
            l.deadline_ms, l.memory_mb, l.max_output_kb, self.failure_mode
        );
        if self.accepted {
            let _ = writeln!(s, "verdict:   ACCEPTED");
        } else {
            let _ = writeln!(s, "verdict:   REFUSED");
            for p in &self.problems {
                let _ = writeln!(s, "  - {p}");
            }
        }
        s
    }
}
