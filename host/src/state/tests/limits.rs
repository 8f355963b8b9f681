//! Rate limits: GCRA per key and user and tier, the headers, and one limit
//! shared by two gateways on Redis.

use std::time::Duration;

use super::{Fixture, config, on_both};
use crate::state::*;

fn limits(rpm: Option<u32>, tpm: Option<u32>) -> RateLimit {
    RateLimit { rpm, tpm }
}

on_both!(
    requests_per_minute_per_tier,
    tokens_per_minute,
    a_denied_user_does_not_charge_the_key
);

async fn requests_per_minute_per_tier(b: BackendKind) {
    let mut cfg = config();
    cfg.rate_limits.user.interactive = limits(Some(3), None);
    cfg.rate_limits.user.batch = limits(Some(1), None);
    let f = Fixture::new(b, cfg).await;
    let who = Subject {
        user: Some("alice"),
        ..Subject::default()
    };
    for left in [2, 1, 0] {
        let d = f
            .state
            .check_rate(&who, Tier::Interactive, 0)
            .await
            .unwrap();
        assert!(d.allowed());
        let r = d.requests.unwrap();
        assert_eq!((r.limit, r.remaining), (3, left));
        assert!(d.tokens.is_none(), "no token limit configured");
    }
    let d = f
        .state
        .check_rate(&who, Tier::Interactive, 0)
        .await
        .unwrap();
    let denied = d.denied.clone().unwrap();
    assert_eq!(
        (denied.scope.as_str(), denied.kind),
        ("user:alice", LimitKind::Requests)
    );
    // One request per 20 s; the first was moments ago.
    let retry = denied.retry_after.unwrap();
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(20),
        "{retry:?}"
    );
    let h = d.headers();
    let get = |k| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    assert_eq!(get("x-ratelimit-limit-requests").as_deref(), Some("3"));
    assert_eq!(get("x-ratelimit-remaining-requests").as_deref(), Some("0"));
    assert!(get("x-ratelimit-reset-requests").unwrap().ends_with('s'));
    let after: u64 = get("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&after));

    // The batch tier has its own limit; other users their own state.
    assert!(
        f.state
            .check_rate(&who, Tier::Batch, 0)
            .await
            .unwrap()
            .allowed()
    );
    assert!(
        !f.state
            .check_rate(&who, Tier::Batch, 0)
            .await
            .unwrap()
            .allowed()
    );
    let bob = Subject {
        user: Some("bob"),
        ..Subject::default()
    };
    assert!(
        f.state
            .check_rate(&bob, Tier::Interactive, 0)
            .await
            .unwrap()
            .allowed()
    );
    // Nobody to limit: nothing checked, nothing in the headers.
    let anon = f
        .state
        .check_rate(&Subject::default(), Tier::Interactive, 50)
        .await
        .unwrap();
    assert!(anon.allowed() && anon.headers().is_empty());
}

async fn tokens_per_minute(b: BackendKind) {
    let mut cfg = config();
    cfg.rate_limits.key.interactive = limits(Some(100), Some(1000));
    let f = Fixture::new(b, cfg).await;
    let key = f.state.create_key(NewKey::default()).await.unwrap().key;
    let who = Subject {
        key: Some(&key),
        ..Subject::default()
    };
    let d = f
        .state
        .check_rate(&who, Tier::Interactive, 600)
        .await
        .unwrap();
    assert!(d.allowed());
    assert_eq!(d.tokens.unwrap().remaining, 400);
    assert_eq!(d.requests.unwrap().remaining, 99);
    let d = f
        .state
        .check_rate(&who, Tier::Interactive, 600)
        .await
        .unwrap();
    let denied = d.denied.unwrap();
    assert_eq!((denied.kind, denied.requested), (LimitKind::Tokens, 600));
    assert!(denied.retry_after.is_some());
    // More than a minute's worth can never pass: no point retrying.
    let d = f
        .state
        .check_rate(&who, Tier::Interactive, 1001)
        .await
        .unwrap();
    assert_eq!(d.denied.as_ref().unwrap().retry_after, None);
    assert!(d.headers().iter().all(|(n, _)| *n != "retry-after"));

    // A key's own limits override the defaults, field by field.
    let own = f
        .state
        .create_key(NewKey {
            limits: TierLimits {
                interactive: limits(Some(2), None),
                batch: RateLimit::default(),
            },
            ..NewKey::default()
        })
        .await
        .unwrap()
        .key;
    let who = Subject {
        key: Some(&own),
        ..Subject::default()
    };
    let d = f
        .state
        .check_rate(&who, Tier::Interactive, 10)
        .await
        .unwrap();
    assert_eq!(d.requests.unwrap().limit, 2);
    assert_eq!(d.tokens.unwrap().limit, 1000);
}

async fn a_denied_user_does_not_charge_the_key(b: BackendKind) {
    let mut cfg = config();
    cfg.rate_limits.user.interactive = limits(Some(1), None);
    cfg.rate_limits.key.interactive = limits(Some(5), None);
    let f = Fixture::new(b, cfg).await;
    let key = f.state.create_key(NewKey::default()).await.unwrap().key;
    let both = Subject {
        key: Some(&key),
        user: Some("spammer"),
        ..Subject::default()
    };
    assert!(
        f.state
            .check_rate(&both, Tier::Interactive, 0)
            .await
            .unwrap()
            .allowed()
    );
    for _ in 0..3 {
        let d = f
            .state
            .check_rate(&both, Tier::Interactive, 0)
            .await
            .unwrap();
        assert_eq!(d.denied.unwrap().scope, "user:spammer");
    }
    let key_only = Subject {
        key: Some(&key),
        ..Subject::default()
    };
    let d = f
        .state
        .check_rate(&key_only, Tier::Interactive, 0)
        .await
        .unwrap();
    assert_eq!(
        d.requests.unwrap().remaining,
        3,
        "only two requests charged the key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_hold_one_limit() {
    let mut cfg = config();
    cfg.rate_limits.user.interactive = limits(Some(10), None);
    let f = Fixture::redis(cfg).await;
    let gateways = [f.state.clone(), f.second_gateway().await];
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let g = gateways[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let who = Subject {
                user: Some("alice"),
                ..Subject::default()
            };
            g.check_rate(&who, Tier::Interactive, 0)
                .await
                .unwrap()
                .allowed()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    // Ten in the burst, plus one per 6 s the test took (normally none).
    let refills = started.elapsed().as_secs() / 6 + 1;
    assert!(
        allowed >= 10 && allowed as u64 <= 10 + refills,
        "{allowed} allowed"
    );
}
