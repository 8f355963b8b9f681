//! Deadlines are wall-clock: measured against the clock (not counted in
//! ticks that a busy machine stretches), they cut host calls short (a
//! sleep, a socket read), and a slow but legal plugin shares the async
//! workers instead of holding them, so a model without plugins stays fast.
//!
//! The guest is `hostile-slow` (`work N` / `sleep N` / `spin`) and
//! `hostile-silent-peer` (reads from a peer that never speaks).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice::plugin::{Plugin, PluginFailure, PluginRuntime};

use sluice_guests as guests;

use crate::support::gateway;
use crate::support::plugins::{plugin_dir, request, runtime, whole};
use crate::support::{loading_the_machine, timing_sensitive};

/// Threads that keep every core busy until dropped: the "loaded machine".
struct CpuHog {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuHog {
    /// Two busy threads per core.
    fn start() -> CpuHog {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..2 * cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut n: u64 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
                    }
                })
            })
            .collect();
        CpuHog { stop, threads }
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn slow(deadline_ms: u64) -> (tempfile::TempDir, Arc<PluginRuntime>, Arc<Plugin>) {
    let manifest = format!(
        "kind = \"guardrail\"\n[limits]\ndeadline-ms = {deadline_ms}\n[capabilities]\nclocks = true\n"
    );
    let dir = plugin_dir(&[(guests::HOSTILE_SLOW, &manifest)]);
    let rt = runtime(dir.path());
    let p = rt
        .current()
        .get("hostile-slow")
        .unwrap_or_else(|| panic!("not loaded: {:?}", rt.statuses()))
        .clone();
    (dir, rt, p)
}

