//! Guardrails in every language. The example guardrails of
//! `examples/guardrails/` (Rust, Python, JavaScript on QuickJS and on
//! StarlingMonkey, C; QuickJS on the frozen contract 0.1.0, the others on
//! the current one) are built from source by their one-command build
//! scripts (toolchains from crates.io, PyPI, npm and Debian, installed once
//! under target/toolchains), load with the default (inert) baseline, and
//! give the verdicts of the one shared case file through the gateway over
//! real sockets, plain and streamed; what they print reaches the gateway
//! log tagged with the plugin's name. `sluice plugin new` projects of every
//! kind in every language build, load and pass their own case files.
//!
//! Build times go to `target/examples/timings.txt` (scripts/test prints it).
//!
//! Every test here builds a guest or compiles a large one (Python and
//! StarlingMonkey components take both cores for seconds), so each holds
//! [`loading_the_machine_together`]: they run beside each other (builds
//! one at a time), timing-sensitive tests never beside them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::cli::cases::{self, Call, Case, Expect};
use sluice::cli::plugin_new::{self, Lang, NewPlugin};
use sluice::cli::plugin_test::{self, TestRun};
use sluice::plugin::audit::audit;
use sluice::plugin::{Contract, PluginKind, PluginsConfig, phase_names};
use tracing::instrument::WithSubscriber as _;

use crate::support::gateway;
use crate::support::http::{sse_data, streamed_text};
use crate::support::plugins::{request, runtime, verdict, whole};
use crate::support::{loading_the_machine_together, root};

/// One language build of the example guardrails.
struct Example {
    /// `target/examples/NAME`.
    name: &'static str,
    /// `examples/guardrails/DIR/build`.
    dir: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// Whether `print` goes to the guest's stdout/stderr (QuickJS has no
    /// `console`; the example routes it to host.log).
    prints_to_stdio: bool,
    /// The contract its build targets: QuickJS builds `plugin.quickjs.js`
    /// on `0.1.0` (componentize-qjs 0.4.5 traps on every `0.2` call: it
    /// releases the borrowed request after the export returned), which has
    /// no `validate-config` and no `phases`.
    contract: Contract,
}

const RUST: Example = Example {
    name: "rust",
    dir: "rust",
    env: &[],
    prints_to_stdio: true,
    contract: Contract::V0_2,
};
const PYTHON: Example = Example {
    name: "python",
    dir: "python",
    env: &[],
    prints_to_stdio: true,
    contract: Contract::V0_2,
};
const QUICKJS: Example = Example {
    name: "js-quickjs",
    dir: "js",
    env: &[("JCO_BACKEND", "quickjs")],
    prints_to_stdio: false,
    contract: Contract::V0_1,
};
const STARLINGMONKEY: Example = Example {
    name: "js-starlingmonkey",
    dir: "js",
    env: &[("JCO_BACKEND", "starlingmonkey")],
    prints_to_stdio: true,
    contract: Contract::V0_2,
};
const C: Example = Example {
    name: "c",
    dir: "c",
    env: &[],
    prints_to_stdio: true,
    contract: Contract::V0_2,
};

const GUARDRAILS: [&str; 2] = ["ssn-redact", "banned-phrase"];

