//! Provider secrets (in `query`, in `headers`, in the base URL's userinfo,
//! the API key) never reach a client or a log line, whatever the failure:
//! a refused connection, a timeout, a TLS failure, an upstream error that
//! echoes the request. Clients get the provider's name and a reason, never
//! its URL; logs get the URL with values redacted.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::process::{Sluice, message};
use crate::support::raw::{self, answer_json};

const SECRETS: [&str; 5] = [
    "QUERY-SECRET-7781",
    "HEADER-SECRET-7782",
    "USER-SECRET-7783",
    "PASS-SECRET-7784",
    "KEY-SECRET-7785",
];

/// A provider at `scheme://USER:PASS@addr/v1` carrying every secret.
fn provider(name: &str, scheme: &str, addr: &str) -> String {
    format!(
        r#"
[[providers]]
name = "{name}"
base-url = "{scheme}://{user}:{pass}@{addr}/v1"
api-key = "{key}"
query = {{ sig = "{query}" }}
headers = {{ "x-secret" = "{header}" }}
timeout-ms = 500
retry = {{ max-attempts = 1 }}

[models.{name}]
routes = [{{ provider = "{name}", model = "m" }}]
"#,
        query = SECRETS[0],
        header = SECRETS[1],
        user = SECRETS[2],
        pass = SECRETS[3],
        key = SECRETS[4],
    )
}

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} leaks {s}: {text}");
    }
    // The Basic credentials reqwest makes of the userinfo.
    assert!(
        !text.contains("VVNFUi1TRUNSRVQtNzc4MzpQQVNTLVNFQ1JFVC03Nzg0"),
        "{what} leaks the userinfo as Basic credentials: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_errors_and_logs() {
    // Refused: a port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    // Timeout: accepts, reads the request, never answers.
    let silent = raw::upstream(|tcp, _| async move {
        std::future::pending::<()>().await;
        drop(tcp);
    })
    .await;
    // TLS: a plain-text server behind an https URL, answering the
    // ClientHello with plain HTTP.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr = plain.local_addr().unwrap().to_string();
    let plain_task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = plain.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    // HTTP: a 500 whose message quotes the whole request, headers included.
    let echo = raw::upstream(|mut tcp, req| async move {
        let body = json!({"error": {"message": req, "type": "server_error"}}).to_string();
        answer_json(&mut tcp, 500, &body).await;
    })
    .await;
    let config = [
        provider("refused", "http", &closed),
        provider("silent", "http", &silent.addr),
        provider("tls", "https", &plain_addr),
        provider("echo", "http", &echo.addr),
    ]
    .concat();
    let sluice = Sluice::start(&config, None).await;
    let client = reqwest::Client::new();
    for (model, status) in [
        ("refused", 502),
        ("silent", 504),
        ("tls", 502),
        ("echo", 502),
    ] {
        let res = client
            .post(format!("{}/v1/chat/completions", sluice.url))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{model}");
        let body: Value = res.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap().to_string();
        assert_clean(model, &body.to_string());
        assert!(message.starts_with(model), "names the provider: {message}");
        assert!(
            !message.contains("127.0.0.1") && !message.contains("://"),
            "{model}: the client is told no URL: {message}"
        );
    }
    // The echo's message kept the rest of the request: the scrubbing is
    // by value, not by dropping the message.
    let failed = sluice
        .wait_log(Duration::from_secs(10), |v| {
            message(v) == "upstream request failed" && v["fields"]["provider"] == "refused"
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "no log line for the refused connection:\n{}",
                sluice.log_text()
            )
        });
    let url = failed["fields"]["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("http://{closed}/v1/chat/completions?sig=[redacted]"),
        "the log names the URL, values redacted"
    );
    assert_clean("the log", &sluice.log_text());
    plain_task.abort();
}
