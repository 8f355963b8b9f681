//! The request log (`[request-log]`): one record per request, whole,
//! streamed or failed; `off`, `metadata`, `full`; rotation and retention;
//! `sluice logs tail|query` over the files; and no email, card number or
//! API key in the log files or the gateway's own log lines, whether they
//! came in a prompt, an answer, an upstream error or a header.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use sluice::cli::{LogFormat, log_subscriber};
use sluice::reqlog::Record;
use tracing_subscriber::EnvFilter;

use crate::support::gateway::{self, Mock, TestGateway, reply_body};
use crate::support::logs::Buffer;
use crate::support::raw;

const KEY_A: &str = "sk-team-a-0123456789abcdefghij";
const KEY_B: &str = "sk-team-b-0123456789abcdefghij";
const EMAIL: &str = "jane.doe@example.com";
/// Luhn-valid; also checked without its spaces.
const CARD: &str = "4111 1111 1111 1111";
const API_KEY: &str = "sk-proj-4fT9xQ2mZ7vL1pR8sK3nB6wY0cD5eH";

/// Two keys, two models on the mock, no plugins, and `request_log`.
fn config(mock: &Mock, plugins: &Path, request_log: &str) -> String {
    gateway::config(
        mock,
        plugins,
        &format!(
            r#"
[[keys]]
id = "team-a"
key = "{KEY_A}"

[[keys]]
id = "team-b"
key = "{KEY_B}"

[models.small]
routes = [{{ provider = "mock", model = "mock-small" }}]

[models.other]
routes = [{{ provider = "mock", model = "mock-large" }}]

[request-log]
{request_log}
"#
        ),
    )
}

async fn post(gw: &TestGateway, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.v1("chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Every record in the log's files, oldest first, once all queued ones
/// are written.
async fn records(gw: &TestGateway) -> Vec<Record> {
    gw.gateway.reqlog.flush().await;
    let dir = gw.gateway.reqlog.dir().expect("the log is on");
    read_dir(dir)
}

fn read_dir(dir: &Path) -> Vec<Record> {
    sluice::reqlog::files::all(dir)
        .unwrap()
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Record>>()
        })
        .collect()
}

fn request_id(res: &reqwest::Response) -> String {
    res.headers()["x-sluice-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn metadata_records_whole_streamed_and_failed_requests() {
    let mock = gateway::mock().await;
    let plugins = tempfile::tempdir().unwrap();
    let gw = gateway::start(&config(&mock, plugins.path(), "mode = \"metadata\"")).await;

    let res = post(&gw, KEY_A, &reply_body("small", "hello there")).await;
    assert_eq!(res.status(), 200);
    let whole = request_id(&res);

    let mut body = reply_body("small", "streamed words");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let res = post(&gw, KEY_B, &body).await;
    let streamed = request_id(&res);
    assert!(res.text().await.unwrap().ends_with("data: [DONE]\n\n"));

    let mut body = reply_body("small", "x");
    body["mock_fault"] = json!("status=500");
    let res = post(&gw, KEY_A, &body).await;
    assert_eq!(res.status(), 502);
    let failed = request_id(&res);

    let mut body = reply_body("small", "cut short");
    body["stream"] = json!(true);
    body["mock_fault"] = json!("midstream-error");
    let res = post(&gw, KEY_A, &body).await;
    let cut = request_id(&res);
    assert!(res.text().await.unwrap().contains("\"error\""));

    let res = post(&gw, KEY_A, &reply_body("nope", "x")).await;
    assert_eq!(res.status(), 404);
    let unknown = request_id(&res);

    let log = records(&gw).await;
    let ids: Vec<&str> = log.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [&whole, &streamed, &failed, &cut, &unknown]);
    let [w, s, f, c, u] = &log[..] else {
        unreachable!()
    };

    assert_eq!(w.endpoint, "chat");
    assert_eq!(w.key_id.as_deref(), Some("team-a"));
    assert_eq!(w.model, "small");
    assert_eq!(w.provider.as_deref(), Some("mock"));
    assert_eq!(w.upstream_model.as_deref(), Some("mock-small"));
    assert_eq!((w.status, w.attempts, w.stream), (200, 1, false));
    assert!(w.prompt_tokens.is_some() && w.completion_tokens.is_some());
    assert!(w.latency_ms > 0.0 && w.latency_ms >= w.upstream_ms);
    assert!(w.time.ends_with('Z') && w.ts > 1_700_000_000_000);
    assert_eq!(w.error, None);
    // Metadata only: no text at all.
    assert!(w.request.is_none() && w.response.is_none());

    assert_eq!((s.status, s.stream), (200, true));
    assert_eq!(s.key_id.as_deref(), Some("team-b"));
    assert!(s.completion_tokens.is_some(), "{s:?}");
    assert!(!s.disconnected);
    assert!(s.response.is_none());

    assert_eq!(f.status, 502);
    assert_eq!(f.error.as_deref(), Some("upstream_error"));
    assert_eq!(f.attempts, 2, "retried once");
    assert!(f.error_message.is_none(), "metadata mode keeps no message");

    assert_eq!((c.status, c.stream), (200, true));
    assert!(c.error.is_some(), "a mid-stream error is recorded: {c:?}");

    assert_eq!(u.status, 404);
    assert_eq!(u.provider, None);
    assert!(u.error.is_some());

    // Counted for `/metrics`.
    assert_eq!(gw.gateway.reqlog.counts(), (5, 0, 0));
    let page = sluice::metrics::scrape::render(&gw.gateway);
    assert!(
        page.contains("\nsluice_request_log_written_total 5\n"),
        "{page}"
    );
    assert!(
        page.contains("\nsluice_request_log_dropped_total 0\n"),
        "{page}"
    );
}

