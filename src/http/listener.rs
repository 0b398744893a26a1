//! The HTTP listener: the accept loop that `axum::serve` would be, with the
//! limits it does not have.
//!
//! This module owns accepting: the [`Limits`] read from `[http]`, which
//! source may use the reserved connections (loopback and
//! `http.dialplan_allow`, where FreeSWITCH asks its route lookups), taking a
//! place under the cap (`cap.rs`) or refusing the connection without
//! ever waiting, raising the soft `RLIMIT_NOFILE` at start-up when it is below
//! what the cap needs, and shutdown: stop accepting, then wait for the
//! connections, which finish their request in flight (`conn.rs` serves
//! each one, with the header, send and idle timeouts). An accept error that
//! is not about one connection (EMFILE, …) pauses the loop briefly instead of
//! spinning. With `http.tls_cert_file` each connection first completes its
//! TLS handshake ([`super::https`]). What a request body may be is the
//! router's business ([`super::body`]).

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use super::auth::cidr_contains;
use super::cap::{overflow_answer, Slots, OVERFLOW_ANSWERS};
use super::conn::{connection, Clock};
use super::https::Https;
use crate::config::validate::parse_cidr;
use crate::config::HttpConfig;

/// File descriptors needed besides the connections (store, ESL, webhooks…).
const FD_MARGIN: usize = 256;
/// The largest request head (and read buffer) of a connection.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Pause after an accept error that is not about one connection (EMFILE…).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one warning per this long for a repeating condition.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Gauge: connections open.
pub const CONNECTIONS_OPEN: &str = "fsgate_http_connections_open";
/// Counter: connections refused at the cap, by `class` (`general` or
/// `reserved`, the sources that may use the reserve).
pub const CONNECTIONS_REFUSED: &str = "fsgate_http_connections_refused_total";
/// Counter: connections closed by a timeout, by `phase` (`header`, `send`,
/// `idle`).
pub const CONNECTIONS_TIMED_OUT: &str = "fsgate_http_connections_timed_out_total";

/// The connection-level limits, from `[http]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to send complete request headers.
    pub header_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Time the client has to take a response once the handler answered.
    pub send_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Of those, how many only `reserved_sources` (and loopback) may use.
    pub reserved_connections: usize,
    /// Networks whose clients may use the reserve besides loopback.
    pub reserved_sources: Vec<(IpAddr, u8)>,
    /// Serve https with this certificate (`None`: plain http). Not read by
    /// [`Limits::from_config`], which reads no file: the daemon loads it.
    pub tls: Option<Arc<Https>>,
}

impl Limits {
    /// The limits `http` configures (the reserve goes to loopback and
    /// `http.dialplan_allow`).
    pub fn from_config(http: &HttpConfig) -> Limits {
        Limits {
            header_timeout: Duration::from_millis(http.header_timeout_ms),
            idle_timeout: Duration::from_millis(http.idle_timeout_ms),
            send_timeout: Duration::from_millis(http.body_timeout_ms),
            max_connections: http.max_connections,
            reserved_connections: http.dialplan_reserved_connections,
            reserved_sources: http
                .dialplan_allow
                .iter()
                .filter_map(|entry| parse_cidr(entry))
                .collect(),
            tls: None,
        }
    }

