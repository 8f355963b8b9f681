//! Eval results in the state layer, so quality is visible per model and
//! per prompt version next to cost, and the latest score of each can feed a
//! quality alert.
//!
//! The runner sends each run's [`RunRecord`] (summary and per-case scores,
//! no outputs) to the gateway (`POST /admin/evals`), which owns the state.
//! Under the `evals` namespace:
//! - `run/STARTED_MS/ID` -> the record, expiring after `[evals] keep-days`;
//! - `latest/SUBJECT` -> the newest record of each subject, kept until a
//!   newer run replaces it. Subjects: `model:NAME` (the run's target model)
//!   and `prompt:ID@VERSION` (when every answer of the run was rendered from
//!   that one version, as the gateway's `x-sluice-prompt` said).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::EvalsConfig;
use super::quality::{self, QualityAlert, Thresholds};
use super::run::{CaseStatus, Run, Summary, Target};
use crate::state::{State, StateError};

const NS: &str = "evals";
/// Most records a listing scans.
const MAX_SCAN: usize = 10_000;

/// One case's outcome in a stored run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseDigest {
    pub id: String,
    pub category: String,
    pub mean_score: Option<f64>,
    pub pass_rate: f64,
    pub status: CaseStatus,
}

/// What the gateway keeps of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub suite: String,
    pub suite_sha256: String,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub target: Target,
    pub repeat: u32,
    pub subjects: Vec<String>,
    pub summary: Summary,
    pub cases: Vec<CaseDigest>,
}

impl RunRecord {
    pub fn of(run: &Run) -> RunRecord {
        RunRecord {
            id: run.id.clone(),
            suite: run.suite.clone(),
            suite_sha256: run.suite_sha256.clone(),
            started_ms: run.started_ms,
            finished_ms: run.finished_ms,
            target: run.target.clone(),
            repeat: run.repeat,
            subjects: subjects(run),
            summary: run.summary.clone(),
            cases: run
                .cases
                .iter()
                .map(|c| CaseDigest {
                    id: c.id.clone(),
                    category: c.category.clone(),
                    mean_score: c.mean_score,
                    pass_rate: c.pass_rate,
                    status: c.status,
                })
                .collect(),
        }
    }
}

/// The subjects a run speaks for (see the module doc). A run mixing
/// prompt cases with plain `messages` cases still speaks for its prompt
/// version, as long as one version rendered every prompt case.
pub fn subjects(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = &run.target.model {
        out.push(format!("model:{m}"));
    }
    let served: std::collections::BTreeSet<&str> = run
        .cases
        .iter()
        .flat_map(|c| &c.attempts)
        .filter(|a| a.output.is_some())
        .filter_map(|a| a.prompt.as_deref())
        .collect();
    if let [only] = served.into_iter().collect::<Vec<_>>()[..] {
        out.push(format!("prompt:{only}"));
    }
    out
}

/// A subject is `model:NAME` or `prompt:ID@VERSION`, short and printable.
pub fn valid_subject(s: &str) -> bool {
    let kind_ok = s.strip_prefix("model:").is_some_and(|m| !m.is_empty())
        || s.strip_prefix("prompt:")
            .and_then(crate::prompt::PromptRef::parse)
            .is_some();
    kind_ok && s.len() <= 200 && !s.chars().any(char::is_control)
}

/// Eval results in the state (cheap to clone).
#[derive(Clone)]
pub struct EvalStore {
    state: State,
    keep: Duration,
    alerts: Thresholds,
}

