//! Turning `NAME.toml` + `NAME.wasm` into a [`Plugin`]: read both (regular
//! files only, size-capped), parse and validate the manifest, compile (or
//! reuse a cached artifact), inspect the component's real world (export +
//! contract version, every import against the grants), build the plugin's
//! own linker and instance-pre, and instantiate once as a smoke test under
//! the manifest's limits. Nothing here touches the serving set.
//!
//! `sluice plugin audit` runs the same phases ([`inspect_against`], then
//! [`start`]) with the same engine settings, so its "accepted" means the
//! loader would load the plugin.

use std::fs::OpenOptions;
use std::future::Future;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::bindings::{Contract, PACKAGE};
use super::capability::{self, Access, Baseline, Grant};
use super::engine::SharedEngine;
use super::error::PluginError;
use super::exports::Pre;
use super::host_state::PluginContext;
use super::instance::{LoadCheck, Plugin, PluginParts};
use super::log::escaped;
use super::manifest::{Manifest, PluginKind};
use super::pool::InstancePool;

/// Largest `NAME.toml` read, in bytes. A manifest is a few hundred bytes;
/// the cap only keeps a mistaken or hostile file from being read whole.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 64 << 10;

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
        // `is_file` follows symlinks and never opens the file, so a FIFO
        // or device is skipped without blocking (see `read_regular`).
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
    /// Read both files (see [`read_regular`]); `max_wasm`: the component's
    /// size cap in bytes.
    pub fn read(files: &PluginFiles, max_wasm: u64) -> Result<Sources, PluginError> {
        let load = |path: &Path, e: String| PluginError::Load {
            plugin: files.name.clone(),
            reason: format!("reading {}: {e}", path.display()),
        };
        let manifest =
            read_regular(&files.toml, MAX_MANIFEST_BYTES).map_err(|e| load(&files.toml, e))?;
        let manifest_text =
            String::from_utf8(manifest).map_err(|e| load(&files.toml, e.to_string()))?;
        let wasm = read_regular(&files.wasm, max_wasm).map_err(|e| load(&files.wasm, e))?;
        Ok(Sources {
            wasm_sha: Sha256::digest(&wasm).into(),
            manifest_sha: Sha256::digest(manifest_text.as_bytes()).into(),
            wasm,
            manifest_text,
        })
    }
}

