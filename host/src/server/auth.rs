//! Who is calling: virtual keys on `/v1/*`, the admin key on `/admin/*`.
//!
//! Virtual keys live in the state store ([`crate::state::keys`]): the
//! config's `[[keys]]` are seeded into it at start, and keys created with
//! `sluice keys create` or `POST /admin/keys` join them. Every request looks
//! its key up by the SHA-256 digest of the presented secret, one store read
//! with no cache, so a revocation takes effect at the next request, on every
//! gateway sharing the store. Unknown, revoked and expired keys get 401
//! with distinct messages and codes (`invalid_api_key`, `revoked_api_key`,
//! `expired_api_key`).
//!
//! Auth is off only while no key exists anywhere (every caller is then
//! anonymous, with a loud warning at start). A key created through this
//! gateway turns it on at once; one created elsewhere (another gateway, the
//! CLI) within [`KEYS_RECHECK`].
//!
//! The tier (`interactive` or `batch`, separate rate limits) is the key's,
//! or `x-sluice-tier` if the key allows that tier: an unknown tier is 400,
//! one the key may not use 403.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State as AxState};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tracing::Instrument as _;

use super::error::ApiError;
use crate::pipeline::Principal;
use crate::state::{KeyLookup, State, StateError, Tier};

/// While auth is off, how often the store is asked whether a key appeared
/// (a prefix scan: cheap on sled, a `SCAN` on Redis).
pub const KEYS_RECHECK: Duration = Duration::from_secs(1);

/// The header a key may use to pick another tier it is allowed.
pub const TIER_HEADER: &str = "x-sluice-tier";

type KeyDigest = [u8; 32];

fn digest(secret: &str) -> KeyDigest {
    Sha256::digest(secret.as_bytes()).into()
}

/// The keys a gateway accepts.
pub struct Auth {
    state: State,
    /// Once a key exists auth stays on (keys are revoked, never deleted).
    keys_exist: AtomicBool,
    /// When the store was last asked, while no key existed.
    checked: Mutex<Option<Instant>>,
    /// Digest of `server.admin-key`; none = admin endpoints disabled.
    admin: Option<KeyDigest>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys_exist", &self.keys_exist)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// `keys_exist`: whether the store held a key at start.
    pub fn new(state: State, admin_key: Option<&str>, keys_exist: bool) -> Self {
        Auth {
            state,
            keys_exist: AtomicBool::new(keys_exist),
            // Unknown yet: the first request asks the store.
            checked: Mutex::new(None),
            admin: admin_key.map(digest),
        }
    }

    /// Whether callers must present a key: some key exists in the store.
    pub async fn enabled(&self) -> Result<bool, StateError> {
        if self.keys_exist.load(Ordering::Acquire) {
            return Ok(true);
        }
        {
            let mut checked = self.checked.lock();
            if checked.is_some_and(|t| t.elapsed() < KEYS_RECHECK) {
                return Ok(false);
            }
            *checked = Some(Instant::now());
        }
        let exist = self.state.has_keys().await?;
        if exist {
            self.key_created();
        }
        Ok(exist)
    }

    /// A key was created: auth is on from now on.
    pub fn key_created(&self) {
        if !self.keys_exist.swap(true, Ordering::AcqRel) {
            tracing::info!("a virtual key exists now: authentication is ON");
        }
    }

    /// The principal presenting `secret` (None: no `Authorization`), with
    /// the tier `tier_header` asks for.
    pub async fn principal(
        &self,
        secret: Option<&str>,
        tier_header: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let requested = match tier_header {
            None => None,
            Some(h) => Some(Tier::parse(h).ok_or_else(|| {
                ApiError::invalid(
                    format!("Unknown tier `{h}` in {TIER_HEADER} (expected interactive or batch)"),
                    Some(TIER_HEADER.into()),
                )
            })?),
        };
        if !self.enabled().await.map_err(|e| ApiError::state(&e))? {
            return Ok(Principal {
                tier: requested.unwrap_or_default(),
                ..Principal::default()
            });
        }
        let Some(secret) = secret else {
            return Err(ApiError::unauthorized(
                "Missing API key: send `Authorization: Bearer <key>`",
            ));
        };
        let key = match self
            .state
            .authenticate(secret)
            .await
            .map_err(|e| ApiError::state(&e))?
        {
            KeyLookup::Valid(k) => k,
            KeyLookup::Unknown => {
                return Err(ApiError::unauthorized("Incorrect API key provided"));
            }
            KeyLookup::Revoked(k) => {
                return Err(ApiError::key_refused(
                    format!("The API key `{}` has been revoked", k.id),
                    "revoked_api_key",
                ));
            }
            KeyLookup::Expired(k) => {
                return Err(ApiError::key_refused(
                    format!("The API key `{}` has expired", k.id),
                    "expired_api_key",
                ));
            }
        };
        let tier = match requested {
            None => key.tier,
            Some(t) => key.tier_for(Some(t.as_str())).map_err(|message| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    message,
                    Some(TIER_HEADER.into()),
                    Some("tier_not_allowed"),
                )
            })?,
        };
        Ok(Principal::new(key, tier))
    }

    /// Whether `secret` is the admin key. Digests have a fixed length, and
    /// the comparison does not stop at the first differing byte.
    pub fn is_admin(&self, secret: &str) -> bool {
        self.admin.is_some_and(|want| {
            let got = digest(secret);
            want.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        })
    }
}

