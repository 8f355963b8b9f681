//! Router for the runtime's failure-mode tests: traps when the request's
//! model is `trap`, otherwise returns the candidates in reverse order.
use sluice_sdk::{Candidate, Request, Route, Router};

struct Reverse;

impl Router for Reverse {
    fn route(req: &Request, candidates: Vec<Candidate>) -> Vec<Route> {
        assert!(req.model() != "trap", "router asked to trap");
        candidates.iter().rev().map(Route::from).collect()
    }
}

sluice_sdk::export_router!(Reverse);
