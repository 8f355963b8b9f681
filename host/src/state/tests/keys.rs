//! Virtual keys: lifecycle, digests only, config seeding, and revocation
//! seen at once by another gateway.

use super::{Fixture, config, on_both};
use crate::config::KeyConfig;
use crate::state::keys::{SECRET_PREFIX, digest};
use crate::state::*;

on_both!(key_lifecycle, config_keys_are_seeded_and_follow_the_file);

async fn key_lifecycle(b: BackendKind) {
    let f = Fixture::new(b, config()).await;
    let s = &f.state;
    assert!(!s.has_keys().await.unwrap());
    let spec = NewKey {
        id: Some("team-a".into()),
        user: Some("alice".into()),
        models: vec!["demo".into()],
        budget: Budget {
            day_usd: Some(1.0),
            month_usd: Some(20.0),
        },
        limits: TierLimits {
            interactive: RateLimit {
                rpm: Some(60),
                tpm: None,
            },
            batch: RateLimit::default(),
        },
        tier: Tier::Interactive,
        allowed_tiers: vec![Tier::Batch],
        expires_at: None,
    };
    let created = s.create_key(spec.clone()).await.unwrap();
    assert!(created.secret.starts_with(SECRET_PREFIX));
    assert_eq!(created.secret.len(), SECRET_PREFIX.len() + 43);
    assert!(s.has_keys().await.unwrap());

    // Only the digest is stored: the secret appears nowhere in the store.
    let stored = s.store().scan("keys", "", 100).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, digest(&created.secret));
    let raw = String::from_utf8_lossy(&stored[0].1);
    assert!(!raw.contains(&created.secret[SECRET_PREFIX.len()..]));

    let KeyLookup::Valid(k) = s.authenticate(&created.secret).await.unwrap() else {
        panic!("the new key authenticates");
    };
    assert_eq!(k, created.key);
    assert!(k.allows_model("demo") && !k.allows_model("other"));
    assert_eq!(k.tier_for(None), Ok(Tier::Interactive));
    assert_eq!(k.tier_for(Some("batch")), Ok(Tier::Batch));
    assert!(k.tier_for(Some("turbo")).is_err());
    assert_eq!(
        s.authenticate("sk-sluice-wrong").await.unwrap(),
        KeyLookup::Unknown
    );

    assert!(matches!(
        s.create_key(spec.clone()).await,
        Err(StateError::DuplicateKey(id)) if id == "team-a"
    ));
    let bad = NewKey {
        id: Some("no spaces".into()),
        ..NewKey::default()
    };
    assert!(matches!(
        s.create_key(bad).await,
        Err(StateError::InvalidKey(_))
    ));
    let generated = s.create_key(NewKey::default()).await.unwrap();
    assert!(generated.key.id.starts_with("key-"));

    assert!(s.revoke_key("team-a").await.unwrap());
    assert!(s.revoke_key("team-a").await.unwrap(), "idempotent");
    assert!(!s.revoke_key("nobody").await.unwrap());
    assert!(matches!(
        s.authenticate(&created.secret).await.unwrap(),
        KeyLookup::Revoked(k) if k.id == "team-a" && k.revoked
    ));
    let listed: Vec<(String, bool)> = s
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.id, k.revoked))
        .collect();
    assert!(listed.contains(&("team-a".into(), true)));
    assert!(listed.contains(&(generated.key.id.clone(), false)));

    let expired = s
        .create_key(NewKey {
            expires_at: Some(1),
            ..NewKey::default()
        })
        .await
        .unwrap();
    assert!(matches!(
        s.authenticate(&expired.secret).await.unwrap(),
        KeyLookup::Expired(_)
    ));
}

fn key_config(id: &str, secret: &str, budget: Option<f64>) -> KeyConfig {
    KeyConfig {
        id: id.into(),
        key: secret.into(),
        user: Some("bob".into()),
        budget_usd: budget,
    }
}

async fn config_keys_are_seeded_and_follow_the_file(b: BackendKind) {
    let f = Fixture::new(b, config()).await;
    let s = &f.state;
    s.seed_keys(&[
        key_config("a", "secret-a", Some(5.0)),
        key_config("b", "secret-b", None),
    ])
    .await
    .unwrap();
    let KeyLookup::Valid(a) = s.authenticate("secret-a").await.unwrap() else {
        panic!("seeded key a");
    };
    assert_eq!(
        (a.source, a.user.as_deref(), a.budget.month_usd),
        (KeySource::Config, Some("bob"), Some(5.0))
    );
    let first_created = a.created_at;

    // Revoke b; rotate a's secret; drop b from the file... then re-add b.
    assert!(s.revoke_key("b").await.unwrap());
    s.seed_keys(&[
        key_config("a", "secret-a2", Some(7.0)),
        key_config("b", "secret-b", None),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.authenticate("secret-a").await.unwrap(),
        KeyLookup::Unknown
    );
    let KeyLookup::Valid(a) = s.authenticate("secret-a2").await.unwrap() else {
        panic!("rotated key a");
    };
    assert_eq!(a.budget.month_usd, Some(7.0));
    assert!(a.created_at >= first_created);
    assert!(
        matches!(
            s.authenticate("secret-b").await.unwrap(),
            KeyLookup::Revoked(_)
        ),
        "a revocation survives re-seeding"
    );
    s.seed_keys(&[key_config("a", "secret-a2", Some(7.0))])
        .await
        .unwrap();
    assert_eq!(
        s.authenticate("secret-b").await.unwrap(),
        KeyLookup::Unknown
    );
    let ids: Vec<String> = s
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["a"]);
    // API keys are left alone by seeding.
    let api = s.create_key(NewKey::default()).await.unwrap();
    s.seed_keys(&[]).await.unwrap();
    assert!(matches!(
        s.authenticate(&api.secret).await.unwrap(),
        KeyLookup::Valid(_)
    ));
    assert_eq!(
        s.authenticate("secret-a2").await.unwrap(),
        KeyLookup::Unknown
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_is_seen_at_once_by_another_gateway() {
    let f = Fixture::redis(config()).await;
    let other = f.second_gateway().await;
    let created = f.state.create_key(NewKey::default()).await.unwrap();
    assert!(matches!(
        other.authenticate(&created.secret).await.unwrap(),
        KeyLookup::Valid(_)
    ));
    assert!(f.state.revoke_key(&created.key.id).await.unwrap());
    // The very next lookup on the other gateway refuses it: no cache.
    assert!(matches!(
        other.authenticate(&created.secret).await.unwrap(),
        KeyLookup::Revoked(_)
    ));
}
