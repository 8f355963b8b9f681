//! Plugin text cannot forge gateway log lines. `hostile-log-forger` puts
//! CR/LF, NUL and ANSI escapes followed by a fake "served" line into every
//! text of its own that the gateway logs (`host.log`, stdout, stderr, its
//! reject reason); a router names a route and a cost policy a downgrade
//! target carrying the same. Through the gateway's own log subscriber, in
//! both formats, every such text stays inside one (escaped) log line.

use serde_json::Value;
use sluice::cli::{LogFormat, log_subscriber};
use tracing_subscriber::EnvFilter;

use sluice_guests as guests;

use crate::support::gateway::{self, reply_body};
use crate::support::logs::Buffer;
use crate::support::plugins::plugin_dir_named;

/// Where each forged text came from; all must show up in the log.
const VIA: [&str; 6] = [
    "via=log",
    "via=stdout",
    "via=stderr",
    "via=reason",
    "via=route",
    "via=downgrade",
];

/// What a forged line starts with (`FAKE` in the guests).
const FAKE_START: &str = "2026-11-27T00:00:00.000000Z";

/// Serve one request per forging plugin with the gateway logging in
/// `format` (at debug) on this thread; returns the log.
fn log_of_forgeries(format: LogFormat) -> String {
    let buf = Buffer::default();
    let subscriber = log_subscriber(format, EnvFilter::new("debug"), false, buf.clone());
    let _logging = tracing::subscriber::set_default(subscriber);
    let dir = plugin_dir_named(&[
        (
            "forger",
            guests::HOSTILE_LOG_FORGER,
            "kind = \"guardrail\"\n",
        ),
        ("router", guests::HOSTILE_MANY_ROUTES, "kind = \"router\"\n"),
        (
            "policy",
            guests::HOSTILE_COST_EDGES,
            "kind = \"cost-policy\"\nfailure-mode = \"open\"\n",
        ),
    ]);
    // One thread: every request (and plugin call) logs where the
    // subscriber is installed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mock = gateway::mock().await;
        let rest = r#"
[models.forged]
output-guardrails = ["forger"]
routes = [{ provider = "mock", model = "mock-small" }]

[models.routed]
router = "router"
routes = [{ provider = "mock", model = "mock-small" }]

[models.costly]
cost-policy = "policy"
routes = [{ provider = "mock", model = "mock-small" }]
"#;
        let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
        let res = gw.chat(&reply_body("forged", "hi")).await;
        assert_eq!(res.status(), 422);
        let res = gw.chat(&reply_body("routed", "forge")).await;
        assert_eq!(res.status(), 200);
        let target = format!("downgrade=evil\r\n{FAKE_START}  INFO sluice::server::chat: served request_id=FORGED via=downgrade\u{1b}[2K");
        let res = gw.chat(&reply_body("costly", &target)).await;
        assert_eq!(res.status(), 200);
    });
    let bytes = buf.bytes();
    String::from_utf8(bytes).unwrap()
}

fn no_control_chars(s: &str) -> bool {
    !s.chars().any(|c| c.is_control())
}

#[test]
fn plugin_text_cannot_forge_pretty_log_lines() {
    let log = log_of_forgeries(LogFormat::Pretty);
    for line in log.split('\n') {
        assert!(no_control_chars(line), "raw control character in: {line:?}");
        assert!(!line.starts_with(FAKE_START), "forged line: {line:?}");
    }
    for via in VIA {
        let line = log
            .lines()
            .find(|l| l.contains(via))
            .unwrap_or_else(|| panic!("{via} never logged:\n{log}"));
        // The fake line is in there after the real line's start: escaped
        // after a `\n`, or (stdout / stderr, forwarded one event per line)
        // as the message of an event of its own, tagged with the plugin.
        let at = line
            .find("INFO sluice::server::chat: served request_id=FORGED")
            .unwrap();
        let before = &line[..at];
        let own_event = via.starts_with("via=std")
            && before.contains("INFO sluice::plugin::stdio: ")
            && line.contains("plugin=\"forger\"");
        assert!(before.contains("\\n") || own_event, "{line}");
    }
}

#[test]
fn plugin_text_cannot_forge_json_log_lines() {
    let log = log_of_forgeries(LogFormat::Json);
    let mut seen = Vec::new();
    for line in log.lines() {
        let event: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON event per line ({e}): {line:?}"));
        let text = event.to_string();
        fn strings(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
                Value::Object(o) => o.values().for_each(|v| strings(v, out)),
                _ => {}
            }
        }
        let mut values = Vec::new();
        strings(&event, &mut values);
        for v in values {
            assert!(no_control_chars(&v), "control character in a field: {v:?}");
        }
        seen.extend(VIA.iter().filter(|via| text.contains(*via)));
    }
    for via in VIA {
        assert!(seen.contains(&via), "{via} never logged:\n{log}");
    }
}
