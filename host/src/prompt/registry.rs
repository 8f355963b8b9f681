//! The serving set of prompts and its owner, [`Prompts`]: loads the prompt
//! directory into an immutable [`PromptSet`], swaps it in atomically
//! (`arc-swap`; a request renders from the set it started with), keeps the
//! status of every file including broken ones, and overlays the activation
//! records of the state layer to decide which version serves.
//!
//! Reloading is per file, like plugins: a file that fails to parse or
//! validate keeps its previous version serving and its status says why; a
//! deleted file leaves the set. Which version serves, in order: an
//! activation record pinning a version the file has; else the file's
//! `active`; else its highest version.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::activation::{self, Activation};
use super::config::PromptsConfig;
use super::error::PromptError;
use super::file::{self, MAX_FILE_BYTES, Syntax};
use super::loaded::{Prompt, Version};
use super::watcher;
use crate::plugin::log::escaped;
use crate::state::{State, StateError, now_ms};
use crate::watch::DirWatch;

/// An immutable snapshot of the loaded prompts.
#[derive(Debug, Default)]
pub struct PromptSet {
    by_id: BTreeMap<String, Arc<Prompt>>,
}

impl PromptSet {
    pub fn get(&self, id: &str) -> Option<&Arc<Prompt>> {
        self.by_id.get(id)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Prompt>> {
        self.by_id.values()
    }
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// A prompt version chosen for one request.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub prompt: Arc<Prompt>,
    pub version: u32,
}

impl Resolved {
    pub fn version(&self) -> &Version {
        self.prompt
            .version(self.version)
            .expect("resolved versions exist in their prompt")
    }
}

/// What one rescan did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PromptReload {
    pub loaded: Vec<String>,
    pub unchanged: Vec<String>,
    /// `(id, why)`; a previous version keeps serving when there is one.
    pub failed: Vec<(String, String)>,
    pub removed: Vec<String>,
    pub took_ms: u64,
}

/// Why a version serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActiveSource {
    /// An activation record pins it.
    Pinned,
    /// The file's `active` key, or its highest version.
    File,
}

/// One prompt as the operator sees it (`sluice prompt list`, `/admin/prompts`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromptStatus {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The serving file (none when nothing serves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub versions: Vec<u32>,
    /// The version a request without one gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_source: Option<ActiveSource>,
    /// The current activation record, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    /// `loaded`, or `failed` with `error` and `serving_previous`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub serving_previous: bool,
    /// Something the operator should know (a pin the file no longer has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Why an activation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error("activations need the state layer, and this registry has none")]
    NoState,
    #[error(transparent)]
    State(#[from] StateError),
}

/// The prompt registry. Always used as `Arc<Prompts>`.
pub struct Prompts {
    cfg: PromptsConfig,
    dir: PathBuf,
    models: Option<BTreeSet<String>>,
    state: Option<State>,
    set: ArcSwap<PromptSet>,
    activations: ArcSwap<BTreeMap<String, Activation>>,
    /// Latest load error per id, published with the set.
    failed: ArcSwap<BTreeMap<String, String>>,
    /// Serialises reloads; never held by requests.
    reloading: Mutex<()>,
    last_reload: Mutex<PromptReload>,
    watcher: Mutex<Option<DirWatch>>,
}

impl std::fmt::Debug for Prompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompts")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("[prompts] dir is not set")]
    NoDir,
    #[error("prompt directory `{0}` does not exist")]
    Missing(PathBuf),
    #[error("watching the prompt directory: {0}")]
    Watch(String),
    #[error("loading prompt activations: {0}")]
    State(#[from] StateError),
}

