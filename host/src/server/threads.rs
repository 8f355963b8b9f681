//! Listening sockets and the serving runtimes (`[server] runtime`).
//!
//! `multi-thread`: one listener served by the process's multi-threaded
//! tokio runtime ([`super::serve`]). `thread-per-core`: `threads`
//! single-threaded runtimes, each on a thread of its own, each accepting
//! on its own `SO_REUSEPORT` socket bound to the same address (the kernel
//! spreads new connections over them by address hash) and each with its
//! own upstream client ([`crate::provider::use_thread_client`]): a request
//! is read, checked, sent upstream and answered on one thread, so none of
//! its steps waits for another thread to wake up.
//!
//! What is not per request stays where it started, on the runtime that
//! called [`serve_on`]: the state store's background work, the plugin
//! watcher, the trace exporter, the request log writer. Shutdown stops
//! every runtime's accept loop at once; each drains its own connections
//! within `server.shutdown-grace-ms` (see [`super::conn`]), and
//! [`serve_on`] returns when all have.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{oneshot, watch};

use super::config::RuntimeMode;
use crate::pipeline::Gateway;

/// Connections the kernel queues per listener before `accept`.
const BACKLOG: i32 = 1024;

/// How long a serving runtime's leftover tasks (requests cut at the drain
/// deadline) may take to stop once its accept loop has returned.
const RUNTIME_STOP: Duration = Duration::from_secs(1);

/// The bound listening sockets, one per serving runtime.
#[derive(Debug)]
pub struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    mode: RuntimeMode,
}

impl Listeners {
    /// The address every socket listens on (the real port when `listen`
    /// asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sockets[0].local_addr()
    }

    /// Serving runtimes these sockets are for.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// Bind `addr` for `mode`: one socket for `multi-thread`; `threads`
/// sockets with `SO_REUSEPORT` for `thread-per-core` (port 0 picks the
/// port once, the others join it). Linux lets only sockets of the same
/// user join a `SO_REUSEPORT` group, so another user's process cannot take
/// a share of the connections.
pub fn bind(addr: SocketAddr, mode: RuntimeMode, threads: usize) -> std::io::Result<Listeners> {
    let count = match mode {
        RuntimeMode::MultiThread => 1,
        RuntimeMode::ThreadPerCore => threads.max(1),
    };
    let reuse_port = mode == RuntimeMode::ThreadPerCore;
    let first = socket(addr, reuse_port)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(socket(addr, reuse_port)?);
    }
    Ok(Listeners { sockets, mode })
}

fn socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std and tokio do: a restart can bind while old connections sit in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    #[cfg(not(unix))]
    let _ = reuse_port;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Serve `gw` on `listeners` until `shutdown` resolves, then drain (see
/// [`super::serve`]). Call it inside a tokio runtime; with several
/// listeners it starts one thread with a single-threaded runtime for each.
pub async fn serve_on(
    listeners: Listeners,
    gw: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let Listeners { mut sockets, mode } = listeners;
    if mode == RuntimeMode::MultiThread && sockets.len() == 1 {
        let listener = tokio::net::TcpListener::from_std(sockets.remove(0))?;
        return super::serve_runtime(listener, gw, (0, 1), shutdown).await;
    }
    tracing::info!(threads = sockets.len(), "thread-per-core serving");
    let (stop, stopped) = watch::channel(false);
    let runtimes = sockets.len();
    let mut done = FuturesUnordered::new();
    for (index, socket) in sockets.into_iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        let gw = gw.clone();
        let mut stopped = stopped.clone();
        std::thread::Builder::new()
            .name(format!("sluice-serve-{index}"))
            .spawn(move || {
                let served = serve_thread(socket, gw, (index, runtimes), async move {
                    let _ = stopped.wait_for(|s| *s).await;
                });
                let _ = tx.send(served);
            })?;
        done.push(rx);
    }
    // An accept loop that fails ends the others too: a gateway serving on
    // some of its threads only would look healthy while refusing a share
    // of the connections.
    let mut first_error = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown, if !*stop.borrow() => {
                stop.send_replace(true);
            }
            finished = done.next() => {
                let Some(result) = finished else { break };
                let result = result.unwrap_or_else(|_| Err(std::io::Error::other("a serving thread panicked")));
                if let Err(e) = result {
                    tracing::error!(error = %e, "a serving thread failed; stopping the others");
                    first_error.get_or_insert(e);
                    stop.send_replace(true);
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One serving thread: its own upstream client and a single-threaded
/// runtime running the accept loop until `shutdown`.
fn serve_thread(
    socket: std::net::TcpListener,
    gw: Arc<Gateway>,
    (index, runtimes): (usize, usize),
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    crate::provider::use_thread_client().map_err(std::io::Error::other)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(format!("sluice-serve-{index}-blocking"))
        .build()?;
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(socket)?;
        super::serve_runtime(listener, gw, (index, runtimes), shutdown).await
    });
    // Requests cut at the drain deadline may leave plugin calls on this
    // runtime's blocking threads; they must not hold the exit.
    rt.shutdown_timeout(RUNTIME_STOP);
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_per_core_binds_one_socket_per_thread_on_one_port() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let l = bind(any, RuntimeMode::ThreadPerCore, 3).unwrap();
        assert_eq!(l.len(), 3);
        let addr = l.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        for s in &l.sockets {
            assert_eq!(s.local_addr().unwrap(), addr);
        }
        // Without SO_REUSEPORT the port is taken.
        assert!(bind(addr, RuntimeMode::MultiThread, 1).is_err());
    }

    #[test]
    fn multi_thread_binds_one_socket_whatever_threads_says() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let l = bind(any, RuntimeMode::MultiThread, 8).unwrap();
        assert_eq!(l.len(), 1);
    }
}
