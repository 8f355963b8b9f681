//! Stream window seams: a size cut falls at whitespace and each window is
//! checked with the end of the text already sent, so an entity placed
//! exactly across a cut is still caught, however the upstream chunks it.
//! pii-redact (built from source) behind a scripted upstream, real sockets.

use serde_json::{Value, json};

use sluice_guests as guests;

use crate::support::canned::{self, Canned, text_chunks};
use crate::support::gateway;
use crate::support::http::{sse_data, streamed_text};
use crate::support::plugins::first_party_dir;

const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "bob@example.com";

/// `max-hold-chars = 40` and no sentence end in the text: every window is
/// closed by size.
const MODELS: &str = r#"
[models.pii]
routes = [{ provider = "canned", model = "m" }]
output-guardrails = ["pii-redact"]
stream = { max-hold-chars = 40 }
"#;

/// The body asks for `text` in pieces of `size` bytes.
fn script(body: &Value) -> Canned {
    let ask = body["messages"][0]["content"].as_str().unwrap_or("");
    let (size, text) = ask.split_once('|').unwrap();
    Canned::Events(text_chunks(text, size.parse().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needles_across_every_cut_are_caught_at_every_chunking() {
    let dir = first_party_dir(&[guests::PII_REDACT]);
    let up = canned::upstream(script).await;
    let gw = gateway::start(&canned::config(&up.base, dir.path(), MODELS)).await;
    let tail = " ok and more words after it";
    // The needle starts 21 + shift characters in: the 40-character cut
    // falls before, inside and after it as `shift` grows.
    for shift in 0..=20 {
        let lead = format!("{} word word word ", "z".repeat(shift));
        for size in 1..=7 {
            let card = format!("{lead}Card {CARD}{tail}");
            let email = format!("{lead}Mail {EMAIL}{tail}");
            for (text, label) in [(&card, "[CREDIT_CARD]"), (&email, "[EMAIL]")] {
                let body = json!({"model": "pii", "stream": true,
                    "messages": [{"role": "user", "content": format!("{size}|{text}")}]});
                let res = gw.chat(&body).await;
                assert_eq!(res.status(), 200);
                let events = sse_data(&res.text().await.unwrap());
                assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
                let got = streamed_text(&events);
                let ctx = format!("shift {shift} size {size}: {got:?}");
                assert!(!got.contains(CARD) && !got.contains(EMAIL), "{ctx}");
                assert!(!got.contains("example.com"), "{ctx}: the address was split");
                assert!(got.ends_with(&format!("{label}{tail}")), "{ctx}");
                assert!(got.starts_with(&lead), "{ctx}");
                if label == "[EMAIL]" {
                    // A word is never split: the redaction is exact.
                    assert_eq!(got, text.replace(EMAIL, label), "{ctx}");
                }
            }
        }
    }
}
