//! {{name}}: a Sluice guardrail in Rust.
//!
//! Rejects a request or an answer that contains the `blocked` word of the
//! manifest's `[config]` (case-insensitive). Every call runs on a fresh
//! instance: nothing is kept between calls.

wit_bindgen::generate!({ world: "guardrail-plugin", path: "wit" });

use exports::sluice::plugin::guardrail::Guest;
use sluice::plugin::host::{config, log};
use sluice::plugin::types::{LogLevel, OutputContext, Rejection, RequestInfo, Verdict};

fn blocked_in(text: &str) -> bool {
    config("blocked").is_some_and(|w| !w.is_empty() && text.to_lowercase().contains(&w.to_lowercase()))
}

fn reject(place: &str) -> Verdict {
    // stderr and host.log both reach the gateway log, tagged with the
    // plugin's name.
    eprintln!("blocked word in the {place}");
    log(LogLevel::Info, &format!("blocked word in the {place}"));
    Verdict::Reject(Rejection {
        reason: format!("the {place} contains a blocked word"),
        code: "blocked".into(),
    })
}

struct Plugin;

impl Guest for Plugin {
    fn check_input(request: RequestInfo) -> Verdict {
        let last_user = request.messages.iter().rev().find(|m| m.role == "user");
        match last_user {
            Some(m) if blocked_in(&m.content) => reject("request"),
            _ => Verdict::Pass,
        }
    }

    fn check_output(_request: RequestInfo, output: String, context: OutputContext) -> Verdict {
        // Streams arrive window by window; `context.emitted` is the text
        // already sent, so a word split across windows is still seen.
        if blocked_in(&(context.emitted + &output)) {
            return reject("answer");
        }
        Verdict::Pass
    }
}

export!(Plugin);
