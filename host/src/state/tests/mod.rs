//! State layer tests. Backend-neutral behaviour runs on both backends
//! ([`on_both!`]): sled in a temp dir, Redis as a real `redis-server` on a
//! free loopback port (the test fails, naming the install command, when it
//! is missing).

mod budget;
mod crash;
mod keys;
mod limits;
mod review;

use std::sync::Arc;
use std::time::Duration;

use super::testing::RedisServer;
use super::*;

/// A state on a fresh backend, and what keeps that backend alive.
pub(super) struct Fixture {
    pub state: State,
    pub config: StateConfig,
    _dir: Option<tempfile::TempDir>,
    redis: Option<Arc<RedisServer>>,
}

impl Fixture {
    pub async fn sled(mut config: StateConfig) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        config.backend = BackendKind::Sled;
        config.dir = dir.path().join("data");
        let state = State::open(&config).await.unwrap();
        Fixture {
            state,
            config,
            _dir: Some(dir),
            redis: None,
        }
    }

    pub async fn redis(mut config: StateConfig) -> Fixture {
        let server = tokio::task::spawn_blocking(RedisServer::start)
            .await
            .unwrap();
        config.backend = BackendKind::Redis;
        config.redis_url = Some(server.url());
        config.key_prefix = "test:".into();
        let state = State::open(&config).await.unwrap();
        Fixture {
            state,
            config,
            _dir: None,
            redis: Some(Arc::new(server)),
        }
    }

    pub async fn new(backend: BackendKind, config: StateConfig) -> Fixture {
        match backend {
            BackendKind::Sled => Self::sled(config).await,
            BackendKind::Redis => Self::redis(config).await,
        }
    }

    /// Another, independent `State` (its own connection) on the same Redis:
    /// a second gateway.
    pub async fn second_gateway(&self) -> State {
        assert!(
            self.redis.is_some(),
            "only Redis is shared between gateways"
        );
        State::open(&self.config).await.unwrap()
    }
}

/// Test defaults: no background tokenizer thread.
pub(super) fn config() -> StateConfig {
    StateConfig {
        warm_tokenizer: false,
        ..StateConfig::default()
    }
}

/// Poll `f` until it holds, for conditions that follow from the passage of
/// time or from a background task (a TTL, a spawned release). Fails after a
/// generous guard instead of hanging.
pub(super) async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let guard = std::time::Instant::now();
    while !f().await {
        assert!(
            guard.elapsed() < Duration::from_secs(30),
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `check(BackendKind)` as two tests, `sled` and `redis`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sled() {
                super::$name(crate::state::BackendKind::Sled).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name(crate::state::BackendKind::Redis).await;
            }
        }
    )*};
}
pub(super) use on_both;

fn record(id: &str, time_ms: u64) -> UsageRecord {
    UsageRecord {
        request_id: id.into(),
        time_ms,
        key_id: Some("k1".into()),
        user: Some("alice".into()),
        feature: Some("chat".into()),
        provider: "mock".into(),
        upstream_model: "mock-small".into(),
        gateway_model: "demo".into(),
        usage: TokenUsage {
            prompt_tokens: 10,
            completion_tokens: 5,
            ..TokenUsage::default()
        },
        cost_usd: 0.001,
        ..UsageRecord::default()
    }
}

on_both!(
    kv_with_ttl_claims_and_prefix_scan,
    log_pages_in_time_order,
    retention_drops_only_records_past_it
);

async fn append_at(state: &State, id: &str, time_ms: u64) {
    let r = record(id, time_ms);
    state
        .store()
        .append(LEDGER_LOG, time_ms, &serde_json::to_vec(&r).unwrap())
        .await
        .unwrap();
}

/// `ledger-retention-days`: records older than it go, newer ones stay;
/// unset keeps everything.
async fn retention_drops_only_records_past_it(b: BackendKind) {
    const DAY: u64 = 86_400_000;
    let f = Fixture::new(b, config()).await;
    let t0 = now_ms();
    for i in 0..5 {
        append_at(&f.state, &format!("r{i}"), t0).await;
    }
    assert_eq!(
        f.state.trim_ledger(t0 + 30 * DAY).await.unwrap(),
        0,
        "unset"
    );
    let mut cfg = f.config.clone();
    cfg.ledger_retention_days = Some(1);
    let kept = State::with_store(f.state.store().clone(), &cfg);
    // A day before the records were written plus a minute: all are younger.
    assert_eq!(kept.trim_ledger(t0 + DAY - 60_000).await.unwrap(), 0);
    assert_eq!(kept.records(0, u64::MAX / 2).await.unwrap().len(), 5);
    // A day after they were written (Redis stamps them with its own clock,
    // so leave a margin past now).
    let later = now_ms() + DAY + 60_000;
    assert_eq!(kept.trim_ledger(later).await.unwrap(), 5);
    assert!(kept.records(0, u64::MAX / 2).await.unwrap().is_empty());
}