#[tokio::test]
async fn off_writes_nothing() {
    let mock = gateway::mock().await;
    let plugins = tempfile::tempdir().unwrap();
    let gw = gateway::start(&config(&mock, plugins.path(), "mode = \"off\"")).await;
    let res = post(&gw, KEY_A, &reply_body("small", "hi")).await;
    assert_eq!(res.status(), 200);
    assert!(gw.gateway.reqlog.mode().is_none());
    assert!(gw.gateway.reqlog.dir().is_none());
    let state = gw.gateway.config.state.dir.clone();
    assert!(!state.join("request-log").exists());
}

/// What must never show up, in every spelling a scanner might miss.
fn assert_clean(what: &str, text: &str) {
    for needle in [EMAIL, CARD, &CARD.replace(' ', ""), API_KEY, KEY_A, KEY_B] {
        assert!(!text.contains(needle), "{needle} in {what}:\n{text}");
    }
}

#[test]
fn full_mode_redacts_prompts_answers_errors_and_headers_everywhere() {
    let buf = Buffer::default();
    let subscriber = log_subscriber(LogFormat::Json, EnvFilter::new("debug"), false, buf.clone());
    let _logging = tracing::subscriber::set_default(subscriber);
    // One thread: every log line of the request path is captured.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sensitive = format!("mail {EMAIL}, card {CARD}, key {API_KEY}.");
    let log = rt.block_on(async {
        let mock = gateway::mock().await;
        let plugins = tempfile::tempdir().unwrap();
        // An upstream that refuses every request, quoting it back.
        let echo = raw::upstream(|mut tcp, req| async move {
            let body = req.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            let quoted = serde_json::to_string(&format!("cannot parse {body}")).unwrap();
            let err = format!(r#"{{"error":{{"message":{quoted},"type":"invalid_request_error"}}}}"#);
            raw::answer_json(&mut tcp, 400, &err).await;
        })
        .await;
        let mut cfg = config(&mock, plugins.path(), "mode = \"full\"");
        cfg.push_str(&format!(
            "\n[[providers]]\nname = \"echo\"\nbase-url = \"{}\"\n\n[models.echoing]\nroutes = [{{ provider = \"echo\", model = \"e\" }}]\n",
            echo.base
        ));
        let gw = gateway::start(&cfg).await;

        // In the prompt and (REPLY:) the answer, whole and streamed, with
        // the email in a header too.
        let client = reqwest::Client::new();
        let res = client
            .post(gw.v1("chat/completions"))
            .bearer_auth(KEY_A)
            .header("x-sluice-feature", EMAIL)
            .json(&reply_body("small", &sensitive))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let answer: Value = res.json().await.unwrap();
        assert!(answer.to_string().contains(EMAIL), "no guardrail here: the client gets its text");
        let mut body = reply_body("small", &sensitive);
        body["stream"] = json!(true);
        let res = post(&gw, KEY_A, &body).await;
        assert!(res.text().await.unwrap().contains(API_KEY));
        // Quoted back in an upstream's error.
        let res = post(&gw, KEY_B, &reply_body("echoing", &sensitive)).await;
        assert_eq!(res.status(), 400);
        // A wrong key in the header: refused before any record.
        let res = post(&gw, API_KEY, &reply_body("small", "hi")).await;
        assert_eq!(res.status(), 401);

        let log = records(&gw).await;
        assert_eq!(log.len(), 3, "{log:?}");
        let file = read_files(gw.gateway.reqlog.dir().unwrap());
        assert_clean("the request log", &file);
        // Redacted, not dropped: each item left its mask.
        for r in &log {
            let user = &r.request.as_ref().unwrap()[0];
            assert_eq!(user.role, "user");
            assert_eq!(
                user.content,
                "REPLY: mail [EMAIL], card [CREDIT_CARD], key [REDACTED:openai-key]."
            );
        }
        let expected = "mail [EMAIL], card [CREDIT_CARD], key [REDACTED:openai-key].";
        assert_eq!(log[0].response.as_deref(), Some(expected));
        assert_eq!(log[0].feature.as_deref(), Some("[EMAIL]"));
        assert_eq!(log[1].response.as_deref(), Some(expected));
        assert!(log[1].stream);
        assert_eq!(log[2].status, 400);
        let message = log[2].error_message.as_deref().unwrap();
        assert!(message.contains("[REDACTED:openai-key]"), "{message}");
        file
    });
    let stderr = String::from_utf8(buf.bytes()).unwrap();
    // The upstream's error (with the echo) was logged, redacted.
    assert!(stderr.contains("\"refused\""), "{stderr}");
    assert!(stderr.contains("[EMAIL]"), "{stderr}");
    assert_clean("the gateway's log", &stderr);
    assert!(!log.is_empty());
}

fn read_files(dir: &Path) -> String {
    sluice::reqlog::files::all(dir)
        .unwrap()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[tokio::test]
async fn rotation_by_size_and_retention_by_count() {
    let mock = gateway::mock().await;
    let plugins = tempfile::tempdir().unwrap();
    let gw = gateway::start(&config(
        &mock,
        plugins.path(),
        "mode = \"metadata\"\nmax-file-bytes = 1024\nkeep-files = 2",
    ))
    .await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let res = post(&gw, KEY_A, &reply_body("small", &format!("answer {i}"))).await;
        assert_eq!(res.status(), 200);
        ids.push(request_id(&res));
    }
    let log = records(&gw).await;
    let dir = gw.gateway.reqlog.dir().unwrap();
    let rotated = sluice::reqlog::files::rotated(dir).unwrap();
    assert_eq!(rotated.len(), 2, "keep-files");
    let mut sizes = Vec::new();
    for (_, p) in &rotated {
        let len = std::fs::metadata(p).unwrap().len();
        assert!(len <= 1024, "{} is {len} bytes", p.display());
        sizes.push(len);
    }
    // What is kept is the newest records, in order, none twice.
    let kept: Vec<String> = log.iter().map(|r| r.id.clone()).collect();
    assert!(kept.len() < ids.len(), "some were pruned: {sizes:?}");
    assert_eq!(kept, ids[ids.len() - kept.len()..]);
    // A record is a few hundred bytes: each rotated file holds at least 2.
    assert!(kept.len() >= 5, "{kept:?}");
}

fn cli(dir: &Path, args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-e2e"))
        .args(["logs"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn logs_query_and_tail_filter_over_rotated_files() {
    let mock = gateway::mock().await;
    let plugins = tempfile::tempdir().unwrap();
    let gw = gateway::start(&config(
        &mock,
        plugins.path(),
        "mode = \"metadata\"\nmax-file-bytes = 1024",
    ))
    .await;
    let mut fail = reply_body("other", "x");
    fail["mock_fault"] = json!("status=500");
    let script = [
        (KEY_A, reply_body("small", "1")),
        (KEY_B, reply_body("other", "2")),
        (KEY_A, reply_body("other", "3")),
        (KEY_B, fail),
        (KEY_A, reply_body("missing", "5")),
        (KEY_B, reply_body("small", "6")),
    ];
    let mut ids = Vec::new();
    for (key, body) in &script {
        ids.push(request_id(&post(&gw, key, body).await));
    }
    let log = records(&gw).await;
    assert_eq!(log.len(), 6);
    let dir = gw.gateway.reqlog.dir().unwrap().to_path_buf();
    assert!(
        !sluice::reqlog::files::rotated(&dir).unwrap().is_empty(),
        "the query spans rotated files"
    );
    let id_of = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let pick = |idx: &[usize]| -> Vec<String> { idx.iter().map(|i| ids[*i].clone()).collect() };

    assert_eq!(
        id_of(&cli(&dir, &["query", "--key", "team-a"])),
        pick(&[0, 2, 4])
    );
    assert_eq!(
        id_of(&cli(&dir, &["query", "--model", "other"])),
        pick(&[1, 2, 3])
    );
    // The upstream model matches too.
    assert_eq!(
        id_of(&cli(
            &dir,
            &["query", "--model", "mock-large", "--key", "team-b"]
        )),
        pick(&[1, 3])
    );
    assert_eq!(id_of(&cli(&dir, &["query", "--status", "5xx"])), pick(&[3]));
    assert_eq!(
        id_of(&cli(&dir, &["query", "--status", "error"])),
        pick(&[3, 4])
    );
    assert_eq!(id_of(&cli(&dir, &["query", "--status", "404"])), pick(&[4]));
    assert_eq!(id_of(&cli(&dir, &["query", "--since", "1h"])).len(), 6);
    assert!(cli(&dir, &["query", "--since", "2999-01-01"]).is_empty());
    assert!(cli(&dir, &["query", "--until", "2000-01-01"]).is_empty());
    let since = log[3].ts.to_string();
    assert_eq!(
        id_of(&cli(&dir, &["query", "--since", &since, "--limit", "2"])),
        pick(&[4, 5])
    );
    assert_eq!(id_of(&cli(&dir, &["tail", "-n", "2"])), pick(&[4, 5]));
    // The summary format: one line per record.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-e2e"))
        .args(["logs", "tail", "-n", "1", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line.lines().count(), 1);
    assert!(
        line.contains(&format!(" {} 200 small -> mock/mock-small ", ids[5]))
            && line.contains("key=team-b"),
        "{line}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_sluice-e2e"))
        .args(["logs", "query", "--status", "7xx", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn config_is_checked() {
    let bad = "[request-log]\nmode = \"verbose\"\n";
    let e = sluice::config::Config::parse("t.toml", bad, &|_| None).unwrap_err();
    assert!(e.to_string().contains("request-log"), "{e}");
    let bad = "[request-log]\nmax-file-bytes = 10\nqueue = 0\n";
    let e = sluice::config::Config::parse("t.toml", bad, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("max-file-bytes") && e.contains("queue"), "{e}");
    let ok = sluice::config::Config::parse("t.toml", "[request-log]\nmode = \"full\"\n", &|_| None)
        .unwrap();
    assert_eq!(ok.request_log.mode, sluice::reqlog::Mode::Full);

    // The example's commented block, uncommented, is the defaults.
    let example = include_str!("../../examples/sluice.toml");
    let at = example.find("# [request-log]").expect("documented");
    let block: String = example[at..]
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap()))
        .collect();
    let c = sluice::config::Config::parse("example", &block, &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{block}"));
    let defaults = sluice::reqlog::RequestLogConfig {
        dir: Some("data/request-log".into()),
        ..Default::default()
    };
    assert_eq!(c.request_log, defaults);
}
