//! The state layer's cost on one request's path, beside a no-state
//! baseline in the same run:
//!
//! - `request/baseline`: what a request does for accounting without a
//!   state layer (price the usage, build the ledger record).
//! - `request/{sled-group,sled-sync,redis}`: the same plus four GCRA checks
//!   (user and key, requests and tokens), a reservation against the user's
//!   day and the key's month budget (six counters: key, user and feature,
//!   day and month), and `finish` (ledger record + settle + alert check).
//!   `sled-sync` fsyncs every record; `redis` is a local `redis-server`
//!   (persistence off, loopback).
//! - `key_lookup/{sled,redis}`: authenticating a presented secret.
//!
//! Each iteration is one request, run to completion on a 2-worker tokio
//! runtime (`block_on`, also in the baseline). The tokenizer's cold load
//! is measured once and printed first.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::config::RouteConfig;
use sluice::state::testing::RedisServer;
use sluice::state::{
    BackendKind, Budget, Durability, KeyLookup, NewKey, PriceTable, RateLimit, State, StateConfig,
    Subject, Tier, TokenUsage, UsageRecord, VirtualKey,
};
use tokio::runtime::Runtime;

/// Limits and budgets no iteration can exhaust: every check does its full
/// work and passes.
const HUGE_LIMIT: u32 = 4_000_000_000;

fn config(backend: BackendKind, durability: Durability) -> StateConfig {
    let mut c = StateConfig {
        backend,
        durability,
        warm_tokenizer: false,
        ..StateConfig::default()
    };
    let budget = Budget {
        day_usd: Some(1e9),
        month_usd: Some(1e9),
    };
    c.budgets.users.insert("alice".into(), budget);
    c.budgets.default_key = budget;
    let l = RateLimit {
        rpm: Some(HUGE_LIMIT),
        tpm: Some(HUGE_LIMIT),
    };
    c.rate_limits.user.interactive = l;
    c.rate_limits.key.interactive = l;
    c
}

fn route() -> RouteConfig {
    toml::from_str("provider = \"openai\"\nmodel = \"gpt-4o-mini-2024-07-18\"").unwrap()
}

/// The accounting a request does with or without a state layer.
fn priced_record(i: u64) -> UsageRecord {
    let usage = TokenUsage {
        prompt_tokens: 420,
        completion_tokens: 180,
        cached_input_tokens: 128,
        ..TokenUsage::default()
    };
    let price = PriceTable::builtin().route_price(&route());
    UsageRecord {
        request_id: format!("req-{i}"),
        time_ms: 1_795_000_000_000 + i,
        key_id: Some("bench".into()),
        user: Some("alice".into()),
        feature: Some("chat".into()),
        tags: vec!["bench".into()],
        provider: "openai".into(),
        upstream_model: "gpt-4o-mini-2024-07-18".into(),
        gateway_model: "demo".into(),
        usage,
        cost_usd: price.cost(&usage),
        upstream_ms: 350.0,
        overhead_ms: 0.4,
        attempts: 1,
        ..UsageRecord::default()
    }
}

async fn one_request(state: &State, key: &VirtualKey, i: u64) {
    let record = priced_record(i);
    let who = Subject {
        key: Some(key),
        user: Some("alice"),
        feature: Some("chat"),
    };
    let d = state
        .check_rate(&who, Tier::Interactive, 1100)
        .await
        .unwrap();
    assert!(d.allowed());
    let worst = PriceTable::builtin()
        .route_price(&route())
        .worst_case(420, 1024);
    let res = state
        .reserve(&who, &record.request_id, worst)
        .await
        .unwrap();
    state.finish(res, &record).await.unwrap();
}

struct Setup {
    state: State,
    key: VirtualKey,
    secret: String,
    _dir: Option<tempfile::TempDir>,
    _redis: Option<RedisServer>,
}

fn setup(rt: &Runtime, backend: BackendKind, durability: Durability) -> Setup {
    let mut c = config(backend, durability);
    let (mut dir, mut redis) = (None, None);
    match backend {
        BackendKind::Sled => {
            let d = tempfile::tempdir().unwrap();
            c.dir = d.path().join("data");
            dir = Some(d);
        }
        BackendKind::Redis => {
            let r = RedisServer::start();
            c.redis_url = Some(r.url());
            redis = Some(r);
        }
    }
    let state = rt.block_on(State::open(&c)).unwrap();
    let created = rt.block_on(state.create_key(NewKey::default())).unwrap();
    Setup {
        state,
        key: created.key,
        secret: created.secret,
        _dir: dir,
        _redis: redis,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let t = Instant::now();
    let n = sluice::state::tokenizer::count("gpt-4o", "warm");
    println!(
        "tokenizer: o200k_base cold load + first count: {:?} ({n} token)",
        t.elapsed()
    );

    let mut g = c.benchmark_group("request");
    g.measurement_time(Duration::from_secs(8));
    let mut i = 0u64;
    g.bench_function("baseline", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(async { std::hint::black_box(priced_record(i)) })
        })
    });
    let variants = [
        ("sled-group", BackendKind::Sled, Durability::Group),
        ("sled-sync", BackendKind::Sled, Durability::Sync),
        ("redis", BackendKind::Redis, Durability::Group),
    ];
    let mut setups = Vec::new();
    for (name, backend, durability) in variants {
        let s = setup(&rt, backend, durability);
        if durability == Durability::Sync {
            g.sample_size(20);
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                rt.block_on(one_request(&s.state, &s.key, i))
            })
        });
        setups.push(s);
    }
    g.finish();

    // Where sled-group's time goes (`finish_unbudgeted` and `log_append`
    // write a record per iteration as fast as they can, so sled's writer
    // and I/O threads compete with them for the same cores).
    let mut g = c.benchmark_group("sled_parts");
    let s = &setups[0];
    let who = Subject {
        key: Some(&s.key),
        user: Some("alice"),
        feature: Some("chat"),
    };
    g.bench_function("rate", |b| {
        b.iter(|| {
            rt.block_on(s.state.check_rate(&who, Tier::Interactive, 1100))
                .unwrap()
        })
    });
    g.bench_function("spend_read", |b| {
        b.iter(|| rt.block_on(s.state.spend(&who)).unwrap())
    });
    g.bench_function("reserve_release", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = s.state.reserve(&who, "x", 0.001).await.unwrap();
                s.state.release(r).await.unwrap();
            })
        })
    });
    let bytes = serde_json::to_vec(&priced_record(0)).unwrap();
    g.bench_function("log_append", |b| {
        b.iter(|| {
            rt.block_on(s.state.store().append("bench", 1, &bytes))
                .unwrap()
        })
    });
    g.bench_function("finish_unbudgeted", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(async {
                let r = s
                    .state
                    .reserve(&Subject::default(), "x", 0.0)
                    .await
                    .unwrap();
                s.state.finish(r, &priced_record(i)).await.unwrap();
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("key_lookup");
    // Reads do not depend on durability: one sled, one Redis.
    for s in setups
        .iter()
        .filter(|s| s.state.config().durability == Durability::Group)
    {
        g.bench_function(s.state.backend(), |b| {
            b.iter(|| {
                let found = rt.block_on(s.state.authenticate(&s.secret)).unwrap();
                assert!(matches!(found, KeyLookup::Valid(_)));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
