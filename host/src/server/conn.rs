//! Accepting and serving client connections: hyper's HTTP/1 server with a
//! timer, a cap on open connections, and a drain with a deadline.
//!
//! - **Timer**: without one (as `axum::serve` sets it up) hyper's header
//!   read timeout is silently off, and a connection sending half a request
//!   head stays open forever. Here a head must arrive within
//!   `server.header-read-timeout-ms`; hyper starts that timer whenever a
//!   connection waits for a request, so it bounds idle keep-alive too.
//! - **Cap**: at most `cap` connections ([`super::limits`]). At the cap,
//!   the oldest connection that never delivered a request head is closed
//!   to admit the new one (a slowloris holds only such connections), else
//!   the oldest idle keep-alive one; when every connection is busy the
//!   accept loop waits, and new clients queue in the kernel.
//! - **Drain**: on shutdown the listener closes, each connection finishes
//!   its current request and closes (hyper's graceful shutdown); at the
//!   deadline ([`Phase::Forced`]) requests still running end (streams with
//!   an error event, see [`super::shutdown`]), get [`FLUSH`] to write it,
//!   and whatever is left is dropped.
//! - **Write buffering**: hyper holds at most `max_buf` bytes (plus one
//!   frame) of a response a slow reader has not taken yet, so a stalled
//!   client costs a bounded amount of memory per stream.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::shutdown::Phase;
use crate::metrics::ServingRuntime;

/// After the drain deadline: how long a connection may take to write the
/// final error event of its stream before it is dropped.
pub const FLUSH: Duration = Duration::from_secs(1);

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub header_read_timeout: Duration,
    /// hyper's per-connection buffer limit: a request head larger than this
    /// gets hyper's own 431; a response is buffered up to this much.
    pub max_buf: usize,
    pub cap: usize,
    pub grace: Duration,
}

/// What the accept loop knows about one connection.
#[derive(Debug, Default)]
struct ConnState {
    /// A request head arrived on it at least once.
    served: AtomicBool,
    /// Requests whose response has not been fully handed to hyper yet.
    in_flight: AtomicU32,
}

struct Entry {
    state: Arc<ConnState>,
    kill: Arc<Notify>,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Registry {
    conns: Mutex<BTreeMap<u64, Entry>>,
    /// Signalled when a connection ends or goes idle (room may be made).
    freed: Notify,
}

impl Registry {
    fn len(&self) -> usize {
        self.conns.lock().len()
    }

    fn victim(conns: &BTreeMap<u64, Entry>) -> Option<u64> {
        let never_served = conns
            .iter()
            .find(|(_, e)| !e.state.served.load(Ordering::Acquire));
        let idle = || {
            conns
                .iter()
                .find(|(_, e)| e.state.in_flight.load(Ordering::Acquire) == 0)
        };
        never_served.or_else(idle).map(|(id, _)| *id)
    }

    fn has_victim(&self) -> bool {
        Self::victim(&self.conns.lock()).is_some()
    }

    /// Close the best connection to give up (see the module docs); false
    /// when every connection is busy.
    fn evict_one(&self) -> bool {
        let mut conns = self.conns.lock();
        let Some(id) = Self::victim(&conns) else {
            return false;
        };
        if let Some(e) = conns.remove(&id) {
            tracing::debug!(
                served = e.state.served.load(Ordering::Relaxed),
                "connection cap reached: closing a connection to admit a new one"
            );
            e.kill.notify_one();
        }
        true
    }
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Deregister {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        self.registry.conns.lock().remove(&self.id);
        self.registry.freed.notify_one();
    }
}

/// One request in flight on a connection, until its response body is done.
struct InFlight {
    state: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn begin(state: &Arc<ConnState>, registry: &Arc<Registry>) -> Self {
        state.served.store(true, Ordering::Release);
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            state: state.clone(),
            registry: registry.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.registry.freed.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serve `app` on `listener` until `shutdown` resolves, then drain (see
/// the module docs). `phase` is what requests watch ([`super::shutdown::Drain`]);
/// `counters` count what this loop accepts.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    phase: watch::Sender<Phase>,
    counters: Arc<ServingRuntime>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_buf);
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        // At the cap with nobody to give up: wait for room.
        if registry.len() >= settings.cap && !registry.has_victim() {
            tokio::select! {
                () = &mut shutdown => break,
                () = registry.freed.notified() => {}
                Some(_) = tasks.join_next() => {}
            }
            continue;
        }
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next() => continue,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors (or another transient failure):
                    // make room if anyone can give it up, else back off.
                    tracing::warn!(error = %e, open = registry.len(), "accepting a connection failed");
                    if !registry.evict_one() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        if registry.len() >= settings.cap {
            registry.evict_one();
        }
        // Nagle's algorithm would hold back a small write (an SSE event,
        // the body after the headers) until the client ACKs the previous one.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on an accepted socket: {e}");
        }
        counters.connections.fetch_add(1, Ordering::Relaxed);
        next_id += 1;
        let id = next_id;
        let state = Arc::new(ConnState::default());
        let kill = Arc::new(Notify::new());
        registry.conns.lock().insert(
            id,
            Entry {
                state: state.clone(),
                kill: kill.clone(),
            },
        );
        let deregister = Deregister {
            registry: registry.clone(),
            id,
        };
        let conn = Conn {
            app: app.clone(),
            state,
            registry: registry.clone(),
            counters: counters.clone(),
        };
        tasks.spawn(conn.serve(tcp, builder.clone(), kill, phase.subscribe(), deregister));
    }
    drop(listener);
    let open = registry.len();
    tracing::info!(
        open,
        grace_ms = settings.grace.as_millis() as u64,
        "draining connections"
    );
    phase.send_replace(Phase::Draining);
    let finished = tokio::time::timeout(settings.grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            open = registry.len(),
            "shutdown grace elapsed: ending the requests still open"
        );
        phase.send_replace(Phase::Forced);
        let _ = tokio::time::timeout(FLUSH + Duration::from_millis(100), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
    }
    Ok(())
}

/// What a connection task needs besides its socket.
struct Conn {
    app: Router,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
    counters: Arc<ServingRuntime>,
}

impl Conn {
    async fn serve(
        self,
        tcp: tokio::net::TcpStream,
        builder: hyper::server::conn::http1::Builder,
        kill: Arc<Notify>,
        mut phase: watch::Receiver<Phase>,
        _deregister: Deregister,
    ) {
        let Conn {
            app,
            state,
            registry,
            counters,
        } = self;
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            let in_flight = InFlight::begin(&state, &registry);
            let mut app = app.clone();
            async move {
                let res = tower_service::Service::call(&mut app, req).await?;
                Ok::<_, Infallible>(res.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        });
        let conn = builder.serve_connection(TokioIo::new(tcp), svc);
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            let now = *phase.borrow_and_update();
            if now >= Phase::Draining && !closing {
                // Finish the request in progress, then close.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            if now == Phase::Forced {
                let _ = tokio::time::timeout(FLUSH, conn.as_mut()).await;
                return;
            }
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = kill.notified() => return,
                changed = phase.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
