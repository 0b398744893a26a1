//! One connection: HTTP/1.1 served by hyper, with the timeouts hyper does not
//! have.
//!
//! This module owns what happens between accept and close. A [`Clock`] follows
//! the connection through its phases (fresh, receiving a request head, the
//! handler running, sending the response, idle between requests) from what
//! the socket reads and flushes and what the service and the response body
//! report, and `overstay` closes the connection when a phase outlasts its
//! deadline: `http.header_timeout_ms` for a head, `http.body_timeout_ms` for
//! the client to take its response, `http.idle_timeout_ms` between requests.
//! On shutdown hyper finishes the request in flight and closes; connections
//! with none (fresh or idle) are closed at once. Every request carries the
//! peer address (`ConnectInfo<SocketAddr>`). Request bodies are the router's
//! business ([`super::body`]).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

use super::cap::Slot;
use super::listener::{Limits, CONNECTIONS_TIMED_OUT, MAX_HEAD_BYTES};

/// Serves one connection until it ends, overstays a timeout, or (with no
/// request in progress) the server shuts down.
pub(super) async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    router: axum::Router,
    clock: Arc<Clock>,
    slot: Slot,
    watcher: Watcher,
    stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let phase = clock.phase.subscribe();
    let io = TokioIo::new(Watched {
        stream,
        clock: clock.clone(),
    });
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        clock.request();
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let clock = clock.clone();
        async move {
            let Ok(response) = router.oneshot(req).await;
            clock.responding();
            Ok::<_, Infallible>(response.map(|body| Tracked {
                body,
                clock: Some(clock),
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // The header, send and idle timeouts are this module's (`overstay`):
        // hyper's header timeout would also cut idle kept-alive connections.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    tokio::select! {
        result = watcher.watch(conn) => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        expired = overstay(phase, stopping) => {
            if expired != "shutdown" {
                metrics::counter!(CONNECTIONS_TIMED_OUT, "phase" => expired).increment(1);
            }
            tracing::debug!(%peer, expired, "connection closed");
        }
    }
    drop(slot);
}

/// Where a connection stands, and until when it may stay there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, nothing received yet; headers due by then.
    Fresh(Instant),
    /// Receiving request headers, due by then.
    Head(Instant),
    /// The handler runs (the request body has its own deadline, the handler
    /// its own timeouts).
    Busy,
    /// The response is being written; the client must take it by then.
    Sending(Instant),
    /// The response body is all handed to hyper; the connection is idle
    /// once that is flushed to the socket (still due by then).
    Sent(Instant),
    /// Between a response and the next request; closed then.
    Idle(Instant),
}

pub(super) struct Clock {
    phase: watch::Sender<Phase>,
    header: Duration,
    idle: Duration,
    send: Duration,
}

impl Clock {
    pub(super) fn new(limits: &Limits) -> Arc<Clock> {
        Arc::new(Clock {
            phase: watch::Sender::new(Phase::Fresh(Instant::now() + limits.header_timeout)),
            header: limits.header_timeout,
            idle: limits.idle_timeout,
            send: limits.send_timeout,
        })
    }

    /// Bytes arrived: a request has begun, if none was under way.
    fn received(&self) {
        self.phase.send_if_modified(|p| match *p {
            Phase::Fresh(until) => {
                *p = Phase::Head(until);
                true
            }
            Phase::Idle(_) => {
                *p = Phase::Head(Instant::now() + self.header);
                true
            }
            _ => false,
        });
    }

    /// The request's headers are complete: the handler runs.
    fn request(&self) {
        self.phase.send_replace(Phase::Busy);
    }

    /// The handler answered: the response goes out.
    fn responding(&self) {
        self.phase
            .send_replace(Phase::Sending(Instant::now() + self.send));
    }

    /// The response body ended (or was dropped).
    fn responded(&self) {
        self.phase.send_if_modified(|p| match *p {
            Phase::Sending(until) => {
                *p = Phase::Sent(until);
                true
            }
            Phase::Busy => {
                *p = Phase::Sent(Instant::now() + self.send);
                true
            }
            _ => false,
        });
    }

    /// The socket was flushed: after a response, the connection is idle.
    fn flushed(&self) {
        self.phase.send_if_modified(|p| match *p {
            Phase::Sent(_) => {
                *p = Phase::Idle(Instant::now() + self.idle);
                true
            }
            _ => false,
        });
    }
}

/// Resolves with what expired (`header`, `send`, `idle`, or `shutdown` for
/// a connection with no request in progress when the server stops).
async fn overstay(
    mut phase: watch::Receiver<Phase>,
    mut stopping: watch::Receiver<bool>,
) -> &'static str {
    loop {
        let now = *phase.borrow_and_update();
        let stop = *stopping.borrow_and_update();
        let (until, what) = match now {
            Phase::Fresh(_) | Phase::Idle(_) if stop => return "shutdown",
            Phase::Fresh(until) | Phase::Head(until) => (Some(until), "header"),
            Phase::Sending(until) | Phase::Sent(until) => (Some(until), "send"),
            Phase::Idle(until) => (Some(until), "idle"),
            Phase::Busy => (None, ""),
        };
        let deadline = async {
            match until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = deadline => {
                if !phase.has_changed().unwrap_or(false) {
                    return what;
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    // The connection is gone; its future ends the select.
                    std::future::pending::<()>().await;
                }
            }
            changed = stopping.changed(), if !stop => {
                if changed.is_err() {
                    return "shutdown";
                }
            }
        }
    }
}

/// The connection's socket (plain or TLS), telling the [`Clock`] when bytes
/// arrive.
struct Watched<S> {
    stream: S,
    clock: Arc<Clock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            self.clock.flushed();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A response body that tells the [`Clock`] when it is done.
struct Tracked {
    body: Body,
    clock: Option<Arc<Clock>>,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            if let Some(clock) = self.clock.take() {
                clock.responded();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(clock) = self.clock.take() {
            clock.responded();
        }
    }
}