/// `callers` tasks each run `rounds` calls of a guest that never stops;
/// returns how far past the deadline each call ended.
async fn overshoots(
    p: &Arc<Plugin>,
    deadline: Duration,
    callers: usize,
    rounds: usize,
) -> Vec<Duration> {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move {
                let mut over = Vec::new();
                for _ in 0..rounds {
                    let start = Instant::now();
                    let res = p.check_output(&request("q"), "spin", &whole()).await;
                    let took = start.elapsed();
                    assert_eq!(res, Err(PluginFailure::Deadline));
                    assert!(took >= deadline, "stopped early: {took:?}");
                    over.push(took - deadline);
                }
                over
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn describe(over: &[Duration]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| ms(over[((over.len() - 1) as f64 * q).round() as usize]);
    format!(
        "n={} min {:.2} ms, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        over.len(),
        ms(over[0]),
        at(0.5),
        at(0.9),
        at(0.99),
        ms(over[over.len() - 1])
    )
}

/// A runaway guest is stopped within a few ms of its deadline, also while
/// every core is busy (2 spinning threads per core). Counting 1 ms sleeps
/// as milliseconds, the old ticker stretched every deadline by 8 % or more
/// (a 1 ms sleep takes ~1.08 ms idle; the issue saw 3450 ms of work pass a
/// 3000 ms deadline); measured, the overshoot does not grow with the
/// deadline. With 3000 ms the stretch alone is 240 ms, while what remains
/// now is the caller's thread waiting for a core once its deadline timer
/// fires (a call past one tick runs on the guest executor, so the caller
/// no longer waits for the guest's thread): the bound sits between.
/// `SLUICE_DEADLINE_MS` / `SLUICE_DEADLINE_ROUNDS` take other samples (the
/// distribution in bench/README.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_guest_stops_at_its_wall_clock_deadline_even_under_a_cpu_hog() {
    let env = |k: &str, default: u64| {
        std::env::var(k)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let deadline_ms = env("SLUICE_DEADLINE_MS", 3000);
    let rounds = usize::try_from(env("SLUICE_DEADLINE_ROUNDS", 2)).unwrap();
    let deadline = Duration::from_millis(deadline_ms);
    let (_d, _rt, p) = slow(deadline_ms);
    let _machine = loading_the_machine().await;
    let idle = overshoots(&p, deadline, 2, rounds).await;
    eprintln!(
        "deadline {deadline_ms} ms, overshoot idle:    {}",
        describe(&idle)
    );
    let hog = CpuHog::start();
    let loaded = overshoots(&p, deadline, 2, rounds).await;
    drop(hog);
    eprintln!(
        "max guest overrun {:?}, running {}",
        p.max_guest_overrun(),
        p.guests_running()
    );
    eprintln!(
        "deadline {deadline_ms} ms, overshoot CPU hog: {}",
        describe(&loaded)
    );
    // The caller is answered at the deadline by a timer; the guest itself
    // stops when its thread next reaches an epoch check. It must then be
    // gone (its instance dropped), not left burning a core.
    let stopped_in = all_guests_stopped(&p, Duration::from_secs(5)).await;
    eprintln!(
        "guest code ran at most {:?} past its deadline; all stopped {stopped_in:?} after the last answer",
        p.max_guest_overrun()
    );
    // Measured at load 8-10 on 2 cores (bench/README.md): p99 10-26 ms, max
    // 40 ms. The issue's goal (+10 ms at p99) holds on a quiet machine only:
    // what remains is the caller's thread waiting for a core after the
    // timer fires, so the bound leaves room for a shared loaded machine.
    let bound = Duration::from_millis(150);
    for (what, over) in [("idle", &idle), ("under a CPU hog", &loaded)] {
        let worst = over[over.len() - 1];
        assert!(
            worst < bound,
            "{what}: a call ran {worst:?} past its deadline ({})",
            describe(over)
        );
    }
    assert!(
        p.max_guest_overrun() < Duration::from_secs(1),
        "guest code ran {:?} past its deadline",
        p.max_guest_overrun()
    );
}

/// Wait until no guest code of `p` runs any more; how long that took.
async fn all_guests_stopped(p: &Plugin, within: Duration) -> Duration {
    let start = Instant::now();
    while p.guests_running() > 0 {
        assert!(
            start.elapsed() < within,
            "{} guests still running after {within:?}",
            p.guests_running()
        );
        // No event to wait on: the guest is dropped on the guest executor.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

/// A caller that gives up on a call (its future dropped: a client gone, an
/// outer timeout) stops the guest, though the call moved to the guest
/// executor and its own deadline is 10 s away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_by_its_caller_stops_its_guest() {
    let (_d, _rt, p) = slow(10_000);
    let _timing = timing_sensitive().await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        p.check_output(&request("q"), "spin", &whole()),
    )
    .await;
    assert!(gave_up.is_err(), "a spinning guest answered: {gave_up:?}");
    all_guests_stopped(&p, Duration::from_secs(5)).await;
    assert!(
        p.max_guest_overrun() == Duration::ZERO,
        "the guest ran to its deadline"
    );
}

/// A guest sleeping in a `wasi:clocks` host call is cut off at its deadline:
/// eight such calls on ONE thread all end together after ~one deadline, so
/// none of them held the thread (or any other) while it slept.
#[tokio::test(flavor = "current_thread")]
async fn a_sleeping_guest_is_cut_off_at_its_deadline_without_holding_a_thread() {
    let (_d, _rt, p) = slow(250);
    let _timing = timing_sensitive().await;
    let start = Instant::now();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move {
                let res = p.check_output(&request("q"), "sleep 10000", &whole()).await;
                (res, Instant::now())
            })
        })
        .collect();
    for c in calls {
        let (res, ended) = c.await.unwrap();
        assert_eq!(res, Err(PluginFailure::Deadline));
        let took = ended - start;
        // Serialised (or waited out) they would take 2 s (or 10 s).
        assert!(took < Duration::from_millis(1500), "ended after {took:?}");
    }
    assert_eq!(p.stats().deadlines, 8);
}

/// A granted socket read from a peer that accepts and never answers is cut
/// off at the deadline (the peer hangs up after 10 s, so an uncancelled
/// read ends then, far past the assertion).
#[tokio::test]
async fn a_socket_read_from_a_silent_peer_is_cut_off_at_its_deadline() {
    // Rust std's socket layer also imports wasi:filesystem, linked inert.
    cut_off_by_a_silent_peer(guests::HOSTILE_SILENT_PEER, "sockets", |addr| {
        addr.to_string()
    })
    .await;
}

/// An outbound `wasi:http` request to a granted host that accepts and
/// never answers is cut off at the deadline too (the host no longer sets
/// hyper's own timeouts: the deadline is the one limit).
#[tokio::test]
async fn an_http_request_to_a_silent_host_is_cut_off_at_its_deadline() {
    cut_off_by_a_silent_peer(guests::HOSTILE_HTTP, "http", |addr| {
        format!("http://{addr}/never")
    })
    .await;
}

