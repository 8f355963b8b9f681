//! Budgets: the concurrent reservation race, settle, expiry, restart,
//! spend snapshots, and alerts through a real webhook receiver.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Barrier, mpsc};

use super::{Fixture, config, eventually, on_both, record};
use crate::state::*;

/// One request's worst case, and a budget with room for exactly ten.
const COST: f64 = 0.01;
const ROOM_FOR_TEN: f64 = 0.10;

fn alice_budget(day_usd: f64) -> StateConfig {
    let mut c = config();
    c.budgets.users.insert(
        "alice".into(),
        Budget {
            day_usd: Some(day_usd),
            month_usd: None,
        },
    );
    c
}

/// 1000 requests reserve at once against `gateways` (round robin); each
/// admitted one settles at `actual` (its worst case, or more when the
/// estimate was low). Returns (admitted, settled spend).
async fn race(gateways: &[State], actual: f64) -> (usize, f64) {
    let barrier = Arc::new(Barrier::new(1000));
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let (state, barrier) = (gateways[i % gateways.len()].clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let who = Subject {
                user: Some("alice"),
                ..Subject::default()
            };
            barrier.wait().await;
            match state.reserve(&who, &format!("req-{i}"), COST).await {
                Ok(res) => {
                    let mut r = record(&format!("req-{i}"), now_ms());
                    r.cost_usd = actual;
                    state.finish(res, &r).await.unwrap();
                    true
                }
                Err(ReserveError::Exceeded(e)) => {
                    assert_eq!(e.scope, "user:alice");
                    false
                }
                Err(e) => panic!("{e}"),
            }
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    let who = Subject {
        user: Some("alice"),
        ..Subject::default()
    };
    let day = gateways[0].spend(&who).await.unwrap().remove(0);
    assert!(day.period.starts_with("day:"));
    assert_eq!(day.reserved_usd, 0.0, "every reservation was settled");
    (admitted, day.spent_usd)
}

on_both!(thousand_concurrent_requests_overspend_at_most_one_request);

async fn thousand_concurrent_requests_overspend_at_most_one_request(b: BackendKind) {
    let f = Fixture::new(b, alice_budget(ROOM_FOR_TEN)).await;
    let (admitted, spent) = race(std::slice::from_ref(&f.state), COST).await;
    assert_eq!(admitted, 10, "room for exactly ten, and no false denials");
    assert!(spent <= ROOM_FOR_TEN + COST, "spent {spent}");
    assert!((spent - ROOM_FOR_TEN).abs() < 1e-9);
    // Every admitted request is in the ledger, and the ledger agrees.
    let records = f
        .state
        .records(now_ms() - 60_000, now_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!(records.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_share_the_budget() {
    let f = Fixture::redis(alice_budget(ROOM_FOR_TEN)).await;
    let other = f.second_gateway().await;
    // Each request costs 10 % more than its estimate: the overspend stays
    // within one request's cost.
    let actual = COST * 1.1;
    let (admitted, spent) = race(&[f.state.clone(), other], actual).await;
    assert_eq!(admitted, 10);
    assert!(spent <= ROOM_FOR_TEN + actual, "spent {spent}");
}

on_both!(reservations_expire_and_dropped_ones_are_released);

async fn reservations_expire_and_dropped_ones_are_released(b: BackendKind) {
    let mut cfg = alice_budget(COST);
    cfg.reservation_ttl_ms = 50;
    let f = Fixture::new(b, cfg).await;
    let who = Subject {
        user: Some("alice"),
        ..Subject::default()
    };
    // A crashed request: its reservation is never settled nor dropped.
    let held = f.state.reserve(&who, "crashed", COST).await.unwrap();
    std::mem::forget(held);
    assert!(matches!(
        f.state.reserve(&who, "blocked", COST).await,
        Err(ReserveError::Exceeded(_))
    ));
    // After the TTL the budget is free again.
    eventually("the crashed reservation expires", || async {
        match f.state.reserve(&who, "after", COST).await {
            Ok(r) => {
                f.state.release(r).await.unwrap();
                true
            }
            Err(_) => false,
        }
    })
    .await;

    // A dropped (cancelled) reservation is released without waiting.
    let mut cfg = alice_budget(COST);
    cfg.reservation_ttl_ms = 3_600_000;
    let f = Fixture::new(b, cfg).await;
    drop(f.state.reserve(&who, "cancelled", COST).await.unwrap());
    eventually("the dropped reservation is released", || async {
        f.state.spend(&who).await.unwrap()[0].reserved_usd == 0.0
    })
    .await;
    let r = f.state.reserve(&who, "next", COST).await.unwrap();
    assert!((r.amount_usd() - COST).abs() < 1e-12);
    f.state.release(r).await.unwrap();
}

on_both!(the_global_budget_spans_every_key_and_user);

/// `[state.budgets] global` counts every request, whoever sends it; it is
/// shown to the policy only when set.
async fn the_global_budget_spans_every_key_and_user(b: BackendKind) {
    let mut cfg = config();
    let f = Fixture::new(b, cfg.clone()).await;
    let alice = Subject {
        user: Some("alice"),
        ..Subject::default()
    };
    assert!(!f.state.budgeted(&alice));
    assert!(
        f.state
            .spend(&alice)
            .await
            .unwrap()
            .iter()
            .all(|s| s.scope != "global")
    );
    drop(f);
    cfg.budgets.global = Budget {
        day_usd: None,
        month_usd: Some(0.25),
    };
    let f = Fixture::new(b, cfg).await;
    let bob = Subject {
        user: Some("bob"),
        feature: Some("chat"),
        ..Subject::default()
    };
    assert!(f.state.budgeted(&alice) && f.state.budgeted(&bob));
    let a = f.state.reserve(&alice, "r1", 0.1).await.unwrap();
    let mut r = record("r1", now_ms());
    r.cost_usd = 0.1;
    f.state.finish(a, &r).await.unwrap();
    let held = f.state.reserve(&bob, "r2", 0.1).await.unwrap();
    // 0.1 settled by alice, 0.1 held by bob: no room for another 0.1.
    match f.state.reserve(&alice, "r3", 0.1).await {
        Err(ReserveError::Exceeded(e)) => {
            assert_eq!(e.scope, "global");
            assert!((e.spent_usd - 0.1).abs() < 1e-9 && (e.reserved_usd - 0.1).abs() < 1e-9);
        }
        other => panic!("{other:?}"),
    }
    let seen = f.state.spend(&bob).await.unwrap();
    let global: Vec<&SpendSnapshot> = seen.iter().filter(|s| s.scope == "global").collect();
    assert_eq!(global.len(), 2, "{seen:?}");
    let month = global
        .iter()
        .find(|s| !s.period.starts_with("day:"))
        .unwrap();
    assert_eq!(month.budget_usd, Some(0.25));
    assert!((month.spent_usd - 0.1).abs() < 1e-9);
    f.state.release(held).await.unwrap();
    let room = f.state.reserve(&alice, "r4", 0.1).await.unwrap();
    f.state.release(room).await.unwrap();
}

on_both!(spend_covers_every_scope_and_period);

async fn spend_covers_every_scope_and_period(b: BackendKind) {
    let mut cfg = alice_budget(5.0);
    cfg.budgets.features.insert(
        "chat".into(),
        Budget {
            day_usd: None,
            month_usd: Some(100.0),
        },
    );
    cfg.budgets.default_key = Budget {
        day_usd: Some(1.0),
        month_usd: Some(20.0),
    };
    let f = Fixture::new(b, cfg).await;
    let key = f
        .state
        .create_key(NewKey {
            id: Some("k1".into()),
            ..NewKey::default()
        })
        .await
        .unwrap()
        .key;
    let who = Subject {
        key: Some(&key),
        user: Some("alice"),
        feature: Some("chat"),
    };
    let res = f.state.reserve(&who, "r1", 0.5).await.unwrap();
    let during = f.state.spend(&who).await.unwrap();
    let scopes: Vec<(&str, bool)> = during
        .iter()
        .map(|s| (s.scope.as_str(), s.period.starts_with("day:")))
        .collect();
    assert_eq!(
        scopes,
        [
            ("key:k1", true),
            ("key:k1", false),
            ("user:alice", true),
            ("user:alice", false),
            ("feature:chat", true),
            ("feature:chat", false),
        ]
    );
    let budgets: Vec<Option<f64>> = during.iter().map(|s| s.budget_usd).collect();
    assert_eq!(
        budgets,
        [Some(1.0), Some(20.0), Some(5.0), None, None, Some(100.0)]
    );
    // Reserved only where a budget applies; the plugin view keeps it apart.
    let reserved: Vec<f64> = during.iter().map(|s| s.reserved_usd).collect();
    assert_eq!(reserved, [0.5, 0.5, 0.5, 0.0, 0.0, 0.5]);
    let day = during[0].to_plugin();
    assert_eq!((day.spent_usd, day.reserved_usd), (0.0, 0.5));
    assert_eq!(day.period, crate::plugin::BudgetPeriod::Day);
    assert_eq!(
        Some(day.label.as_str()),
        during[0].period.strip_prefix("day:")
    );
    let month = during[1].to_plugin();
    assert_eq!(month.period, crate::plugin::BudgetPeriod::Month);
    assert_eq!(month.label, during[1].period);

    let mut r = record("r1", now_ms());
    r.cost_usd = 0.2;
    let after = f.state.finish(res, &r).await.unwrap();
    assert!(
        after
            .iter()
            .all(|s| (s.spent_usd - 0.2).abs() < 1e-12 && s.reserved_usd == 0.0)
    );
    assert_eq!(f.state.spend(&who).await.unwrap(), after);

    // The key's day budget (1.0) now has 0.8 left: 0.9 is refused there.
    let Err(ReserveError::Exceeded(e)) = f.state.reserve(&who, "r2", 0.9).await else {
        panic!("0.9 must not fit in the remaining 0.8");
    };
    assert_eq!((e.scope.as_str(), e.budget_usd), ("key:k1", 1.0));
    assert!(!e.period_spent());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_spend_and_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = alice_budget(1.0);
    cfg.dir = dir.path().join("data");
    let who = Subject {
        user: Some("alice"),
        ..Subject::default()
    };
    {
        let state = State::open(&cfg).await.unwrap();
        for i in 0..3 {
            let res = state.reserve(&who, &format!("r{i}"), 0.25).await.unwrap();
            let mut r = record(&format!("r{i}"), now_ms());
            r.cost_usd = 0.25;
            state.finish(res, &r).await.unwrap();
        }
        state.flush().await.unwrap();
    }
    // The sled directory is free again once every handle is gone (the
    // sweeper holds only a weak one).
    let state = loop {
        match State::open(&cfg).await {
            Ok(s) => break s,
            Err(e) if e.to_string().contains("lock") => tokio::task::yield_now().await,
            Err(e) => panic!("{e}"),
        }
    };
    let day = state.spend(&who).await.unwrap().remove(0);
    assert!((day.spent_usd - 0.75).abs() < 1e-12);
    assert_eq!(state.records(0, now_ms() + 1).await.unwrap().len(), 3);
    assert!(matches!(
        state.reserve(&who, "r3", 0.5).await,
        Err(ReserveError::Exceeded(_))
    ));
}

/// A local webhook receiver: every POSTed alert arrives on the channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Alert>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(a): axum::Json<Alert>| {
            let tx = tx.clone();
            async move {
                tx.send(a).unwrap();
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// Settle `costs` on `gateways` in turn, for user alice (budget $1/day).
async fn settle(gateways: &[State], costs: &[f64]) {
    let who = Subject {
        user: Some("alice"),
        ..Subject::default()
    };
    for (i, cost) in costs.iter().enumerate() {
        let state = &gateways[i % gateways.len()];
        // A zero worst case: these tests are about settled spend.
        let id = format!("r{i}-{cost}");
        let res = state.reserve(&who, &id, 0.0).await.unwrap();
        let mut r = record(&id, now_ms());
        r.cost_usd = *cost;
        state.finish(res, &r).await.unwrap();
    }
    for g in gateways {
        g.drain_alerts().await;
    }
}

/// Spend goes 0.6 (50 %), 0.9 (80 %), 1.0 (100 %), then stays there.
const CROSSING: [f64; 4] = [0.3, 0.3, 0.3, 0.1];
const STAYING: [f64; 3] = [0.0, 0.0, 0.0];

fn thresholds_of(rx: &mut mpsc::UnboundedReceiver<Alert>) -> Vec<f64> {
    let mut got = Vec::new();
    while let Ok(a) = rx.try_recv() {
        assert_eq!((a.scope.as_str(), a.budget_usd), ("user:alice", 1.0));
        assert!(a.period.starts_with("day:"));
        got.push(a.threshold_pct);
    }
    got.sort_by(f64::total_cmp);
    got
}

on_both!(alerts_fire_once_per_threshold);

async fn alerts_fire_once_per_threshold(b: BackendKind) {
    let (url, mut rx) = receiver().await;
    let mut cfg = alice_budget(1.0);
    cfg.alert_webhook = Some(url);
    let f = Fixture::new(b, cfg).await;
    settle(std::slice::from_ref(&f.state), &CROSSING).await;
    assert_eq!(thresholds_of(&mut rx), [50.0, 80.0, 100.0]);
    settle(std::slice::from_ref(&f.state), &STAYING).await;
    assert!(
        thresholds_of(&mut rx).is_empty(),
        "no second alert in the period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_once_across_gateways_sharing_redis() {
    let (url, mut rx) = receiver().await;
    let mut cfg = alice_budget(1.0);
    cfg.alert_webhook = Some(url);
    let f = Fixture::redis(cfg).await;
    let gateways = [
        f.state.clone(),
        f.second_gateway().await,
        f.second_gateway().await,
    ];
    settle(&gateways, &CROSSING).await;
    // Each gateway now checks every threshold again; none may fire twice.
    settle(&gateways, &STAYING).await;
    settle(&gateways[1..], &STAYING).await;
    assert_eq!(thresholds_of(&mut rx), [50.0, 80.0, 100.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_never_blocks_a_request() {
    // A listener that accepts and never answers: the POST times out.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = alice_budget(1.0);
    cfg.alert_webhook = Some(format!("http://{}/hook", silent.local_addr().unwrap()));
    cfg.alert_webhook_timeout_ms = 100;
    let f = Fixture::sled(cfg).await;
    let who = Subject {
        user: Some("alice"),
        ..Subject::default()
    };
    let res = f.state.reserve(&who, "r", 0.0).await.unwrap();
    let mut r = record("r", now_ms());
    r.cost_usd = 2.0;
    // `finish` returns while the POST is still pending (it cannot have
    // been answered: nobody reads the socket).
    let finished = f.state.finish(res, &r).await.unwrap();
    assert!(finished[0].spent_usd >= 2.0);
    tokio::time::timeout(Duration::from_secs(30), f.state.drain_alerts())
        .await
        .expect("the webhook POST times out and the queue drains");
    drop(silent);
}