    /// Whether a client at `ip` may use the reserved connections.
    pub fn may_use_reserve(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback()
            || self
                .reserved_sources
                .iter()
                .any(|(net, len)| cidr_contains(*net, *len, ip))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&HttpConfig::default())
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves;
/// then stops accepting, closes idle connections and waits for requests in
/// flight.
pub async fn serve<F>(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    raise_fd_limit(limits.max_connections + OVERFLOW_ANSWERS + FD_MARGIN);
    let limits = Arc::new(limits);
    let slots = Slots::new(limits.max_connections, limits.reserved_connections);
    let overflow = Arc::new(AtomicUsize::new(0));
    let graceful = GracefulShutdown::new();
    let (stopping_tx, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut cap_warning = Throttle::default();
    let mut accept_warning = Throttle::default();
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e, &mut accept_warning).await;
                    continue;
                }
            },
        };
        let reserved = limits.may_use_reserve(peer.ip());
        let Some(slot) = slots.take(reserved) else {
            let class = if reserved { "reserved" } else { "general" };
            metrics::counter!(CONNECTIONS_REFUSED, "class" => class).increment(1);
            if cap_warning.ready() {
                tracing::warn!(
                    %peer,
                    class,
                    max_connections = slots.max,
                    general = slots.general,
                    "connection cap reached; refusing new connections"
                );
            }
            // A TLS client cannot read a plain 503: it is just closed.
            if limits.tls.is_none() {
                overflow_answer(stream, &overflow);
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (router, clock) = (router.clone(), Clock::new(&limits));
        let (watcher, stopping) = (graceful.watcher(), stopping.clone());
        match limits.tls.clone() {
            None => {
                tokio::spawn(connection(
                    stream, peer, router, clock, slot, watcher, stopping,
                ));
            }
            // The handshake runs on the connection's task (under its place
            // in the cap, within the header timeout), never on this loop.
            Some(https) => {
                let timeout = limits.header_timeout;
                tokio::spawn(async move {
                    if let Some(stream) = https.accept(stream, timeout).await {
                        connection(stream, peer, router, clock, slot, watcher, stopping).await;
                    }
                });
            }
        }
    }
    drop(listener);
    stopping_tx.send_replace(true);
    graceful.shutdown().await;
    Ok(())
}

async fn accept_error(e: io::Error, warning: &mut Throttle) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    if warning.ready() {
        tracing::error!(error = %e, "cannot accept connections; retrying");
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// Logs a repeating condition at most once per [`WARN_EVERY`].
#[derive(Default)]
struct Throttle(Option<Instant>);

impl Throttle {
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self.0.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return false;
        }
        self.0 = Some(now);
        true
    }
}

// --- file descriptors -----------------------------------------------------------------

/// Raises the soft `RLIMIT_NOFILE` to the hard limit when it is below
/// `needed`; warns when even the hard limit is.
fn raise_fd_limit(needed: usize) {
    let needed = libc::rlim_t::try_from(needed).unwrap_or(libc::rlim_t::MAX);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "cannot read the open-file limit");
        return;
    }
    let Some(target) = fd_target(limit.rlim_cur, limit.rlim_max, needed) else {
        return;
    };
    if target < needed {
        tracing::warn!(
            hard_limit = limit.rlim_max,
            needed,
            "the open-file hard limit is below what http.max_connections needs; raise it \
             (ulimit -Hn, systemd LimitNOFILE=) or lower http.max_connections"
        );
    }
    if target <= limit.rlim_cur {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        tracing::info!(
            from = limit.rlim_cur,
            to = target,
            "raised the soft open-file limit"
        );
    } else {
        tracing::warn!(error = %io::Error::last_os_error(), "cannot raise the open-file limit");
    }
}

/// The soft limit to set, when `soft` is below `needed`: the hard limit
/// (`needed` when the hard limit is infinite).
fn fd_target(soft: libc::rlim_t, hard: libc::rlim_t, needed: libc::rlim_t) -> Option<libc::rlim_t> {
    if soft >= needed {
        None
    } else if hard == libc::RLIM_INFINITY {
        Some(needed)
    } else {
        Some(hard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_goes_to_the_hard_limit_when_too_low() {
        assert_eq!(fd_target(4096, 8192, 1344), None);
        assert_eq!(fd_target(1024, 8192, 1344), Some(8192));
        assert_eq!(fd_target(1024, 1024, 1344), Some(1024));
        assert_eq!(fd_target(256, libc::RLIM_INFINITY, 1344), Some(1344));
    }

    #[test]
    fn the_reserve_goes_to_loopback_and_the_dialplan_sources() {
        let limits = Limits::from_config(&HttpConfig {
            dialplan_allow: vec!["10.0.0.0/24".into()],
            ..HttpConfig::default()
        });
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "10.0.0.7",
        ] {
            assert!(limits.may_use_reserve(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.1.7", "192.0.2.2", "fd00::2"] {
            assert!(!limits.may_use_reserve(ip.parse().unwrap()), "{ip}");
        }
    }
}
