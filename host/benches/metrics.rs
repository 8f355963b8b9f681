//! What the metrics cost one request: everything the request path records
//! for a served chat request (`Metrics::request`: counter, latency, upstream
//! and overhead histograms; `Metrics::usage`: tokens and cost with bounded
//! key and feature labels), with metrics on and off, on one thread and on
//! two threads hitting the same series (the contended case a busy model
//! sees). `http_round_trip` in `serve.rs` has the same request over
//! sockets with `[server] metrics` on and off.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::metrics::{Metrics, RequestSample};

fn one_request(m: &Metrics) {
    m.request(black_box(RequestSample {
        model: "chat",
        provider: Some("openai"),
        upstream_model: Some("gpt-4o-mini"),
        status: 200,
        total: Duration::from_micros(1_450),
        upstream: Duration::from_micros(1_100),
        prompt: None,
    }));
    m.usage(
        black_box("chat"),
        Some("team-a"),
        Some("search"),
        (812, 230),
        0.000_42,
    );
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics_per_request");
    for on in [false, true] {
        let m = Metrics::new(on, 100);
        g.bench_function(if on { "on" } else { "off" }, |b| {
            b.iter(|| one_request(&m))
        });
    }
    // Two threads on the same series: per request, the wall time of both
    // divided by the requests they made together.
    for on in [false, true] {
        let m = Arc::new(Metrics::new(on, 100));
        g.bench_function(if on { "on_2_threads" } else { "off_2_threads" }, |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                let threads: Vec<_> = (0..2)
                    .map(|_| {
                        let m = m.clone();
                        std::thread::spawn(move || {
                            for _ in 0..iters {
                                one_request(&m);
                            }
                        })
                    })
                    .collect();
                for t in threads {
                    t.join().unwrap();
                }
                started.elapsed() / 2
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