impl Prompts {
    /// Load the directory, the activation records (with a state), start the
    /// watcher (`cfg.watch`) and the activation refresher (with a state).
    /// `models`, when given, is the set of gateway models a version may
    /// name. A file that fails to load is a status, not an error. Call
    /// inside a tokio runtime.
    pub async fn start(
        cfg: PromptsConfig,
        models: Option<BTreeSet<String>>,
        state: Option<State>,
    ) -> Result<Arc<Self>, StartError> {
        let dir = cfg.dir.clone().ok_or(StartError::NoDir)?;
        if !dir.is_dir() {
            return Err(StartError::Missing(dir));
        }
        let p = Arc::new(Prompts {
            cfg,
            dir,
            models,
            state,
            set: ArcSwap::from_pointee(PromptSet::default()),
            activations: ArcSwap::from_pointee(BTreeMap::new()),
            failed: ArcSwap::from_pointee(BTreeMap::new()),
            reloading: Mutex::new(()),
            last_reload: Mutex::default(),
            watcher: Mutex::new(None),
        });
        let report = p.reload();
        tracing::info!(
            dir = %p.dir.display(),
            loaded = report.loaded.len(),
            failed = report.failed.len(),
            "prompts loaded"
        );
        if p.state.is_some() {
            p.refresh_activations().await?;
            tokio::spawn(refresh_loop(Arc::downgrade(&p)));
        }
        if p.cfg.watch {
            let w = watcher::start(&p).map_err(|e| StartError::Watch(e.to_string()))?;
            *p.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(w);
        }
        Ok(p)
    }

    pub fn config(&self) -> &PromptsConfig {
        &self.cfg
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }

    /// Lock-free snapshot of the serving set.
    pub fn current(&self) -> Arc<PromptSet> {
        self.set.load_full()
    }

    /// The version of `id` to render: `version` when given, else the
    /// active one.
    pub fn resolve(&self, id: &str, version: Option<u32>) -> Result<Resolved, PromptError> {
        let prompt = self
            .current()
            .get(id)
            .cloned()
            .ok_or_else(|| PromptError::NotFound(id.to_string()))?;
        let version = match version {
            Some(v) if prompt.version(v).is_some() => v,
            Some(v) => {
                return Err(PromptError::VersionNotFound {
                    id: id.to_string(),
                    version: v,
                    available: prompt.version_list(),
                });
            }
            None => self.active(&prompt).0,
        };
        Ok(Resolved { prompt, version })
    }

    /// The serving version of `prompt` and why.
    pub fn active(&self, prompt: &Prompt) -> (u32, ActiveSource) {
        match self
            .activations
            .load()
            .get(&prompt.id)
            .and_then(|a| a.version)
        {
            Some(v) if prompt.version(v).is_some() => (v, ActiveSource::Pinned),
            _ => (prompt.file_active, ActiveSource::File),
        }
    }

    /// Pin `version` of `id` (None: unpin), recorded in the state with who
    /// and when; serves from this call on.
    pub async fn activate(
        &self,
        id: &str,
        version: Option<u32>,
        by: &str,
        reason: Option<String>,
    ) -> Result<Activation, ActivateError> {
        let state = self.state.as_ref().ok_or(ActivateError::NoState)?;
        match version {
            Some(v) => {
                self.resolve(id, Some(v))?;
            }
            None if self.current().get(id).is_none() => {
                return Err(PromptError::NotFound(id.to_string()).into());
            }
            None => {}
        }
        let a = activation::record(
            state,
            Activation {
                id: id.to_string(),
                version,
                by: by.to_string(),
                at_ms: now_ms(),
                previous: None,
                reason,
            },
        )
        .await?;
        tracing::info!(prompt = id, version = ?a.version, previous = ?a.previous, by = %escaped(by), "prompt activated");
        let mut next = (**self.activations.load()).clone();
        next.insert(id.to_string(), a.clone());
        self.activations.store(Arc::new(next));
        Ok(a)
    }

