//! Activation records: which version of a prompt serves, who chose it and
//! when. Rollback without editing files, surviving restarts, shared by
//! every gateway on one Redis.
//!
//! In the state layer under the `prompts` namespace:
//! - KV `active/ID` -> the current [`Activation`] (the one the registry
//!   reads; a prefix scan loads them all).
//! - log `prompt-activations` -> every activation ever made, in order (the
//!   history `sluice prompt history` and `/admin/prompts/ID` show).
//!
//! A record with `version: None` unpins the prompt: the file's own
//! `active` (or its highest version) serves again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::state::{State, StateError};

const NS: &str = "prompts";
const PREFIX: &str = "active/";
const LOG: &str = "prompt-activations";
/// More activation records than this are not loaded (a scan bound, not a
/// policy: one record per prompt id).
const MAX_PROMPTS: usize = 100_000;

/// One activation: `id` serves `version` from `at_ms`, chosen by `by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub id: String,
    /// None: unpinned (the file decides).
    pub version: Option<u32>,
    /// Who asked: the `by` the operator gave (`--by`, default `$USER`), or
    /// the admin API's `x-sluice-actor` header.
    pub by: String,
    /// Unix ms.
    pub at_ms: u64,
    /// The version pinned before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<u32>,
    /// Free text (`--reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Record `a` as the current activation of its prompt and append it to the
/// history; `previous` is filled in from the record it replaces.
pub async fn record(state: &State, mut a: Activation) -> Result<Activation, StateError> {
    let key = format!("{PREFIX}{}", a.id);
    if let Some(old) = state.store().get(NS, &key).await? {
        a.previous = decode(&key, &old)?.version;
    }
    let bytes = serde_json::to_vec(&a).map_err(|e| StateError::Corrupt(e.to_string()))?;
    state.store().put(NS, &key, &bytes, None).await?;
    state.store().append(LOG, a.at_ms, &bytes).await?;
    Ok(a)
}

/// Every current activation, by prompt id.
pub async fn load(state: &State) -> Result<BTreeMap<String, Activation>, StateError> {
    let rows = state.store().scan(NS, PREFIX, MAX_PROMPTS).await?;
    let mut out = BTreeMap::new();
    for (key, bytes) in rows {
        let a = decode(&key, &bytes)?;
        out.insert(a.id.clone(), a);
    }
    Ok(out)
}

/// The activation history of `id` (every prompt when None), oldest first,
/// at most the `limit` most recent.
pub async fn history(
    state: &State,
    id: Option<&str>,
    limit: usize,
) -> Result<Vec<Activation>, StateError> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = state
            .store()
            .read_log(LOG, 0, u64::MAX, after.as_deref(), 1000)
            .await?;
        for r in &page.records {
            let a = decode(LOG, r)?;
            if id.is_none_or(|id| a.id == id) {
                out.push(a);
            }
        }
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Activation, StateError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StateError::Corrupt(format!("prompt activation {key}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateConfig;

    #[tokio::test]
    async fn records_survive_a_reopen_and_keep_their_history() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StateConfig {
            dir: dir.path().join("data"),
            warm_tokenizer: false,
            ..StateConfig::default()
        };
        let act = |v: Option<u32>, at_ms| Activation {
            id: "sum".into(),
            version: v,
            by: "alice".into(),
            at_ms,
            previous: None,
            reason: None,
        };
        {
            let state = State::open(&cfg).await.unwrap();
            record(&state, act(Some(2), 10)).await.unwrap();
            let second = record(&state, act(Some(1), 20)).await.unwrap();
            assert_eq!(second.previous, Some(2));
            state.flush().await.unwrap();
        }
        let state = loop {
            match State::open(&cfg).await {
                Ok(s) => break s,
                Err(e) if e.to_string().contains("lock") => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        };
        let now = load(&state).await.unwrap();
        assert_eq!(now["sum"].version, Some(1));
        assert_eq!(now["sum"].by, "alice");
        let h = history(&state, Some("sum"), 10).await.unwrap();
        assert_eq!(
            h.iter().map(|a| a.version).collect::<Vec<_>>(),
            [Some(2), Some(1)]
        );
        assert_eq!(history(&state, Some("other"), 10).await.unwrap(), []);
        assert_eq!(history(&state, None, 1).await.unwrap().len(), 1);
    }
}