/// Append `line` to target/examples/timings.txt.
fn record_time(line: &str) {
    static FILE: Mutex<()> = Mutex::new(());
    let _one_writer = FILE.lock().unwrap_or_else(|e| e.into_inner());
    let path = root().join("target/examples/timings.txt");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// Run a build script; panics with its output when it fails. One at a
/// time: a build takes both cores.
fn run_script(label: &str, mut cmd: Command) {
    static ONE_BUILD: Mutex<()> = Mutex::new(());
    let _one = ONE_BUILD.lock().unwrap_or_else(|e| e.into_inner());
    // Rust guests share the workspace's guest target directory (not the
    // outer cargo's, whose lock a running test must not wait on).
    cmd.env("CARGO_TARGET_DIR", root().join("target/guests"));
    let start = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{label}: running {cmd:?}: {e}"));
    let took = start.elapsed().as_secs_f64();
    record_time(&format!("{label}: {took:.1} s"));
    assert!(
        out.status.success(),
        "{label} failed ({cmd:?}):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> SystemTime {
    let mut t = SystemTime::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let m = if path.is_dir() {
            newest(&path)
        } else {
            e.metadata().and_then(|m| m.modified()).unwrap_or(t)
        };
        t = t.max(m);
    }
    t
}

/// Build `ex` (once per test process, and only when its sources, its
/// build script or the contract changed since the last build: scripts/test
/// builds every example, timed, before the tests); its output directory.
fn built(ex: &Example) -> PathBuf {
    static BUILT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let out = root().join("target/examples").join(ex.name);
    let mut done = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let inputs = [
        root().join("examples/guardrails").join(ex.dir),
        root().join("host/src/cli/templates").join(ex.dir),
        root().join("wit"),
        root().join("sdk/src"),
    ];
    let newest_input = inputs.iter().map(|d| newest(d)).max().unwrap();
    let outputs: Vec<_> = GUARDRAILS
        .iter()
        .map(|g| std::fs::metadata(out.join(format!("{g}.wasm"))).and_then(|m| m.modified()))
        .collect();
    let fresh = outputs
        .iter()
        .all(|t| t.as_ref().is_ok_and(|t| *t > newest_input));
    if fresh {
        done.push(ex.name);
    }
    if !done.contains(&ex.name) {
        let mut cmd = Command::new(
            root()
                .join("examples/guardrails")
                .join(ex.dir)
                .join("build"),
        );
        cmd.arg(&out).envs(ex.env.iter().copied());
        run_script(
            &format!("examples/{} (toolchain + 2 guardrails)", ex.name),
            cmd,
        );
        done.push(ex.name);
    }
    out
}

fn shared_cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| cases::load(&root().join("examples/guardrails/cases.yaml")).unwrap())
}

/// Gateway models: `NAME-in` checks inputs with one guardrail, `NAME-out`
/// outputs (so an output case never trips the input check and vice versa).
fn models() -> String {
    let mut s = String::new();
    for g in GUARDRAILS {
        for (side, key) in [("in", "input-guardrails"), ("out", "output-guardrails")] {
            s.push_str(&format!(
                "[models.{g}-{side}]\nroutes = [{{ provider = \"mock\", model = \"mock-small\" }}]\n{key} = [\"{g}\"]\n\n"
            ));
        }
    }
    s
}

