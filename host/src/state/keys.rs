//! Virtual keys: stored by the SHA-256 digest of their secret (never the
//! secret), found with one lookup by digest.
//!
//! Layout on the generic KV: `keys/DIGEST` -> the key as JSON,
//! `key-ids/ID` -> DIGEST (ids are unique: claimed with `put_if_absent`),
//! `key-revoked/DIGEST` -> revocation time. Revocation is its own entry, so
//! it is one idempotent write (no read-modify-write of the record) and a
//! lookup reads record and revocation together (`get_many`: one `MGET` on
//! Redis). Nothing is cached: a revocation on one gateway is seen by the
//! next request on every other.
//!
//! Timing: the lookup key is a digest of the presented secret, so which
//! entries exist or how a map compares digests says nothing usable about
//! the secrets themselves.

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{Budget, TierLimits};
use super::{State, StateError, Tier, now_ms};
use crate::config::KeyConfig;

const KEYS: &str = "keys";
const IDS: &str = "key-ids";
const REVOKED: &str = "key-revoked";

/// Secrets are this prefix plus 43 base62 characters (256 bits).
pub const SECRET_PREFIX: &str = "sk-sluice-";
const SECRET_CHARS: usize = 43;

/// Where a key came from: `[[keys]]` in the config (re-seeded at every
/// start) or created through the CLI / admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KeySource {
    Config,
    #[default]
    Api,
}

/// A virtual key as stored (without its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VirtualKey {
    pub id: String,
    /// Owner; the request's `user` when the client sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Gateway models this key may use; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Budget per day / month in USD; unset falls back to
    /// `[state.budgets] default-key`.
    #[serde(default)]
    pub budget: Budget,
    /// Rate limits per tier; unset fields fall back to
    /// `[state.rate-limits.key]`.
    #[serde(default)]
    pub limits: TierLimits,
    /// The tier of requests that do not choose one.
    #[serde(default)]
    pub tier: Tier,
    /// Other tiers a request may select with `x-sluice-tier`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tiers: Vec<Tier>,
    /// Unix seconds after which the key stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Unix seconds.
    pub created_at: u64,
    #[serde(default)]
    pub source: KeySource,
    /// Set when read back if the key was revoked (never stored in the record).
    #[serde(default)]
    pub revoked: bool,
    /// First 8 hex digits of the secret's digest, to tell keys apart in
    /// listings without exposing anything.
    #[serde(default)]
    pub fingerprint: String,
}

impl VirtualKey {
    /// Whether the key may call gateway model `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }

    /// The request's tier: the key's own, or the one the `x-sluice-tier`
    /// header asks for if the key allows it.
    pub fn tier_for(&self, header: Option<&str>) -> Result<Tier, String> {
        let Some(h) = header else {
            return Ok(self.tier);
        };
        let tier = Tier::parse(h).ok_or_else(|| {
            format!("unknown tier `{h}` in x-sluice-tier (expected interactive or batch)")
        })?;
        if tier == self.tier || self.allowed_tiers.contains(&tier) {
            Ok(tier)
        } else {
            Err(format!(
                "key `{}` may not use the {} tier",
                self.id,
                tier.as_str()
            ))
        }
    }
}

/// What to create (the CLI's and admin API's input).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NewKey {
    /// Unique id; default: `key-` plus 12 random characters.
    pub id: Option<String>,
    pub user: Option<String>,
    pub models: Vec<String>,
    pub budget: Budget,
    pub limits: TierLimits,
    pub tier: Tier,
    pub allowed_tiers: Vec<Tier>,
    /// Unix seconds.
    pub expires_at: Option<u64>,
}

/// A created key and its secret, which is shown this once and not stored.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedKey {
    pub key: VirtualKey,
    pub secret: String,
}

/// The outcome of presenting a secret.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyLookup {
    Valid(VirtualKey),
    /// No key has this secret.
    Unknown,
    Revoked(VirtualKey),
    Expired(VirtualKey),
}

/// Hex SHA-256 of a secret: the only form in which secrets are stored.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_chars(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn decode(bytes: &[u8]) -> Result<VirtualKey, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt(format!("key record: {e}")))
}

fn problems(spec: &NewKey) -> Option<String> {
    if let Some(id) = &spec.id
        && !valid_id(id)
    {
        return Some(format!(
            "id `{id}`: 1-64 characters of A-Z, a-z, 0-9, `-`, `_`, `.`"
        ));
    }
    if spec.models.iter().any(|m| m.trim().is_empty()) {
        return Some("model names must not be empty".into());
    }
    for v in [spec.budget.day_usd, spec.budget.month_usd]
        .into_iter()
        .flatten()
    {
        if !(v.is_finite() && v >= 0.0) {
            return Some(format!("budget {v} is not a non-negative number"));
        }
    }
    for l in [spec.limits.interactive, spec.limits.batch] {
        if l.rpm == Some(0) || l.tpm == Some(0) {
            return Some("rate limits must be at least 1 (unset = the default)".into());
        }
    }
    None
}

