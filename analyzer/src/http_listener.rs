//! The HTTP listener's connections (OTLP/HTTP and the query API). A client
//! that connects and says nothing, or sends its request head a byte at a
//! time, must not hold the listener: each connection has
//! [`HEAD_TIMEOUT`] to send a complete request head (when new, and again
//! when idle between requests), at most [`MAX_CONNECTIONS`] are open at
//! once, and the process may open enough files for them. On shutdown the
//! open connections finish the requests in flight.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// HTTP connections open at once; past it a new one is closed at once.
pub const MAX_CONNECTIONS: usize = 4096;

/// How long a connection may take to send a complete request head, and how
/// long it may sit idle between requests.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` completes, then waits for the
/// requests in flight.
pub async fn serve(listener: TcpListener, app: Router, stop: impl Future<Output = ()>) {
    raise_file_limit(MAX_CONNECTIONS as u64 + 1024);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let full_said = AtomicBool::new(false);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait for connections to close.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !full_said.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "{MAX_CONNECTIONS} HTTP connections are open; new ones are closed until some end"
                );
            }
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "an HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Lets the process open `wanted` files if its hard limit allows (the soft
/// limit is often 1024, fewer than the connections this listener allows).
fn raise_file_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= wanted {
            return;
        }
        limit.rlim_cur = wanted.min(limit.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur < wanted {
            tracing::warn!(
                files = limit.rlim_cur,
                "the process may open fewer files than the HTTP listener's {MAX_CONNECTIONS} connections need"
            );
        }
    }
}