/// Check one case through the gateway, plain (`stream` false) or streamed.
/// Returns a description of the mismatch, if any.
async fn check_case(gw: &gateway::TestGateway, case: &Case, stream: bool) -> Option<String> {
    let plugin = case
        .plugin
        .as_deref()
        .expect("every shared case names its plugin");
    let call = case.call_kind().unwrap();
    let (model, content, sent) = match call {
        Call::CheckInput => (format!("{plugin}-in"), case.input.clone().unwrap(), None),
        Call::CheckOutput => {
            let out = case.output.clone().unwrap();
            (format!("{plugin}-out"), format!("REPLY: {out}"), Some(out))
        }
        other => panic!("{}: {other:?} is not a guardrail case", case.name),
    };
    let body = json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    });
    let res = gw.chat(&body).await;
    let status = res.status();
    let missing: Vec<&str> = [
        "request-id",
        "provider",
        "model",
        "attempts",
        "overhead-ms",
        "guardrails",
    ]
    .into_iter()
    .filter(|h| !res.headers().contains_key(format!("x-sluice-{h}").as_str()))
    .collect();
    let text = res.text().await.unwrap();
    let mode = if stream { "stream" } else { "json" };
    let fail = |why: String| Some(format!("{} [{mode}]: {why}", case.name));
    if !missing.is_empty() {
        return fail(format!("answer {status} lacks x-sluice-{missing:?}"));
    }
    match &case.expect {
        Expect::Reject(r) => {
            // A reject of the input, or of a whole answer, is a 422; a
            // reject mid-stream is an error event that ends the stream.
            let err = if status == StatusCode::UNPROCESSABLE_ENTITY {
                serde_json::from_str::<Value>(&text)
                    .ok()
                    .map(|v| v["error"].clone())
            } else if stream && status == StatusCode::OK {
                let events = sse_data(&text);
                if events.iter().any(|e| e == "[DONE]") {
                    return fail(format!("stream completed instead of a reject: {text}"));
                }
                events
                    .last()
                    .and_then(|e| serde_json::from_str::<Value>(e).ok())
                    .map(|v| v["error"].clone())
            } else {
                None
            };
            match err {
                Some(e) if e["type"] == "guardrail_rejected" && e["code"] == r.code() => None,
                _ => fail(format!(
                    "expected reject {}, got {status}: {text}",
                    r.code()
                )),
            }
        }
        Expect::Pass | Expect::Transform(_) => {
            if status != StatusCode::OK {
                return fail(format!("expected 200, got {status}: {text}"));
            }
            let Some(sent) = sent else {
                // An input that passes: the upstream answered.
                return None;
            };
            let want = match &case.expect {
                Expect::Transform(t) => t.clone(),
                _ => sent,
            };
            let got = if stream {
                let events = sse_data(&text);
                if events.last().map(String::as_str) != Some("[DONE]") {
                    return fail(format!("stream did not complete: {text}"));
                }
                streamed_text(&events)
            } else {
                let v: Value = serde_json::from_str(&text).unwrap();
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            (got != want).then(|| format!("{} [{mode}]: expected {want:?}, got {got:?}", case.name))
        }
        other => panic!("{}: {other:?} is not a guardrail expectation", case.name),
    }
}

/// What `call` logs (text of every event) while it runs.
async fn logs_of(call: impl std::future::Future) -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    call.with_subscriber(subscriber).await;
    let bytes = buf.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

