//! `POST /v1/chat/completions` bodies: parsing never panics, and whatever
//! parses survives a serialize → parse round trip unchanged (unknown fields
//! included), since the gateway forwards what it parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sluice_fuzz::openai::{ChatRequest, content_text};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<ChatRequest>(data) else {
        return;
    };
    let _ = req.max_output_tokens();
    for m in &req.messages {
        let _ = content_text(&m.content);
    }
    if req.temperature.is_some_and(|t| !t.is_finite()) {
        // e.g. 1e300 parses as f32 infinity and would be forwarded as null;
        // the pipeline refuses temperatures outside 0..=2 before forwarding.
        return;
    }
    let once = serde_json::to_value(&req).expect("a parsed request serializes");
    let again: ChatRequest = serde_json::from_value(once.clone()).expect("and parses again");
    let twice = serde_json::to_value(&again).unwrap();
    assert_eq!(once, twice);
    // Nothing the client sent is lost: every top-level key comes back
    // (`stream: false` is the one key elided as the default).
    let original: Value = serde_json::from_slice(data).unwrap();
    if let Value::Object(map) = original {
        for (k, v) in map {
            if k == "stream" && v == Value::Bool(false) {
                continue;
            }
            if v.is_null() {
                // null optional fields are elided, as OpenAI treats them.
                continue;
            }
            assert!(once.get(&k).is_some(), "field `{k}` dropped");
        }
    }
});
