//! Shutting down with a deadline (`server.shutdown-grace-ms`).
//!
//! The accept loop ([`super::conn`]) moves through [`Phase`]s; requests
//! see them through a [`Drain`]. While draining, requests in progress go
//! on. At the deadline a request still waiting for its answer gets 503
//! ([`answer_by_deadline`]) and an open stream ends with an error event
//! (`server/chat.rs`): the client learns the answer is incomplete instead
//! of seeing the connection drop.

use std::future::pending;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use super::error::ApiError;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    /// No new connections; requests in progress finish.
    Draining,
    /// The grace period is over: what is still running ends now.
    Forced,
}

/// A request's view of the shutdown. The default never ends anything.
#[derive(Debug, Clone, Default)]
pub struct Drain(Option<watch::Receiver<Phase>>);

impl Drain {
    pub(crate) fn new(rx: watch::Receiver<Phase>) -> Self {
        Drain(Some(rx))
    }

    /// Resolves at the drain deadline (or when the server is gone).
    pub async fn forced(&self) {
        match &self.0 {
            Some(rx) => {
                let mut rx = rx.clone();
                let _ = rx.wait_for(|p| *p == Phase::Forced).await;
            }
            None => pending().await,
        }
    }
}

/// Middleware: a request still without its answer at the drain deadline
/// is answered 503 (a stream whose answer already began ends in chat.rs).
pub async fn answer_by_deadline(State(drain): State<Drain>, req: Request, next: Next) -> Response {
    tokio::select! {
        biased;
        res = next.run(req) => res,
        () = drain.forced() => ApiError::shutting_down().into_response(),
    }
}