/// Build `ex`, then: every shared case through the gateway, plain and
/// streamed; and its printing and host.log reach the log with its name.
async fn examples_match_the_cases(ex: &'static Example) {
    let _machine = loading_the_machine_together().await;
    let out = tokio::task::spawn_blocking(move || built(ex))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for g in GUARDRAILS {
        for ext in ["wasm", "toml"] {
            std::fs::copy(
                out.join(format!("{g}.{ext}")),
                dir.path().join(format!("{g}.{ext}")),
            )
            .unwrap();
        }
    }
    let mock = gateway::mock().await;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &models())).await;
    let mut failures = Vec::new();
    for case in shared_cases() {
        for stream in [false, true] {
            failures.extend(check_case(&gw, case, stream).await);
        }
    }
    assert!(failures.is_empty(), "{}:\n{}", ex.name, failures.join("\n"));

    let path = dir.path().to_path_buf();
    let rt = tokio::task::spawn_blocking(move || runtime(&path))
        .await
        .unwrap();
    let set = rt.current();
    for g in GUARDRAILS {
        let p = set.get(g).unwrap();
        assert_eq!(p.contract(), ex.contract, "{} {g}", ex.name);
    }
    // A `0.1` guardrail is asked about both sides; a `0.2` one says which
    // it wants, and the redactor wants answers only.
    let redactor = set.get("ssn-redact").unwrap().clone();
    let phases = match ex.contract {
        Contract::V0_1 => vec!["input", "output"],
        Contract::V0_2 => vec!["output"],
    };
    assert_eq!(phase_names(redactor.phases()), phases, "{}", ex.name);
    let logs = logs_of(async {
        verdict(
            redactor
                .check_output(&request("q"), "SSN 123-45-6789.", &whole())
                .await,
        )
    })
    .await;
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("redacted 1 SSN(s)") && l.contains("plugin=\"ssn-redact\""))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("host_state")),
        "{}: host.log line missing:\n{logs}",
        ex.name
    );
    if ex.prints_to_stdio {
        assert!(
            lines.iter().any(|l| l.contains("stream=\"std")),
            "{}: printed line missing:\n{logs}",
            ex.name
        );
    }

    let manifest = std::fs::read_to_string(out.join("banned-phrase.toml")).unwrap();
    let without_phrase: String = manifest
        .lines()
        .filter(|l| !l.starts_with("phrase"))
        .map(|l| format!("{l}\n"))
        .collect();
    let bad = dir.path().join("refused.toml");
    if ex.contract == Contract::V0_1 {
        // No `validate-config` before 0.2: without its phrase the plugin
        // loads, and every call fails (closed) instead of passing all.
        std::fs::write(&bad, without_phrase).unwrap();
        let report = plugin_test::run(&TestRun {
            wasm: out.join("banned-phrase.wasm"),
            cases: root().join("examples/guardrails/cases.yaml"),
            manifest: Some(bad),
            name: None,
            strict_imports: false,
        })
        .await
        .unwrap();
        let text = report.to_text();
        assert!(!report.results.is_empty(), "{}: {text}", ex.name);
        assert!(
            report.failed() == report.results.len(),
            "{}: a call without its phrase answered:\n{text}",
            ex.name
        );
        assert!(text.contains("plugin_failure"), "{}: {text}", ex.name);
        return;
    }
    // validate-config: a typo in `[config]` refuses the plugin at load, by
    // name (the manifest ends in its `[config]` table), and so does a
    // missing phrase.
    for (toml, why) in [
        (
            format!("{manifest}phrse = \"x\"\n"),
            "config `phrse`: unknown key (known: phrase)",
        ),
        (without_phrase, "config `phrase`: missing"),
    ] {
        std::fs::write(&bad, toml).unwrap();
        let refused = plugin_test::run(&TestRun {
            wasm: out.join("banned-phrase.wasm"),
            cases: root().join("examples/guardrails/cases.yaml"),
            manifest: Some(bad.clone()),
            name: None,
            strict_imports: false,
        })
        .await
        .map(|r| r.to_text());
        assert!(
            matches!(&refused, Err(e) if e.to_string().contains(why)),
            "{}: {refused:?}",
            ex.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_examples_match_the_cases() {
    examples_match_the_cases(&RUST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_examples_match_the_cases() {
    examples_match_the_cases(&PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickjs_examples_match_the_cases() {
    examples_match_the_cases(&QUICKJS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starlingmonkey_examples_match_the_cases() {
    examples_match_the_cases(&STARLINGMONKEY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_examples_match_the_cases() {
    examples_match_the_cases(&C).await;
}

/// `sluice plugin audit` names every import of a default Python build
/// `baseline (inert)`, and strict imports refuse it.
#[tokio::test]
async fn default_python_build_is_inert_baseline_and_strict_refuses_it() {
    let _machine = loading_the_machine_together().await;
    use sluice::plugin::capability::Access;
    let wasm = built(&PYTHON).join("ssn-redact.wasm");
    let report = audit(&wasm, None, &PluginsConfig::default()).unwrap();
    assert!(report.accepted, "{:?}", report.problems);
    let inert: Vec<&str> = report
        .imports
        .iter()
        .filter(|i| matches!(i.access, Access::Inert { .. }))
        .map(|i| i.name.as_str())
        .collect();
    for family in [
        "wasi:clocks/",
        "wasi:random/",
        "wasi:filesystem/",
        "wasi:sockets/",
    ] {
        assert!(
            inert.iter().any(|i| i.starts_with(family)),
            "{family} not inert in {inert:?}"
        );
    }
    let strict = PluginsConfig {
        strict_imports: true,
        ..PluginsConfig::default()
    };
    let strict = audit(&wasm, None, &strict).unwrap();
    assert!(!strict.accepted);
    assert!(strict.problems.iter().any(|p| p.contains("strict-imports")));
}

/// jco's QuickJS build uses the component-model async ABI and loads on the
/// async engine; a plain build does not.
#[tokio::test]
async fn quickjs_builds_run_on_the_async_engine_and_others_do_not() {
    let _machine = loading_the_machine_together().await;
    let cfg = PluginsConfig::default();
    let qjs = audit(&built(&QUICKJS).join("ssn-redact.wasm"), None, &cfg).unwrap();
    assert!(
        qjs.accepted && qjs.component_model_async,
        "{:?}",
        qjs.problems
    );
    assert!(qjs.to_text().contains("component-model async"));
    let c = audit(&built(&C).join("ssn-redact.wasm"), None, &cfg).unwrap();
    assert!(c.accepted && !c.component_model_async);
}

/// A QuickJS guardrail (component-model async ABI, so on the async twin
/// engine; contract 0.1.0, as every QuickJS build) that spins is cut off at
/// its deadline like any guest, fails closed, and the next call on a fresh
/// instance answers.
#[tokio::test]
async fn a_spinning_quickjs_guest_on_the_async_engine_is_cut_off_at_its_deadline() {
    use sluice::plugin::{PluginFailure, Verdict};
    let _machine = loading_the_machine_together().await;
    let dir = root().join("target/plugin-new/js-spin");
    let _ = std::fs::remove_dir_all(&dir);
    plugin_new::create(&NewPlugin {
        name: "spin".into(),
        kind: PluginKind::Guardrail,
        lang: Lang::Js,
        dir: dir.clone(),
    })
    .unwrap();
    std::fs::write(
        dir.join("plugin.quickjs.js"),
        r#"export const guardrail = {
  checkInput(_request) { return { tag: 'pass' }; },
  checkOutput(_request, output, _context) {
    while (output === 'spin') {}
    return { tag: 'pass' };
  },
};
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("spin.toml"),
        "kind = \"guardrail\"\n[limits]\ndeadline-ms = 200\nmemory-mb = 8\n",
    )
    .unwrap();
    let mut cmd = Command::new(dir.join("build"));
    cmd.env("SLUICE_TOOLCHAINS", root().join("target/toolchains"))
        .env("JCO_BACKEND", "quickjs");
    run_script("plugin new --lang js: a spinning guardrail (build)", cmd);
    let wasm = dir.join("dist/spin.wasm");
    let report = audit(&wasm, None, &PluginsConfig::default()).unwrap();
    assert!(report.component_model_async);
    assert_eq!(report.contract, Some(Contract::V0_1));
    let plugins = tempfile::tempdir().unwrap();
    for ext in ["wasm", "toml"] {
        std::fs::copy(
            dir.join(format!("dist/spin.{ext}")),
            plugins.path().join(format!("spin.{ext}")),
        )
        .unwrap();
    }
    let rt = runtime(plugins.path());
    let p = rt
        .current()
        .get("spin")
        .unwrap_or_else(|| panic!("{:?}", rt.statuses()))
        .clone();
    let spun = p.check_output(&request("q"), "spin", &whole()).await;
    assert_eq!(spun, Err(PluginFailure::Deadline));
    assert_eq!(
        verdict(p.check_output(&request("q"), "fine", &whole()).await),
        Verdict::Pass
    );
    assert_eq!(p.stats().deadlines, 1);
}

/// Create, build and test a `plugin new` project of every kind in `lang`.
async fn new_projects_build_load_and_pass(lang: Lang) {
    let _machine = loading_the_machine_together().await;
    let base = root().join("target/plugin-new").join(lang.to_string());
    let _ = std::fs::remove_dir_all(&base);
    for kind in [
        PluginKind::Guardrail,
        PluginKind::Router,
        PluginKind::CostPolicy,
    ] {
        let name = format!("my-{kind}");
        let dir = base.join(&name);
        plugin_new::create(&NewPlugin {
            name: name.clone(),
            kind,
            lang,
            dir: dir.clone(),
        })
        .unwrap();
        // JavaScript: the default StarlingMonkey build (plugin.js, the
        // current contract), then QuickJS (plugin.quickjs.js, 0.1.0).
        let backends: &[(&str, Contract)] = match lang {
            Lang::Js => &[
                ("starlingmonkey", Contract::V0_2),
                ("quickjs", Contract::V0_1),
            ],
            _ => &[("", Contract::V0_2)],
        };
        for &(backend, contract) in backends {
            let mut cmd = Command::new(dir.join("build"));
            cmd.env("SLUICE_TOOLCHAINS", root().join("target/toolchains"));
            let mut label = format!("plugin new --lang {lang} --kind {kind}");
            if !backend.is_empty() {
                cmd.env("JCO_BACKEND", backend);
                label.push_str(&format!(" JCO_BACKEND={backend}"));
            }
            run_script(&format!("{label} (build)"), cmd);
            let wasm = dir.join(format!("dist/{name}.wasm"));
            let audited = audit(&wasm, None, &PluginsConfig::default()).unwrap();
            assert_eq!(audited.contract, Some(contract), "{lang} {backend} {kind}");
            let report = plugin_test::run(&TestRun {
                wasm,
                cases: dir.join("cases.yaml"),
                manifest: None,
                name: None,
                strict_imports: false,
            })
            .await
            .unwrap();
            let text = report.to_text();
            assert_eq!(report.failed(), 0, "{lang} {backend} {kind}:\n{text}");
            assert!(!report.results.is_empty());
        }
    }
}

#[tokio::test]
async fn plugin_new_rust_projects_build_load_and_pass() {
    new_projects_build_load_and_pass(Lang::Rust).await;
}

#[tokio::test]
async fn plugin_new_python_projects_build_load_and_pass() {
    new_projects_build_load_and_pass(Lang::Python).await;
}

#[tokio::test]
async fn plugin_new_js_projects_build_load_and_pass() {
    new_projects_build_load_and_pass(Lang::Js).await;
}

#[tokio::test]
async fn plugin_new_c_projects_build_load_and_pass() {
    new_projects_build_load_and_pass(Lang::C).await;
}

/// A manifest that names no `plugin:` applies every case; a case file
/// with a failing expectation makes `plugin test` report it.
#[tokio::test]
async fn plugin_test_reports_a_failing_case() {
    let _machine = loading_the_machine_together().await;
    let out = built(&C);
    let cases_file = tempfile::NamedTempFile::with_suffix(".jsonl").unwrap();
    std::fs::write(
        cases_file.path(),
        "{\"name\": \"right\", \"output\": \"a 123-45-6789\", \"expect\": {\"transform\": \"a [SSN]\"}}\n\
         {\"name\": \"wrong\", \"output\": \"a 123-45-6789\", \"expect\": \"pass\"}\n",
    )
    .unwrap();
    let report = plugin_test::run(&TestRun {
        wasm: out.join("ssn-redact.wasm"),
        cases: cases_file.path().to_path_buf(),
        manifest: Some(out.join("ssn-redact.toml")),
        name: None,
        strict_imports: false,
    })
    .await
    .unwrap();
    assert_eq!(report.failed(), 1);
    let text = report.to_text();
    assert!(
        text.contains("wrong") && text.contains("expected pass") && text.contains("[SSN]"),
        "{text}"
    );
}

/// The shared case file covers both guardrails, input and output, and
/// every expectation kind a guardrail has.
#[test]
fn shared_cases_cover_both_guardrails() {
    let cases = shared_cases();
    for g in GUARDRAILS {
        assert!(cases.iter().any(|c| c.plugin.as_deref() == Some(g)));
    }
    assert!(cases.iter().any(|c| matches!(c.expect, Expect::Pass)));
    assert!(
        cases
            .iter()
            .any(|c| matches!(c.expect, Expect::Transform(_)))
    );
    assert!(cases.iter().any(|c| matches!(c.expect, Expect::Reject(_))));
    assert!(cases.iter().any(|c| c.call_kind() == Ok(Call::CheckInput)));
}
