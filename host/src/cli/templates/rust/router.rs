//! {{name}}: a Sluice router in Rust.
//!
//! Orders the candidate routes cheapest first (input + output price per
//! million tokens); equal prices keep the configured order. An empty list
//! would mean "use the configured order".

wit_bindgen::generate!({ world: "router-plugin", path: "wit" });

use exports::sluice::plugin::router::Guest;
use sluice::plugin::host::log;
use sluice::plugin::types::{Candidate, LogLevel, RequestInfo, Route};

struct Plugin;

impl Guest for Plugin {
    fn route(_request: RequestInfo, mut candidates: Vec<Candidate>) -> Vec<Route> {
        let price = |c: &Candidate| c.input_cost_per_mtok + c.output_cost_per_mtok;
        // Stable: equal prices keep their order.
        candidates.sort_by(|a, b| price(a).total_cmp(&price(b)));
        let routes: Vec<Route> = candidates
            .into_iter()
            .map(|c| Route {
                provider: c.provider,
                model: c.model,
            })
            .collect();
        if let Some(first) = routes.first() {
            log(LogLevel::Debug, &format!("first route: {}/{}", first.provider, first.model));
        }
        routes
    }
}

export!(Plugin);