/// On sled the record's own time orders the log, so a trim cuts between
/// old and new records; the background task applies it at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_on_its_own_and_keeps_newer_records() {
    const DAY: u64 = 86_400_000;
    let f = Fixture::sled(config()).await;
    let now = now_ms();
    for (i, age) in [5 * DAY, 3 * DAY, DAY / 2, 0].into_iter().enumerate() {
        append_at(&f.state, &format!("r{i}"), now - age).await;
    }
    super::ledger::spawn_retention(Arc::downgrade(f.state.store()), 2);
    eventually("records past two days are dropped", || async {
        f.state.records(0, u64::MAX / 2).await.unwrap().len() == 2
    })
    .await;
    let left: Vec<String> = f
        .state
        .records(0, u64::MAX / 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(left, ["r2", "r3"]);
}

async fn kv_with_ttl_claims_and_prefix_scan(b: BackendKind) {
    let f = Fixture::new(b, config()).await;
    let s = f.state.store();
    assert_eq!(s.get("t", "a").await.unwrap(), None);
    s.put("t", "a/1", b"one", None).await.unwrap();
    s.put("t", "a/2", b"two", None).await.unwrap();
    s.put("t", "b/1", b"other", None).await.unwrap();
    s.put("u", "a/3", b"other ns", None).await.unwrap();
    assert_eq!(
        s.get("t", "a/1").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    let mut scanned = s.scan("t", "a/", 10).await.unwrap();
    scanned.sort();
    assert_eq!(
        scanned,
        vec![
            ("a/1".into(), b"one".to_vec()),
            ("a/2".into(), b"two".to_vec())
        ]
    );
    assert_eq!(s.scan("t", "", 1).await.unwrap().len(), 1);
    // Glob characters in a prefix are literal.
    s.put("t", "x*y", b"star", None).await.unwrap();
    assert_eq!(s.scan("t", "x*", 10).await.unwrap().len(), 1);
    assert!(s.scan("t", "x?", 10).await.unwrap().is_empty());
    let many = s
        .get_many(&[("t", "a/2"), ("u", "a/3"), ("t", "zz")])
        .await
        .unwrap();
    assert_eq!(
        many,
        vec![Some(b"two".to_vec()), Some(b"other ns".to_vec()), None]
    );

    assert!(s.put_if_absent("t", "claim", b"1", None).await.unwrap());
    assert!(!s.put_if_absent("t", "claim", b"2", None).await.unwrap());
    assert_eq!(
        s.get("t", "claim").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert!(s.delete("t", "claim").await.unwrap());
    assert!(!s.delete("t", "claim").await.unwrap());

    // A TTL'd entry disappears, and its key can be claimed again.
    let ttl = Some(Duration::from_millis(20));
    assert!(s.put_if_absent("t", "lease", b"x", ttl).await.unwrap());
    assert!(!s.put_if_absent("t", "lease", b"y", ttl).await.unwrap());
    eventually("the TTL'd entry expires", || async {
        s.get("t", "lease").await.unwrap().is_none()
    })
    .await;
    assert!(s.scan("t", "lease", 10).await.unwrap().is_empty());
    assert!(s.put_if_absent("t", "lease", b"z", None).await.unwrap());
}

async fn log_pages_in_time_order(b: BackendKind) {
    let f = Fixture::new(b, config()).await;
    let now = now_ms();
    for i in 0..2500u64 {
        let r = record(&format!("r{i}"), now + i % 7);
        f.state
            .store()
            .append(LEDGER_LOG, r.time_ms, &serde_json::to_vec(&r).unwrap())
            .await
            .unwrap();
    }
    let all = f.state.records(now - 60_000, now + 60_000).await.unwrap();
    assert_eq!(all.len(), 2500);
    if b == BackendKind::Sled {
        // sled orders by the record's time; Redis by arrival.
        assert!(all.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
    }
    // Paging by hand yields the same records, each once.
    let (mut after, mut seen) = (None::<Vec<u8>>, 0);
    loop {
        let page = f
            .state
            .store()
            .read_log(
                LEDGER_LOG,
                now - 60_000,
                now + 60_000,
                after.as_deref(),
                333,
            )
            .await
            .unwrap();
        seen += page.records.len();
        assert!(page.records.len() <= 333);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, 2500);
    assert!(
        f.state
            .records(now + 60_000, now + 120_000)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_group_and_total() {
    let f = Fixture::sled(config()).await;
    let day = 86_400_000;
    let base = period::parse_date("2026-11-01").unwrap();
    let users = ["alice", "bob", "carol"];
    for i in 0..10_000u64 {
        let mut r = record(&format!("r{i}"), base + (i % 3) * day + i);
        r.user = Some(users[(i % 3) as usize].into());
        r.gateway_model = if i % 2 == 0 { "demo" } else { "big" }.into();
        r.estimated = i % 10 == 0;
        let who = Subject::default();
        let res = f.state.reserve(&who, &r.request_id, 0.0).await.unwrap();
        f.state.finish(res, &r).await.unwrap();
    }
    let q = |by| UsageQuery {
        by,
        since_ms: base,
        until_ms: base + 3 * day,
    };
    let started = std::time::Instant::now();
    let by_user = f.state.usage(&q(GroupBy::User)).await.unwrap();
    println!("report over 10000 records: {:?}", started.elapsed());
    assert_eq!(by_user.total.requests, 10_000);
    assert_eq!(by_user.total.prompt_tokens, 100_000);
    assert_eq!(by_user.total.estimated, 1000);
    assert!((by_user.total.cost_usd - 10.0).abs() < 1e-6);
    assert_eq!(by_user.rows.iter().map(|r| r.requests).sum::<u64>(), 10_000);
    assert_eq!(by_user.rows.len(), 3);
    let by_day = f.state.usage(&q(GroupBy::Day)).await.unwrap();
    let days: Vec<&str> = by_day.rows.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(days, ["2026-11-01", "2026-11-02", "2026-11-03"]);
    let by_model = f.state.usage(&q(GroupBy::Model)).await.unwrap();
    assert_eq!(by_model.rows.len(), 2);
    let by_key = f.state.usage(&q(GroupBy::Key)).await.unwrap();
    assert_eq!(by_key.rows[0].group, "k1");
    // The range is half-open and respected.
    let one_day = UsageQuery {
        by: GroupBy::Feature,
        since_ms: base + day,
        until_ms: base + 2 * day,
    };
    let r = f.state.usage(&one_day).await.unwrap();
    assert_eq!(r.total.requests, 3333);
    assert_eq!(r.rows[0].group, "chat");
    // JSON for the admin endpoint and `--json`.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["by"], "feature");
    assert_eq!(json["total"]["requests"], 3333);
    assert!(r.to_table().contains("chat"));
}

#[test]
fn state_section_parses_and_problems_name_their_line() {
    let text = r#"
[state]
backend = "redis"
durability = "sync"
alert-thresholds = [50, 90]

[state.budgets]
users = { alice = { day-usd = 5.0 } }
default-user = { month-usd = -1.0 }

[state.rate-limits.key]
batch = { rpm = 0 }
"#;
    let err = crate::config::Config::parse("f.toml", text, &|_| None).unwrap_err();
    let msgs: Vec<String> = err.0.iter().map(|p| p.to_string()).collect();
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    assert!(
        msgs[0].starts_with("f.toml:3:11: state.backend:"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[1].starts_with("f.toml:9:30: state.budgets.default-user.month-usd"),
        "{}",
        msgs[1]
    );
    assert!(
        msgs[2].starts_with("f.toml:12:17: state.rate-limits.key.batch.rpm"),
        "{}",
        msgs[2]
    );

    let ok = "[state]\nbackend = \"redis\"\nredis-url = \"redis://127.0.0.1:6379/0\"\nalert-thresholds = [25.0]\n[state.budgets]\nusers = { alice = { day-usd = 5.0 } }\n";
    let c = crate::config::Config::parse("f.toml", ok, &|_| None).unwrap();
    assert_eq!(c.state.backend, BackendKind::Redis);
    assert_eq!(c.state.alert_thresholds, vec![25.0]);
    assert_eq!(c.state.user_budget("alice").day_usd, Some(5.0));
    assert_eq!(c.state.user_budget("bob"), Budget::default());
    assert_eq!(c.state.group_commit_ms, 10);
    let unknown =
        crate::config::Config::parse("f.toml", "[state]\nbackends = 1\n", &|_| None).unwrap_err();
    assert!(unknown.0[0].message.contains("unknown field"), "{unknown}");

    let mut s = StateConfig::default();
    s.resolve_dir(std::path::Path::new("/etc/sluice"));
    assert_eq!(s.dir, std::path::Path::new("/etc/sluice/data"));
}

#[test]
fn the_commented_example_state_section_is_valid() {
    // Uncomment every `# key = value` and `# [state...]` line of the
    // example's [state] part: what the file documents must parse.
    let example = include_str!("../../../../examples/sluice.toml");
    let state_part = &example[example.find("\n[state]").expect("the example has [state]")..];
    let uncommented: String = state_part
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with("[state")
                    || rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    }) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let env = |k: &str| (k == "REDIS_URL").then(|| "redis://127.0.0.1:6379/0".to_string());
    let c = crate::config::Config::parse("example", &uncommented, &env)
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(c.state.alert_thresholds, [50.0, 80.0, 100.0]);
    assert_eq!(c.state.budgets.users["alice"].day_usd, Some(5.0));
    assert_eq!(c.state.rate_limits.key.batch.tpm, Some(2_000_000));
    assert_eq!(c.state.rate_limits.user.interactive.rpm, Some(60));
    assert!(c.state.alert_webhook.is_some());
}
