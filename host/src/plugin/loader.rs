//! Turning `NAME.toml` + `NAME.wasm` into a [`Plugin`]: parse and validate
//! the manifest, compile (or reuse a cached artifact), inspect the
//! component's real world (export + contract version, every import against
//! the grants), build the plugin's own linker and instance-pre, and
//! instantiate once as a smoke test. Nothing here touches the serving set.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::bindings::cost_policy::CostPolicyPluginPre;
use super::bindings::guardrail::GuardrailPluginPre;
use super::bindings::router::RouterPluginPre;
use super::bindings::{PACKAGE, PACKAGE_VERSION};
use super::capability::{self, Access, Baseline, Grant};
use super::engine::SharedEngine;
use super::error::PluginError;
use super::host_state::PluginContext;
use super::instance::{Plugin, PluginParts, Pre};
use super::manifest::{Manifest, PluginKind};

/// Where a plugin's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PluginFiles {
    pub name: String,
    pub wasm: PathBuf,
    pub toml: PathBuf,
}

/// `NAME.wasm` files in `dir` (each with its expected `NAME.toml`), sorted.
/// Hidden files and editor/temp names are skipped: write new versions as
/// `.NAME.wasm.tmp` and rename into place.
pub(crate) fn scan(dir: &Path) -> std::io::Result<Vec<PluginFiles>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = plugin_name(&path) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            out.push(PluginFiles {
                toml: dir.join(format!("{name}.toml")),
                wasm: path.clone(),
                name,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The plugin name of `NAME.wasm` / `NAME.toml`, if the path is one.
pub(crate) fn plugin_name(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    if ext != "wasm" && ext != "toml" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let valid = !stem.is_empty()
        && !stem.starts_with('.')
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid.then(|| stem.to_owned())
}

/// File contents read in one go, with their hashes (used to skip unchanged plugins).
pub(crate) struct Sources {
    pub wasm: Vec<u8>,
    pub wasm_sha: [u8; 32],
    pub manifest_text: String,
    pub manifest_sha: [u8; 32],
}

impl Sources {
    pub fn read(files: &PluginFiles) -> Result<Sources, PluginError> {
        let load = |reason: String| PluginError::Load {
            plugin: files.name.clone(),
            reason,
        };
        let manifest_text = std::fs::read_to_string(&files.toml)
            .map_err(|e| load(format!("reading {}: {e}", files.toml.display())))?;
        let wasm = std::fs::read(&files.wasm)
            .map_err(|e| load(format!("reading {}: {e}", files.wasm.display())))?;
        Ok(Sources {
            wasm_sha: Sha256::digest(&wasm).into(),
            manifest_sha: Sha256::digest(manifest_text.as_bytes()).into(),
            wasm,
            manifest_text,
        })
    }
}

/// What the component itself says, independent of any manifest.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    /// Kind derived from the `sluice:plugin/*` export, if recognised.
    pub kind: Option<PluginKind>,
    /// Contract version of that export (e.g. `0.1.0`).
    pub version: Option<String>,
    pub exports: Vec<String>,
    /// Imported instance names plus the functions used from each.
    pub imports: Vec<(String, Vec<String>)>,
}

/// Read a compiled component's real exports and imports.
pub fn inspect(engine: &Engine, component: &Component) -> ComponentInfo {
    let ty = component.component_type();
    let mut kind = None;
    let mut version = None;
    let mut exports = Vec::new();
    for (name, _) in ty.exports(engine) {
        let (iface, ver) = capability::split_version(name);
        if let Some(local) = iface.strip_prefix(&format!("{PACKAGE}/"))
            && let Some(k) = PluginKind::from_interface(local)
        {
            kind = Some(k);
            version = ver.map(str::to_owned);
        }
        exports.push(name.to_owned());
    }
    let imports = ty
        .imports(engine)
        .map(|(name, ext)| {
            let funcs = match ext.ty {
                ComponentItem::ComponentInstance(inst) => inst
                    .exports(engine)
                    .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                    .map(|(f, _)| f.to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            (name.to_owned(), funcs)
        })
        .collect();
    ComponentInfo {
        kind,
        version,
        exports,
        imports,
    }
}

/// Check the component against the contract and the manifest: one export of
/// a known kind at version 0.1.x, kind equal to the manifest's, and every
/// import contract, baseline (inert ones too unless `baseline` is strict)
/// or granted. Returns every problem found.
pub fn check(
    info: &ComponentInfo,
    manifest: Option<&Manifest>,
    grants: &[Grant],
    baseline: Baseline,
) -> Vec<String> {
    let mut problems = Vec::new();
    match (&info.kind, &info.version) {
        (None, _) => problems.push(format!(
            "exports no {PACKAGE}/{{guardrail,router,cost-policy}} interface (exports: {})",
            info.exports.join(", ")
        )),
        (Some(_), Some(v)) if v.starts_with("0.1.") => {}
        (Some(k), v) => problems.push(format!(
            "exports {PACKAGE}/{k}@{}, but this host speaks {PACKAGE}@{PACKAGE_VERSION} (0.1.x); rebuild it against {PACKAGE_VERSION}",
            v.as_deref().unwrap_or("(unversioned)")
        )),
    }
    if let (Some(k), Some(m)) = (info.kind, manifest)
        && k != m.kind
    {
        problems.push(format!(
            "manifest says kind = \"{}\" but the component exports {PACKAGE}/{k}",
            m.kind
        ));
    }
    for (name, _) in &info.imports {
        if let Access::Refused { reason } = capability::classify(name, grants, baseline) {
            problems.push(format!("import `{name}` refused: {reason}"));
        }
    }
    problems
}

/// Everything needed to load plugins, shared by all loads of one runtime.
pub(crate) struct LoadEnv<'a> {
    pub engine: &'a Arc<SharedEngine>,
    pub cache_dir: Option<&'a Path>,
    pub max_memory_mb: u64,
    pub pool_size: usize,
    pub pool_threshold: Duration,
    pub stdio_cap: usize,
    pub refill: Option<Sender<Weak<Plugin>>>,
    /// `[plugins] strict-imports`.
    pub baseline: Baseline,
}

/// Load one plugin; `compiled` tells whether wasm was compiled now.
pub(crate) fn load(
    env: &LoadEnv<'_>,
    files: &PluginFiles,
    src: &Sources,
) -> Result<(Arc<Plugin>, bool), PluginError> {
    let name = &files.name;
    let load_err = |reason: String| PluginError::Load {
        plugin: name.clone(),
        reason,
    };
    let invalid = |reason: String| PluginError::Validate {
        plugin: name.clone(),
        reason,
    };
    let base = files.toml.parent().unwrap_or(Path::new("."));
    let manifest = Manifest::parse(&src.manifest_text, base)
        .map_err(|e| load_err(format!("{}: {e}", files.toml.display())))?;
    manifest
        .validate(env.max_memory_mb)
        .map_err(|e| invalid(format!("{}: {e}", files.toml.display())))?;
    let (component, compiled, shared) = env
        .engine
        .compile_any(&src.wasm, src.wasm_sha, env.cache_dir)
        .map_err(|e| load_err(format!("compiling {}: {e:#}", files.wasm.display())))?;
    let grants = capability::granted(&manifest.capabilities);
    let engine = &shared.engine;
    let info = inspect(engine, &component);
    let problems = check(&info, Some(&manifest), &grants, env.baseline);
    if !problems.is_empty() {
        return Err(invalid(problems.join("; ")));
    }
    let linker =
        capability::linker(engine, &grants, env.baseline).map_err(|e| invalid(format!("{e:#}")))?;
    let inst = |e: wasmtime::Error| PluginError::Instantiate {
        plugin: name.clone(),
        reason: format!("{e:#}"),
    };
    let ipre = linker.instantiate_pre(&component).map_err(inst)?;
    let pre = match manifest.kind {
        PluginKind::Guardrail => Pre::Guardrail(GuardrailPluginPre::new(ipre).map_err(inst)?),
        PluginKind::Router => Pre::Router(RouterPluginPre::new(ipre).map_err(inst)?),
        PluginKind::CostPolicy => Pre::CostPolicy(CostPolicyPluginPre::new(ipre).map_err(inst)?),
    };
    let plugin = Plugin::new(PluginParts {
        ctx: Arc::new(PluginContext::new(name, manifest, env.stdio_cap)),
        sha256: hex::encode(src.wasm_sha),
        grants,
        pre,
        engine: shared,
        pool_size: env.pool_size,
        refill: env.refill.clone(),
    });
    let took = plugin.smoke_test().map_err(|f| PluginError::Instantiate {
        plugin: name.clone(),
        reason: f.to_string(),
    })?;
    if env.pool_size > 0 && took >= env.pool_threshold {
        tracing::debug!(plugin = %name, instantiate_us = took.as_micros(), "heavy guest: pooling ready instances");
        plugin.enable_pool();
    }
    Ok((plugin, compiled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_skip_temp_and_hidden_files() {
        assert_eq!(
            plugin_name(Path::new("/d/pii-redact.wasm")).as_deref(),
            Some("pii-redact")
        );
        assert_eq!(
            plugin_name(Path::new("/d/pii_redact.toml")).as_deref(),
            Some("pii_redact")
        );
        assert_eq!(plugin_name(Path::new("/d/.pii.wasm")), None);
        assert_eq!(plugin_name(Path::new("/d/.pii.wasm.tmp")), None);
        assert_eq!(plugin_name(Path::new("/d/pii.wasm~")), None);
        assert_eq!(plugin_name(Path::new("/d/pii.wasm.swp")), None);
        assert_eq!(plugin_name(Path::new("/d/a b.wasm")), None);
    }

    fn info(kind: Option<PluginKind>, version: &str, imports: &[&str]) -> ComponentInfo {
        ComponentInfo {
            kind,
            version: Some(version.into()),
            exports: vec![format!("sluice:plugin/guardrail@{version}")],
            imports: imports.iter().map(|i| (i.to_string(), vec![])).collect(),
        }
    }

    #[test]
    fn check_names_refused_imports_and_versions() {
        let m = Manifest::parse("kind = \"guardrail\"", Path::new("/")).unwrap();
        let ok = info(
            Some(PluginKind::Guardrail),
            "0.1.3",
            &["wasi:io/streams@0.2.3"],
        );
        assert!(check(&ok, Some(&m), &[], Baseline::Strict).is_empty());

        let fs = info(
            Some(PluginKind::Guardrail),
            "0.1.0",
            &["wasi:filesystem/types@0.2.3"],
        );
        assert!(check(&fs, Some(&m), &[], Baseline::WithInert).is_empty());
        let p = check(&fs, Some(&m), &[], Baseline::Strict);
        assert!(
            p[0].contains("wasi:filesystem/types@0.2.3") && p[0].contains("files"),
            "{p:?}"
        );

        let newer = info(Some(PluginKind::Guardrail), "0.2.0", &[]);
        let p = check(&newer, Some(&m), &[], Baseline::WithInert);
        assert!(p[0].contains("0.2.0") && p[0].contains("0.1.0"), "{p:?}");

        let router = info(Some(PluginKind::Router), "0.1.0", &[]);
        assert!(check(&router, Some(&m), &[], Baseline::WithInert)[0].contains("kind"));
        assert!(!check(&info(None, "0.1.0", &[]), None, &[], Baseline::WithInert).is_empty());
    }
}