/// Load `guest` with capability `grant = [peer]` and a 500 ms deadline,
/// point it (its output text is `target(peer)`) at a peer that accepts and
/// stays silent for 10 s: the call must fail with `Deadline` well before.
async fn cut_off_by_a_silent_peer(
    guest: guests::Guest,
    grant: &str,
    target: impl Fn(std::net::SocketAddr) -> String,
) {
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = peer.local_addr().unwrap();
    let silent = std::thread::spawn(move || {
        let (conn, _) = peer.accept().unwrap();
        std::thread::sleep(Duration::from_secs(10));
        drop(conn);
    });
    let manifest = format!(
        "kind = \"guardrail\"\n[limits]\ndeadline-ms = 500\n[capabilities]\n{grant} = [\"{addr}\"]\n"
    );
    let dir = plugin_dir(&[(guest, &manifest)]);
    let rt = runtime(dir.path());
    let p = rt
        .current()
        .get(guest.package)
        .unwrap_or_else(|| panic!("not loaded: {:?}", rt.statuses()))
        .clone();
    let _timing = timing_sensitive().await;
    let start = Instant::now();
    let res = p.check_output(&request("q"), &target(addr), &whole()).await;
    let took = start.elapsed();
    assert_eq!(res, Err(PluginFailure::Deadline));
    assert!(took < Duration::from_secs(3), "took {took:?}");
    drop(silent);
}

/// POST `text` to `model`; whether it answered 200.
async fn post(
    client: reqwest::Client,
    url: String,
    model: &'static str,
    text: &'static str,
) -> bool {
    let res = client
        .post(&url)
        .json(&gateway::reply_body(model, text))
        .send()
        .await
        .unwrap();
    let ok = res.status() == 200;
    res.bytes().await.unwrap();
    ok
}

/// Requests to model `clean` at 50/s while `busy()` holds, each timed from
/// when it was due (so a stall counts for every request it delays), sorted.
async fn clean_latencies(
    client: &reqwest::Client,
    url: &str,
    mut busy: impl FnMut(usize) -> bool,
) -> Vec<Duration> {
    let mut calls = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while busy(calls.len()) {
        let due = tick.tick().await;
        let call = post(client.clone(), url.to_owned(), "clean", "hi");
        calls.push(tokio::spawn(async move {
            assert!(call.await, "a clean request failed");
            due.elapsed()
        }));
    }
    let mut latencies = Vec::new();
    for c in calls {
        latencies.push(c.await.unwrap());
    }
    latencies.sort();
    latencies
}

fn percentiles(d: &[Duration]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "n={} p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        d.len(),
        ms(d[d.len() / 2]),
        ms(d[(d.len() - 1) * 9 / 10]),
        ms(d[(d.len() - 1) * 99 / 100]),
        ms(d[d.len() - 1])
    )
}

/// A plugin doing 1.5 s of legal work (deadline 5 s), called by 4 clients at
/// once on a freshly loaded gateway, must not slow a model that has no
/// plugins. The gateway runs on its own 2-worker runtime (a 2-core
/// gateway); the clients and the upstream on another. Clean requests
/// arrive at a constant rate, first alone (the baseline), then until the
/// slow ones are done. The goal is a p99 under 50 ms; the bound leaves room
/// for a loaded shared machine, while a worker held by the guest for a
/// whole call delays every clean request arriving meanwhile by up to 1.5 s.
#[test]
fn a_slow_plugin_does_not_stall_a_model_without_plugins() {
    let dir = plugin_dir(&[(
        guests::HOSTILE_SLOW,
        "kind = \"guardrail\"\n[limits]\ndeadline-ms = 5000\n[capabilities]\nclocks = true\n",
    )]);
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _machine = clients.block_on(loading_the_machine());
    let mock = clients.block_on(gateway::mock());
    let models = r#"
[models.slow]
output-guardrails = ["hostile-slow"]
routes = [{ provider = "mock", model = "m" }]

[models.clean]
routes = [{ provider = "mock", model = "m" }]
"#;
    let config = gateway::config(&mock, dir.path(), models);
    let gw = server.block_on(gateway::start(&config));
    let url = gw.v1("chat/completions");
    let (baseline, clean, slow_ok) = clients.block_on(async {
        let client = reqwest::Client::new();
        let baseline = clean_latencies(&client, &url, |n| n < 100).await;
        let slow: Vec<_> = (0..4)
            .map(|_| tokio::spawn(post(client.clone(), url.clone(), "slow", "work 1500")))
            .collect();
        let clean = clean_latencies(&client, &url, |_| !slow.iter().all(|t| t.is_finished())).await;
        let mut ok = 0;
        for t in slow {
            ok += usize::from(t.await.unwrap());
        }
        (baseline, clean, ok)
    });
    assert_eq!(slow_ok, 4, "every slow request passes its guardrail");
    eprintln!(
        "clean model alone:                 {}",
        percentiles(&baseline)
    );
    eprintln!(
        "clean model beside the slow plugin: {}",
        percentiles(&clean)
    );
    let p99 = clean[(clean.len() - 1) * 99 / 100];
    assert!(clean.len() >= 50, "too few clean requests: {}", clean.len());
    assert!(p99 < Duration::from_millis(500), "clean p99 {p99:?}");
    drop(gw);
    drop(server);
}
