//! Who is calling: virtual keys on `/v1/*`, the admin key on `/admin/*`.
//!
//! Keys are looked up by the SHA-256 digest of the presented secret: one
//! hash-map probe whatever the number of keys, and nothing about a stored
//! secret (its length, a matching prefix) shows in the response time. Only
//! digests are kept in memory.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::config::Config;
use crate::pipeline::Principal;

type KeyDigest = [u8; 32];

fn digest(secret: &str) -> KeyDigest {
    Sha256::digest(secret.as_bytes()).into()
}

/// The keys a gateway accepts.
#[derive(Debug, Default)]
pub struct Auth {
    /// Digest of each `[[keys]]` secret -> its principal. Empty = auth off.
    keys: HashMap<KeyDigest, Principal>,
    /// Digest of `server.admin-key`; none = admin endpoints disabled.
    admin: Option<KeyDigest>,
}

impl Auth {
    pub fn from_config(config: &Config) -> Self {
        let keys = config
            .keys
            .iter()
            .map(|k| {
                let p = Principal {
                    key_id: Some(k.id.clone()),
                    user: k.user.clone(),
                    budget_usd: k.budget_usd,
                };
                (digest(&k.key), p)
            })
            .collect();
        Auth {
            keys,
            admin: config.server.admin_key.as_deref().map(digest),
        }
    }

    /// False when no key is configured: every caller is anonymous.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The principal owning `secret`.
    pub fn authenticate(&self, secret: &str) -> Option<Principal> {
        self.keys.get(&digest(secret)).cloned()
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
/// With no keys configured auth is off and every caller is anonymous.
pub async fn keys(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let principal = if auth.enabled() {
        let Some(secret) = bearer(&req) else {
            return ApiError::unauthorized("Missing API key: send `Authorization: Bearer <key>`")
                .into_response();
        };
        match auth.authenticate(secret) {
            Some(p) => p,
            None => return ApiError::unauthorized("Incorrect API key provided").into_response(),
        }
    } else {
        Principal::default()
    };
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// `/admin/*`: `Authorization: Bearer <server.admin-key>`.
pub async fn admin(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
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

    fn auth() -> Auth {
        let config = Config::parse(
            "t.toml",
            "[server]\nadmin-key = \"adm\"\n[[keys]]\nid = \"k1\"\nkey = \"sk-one\"\nuser = \"ann\"\n",
            &|_| None,
        )
        .unwrap();
        Auth::from_config(&config)
    }

    #[test]
    fn keys_are_found_by_digest() {
        let a = auth();
        assert!(a.enabled());
        let p = a.authenticate("sk-one").unwrap();
        assert_eq!(p.key_id.as_deref(), Some("k1"));
        assert_eq!(p.user.as_deref(), Some("ann"));
        assert!(a.authenticate("sk-on").is_none());
        assert!(a.authenticate("sk-one ").is_none());
        assert!(a.is_admin("adm"));
        assert!(!a.is_admin("sk-one"));
        assert!(!Auth::default().is_admin(""), "no admin key, no admin");
    }

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
}