/// Read a plugin file that must be a regular file of at most `cap` bytes.
///
/// The type is checked before opening (opening a FIFO for reading blocks
/// until a writer appears, which stalled reloading for good), the open is
/// non-blocking (a FIFO swapped in between the check and the open returns at
/// once) and the opened file is checked again; the read stops at `cap`.
pub(crate) fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let not_regular = || "not a regular file".to_string();
    let too_big = |len: u64| format!("{len} bytes, more than the {cap}-byte limit");
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > cap {
        return Err(too_big(meta.len()));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > cap {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
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
/// a known kind at a version the host speaks (`0.1.x`, `0.2.x`), kind equal
/// to the manifest's, and every import contract, baseline (inert ones too
/// unless `baseline` is strict) or granted. Returns every problem found.
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
        (Some(_), Some(v)) if Contract::of(v).is_some() => {}
        (Some(k), v) => problems.push(format!(
            "exports {PACKAGE}/{k}@{}, but this host speaks {}; rebuild it against {PACKAGE}@{}",
            v.as_deref().unwrap_or("(unversioned)"),
            Contract::spoken(),
            Contract::CURRENT.version(),
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

/// Everything needed to load plugins, shared by all loads of one runtime
/// (and by `sluice plugin audit`).
pub(crate) struct LoadEnv<'a> {
    pub engine: &'a Arc<SharedEngine>,
    /// Where compiled artifacts are written and read (none for an audit).
    pub cache_dir: Option<&'a Path>,
    pub max_memory_mb: u64,
    pub pool_size: usize,
    pub pool_threshold: Duration,
    pub stdio_cap: usize,
    pub refill: Option<Sender<Weak<Plugin>>>,
    /// The gateway's own directories (see `FileGrant::exposure`).
    pub protected: Vec<PathBuf>,
    /// `[plugins] strict-imports`.
    pub baseline: Baseline,
}

/// A compiled component and what the static checks found.
pub(crate) struct Inspected {
    pub component: Component,
    /// The engine the component was compiled on: the runtime's, or its
    /// async twin (`SharedEngine::compile_any`). Its linker, stores and
    /// the plugin come from this one.
    pub engine: Arc<SharedEngine>,
    pub info: ComponentInfo,
    pub grants: Vec<Grant>,
    /// Every reason the component does not fit the contract and the
    /// manifest (empty: go on to [`start`]).
    pub problems: Vec<String>,
    /// Compiled now (false: a cached artifact was used).
    pub compiled: bool,
}

/// Compile `wasm` (reusing a cached artifact) and check it against the
/// contract, `manifest` (none: nothing granted) and the baseline. Fails
/// only when the bytes do not compile; everything else is a problem in the
/// result.
pub(crate) fn inspect_against(
    env: &LoadEnv<'_>,
    name: &str,
    manifest: Option<&Manifest>,
    wasm: &[u8],
    sha: [u8; 32],
) -> Result<Inspected, PluginError> {
    let (component, compiled, engine) =
        env.engine
            .compile_any(wasm, sha, env.cache_dir)
            .map_err(|e| PluginError::Load {
                plugin: name.to_owned(),
                reason: format!("compiling: {e:#}"),
            })?;
    let caps = manifest.map(|m| m.capabilities.clone()).unwrap_or_default();
    let grants = capability::granted(&caps);
    let info = inspect(&engine.engine, &component);
    let problems = check(&info, manifest, &grants, env.baseline);
    Ok(Inspected {
        component,
        engine,
        info,
        grants,
        problems,
        compiled,
    })
}

/// Link the component with its grants (and the inert interfaces unless the
/// baseline is strict), build the instance-pre for its contract version and
/// instantiate it twice under the manifest's limits (memory, deadline,
/// fuel): a missing host function, a start function that traps, static data
/// over the memory cap all fail here. Then the load-time calls
/// ([`Plugin::load_checks`]): a `0.2` guest's `validate-config` (an error
/// refuses the plugin with the guest's message) and a guardrail's `phases`.
/// The pool is enabled when instantiation is slow (`env.pool_threshold`).
pub(crate) fn start(
    env: &LoadEnv<'_>,
    name: &str,
    manifest: Manifest,
    sha256: String,
    inspected: Inspected,
) -> Result<Arc<Plugin>, PluginError> {
    let invalid = |reason: String| PluginError::Validate {
        plugin: name.to_owned(),
        reason,
    };
    let inst = |reason: String| PluginError::Instantiate {
        plugin: name.to_owned(),
        reason,
    };
    let linker = capability::linker(&inspected.engine.engine, &inspected.grants, env.baseline)
        .map_err(|e| invalid(format!("{e:#}")))?;
    let ipre = linker
        .instantiate_pre(&inspected.component)
        .map_err(|e| inst(format!("{e:#}")))?;
    // `inspect_against` refused any other version already.
    let version = inspected.info.version.clone().unwrap_or_default();
    let contract = Contract::of(&version)
        .ok_or_else(|| invalid(format!("contract version `{version}` is not spoken here")))?;
    let pre = Pre::new(manifest.kind, contract, ipre).map_err(|e| inst(format!("{e:#}")))?;
    let plugin = Plugin::new(PluginParts {
        ctx: Arc::new(PluginContext::new(name, manifest, env.stdio_cap)),
        sha256,
        grants: inspected.grants,
        contract,
        version,
        pre,
        engine: inspected.engine,
        pool: InstancePool::new(env.pool_size, env.refill.clone()),
    });
    let took = on_own_runtime(plugin.smoke_test())
        .map_err(PluginError::Runtime)?
        .map_err(|f| inst(f.to_string()))?;
    on_own_runtime(plugin.load_checks())
        .map_err(PluginError::Runtime)?
        .map_err(|c| match c {
            LoadCheck::Refused(why) => invalid(format!("its config was refused: {why}")),
            LoadCheck::Failed(export, f) => invalid(format!("`{export}` failed at load: {f}")),
        })?;
    if env.pool_size > 0 && took >= env.pool_threshold {
        tracing::debug!(plugin = %name, instantiate_us = took.as_micros(), "heavy guest: pooling ready instances");
        plugin.enable_pool();
    }
    Ok(plugin)
}

/// Load one plugin; `compiled` tells whether wasm was compiled now.
pub(crate) fn load(
    env: &LoadEnv<'_>,
    files: &PluginFiles,
    src: &Sources,
) -> Result<(Arc<Plugin>, bool), PluginError> {
    let name = &files.name;
    let base = files.toml.parent().unwrap_or(Path::new("."));
    let manifest = Manifest::parse(&src.manifest_text, base).map_err(|e| PluginError::Load {
        plugin: name.clone(),
        reason: format!("{}: {e}", files.toml.display()),
    })?;
    let invalid = |reason: String| PluginError::Validate {
        plugin: name.clone(),
        reason,
    };
    manifest
        .validate(env.max_memory_mb, &env.protected)
        .map_err(|e| invalid(format!("{}: {e}", files.toml.display())))?;
    let inspected = inspect_against(env, name, Some(&manifest), &src.wasm, src.wasm_sha)?;
    if !inspected.problems.is_empty() {
        return Err(invalid(inspected.problems.join("; ")));
    }
    for flagged in manifest.sensitive_grants(&env.protected) {
        tracing::warn!(plugin = %name, "{}", escaped(flagged));
    }
    let compiled = inspected.compiled;
    let plugin = start(env, name, manifest, hex::encode(src.wasm_sha), inspected)?;
    Ok((plugin, compiled))
}

/// Run `fut` to completion on a current-thread tokio runtime of its own, on
/// a helper thread. Loads run on the watcher thread, the blocking pool, the
/// CLI's main thread and inside tests' runtimes, and a runtime cannot be
/// entered from within another; a scoped thread works from all of them,
/// for the price of a thread start next to a compile.
pub(crate) fn on_own_runtime<T: Send>(fut: impl Future<Output = T> + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting a runtime for the smoke test: {e}"))?;
            Ok(rt.block_on(fut))
        })
        .join()
        .unwrap_or_else(|_| Err("the smoke-test thread panicked".into()))
    })
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

        let current = info(Some(PluginKind::Guardrail), "0.2.0", &[]);
        assert!(check(&current, Some(&m), &[], Baseline::WithInert).is_empty());

        let newer = info(Some(PluginKind::Guardrail), "0.3.0", &[]);
        let p = check(&newer, Some(&m), &[], Baseline::WithInert);
        assert!(
            p[0].contains("0.3.0") && p[0].contains("0.2.x") && p[0].contains("0.1.x"),
            "{p:?}"
        );

        let router = info(Some(PluginKind::Router), "0.1.0", &[]);
        assert!(check(&router, Some(&m), &[], Baseline::WithInert)[0].contains("kind"));
        assert!(!check(&info(None, "0.1.0", &[]), None, &[], Baseline::WithInert).is_empty());
    }

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "kind = 1").unwrap();
        assert_eq!(read_regular(&file, 64).unwrap(), b"kind = 1");
        assert!(read_regular(&file, 4).unwrap_err().contains("limit"));
        assert!(
            read_regular(dir.path(), 64)
                .unwrap_err()
                .contains("regular")
        );
        let fifo = dir.path().join("f.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert!(read_regular(&fifo, 64).unwrap_err().contains("regular"));
        assert!(
            read_regular(Path::new("/dev/zero"), 64)
                .unwrap_err()
                .contains("regular")
        );
    }
}
