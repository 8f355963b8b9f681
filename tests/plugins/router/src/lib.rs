//! Router for the runtime's failure-mode tests: traps when the request's
//! model is `trap`, otherwise returns the candidates in reverse order.
use sluice_sdk::{Candidate, RequestInfo, Route, Router};

struct Reverse;

impl Router for Reverse {
    fn route(req: RequestInfo, candidates: Vec<Candidate>) -> Vec<Route> {
        assert!(req.model != "trap", "router asked to trap");
        candidates.iter().rev().map(Route::from).collect()
    }
}

sluice_sdk::export_router!(Reverse);