impl State {
    /// Create a key; the returned secret is never stored or shown again.
    pub async fn create_key(&self, spec: NewKey) -> Result<CreatedKey, StateError> {
        if let Some(p) = problems(&spec) {
            return Err(StateError::InvalidKey(p));
        }
        let id = spec
            .id
            .unwrap_or_else(|| format!("key-{}", random_chars(12).to_ascii_lowercase()));
        let secret = format!("{SECRET_PREFIX}{}", random_chars(SECRET_CHARS));
        let d = digest(&secret);
        let key = VirtualKey {
            id: id.clone(),
            user: spec.user,
            models: spec.models,
            budget: spec.budget,
            limits: spec.limits,
            tier: spec.tier,
            allowed_tiers: spec.allowed_tiers,
            expires_at: spec.expires_at,
            created_at: now_ms() / 1000,
            source: KeySource::Api,
            revoked: false,
            fingerprint: d[..8].to_string(),
        };
        let record = serde_json::to_vec(&key).expect("a key serialises");
        // Claim the id first: of two concurrent creations one wins.
        if !self
            .store
            .put_if_absent(IDS, &id, d.as_bytes(), None)
            .await?
        {
            return Err(StateError::DuplicateKey(id));
        }
        self.store.put(KEYS, &d, &record, None).await?;
        Ok(CreatedKey { key, secret })
    }

    /// The key a presented secret belongs to, with its state. One read
    /// (record and revocation together), no cache.
    pub async fn authenticate(&self, secret: &str) -> Result<KeyLookup, StateError> {
        let d = digest(secret);
        let found = self
            .store
            .get_many(&[(KEYS, d.as_str()), (REVOKED, d.as_str())])
            .await?;
        let (Some(Some(record)), revoked) = (found.first(), found.get(1)) else {
            return Ok(KeyLookup::Unknown);
        };
        let mut key = decode(record)?;
        if revoked.is_some_and(Option::is_some) {
            key.revoked = true;
            return Ok(KeyLookup::Revoked(key));
        }
        if key.expires_at.is_some_and(|t| t <= now_ms() / 1000) {
            return Ok(KeyLookup::Expired(key));
        }
        Ok(KeyLookup::Valid(key))
    }

    /// Revoke by id; false when no such key. Takes effect on the next
    /// request everywhere. Idempotent.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StateError> {
        let Some(d) = self.store.get(IDS, id).await? else {
            return Ok(false);
        };
        let d = String::from_utf8_lossy(&d).into_owned();
        let at = (now_ms() / 1000).to_string();
        self.store.put(REVOKED, &d, at.as_bytes(), None).await?;
        Ok(true)
    }

    /// Every key (revoked ones marked), oldest first. Scans the whole key
    /// set: for the CLI and admin API, not the request path.
    pub async fn list_keys(&self) -> Result<Vec<VirtualKey>, StateError> {
        let revoked: std::collections::HashSet<String> = self
            .store
            .scan(REVOKED, "", usize::MAX)
            .await?
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let mut keys = Vec::new();
        for (d, v) in self.store.scan(KEYS, "", usize::MAX).await? {
            let mut k = decode(&v)?;
            k.revoked = revoked.contains(&d);
            keys.push(k);
        }
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    /// Whether any key exists anywhere (auth is off only when none does).
    pub async fn has_keys(&self) -> Result<bool, StateError> {
        Ok(!self.store.scan(KEYS, "", 1).await?.is_empty())
    }

    /// Make the store's config-sourced keys exactly `keys`: add or update
    /// each (a changed secret replaces the old digest), drop config keys no
    /// longer in the file. A revocation survives re-seeding as long as the
    /// secret is unchanged. A config key takes over an API key's id.
    pub async fn seed_keys(&self, keys: &[KeyConfig]) -> Result<(), StateError> {
        let now = now_ms() / 1000;
        for k in keys {
            let d = digest(&k.key);
            if let Some(old) = self.store.get(IDS, &k.id).await?
                && old != d.as_bytes()
            {
                let old = String::from_utf8_lossy(&old).into_owned();
                if let Some(prev) = self.store.get(KEYS, &old).await?
                    && decode(&prev)?.source == KeySource::Api
                {
                    tracing::warn!(
                        id = k.id,
                        "config key replaces an API-created key with the same id"
                    );
                }
                self.store.delete(KEYS, &old).await?;
            }
            let created_at = match self.store.get(KEYS, &d).await? {
                Some(v) => decode(&v)?.created_at,
                None => now,
            };
            let key = VirtualKey {
                id: k.id.clone(),
                user: k.user.clone(),
                models: Vec::new(),
                budget: Budget {
                    day_usd: None,
                    month_usd: k.budget_usd,
                },
                limits: TierLimits::default(),
                tier: Tier::Interactive,
                allowed_tiers: vec![Tier::Batch],
                expires_at: None,
                created_at,
                source: KeySource::Config,
                revoked: false,
                fingerprint: d[..8].to_string(),
            };
            let record = serde_json::to_vec(&key).expect("a key serialises");
            self.store.put(IDS, &k.id, d.as_bytes(), None).await?;
            self.store.put(KEYS, &d, &record, None).await?;
        }
        for (d, v) in self.store.scan(KEYS, "", usize::MAX).await? {
            let key = decode(&v)?;
            if key.source == KeySource::Config && !keys.iter().any(|k| k.id == key.id) {
                self.store.delete(KEYS, &d).await?;
                if self.store.get(IDS, &key.id).await?.as_deref() == Some(d.as_bytes()) {
                    self.store.delete(IDS, &key.id).await?;
                }
            }
        }
        Ok(())
    }
}
