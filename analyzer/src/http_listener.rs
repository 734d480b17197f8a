//! The HTTP listener's connections (OTLP/HTTP and the query API). A client
//! that connects and says nothing, sends its request head a byte at a time,
//! or stops reading its answer must not hold the listener: each connection
//! has [`HEAD_TIMEOUT`] to send a complete request head (when new, and again
//! when idle between requests), one on which nothing moves for
//! [`STALL_TIMEOUT`] is closed, at most [`MAX_CONNECTIONS`] are open at
//! once, and the process may open enough files for them. On shutdown the
//! open connections finish the requests in flight.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// HTTP connections open at once; past it a new one is closed at once.
pub const MAX_CONNECTIONS: usize = 4096;

/// How long a connection may take to send a complete request head, and how
/// long it may sit idle between requests.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may go without a byte moving either way while a
/// request is read or answered (no request takes the server this long to
/// answer: store reads wait at most 5 s for their turn, then take well
/// under a second).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

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
            .serve_connection(
                TokioIo::new(Stalling::new(stream)),
                TowerToHyperService::new(app.clone()),
            );
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

/// A connection that fails once nothing has moved on it for [`STALL_TIMEOUT`].
struct Stalling {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
}

impl Stalling {
    fn new(stream: TcpStream) -> Stalling {
        Stalling {
            stream,
            deadline: Box::pin(tokio::time::sleep(STALL_TIMEOUT)),
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + STALL_TIMEOUT);
    }

    /// A read or write's outcome: it moved when `moved` says so; a pending
    /// one stays pending until the deadline, then fails.
    fn track<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        moved: impl FnOnce(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                if result.as_ref().is_ok_and(moved) {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing moved on the connection",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for Stalling {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let read = buf.filled().len() > before;
        this.track(cx, polled, |_| read)
    }
}

impl AsyncWrite for Stalling {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.track(cx, polled, |&n| n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.track(cx, polled, |&n| n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