/// The credentials of `Authorization: Bearer KEY`. The scheme name is
/// case-insensitive (RFC 9110 §11.1).
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// `/v1/*`: the caller's [`Principal`] goes into the request extensions.
pub async fn keys(AxState(auth): AxState<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let tier = req
        .headers()
        .get(TIER_HEADER)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let span = crate::telemetry::spans::auth();
    let found = auth
        .principal(bearer(&req), tier)
        .instrument(span.clone())
        .await;
    span.record(
        "sluice.outcome",
        if found.is_ok() { "ok" } else { "refused" },
    );
    match found {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// `/admin/*`: `Authorization: Bearer <server.admin-key>`.
pub async fn admin(AxState(auth): AxState<Arc<Auth>>, req: Request, next: Next) -> Response {
    match bearer(&req) {
        Some(secret) if auth.is_admin(secret) => next.run(req).await,
        _ => ApiError::unauthorized("Admin endpoints need `Authorization: Bearer <admin key>`")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for (value, want) in [
            ("Bearer sk-one", Some("sk-one")),
            ("bearer sk-one", Some("sk-one")),
            ("BEARER  sk-one ", Some("sk-one")),
            ("Basic sk-one", None),
            ("Bearer", None),
            ("sk-one", None),
        ] {
            let mut req = Request::new(axum::body::Body::empty());
            req.headers_mut()
                .insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer(&req), want, "{value}");
        }
    }

    #[tokio::test]
    async fn keys_come_from_the_store_with_distinct_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::parse(
            "t.toml",
            &format!(
                "[server]\nadmin-key = \"adm\"\n[[keys]]\nid = \"k1\"\nkey = \"sk-one\"\nuser = \"ann\"\n[state]\ndir = '{}'\n",
                dir.path().display()
            ),
            &|_| None,
        )
        .unwrap();
        let state = State::open(&config.state).await.unwrap();
        state.seed_keys(&config.keys).await.unwrap();
        let auth = Auth::new(state.clone(), config.server.admin_key.as_deref(), true);
        let p = auth.principal(Some("sk-one"), None).await.unwrap();
        assert_eq!(p.key_id.as_deref(), Some("k1"));
        assert_eq!(p.user.as_deref(), Some("ann"));
        // Config keys may pick the batch tier; an unknown tier is a 400.
        let batch = auth.principal(Some("sk-one"), Some("batch")).await.unwrap();
        assert_eq!(batch.tier, Tier::Batch);
        let bad = auth
            .principal(Some("sk-one"), Some("gold"))
            .await
            .unwrap_err();
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let code = |e: ApiError| (e.status, e.body.code.unwrap_or_default());
        assert_eq!(
            code(auth.principal(Some("sk-on"), None).await.unwrap_err()),
            (StatusCode::UNAUTHORIZED, "invalid_api_key".into())
        );
        assert_eq!(
            code(auth.principal(None, None).await.unwrap_err()),
            (StatusCode::UNAUTHORIZED, "invalid_api_key".into())
        );
        state.revoke_key("k1").await.unwrap();
        assert_eq!(
            code(auth.principal(Some("sk-one"), None).await.unwrap_err()),
            (StatusCode::UNAUTHORIZED, "revoked_api_key".into())
        );
        assert!(auth.is_admin("adm"));
        assert!(!auth.is_admin("sk-one"));
        let none = Auth::new(state, None, true);
        assert!(!none.is_admin(""), "no admin key, no admin");
    }
}
