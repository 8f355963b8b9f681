//! {{name}}: a Sluice router in Rust.
//!
//! Orders the candidate routes cheapest first (input + output price per
//! million tokens); equal prices keep the configured order. An empty list
//! would mean "use the configured order". It takes no settings: any
//! `[config]` key refuses the plugin at load.

wit_bindgen::generate!({ world: "router-plugin", path: "wit" });

use exports::sluice::plugin::lifecycle::Guest as Lifecycle;
use exports::sluice::plugin::router::Guest as Router;
use sluice::plugin::host::{config_keys, log};
use sluice::plugin::types::{Candidate, LogLevel, Request, Route};

struct Plugin;

impl Lifecycle for Plugin {
    fn validate_config() -> Result<(), String> {
        match config_keys().first() {
            Some(key) => Err(format!("config `{key}`: unknown key: this plugin takes no settings")),
            None => Ok(()),
        }
    }
}

impl Router for Plugin {
    fn route(_request: &Request, mut candidates: Vec<Candidate>) -> Vec<Route> {
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
