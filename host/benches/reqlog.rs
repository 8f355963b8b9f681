//! What the request log costs. `request_path`: what a served chat request
//! does on its own task with the log off, `metadata` and `full` (begin the
//! record, the answer, the outcome, queue it: no disk, no redaction).
//! `writer`: what the writer thread spends per record (redact, serialise,
//! append), metadata and full with a ~1 KB prompt and answer. `redact`:
//! `sluice_redact::redact` over clean and PII-laden text of 1 KB and 100 KB.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::openai::{ChatCompletion, ChatMessage, Choice};
use sluice::reqlog::{Mode, Outcome, Pending, Record, RequestLog, RequestLogConfig, Start};

const PROMPT: &str = "Summarise the ticket below for the on-call engineer. Customer reports \
    that checkout fails with error 502 after the payment step; contact them at \
    jane.doe@example.com or +1 415 555 2671. ";

fn text(bytes: usize, with_pii: bool) -> String {
    let unit = if with_pii {
        PROMPT
    } else {
        "The quick brown fox jumps over the lazy dog while the order 12345 ships. "
    };
    unit.repeat(bytes / unit.len() + 1)[..bytes].to_string()
}

fn completion(answer: &str) -> ChatCompletion {
    ChatCompletion {
        id: "chatcmpl-1".into(),
        object: "chat.completion".into(),
        created: 1,
        model: "gpt-4o-mini".into(),
        choices: vec![Choice {
            index: 0,
            message: ChatMessage::text("assistant", answer),
            finish_reason: Some("stop".into()),
            extra: Default::default(),
        }],
        usage: None,
        extra: Default::default(),
    }
}

fn one_request(log: &RequestLog, prompt: &str, answer: &ChatCompletion) {
    let start = Start {
        id: "req-1",
        endpoint: "chat",
        arrived: Instant::now(),
        key_id: Some("team-a"),
        feature: Some("search"),
        model: "chat",
        stream: false,
    };
    let p = Pending::start(log, start, || vec![("user", prompt.to_string())]);
    p.answer(black_box(answer));
    p.outcome(Outcome {
        status: 200,
        provider: Some("openai".into()),
        upstream_model: Some("gpt-4o-mini".into()),
        attempts: 1,
        upstream_ms: 1.1,
        cost_usd: Some(0.000_42),
        guardrails: "pii-redact:transform,secrets:pass".into(),
        ..Outcome::default()
    });
}

fn bench(c: &mut Criterion) {
    let prompt = text(1024, true);
    let answer = completion(&text(1024, true));
    let mut g = c.benchmark_group("reqlog_request_path");
    for mode in [Mode::Off, Mode::Metadata, Mode::Full] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RequestLogConfig {
            mode,
            dir: Some(dir.path().to_path_buf()),
            max_file_bytes: 16 << 20,
            keep_files: 1,
            // Bigger than what a sample queues: nothing dropped.
            queue: 1 << 20,
            ..RequestLogConfig::default()
        };
        let log = RequestLog::start(&cfg, Path::new("unused")).unwrap();
        g.bench_function(format!("{mode:?}").to_lowercase(), |b| {
            b.iter(|| one_request(&log, &prompt, &answer))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("reqlog_writer_per_record");
    for full in [false, true] {
        let record = Record {
            id: "req-1".into(),
            model: "chat".into(),
            status: 200,
            request: full.then(|| {
                vec![sluice::reqlog::record::Message {
                    role: "user".into(),
                    content: prompt.clone(),
                }]
            }),
            response: full.then(|| text(1024, true)),
            ..Record::default()
        };
        let mut line = Vec::new();
        g.bench_function(if full { "full_1kb" } else { "metadata" }, |b| {
            b.iter(|| {
                let mut r = record.clone();
                r.redact(65_536);
                line.clear();
                serde_json::to_writer(&mut line, &r).unwrap();
                black_box(&line);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("redact");
    for (name, t) in [
        ("clean_1kb", text(1024, false)),
        ("pii_1kb", text(1024, true)),
        ("clean_100kb", text(100 << 10, false)),
        ("pii_100kb", text(100 << 10, true)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| sluice_redact::redact(black_box(&t)).len())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