impl std::fmt::Debug for EvalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalStore")
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl EvalStore {
    pub fn new(state: State, cfg: &EvalsConfig) -> EvalStore {
        EvalStore {
            state,
            keep: Duration::from_secs(cfg.keep_days.saturating_mul(86_400)),
            alerts: Thresholds::from(cfg),
        }
    }

    /// Keep `rec`, and make it the latest of each of its subjects unless a
    /// newer run already is. Returns the quality alerts it raised (see
    /// [`super::quality`]), already logged and sent to the webhook.
    pub async fn record(&self, rec: &RunRecord) -> Result<Vec<QualityAlert>, StateError> {
        if let Some(bad) = rec.subjects.iter().find(|s| !valid_subject(s)) {
            return Err(StateError::Corrupt(format!("invalid eval subject `{bad}`")));
        }
        let bytes = serde_json::to_vec(rec).map_err(|e| StateError::Corrupt(e.to_string()))?;
        let store = self.state.store();
        let key = format!("run/{:013}/{}", rec.started_ms, rec.id);
        store.put(NS, &key, &bytes, Some(self.keep)).await?;
        let mut raised = Vec::new();
        for s in &rec.subjects {
            let latest = format!("latest/{s}");
            let old = match store.get(NS, &latest).await? {
                Some(old) => Some(decode(&latest, &old)?),
                None => None,
            };
            // A late upload of an older run changes neither the latest nor
            // the alert.
            if old.as_ref().is_some_and(|o| o.started_ms > rec.started_ms) {
                continue;
            }
            store.put(NS, &latest, &bytes, None).await?;
            let alert_key = format!("alert/{s}");
            match quality::check(s, rec, old.as_ref(), self.alerts) {
                Some(a) => {
                    let b =
                        serde_json::to_vec(&a).map_err(|e| StateError::Corrupt(e.to_string()))?;
                    store.put(NS, &alert_key, &b, None).await?;
                    tracing::warn!(
                        subject = %s,
                        run = %rec.id,
                        suite = %rec.suite,
                        reasons = %a.reasons.join("; "),
                        "quality alert"
                    );
                    // The budget alerts' queue and sender (one webhook path).
                    match serde_json::to_value(&a) {
                        Ok(body) => self.state.alerts().post(body),
                        Err(e) => tracing::error!(error = %e, "quality alert not serialisable"),
                    }
                    raised.push(a);
                }
                // The subject is fine again: its alert is over.
                None => {
                    store.delete(NS, &alert_key).await?;
                }
            }
        }
        Ok(raised)
    }

    /// Every subject whose latest run raised a quality alert.
    pub async fn alerts(&self) -> Result<Vec<QualityAlert>, StateError> {
        let rows = self.state.store().scan(NS, "alert/", MAX_SCAN).await?;
        rows.into_iter()
            .map(|(k, b)| {
                serde_json::from_slice(&b)
                    .map_err(|e| StateError::Corrupt(format!("quality alert {k}: {e}")))
            })
            .collect()
    }

    /// The latest run of `subject` (`model:NAME`, `prompt:ID@VERSION`).
    pub async fn latest(&self, subject: &str) -> Result<Option<RunRecord>, StateError> {
        let key = format!("latest/{subject}");
        match self.state.store().get(NS, &key).await? {
            Some(b) => decode(&key, &b).map(Some),
            None => Ok(None),
        }
    }

    /// The latest run of every subject.
    pub async fn latest_all(&self) -> Result<BTreeMap<String, RunRecord>, StateError> {
        let rows = self.state.store().scan(NS, "latest/", MAX_SCAN).await?;
        rows.into_iter()
            .map(|(k, b)| {
                let subject = k.trim_start_matches("latest/").to_string();
                decode(&k, &b).map(|r| (subject, r))
            })
            .collect()
    }

    /// The `limit` most recent runs kept, newest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let rows = self.state.store().scan(NS, "run/", MAX_SCAN).await?;
        let mut runs = rows
            .into_iter()
            .map(|(k, b)| decode(&k, &b))
            .collect::<Result<Vec<_>, _>>()?;
        runs.sort_by(|a, b| {
            b.started_ms
                .cmp(&a.started_ms)
                .then_with(|| b.id.cmp(&a.id))
        });
        runs.truncate(limit);
        Ok(runs)
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<RunRecord, StateError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StateError::Corrupt(format!("eval record {key}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateConfig;

    fn rec(id: &str, at: u64, subjects: &[&str]) -> RunRecord {
        RunRecord {
            id: id.into(),
            suite: "s".into(),
            suite_sha256: String::new(),
            started_ms: at,
            finished_ms: at,
            target: Target::default(),
            repeat: 1,
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            summary: Summary::default(),
            cases: Vec::new(),
        }
    }

    #[tokio::test]
    async fn latest_per_subject_and_recent_runs() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StateConfig {
            dir: dir.path().join("data"),
            warm_tokenizer: false,
            ..StateConfig::default()
        };
        let store = EvalStore::new(State::open(&cfg).await.unwrap(), &EvalsConfig::default());
        store
            .record(&rec("new", 20, &["model:demo", "prompt:caps@2"]))
            .await
            .unwrap();
        // An older run arriving late does not replace the latest.
        store
            .record(&rec("old", 10, &["model:demo"]))
            .await
            .unwrap();
        assert_eq!(store.latest("model:demo").await.unwrap().unwrap().id, "new");
        assert_eq!(
            store.latest("prompt:caps@2").await.unwrap().unwrap().id,
            "new"
        );
        assert_eq!(store.latest("prompt:caps@1").await.unwrap(), None);
        assert_eq!(store.latest_all().await.unwrap().len(), 2);
        let ids: Vec<String> = store
            .recent(10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["new", "old"]);
        assert!(store.record(&rec("bad", 1, &["user:x"])).await.is_err());
        assert!(!valid_subject("prompt:caps"));
    }
}
