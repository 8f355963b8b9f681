//! A judge upstream whose answers the test scripts: an OpenAI-compatible
//! chat endpoint on a real socket that reads the eval runner's judge
//! request (the rubric, the `OUTPUT:` section) and answers what the test's
//! rule says for that output, so a suite's judge scores are known in
//! advance. Every request body is kept for assertions (temperature,
//! rubric).

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::raw::{self, RawUpstream};

/// The judge and what it was asked.
pub struct Judge {
    pub upstream: RawUpstream,
    pub requests: Arc<Mutex<Vec<Value>>>,
}

impl Judge {
    /// `rule(output, call_index)` gives the judge's answer text for the
    /// judged output (the index counts every request this judge got).
    pub async fn start(rule: impl Fn(&str, usize) -> String + Send + Sync + 'static) -> Judge {
        let requests = Arc::new(Mutex::new(Vec::<Value>::new()));
        let seen = requests.clone();
        let rule = Arc::new(rule);
        let upstream = raw::upstream(move |mut tcp, req| {
            let seen = seen.clone();
            let rule = rule.clone();
            async move {
                let body = req.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                let Ok(v) = serde_json::from_str::<Value>(body) else {
                    raw::answer_json(&mut tcp, 400, r#"{"error":{"message":"bad json"}}"#).await;
                    return;
                };
                let user = v["messages"]
                    .as_array()
                    .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                    .and_then(|m| m["content"].as_str())
                    .unwrap_or("")
                    .to_string();
                let n = {
                    let mut s = seen.lock().unwrap();
                    s.push(v);
                    s.len() - 1
                };
                let answer = rule(judged_output(&user), n);
                let body = json!({
                    "id": format!("judge-{n}"),
                    "object": "chat.completion",
                    "created": 0,
                    "model": "judge",
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop"
                    }],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
                });
                raw::answer_json(&mut tcp, 200, &body.to_string()).await;
            }
        })
        .await;
        Judge { upstream, requests }
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// The text between `OUTPUT:` and the closing instruction of the runner's
/// judge message.
pub fn judged_output(user: &str) -> &str {
    let after = user.rsplit_once("OUTPUT:\n").map_or(user, |(_, o)| o);
    after
        .rsplit_once("\n\nScore the OUTPUT.")
        .map_or(after, |(o, _)| o)
}
