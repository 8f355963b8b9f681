//! The human review queue: answers a guardrail flagged (`flag` verdict: not
//! sure, a person should look), each with the flags, the conversation and
//! the answer, and a reviewer's decision once one is made.
//!
//! Built on the store's primitives, so it works alike on sled and Redis:
//! an item is one KV entry (namespace `review`, key = its id), written once;
//! the decision is a second entry (namespace `review-decision`, same key)
//! claimed with `put_if_absent`, so of two reviewers deciding at once
//! exactly one wins and the other is told who did. Items are kept until
//! deleted (no TTL): the queue is an audit trail. Listing scans the whole
//! namespace (`SCAN` on Redis), which is fine for an admin view and never
//! on the request path.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Store, StoreError, now_ms};

const ITEMS: &str = "review";
const DECISIONS: &str = "review-decision";
/// Upper bound on the items one listing reads.
const SCAN_LIMIT: usize = 100_000;

/// What the gateway did with a flagged answer (`[models.NAME.review]
/// on-flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnFlag {
    /// The client got the answer; the queue keeps a copy for review.
    #[default]
    Serve,
    /// The client got the configured message instead; the answer waits in
    /// the queue.
    Hold,
}

/// One guardrail's flag on the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagEntry {
    pub plugin: String,
    pub code: String,
    pub reason: String,
    pub score: f32,
    /// The choice (`n > 1`) and part (`content`, `refusal`, `tool-name(0)`,
    /// `input`) it was raised on.
    pub choice: u32,
    pub part: String,
}

/// A flagged answer waiting for (or past) review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// Sortable by time: `<unix ms, 13 digits>-<request id>`.
    pub id: String,
    pub created_ms: u64,
    pub request_id: String,
    /// The gateway model the client asked for.
    pub model: String,
    pub key_id: Option<String>,
    pub action: OnFlag,
    pub stream: bool,
    pub flags: Vec<FlagEntry>,
    /// The request's messages, as the client sent them.
    pub messages: Value,
    /// The answer as the upstream gave it after the guardrails' transforms:
    /// a `chat.completion` body, or for a stream `{"choices": [{"index",
    /// "content"}]}` with the text checked so far.
    pub answer: Value,
}

impl ReviewItem {
    /// The id of an item created at `created_ms` for request `request_id`.
    pub fn id_for(created_ms: u64, request_id: &str) -> String {
        format!("{created_ms:013}-{request_id}")
    }
}

/// A reviewer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Approved,
    Rejected,
}

/// Who decided, what and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub reviewer: String,
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An item with its decision, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewEntry {
    #[serde(flatten)]
    pub item: ReviewItem,
    /// `pending`, `approved` or `rejected`.
    pub status: Status,
    pub decision: Option<Decision>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "approved" => Some(Status::Approved),
            "rejected" => Some(Status::Rejected),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no review item `{0}`")]
    NotFound(String),
    #[error("review item `{id}` was already {} by {} at {}", verdict_word(&.by.verdict), .by.reviewer, .by.at_ms)]
    AlreadyDecided { id: String, by: Decision },
    #[error("a reviewer name is required")]
    NoReviewer,
    #[error("corrupt review record `{0}`: {1}")]
    Corrupt(String, String),
}

fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Approved => "approved",
        Verdict::Rejected => "rejected",
    }
}

/// The queue over a store; cheap to clone.
#[derive(Clone)]
pub struct ReviewQueue {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for ReviewQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewQueue")
            .field("backend", &self.store.backend())
            .finish()
    }
}

impl ReviewQueue {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Add `item` (an id already present is left as it was: a retried
    /// enqueue of the same request is one item).
    pub async fn enqueue(&self, item: &ReviewItem) -> Result<(), ReviewError> {
        let bytes = serde_json::to_vec(item).map_err(|e| corrupt(&item.id, e))?;
        self.store
            .put_if_absent(ITEMS, &item.id, &bytes, None)
            .await?;
        Ok(())
    }

    /// The item `id` with its decision.
    pub async fn get(&self, id: &str) -> Result<ReviewEntry, ReviewError> {
        let mut got = self
            .store
            .get_many(&[(ITEMS, id), (DECISIONS, id)])
            .await?
            .into_iter();
        let item = got
            .next()
            .flatten()
            .ok_or_else(|| ReviewError::NotFound(id.into()))?;
        let decision = got.next().flatten();
        entry(id, &item, decision.as_deref())
    }

    /// Items with `status` (all when None), newest first, at most `limit`.
    pub async fn list(
        &self,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<ReviewEntry>, ReviewError> {
        let mut items = self.store.scan(ITEMS, "", SCAN_LIMIT).await?;
        items.sort_by(|a, b| b.0.cmp(&a.0));
        let decisions: Vec<(String, Vec<u8>)> = self.store.scan(DECISIONS, "", SCAN_LIMIT).await?;
        let decisions: std::collections::HashMap<_, _> = decisions.into_iter().collect();
        let mut out = Vec::new();
        for (id, bytes) in items {
            let e = entry(&id, &bytes, decisions.get(&id).map(Vec::as_slice))?;
            if status.is_none_or(|s| s == e.status) {
                out.push(e);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Record `reviewer`'s `verdict` on item `id`, once: a second decision
    /// (by anyone) is refused with the first.
    pub async fn decide(
        &self,
        id: &str,
        verdict: Verdict,
        reviewer: &str,
        note: Option<String>,
    ) -> Result<ReviewEntry, ReviewError> {
        if reviewer.trim().is_empty() {
            return Err(ReviewError::NoReviewer);
        }
        // Refuse an unknown id before claiming anything under it.
        let current = self.get(id).await?;
        if let Some(by) = current.decision {
            return Err(ReviewError::AlreadyDecided { id: id.into(), by });
        }
        let decision = Decision {
            verdict,
            reviewer: reviewer.trim().to_string(),
            at_ms: now_ms(),
            note: note.filter(|n| !n.trim().is_empty()),
        };
        let bytes = serde_json::to_vec(&decision).map_err(|e| corrupt(id, e))?;
        if !self
            .store
            .put_if_absent(DECISIONS, id, &bytes, None)
            .await?
        {
            // Another reviewer won the race since we read.
            let by = self.get(id).await?.decision.ok_or_else(|| {
                ReviewError::Corrupt(id.into(), "decision claimed but absent".into())
            })?;
            return Err(ReviewError::AlreadyDecided { id: id.into(), by });
        }
        self.get(id).await
    }
}

fn corrupt(id: &str, e: impl std::fmt::Display) -> ReviewError {
    ReviewError::Corrupt(id.into(), e.to_string())
}

fn entry(id: &str, item: &[u8], decision: Option<&[u8]>) -> Result<ReviewEntry, ReviewError> {
    let item: ReviewItem = serde_json::from_slice(item).map_err(|e| corrupt(id, e))?;
    let decision: Option<Decision> = decision
        .map(serde_json::from_slice)
        .transpose()
        .map_err(|e| corrupt(id, e))?;
    let status = match decision.as_ref().map(|d| d.verdict) {
        None => Status::Pending,
        Some(Verdict::Approved) => Status::Approved,
        Some(Verdict::Rejected) => Status::Rejected,
    };
    Ok(ReviewEntry {
        item,
        status,
        decision,
    })
}
