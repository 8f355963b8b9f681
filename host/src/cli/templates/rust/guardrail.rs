//! {{name}}: a Sluice guardrail in Rust.
//!
//! Rejects a request or an answer that contains the `blocked` word of the
//! manifest's `[config]` (case-insensitive). The config is checked once at
//! load (`validate_config`): a missing or empty word, or an unknown key,
//! refuses the plugin. Every call runs on a fresh instance: nothing is kept
//! between calls.

wit_bindgen::generate!({ world: "guardrail-plugin", path: "wit" });

use exports::sluice::plugin::guardrail::Guest as Guardrail;
use exports::sluice::plugin::lifecycle::Guest as Lifecycle;
use sluice::plugin::host::{config, config_keys, log};
use sluice::plugin::types::{LogLevel, OutputContext, Phases, Rejection, Request, Verdict};

/// The `[config]` keys this plugin reads.
const KEYS: &[&str] = &["blocked"];

/// The blocked word, lower-cased; why the config is unusable otherwise.
fn blocked_word() -> Result<String, String> {
    match config("blocked") {
        Some(w) if !w.trim().is_empty() => Ok(w.to_lowercase()),
        Some(_) => Err("config `blocked`: is empty: it would match every text".into()),
        None => Err("config `blocked`: missing".into()),
    }
}

fn blocked_in(text: &str) -> bool {
    // Validated at load; should it fail here anyway, trap: the manifest's
    // failure mode answers and the log says why.
    let word = blocked_word().unwrap_or_else(|why| panic!("{why}"));
    text.to_lowercase().contains(&word)
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

impl Lifecycle for Plugin {
    fn validate_config() -> Result<(), String> {
        if let Some(key) = config_keys().into_iter().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("config `{key}`: unknown key (known: {})", KEYS.join(", ")));
        }
        blocked_word().map(drop)
    }
}

impl Guardrail for Plugin {
    fn phases() -> Phases {
        // Both checks; leave one out and the host never calls it.
        Phases::INPUT | Phases::OUTPUT
    }

    fn check_input(request: &Request) -> Verdict {
        // Each method on the request is one host call: ask for what you need.
        match request.last_user_text() {
            Some(text) if blocked_in(&text) => reject("request"),
            _ => Verdict::Pass,
        }
    }

    fn check_output(_request: &Request, output: String, context: OutputContext) -> Verdict {
        // Streams arrive window by window; `context.emitted` is the text
        // already sent, so a word split across windows is still seen.
        if blocked_in(&(context.emitted + &output)) {
            return reject("answer");
        }
        Verdict::Pass
    }
}

export!(Plugin);
