//! A router that answers what the last user message asks for: `many=N`
//! returns N empty routes (no bytes, only entries), `forge` names a route
//! whose model carries CR/LF and a fake log line; anything else returns the
//! candidates in order.
use sluice_sdk::{Candidate, Request, Route, Router};

struct Many;

impl Router for Many {
    fn route(req: &Request, candidates: Vec<Candidate>) -> Vec<Route> {
        let last = req.last_user_text().unwrap_or_default();
        if let Some((_, n)) = last.split_once("many=") {
            let n: usize = n
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let empty = Route {
                provider: String::new(),
                model: String::new(),
            };
            return vec![empty; n];
        }
        if last.contains("forge") {
            return vec![Route {
                provider: "mock".into(),
                model: "x\r\n2026-11-27T00:00:00.000000Z  INFO sluice::server::chat: served request_id=FORGED via=route".into(),
            }];
        }
        candidates.iter().map(Route::from).collect()
    }
}

sluice_sdk::export_router!(Many);
