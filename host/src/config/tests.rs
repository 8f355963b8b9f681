use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "TEAM_KEY" => Some("sk-team-secret".into()),
        "UPSTREAM_KEY" => Some("sk-up \"quoted\"".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse("t.toml", text, &env)
}

#[test]
fn the_example_config_is_valid() {
    let text = include_str!("../../../examples/sluice.toml");
    let c = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.providers.len(), 2);
    let m = &c.models["demo"];
    assert_eq!(m.routes[1].provider, "backup");
    assert!(
        m.input_guardrails()
            .contains(&"prompt-injection".to_string())
    );
    assert!(m.output_guardrails().contains(&"pii-redact".to_string()));
    assert!(c.keys.is_empty(), "the demo runs without auth");
}

#[test]
fn absent_sections_take_their_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.body_limit_bytes(), 1024 * 1024);
    assert!(c.models.is_empty() && c.keys.is_empty());
}

#[test]
fn env_interpolation_fills_secrets_without_breaking_toml() {
    let c = parse(
        r#"
[[providers]]
name = "up"
base-url = "http://127.0.0.1:1/v1"
api-key = "${UPSTREAM_KEY}"

[[keys]]
id = "team"
key = "${TEAM_KEY}"
"#,
    )
    .unwrap();
    assert_eq!(c.providers[0].api_key.as_deref(), Some("sk-up \"quoted\""));
    assert_eq!(c.keys[0].key, "sk-team-secret");
}

#[test]
fn one_load_reports_every_problem_with_its_location() {
    let text = r#"[server]
listen = "127.0.0.1:8080"
body-limit-kb = "big"

[[providers]]
name = "up"
base-url = "http://127.0.0.1:1/v1"

[[providers]]
name = "up"
base-url = "http://127.0.0.1:2/v1"

[models.chat]
routes = [
  { provider = "up", model = "a" },
  { provider = "nope", model = "b" },
]
guardrails = ["pii-redact", "pii-redact"]

[models.typo]
routes = [{ provider = "up", model = "a" }]
gardrails = ["x"]

[[keys]]
id = "k"
key = "${MISSING_SECRET}"
"#;
    let errs = parse(text).unwrap_err();
    let all = errs.to_string();
    let expect = [
        ("t.toml:3:17", "server"),
        ("t.toml:10:8", "duplicate provider name `up`"),
        ("t.toml:16:16", "unknown provider `nope`"),
        ("t.toml:18:29", "duplicate guardrail name `pii-redact`"),
        ("t.toml:22:1", "gardrails"),
        ("t.toml:26:7", "`MISSING_SECRET` is not set"),
    ];
    for (loc, needle) in expect {
        assert!(
            errs.0
                .iter()
                .any(|p| p.location == loc && p.to_string().contains(needle)),
            "missing problem {loc} {needle:?} in:\n{all}"
        );
    }
    assert_eq!(errs.0.len(), expect.len(), "{all}");
    let locations: Vec<&str> = errs.0.iter().map(|p| p.location.as_str()).collect();
    let in_file_order: Vec<&str> = expect.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        locations, in_file_order,
        "problems are listed in file order"
    );
}

#[test]
fn syntax_errors_are_located_too() {
    let errs = parse("[server]\nlisten = \n").unwrap_err();
    assert!(errs.0[0].location.starts_with("t.toml:2:"), "{errs}");
}

#[test]
fn unknown_sections_and_bad_windows_are_rejected() {
    let text = r#"
[servr]
listen = "x"

[[providers]]
name = "up"
base-url = "http://127.0.0.1:1/v1"

[models.m]
routes = [{ provider = "up", model = "a" }]
stream = { mode = "chars", chars = 100, max-hold-chars = 10 }
"#;
    let errs = parse(text).unwrap_err();
    assert_eq!(errs.0.len(), 2, "{errs}");
    assert!(errs.0[0].to_string().contains("unknown section"), "{errs}");
    assert!(errs.0[1].path.ends_with("max-hold-chars"), "{errs}");
}

#[test]
fn load_checks_what_serve_needs_from_the_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plugins.txt");
    std::fs::write(&file, "not a dir").unwrap();
    let missing = dir.path().join("nope");
    let write = |plugins: &str| {
        let path = dir.path().join("sluice.toml");
        let text = format!(
            "[server]\nmax-n = 4\n\n[plugins]\n{plugins}\n\n[[providers]]\nname = \"p\"\nbase-url = \"http://x/v1\"\nheaders = {{ \"bad header\" = \"v\" }}\n"
        );
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap_err().to_string()
    };
    let err = write(&format!("dir = '{}'", file.display()));
    assert!(err.contains("is a regular file, not a directory"), "{err}");
    assert!(err.contains("sluice.toml:5:7: plugins.dir"), "{err}");
    assert!(
        err.contains("providers[0].headers: invalid header name `bad header`"),
        "every problem at once: {err}"
    );
    let err = write(&format!("dir = '{}'", missing.display()));
    assert!(err.contains("does not exist"), "{err}");
    let err = write("watch = false");
    assert!(
        err.contains("sluice.toml:4:1: plugins.dir: plugin directory `plugins` does not exist"),
        "a default is placed at its section: {err}"
    );
    // `parse` alone never touches the file system.
    assert!(parse("[plugins]\ndir = '/nonexistent/x'\n").is_ok());
}

#[test]
fn the_serving_runtime_and_its_threads() {
    use crate::server::config::RuntimeMode;
    let c = parse("").unwrap();
    assert_eq!(c.server.runtime, RuntimeMode::MultiThread);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.server.serving_threads(), cpus);
    let c = parse("[server]\nruntime = \"thread-per-core\"\nthreads = 3\n").unwrap();
    assert_eq!(c.server.runtime, RuntimeMode::ThreadPerCore);
    assert_eq!(c.server.serving_threads(), 3);
    let errs = parse("[server]\nthreads = 5000\n").unwrap_err();
    assert!(errs.0[0].path.ends_with("threads"), "{errs}");
    let errs = parse("[server]\nruntime = \"green\"\n").unwrap_err();
    assert!(
        errs.to_string()
            .contains("expected `multi-thread` or `thread-per-core`"),
        "{errs}"
    );
}