    /// Re-read every activation record (made by another gateway or the
    /// CLI straight in the state).
    pub async fn refresh_activations(&self) -> Result<(), StateError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let fresh = activation::load(state).await?;
        if **self.activations.load() != fresh {
            self.activations.store(Arc::new(fresh));
        }
        Ok(())
    }

    /// Rescan the directory now and swap in the result.
    pub fn reload(&self) -> PromptReload {
        let start = Instant::now();
        let _guard = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current();
        let mut report = PromptReload::default();
        let files = match scan(&self.dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), "prompt directory unreadable, keeping the current set: {e}");
                report.failed.push(("*".into(), e));
                return report;
            }
        };
        let mut next = BTreeMap::new();
        let mut failed = BTreeMap::new();
        for (id, paths) in files {
            let previous = old.get(&id);
            let built = match paths.as_slice() {
                [(path, syntax)] => self.load_one(&id, path, *syntax, previous),
                many => Err(format!(
                    "defined by {} files: {}",
                    many.len(),
                    many.iter()
                        .map(|(p, _)| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            match built {
                Ok((p, changed)) => {
                    if changed {
                        tracing::info!(prompt = %id, versions = %p.version_list(), "prompt loaded");
                        report.loaded.push(id.clone());
                    } else {
                        report.unchanged.push(id.clone());
                    }
                    next.insert(id, p);
                }
                Err(e) => {
                    tracing::error!(prompt = %id, serving_previous = previous.is_some(), "{}", escaped(&e));
                    report.failed.push((id.clone(), e.clone()));
                    failed.insert(id.clone(), e);
                    if let Some(p) = previous {
                        next.insert(id, p.clone());
                    }
                }
            }
        }
        for id in old.by_id.keys().filter(|id| !next.contains_key(*id)) {
            tracing::info!(prompt = %id, "prompt removed");
            report.removed.push(id.clone());
        }
        self.set.store(Arc::new(PromptSet { by_id: next }));
        self.failed.store(Arc::new(failed));
        report.took_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) = report.clone();
        report
    }

    /// What the most recent reload did.
    pub fn last_reload(&self) -> PromptReload {
        self.last_reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Build one file, or keep `previous` when its bytes are the same.
    fn load_one(
        &self,
        id: &str,
        path: &Path,
        syntax: Syntax,
        previous: Option<&Arc<Prompt>>,
    ) -> Result<(Arc<Prompt>, bool), String> {
        let bytes = crate::plugin::read_regular(path, MAX_FILE_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
        if let Some(p) = previous {
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
            if p.sha256 == sha && p.path == path {
                return Ok((p.clone(), false));
            }
        }
        Prompt::build(id, path, &text, syntax, self.models.as_ref()).map(|p| (Arc::new(p), true))
    }

    /// Every prompt, serving or failed, by id.
    pub fn statuses(&self) -> Vec<PromptStatus> {
        let set = self.current();
        let failed = self.failed.load();
        let activations = self.activations.load();
        let mut ids: Vec<&String> = set.by_id.keys().chain(failed.keys()).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .map(|id| {
                let p = set.get(id);
                let activation = activations.get(id).cloned();
                let active = p.map(|p| self.active(p));
                let warning = match (p, activation.as_ref().and_then(|a| a.version)) {
                    (Some(p), Some(v)) if p.version(v).is_none() => Some(format!(
                        "pinned version {v} is not in the file; version {} serves",
                        p.file_active
                    )),
                    _ => None,
                };
                let error = failed.get(id).cloned();
                PromptStatus {
                    id: id.clone(),
                    description: p.and_then(|p| p.description.clone()),
                    file: p.map(|p| p.path.display().to_string()),
                    sha256: p.map(|p| p.sha256.clone()),
                    versions: p
                        .map(|p| p.versions().map(|v| v.version).collect())
                        .unwrap_or_default(),
                    active: active.map(|a| a.0),
                    active_source: active.map(|a| a.1),
                    activation,
                    state: if error.is_some() { "failed" } else { "loaded" }.into(),
                    serving_previous: error.is_some() && p.is_some(),
                    error,
                    warning,
                }
            })
            .collect()
    }
}

/// Prompt files in `dir` grouped by id (several files for one id is an
/// error the caller reports).
fn scan(dir: &Path) -> Result<BTreeMap<String, Vec<(PathBuf, Syntax)>>, String> {
    let mut out: BTreeMap<String, Vec<(PathBuf, Syntax)>> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if let Some((id, syntax)) = file::prompt_id(&path) {
            out.entry(id).or_default().push((path, syntax));
        }
    }
    for paths in out.values_mut() {
        paths.sort();
    }
    Ok(out)
}

/// Re-reads activation records every `refresh-ms` while the registry lives.
async fn refresh_loop(weak: Weak<Prompts>) {
    let Some(every) = weak.upgrade().map(|p| p.cfg.refresh()) else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(p) = weak.upgrade() else { return };
        if let Err(e) = p.refresh_activations().await {
            tracing::warn!(error = %e, "refreshing prompt activations; keeping the ones known");
        }
    }
}
