//! The store on Redis Sentinel (`redis+sentinel://s1:p1,s2:p2/master[/db]`):
//! a connection that asks the sentinels which node is the master's primary
//! (the client library checks the node's `ROLE`), talks to it, and follows a
//! failover: on a lost connection, a timeout, or a reply saying the node is
//! not (or no longer) a writable primary (`READONLY`, `LOADING`,
//! `MASTERDOWN`, a refused `WAIT`), it forgets the primary, and the next
//! request asks the sentinels again. The failing request itself answers its
//! error (callers see `StoreError::Unavailable` and retry); lookups that
//! fail are not repeated more than once per [`RESOLVE_PAUSE`].
//!
//! With `replica_acks` > 0, every command and pipeline is sent with `WAIT
//! replica_acks timeout` behind it, in the same write (one pipeline), so a
//! write is only answered once that many replicas have it and a promoted
//! replica cannot lose it. `WAIT` blocks the client that sent it, so each
//! request then has a connection of its own for its round trip (a small
//! pool); without acks, one multiplexed connection is shared. Too few
//! acknowledgements make the request fail (`StoreError::Unavailable`): the
//! command ran on the primary, but a failover could still lose it, so it is
//! not reported as done and the caller retries (every store write is safe to
//! repeat, or guarded by an idempotency key). They are counted
//! (`fsgate_store_replica_ack_shortfall_total`), logged at most every
//! [`WARN_EVERY`], and make the next request ask the sentinels again (at
//! most once per [`RECHECK_AFTER`]): a primary cut off from its replicas may
//! have been replaced while our connection to it stayed up. So with no
//! replica reachable the store is unavailable (durability first; set
//! `replica_acks = 0` to prefer availability).
//!
//! Owns the Sentinel URL form, primary discovery and the failover rules; it
//! must not know any key or script, nor retry a command (a write may have
//! happened before a connection broke: retrying is the caller's decision).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisError,
    RedisFuture, RedisResult, ServerErrorKind, TlsCertificates, TlsMode, Value,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::conn::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT};
use crate::store::{StoreError, StoreOptions};

pub(crate) use super::sentinel_url::{parse, SentinelTarget};

/// A failed lookup is answered again, without asking, for this long.
pub(crate) const RESOLVE_PAUSE: Duration = Duration::from_millis(100);
/// How long asking the sentinels (and checking the primary) may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections to the primary at most (with replica acks: requests in
/// flight at once; more wait for one).
const MAX_CONNECTIONS: usize = 64;
/// How often a shortfall of replica acknowledgements is logged at most.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);
/// Too few acknowledgements from a primary named longer ago than this make
/// the next request ask the sentinels again (it may have been failed over
/// behind a partition that left our connection up).
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// The connection to whichever node is the primary; cheap to clone.
#[derive(Clone)]
pub(crate) struct SentinelConn(Arc<Shared>);

struct Shared {
    /// Asks the sentinels; one lookup at a time.
    resolver: tokio::sync::Mutex<Resolver>,
    /// The primary, while it is trusted to be one.
    primary: Mutex<Option<Arc<Primary>>>,
    /// Connections to the primary in use (with replica acks).
    slots: Arc<Semaphore>,
    /// Settings of every connection to the primary.
    config: AsyncConnectionConfig,
    master: String,
    db: i64,
    acks: u32,
    ack_timeout_ms: u64,
    shortfalls: Throttle,
}

struct Resolver {
    client: SentinelClient,
    /// The last lookup's failure and when.
    failed: Option<(Instant, RedisError)>,
    /// The address last named (a change is logged).
    last: Option<String>,
}

/// One primary as the sentinels named it.
struct Primary {
    addr: String,
    named_at: Instant,
    client: Client,
    /// Without replica acks: the one connection every request shares.
    shared: Option<MultiplexedConnection>,
    /// With replica acks: connections between requests.
    idle: Mutex<Vec<MultiplexedConnection>>,
}

/// What a request sends.
enum Batch<'a> {
    Command(&'a Cmd),
    Pipeline(&'a Pipeline, usize, usize),
}

impl SentinelConn {
    /// A lazy connection: nothing is asked before the first request.
    pub(crate) fn new(
        target: SentinelTarget,
        options: &StoreOptions,
        certs: Option<TlsCertificates>,
    ) -> Result<SentinelConn, StoreError> {
        let bad = |e: RedisError| StoreError::Unavailable(format!("bad redis sentinel url: {e}"));
        let addrs = target.sentinels.iter().map(|(host, port)| {
            if target.tls {
                ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host.clone(), *port)
            }
        });
        let mut b = SentinelClientBuilder::new(addrs, &target.master, SentinelServerType::Master)
            .map_err(bad)?
            .set_client_to_redis_db(target.db);
        if let Some(user) = &target.username {
            b = b.set_client_to_redis_username(user);
        }
        if let Some(pass) = &target.password {
            b = b.set_client_to_redis_password(pass);
        }
        // The sentinels' own password, when they have one; the URL's
        // credentials are the data nodes' only (a sentinel without a
        // password refuses an AUTH).
        if let Some(pass) = options
            .sentinel_password
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            b = b.set_client_to_sentinel_password(pass);
        }
        if target.tls {
            b = b
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if let Some(certs) = certs {
                b = b
                    .set_client_to_redis_certificates(certs.clone())
                    .set_client_to_sentinel_certificates(certs);
            }
        }
        let client = b.build().map_err(bad)?;
        let ack_timeout_ms = options.replica_ack_timeout.as_millis() as u64;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(
                RESPONSE_TIMEOUT + Duration::from_millis(ack_timeout_ms),
            ));
        Ok(SentinelConn(Arc::new(Shared {
            resolver: tokio::sync::Mutex::new(Resolver {
                client,
                failed: None,
                last: None,
            }),
            primary: Mutex::new(None),
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            config,
            master: target.master,
            db: target.db,
            acks: options.replica_acks,
            ack_timeout_ms,
            shortfalls: Throttle::default(),
        })))
    }

    fn current(&self) -> Option<Arc<Primary>> {
        self.0.primary.lock().expect("primary lock").clone()
    }

    /// The primary: the one known, else the one the sentinels name now.
    async fn primary(&self) -> RedisResult<Arc<Primary>> {
        if let Some(p) = self.current() {
            return Ok(p);
        }
        let mut resolver = self.0.resolver.lock().await;
        if let Some(p) = self.current() {
            return Ok(p);
        }
        if let Some((at, e)) = &resolver.failed {
            if at.elapsed() < RESOLVE_PAUSE {
                return Err(e.clone());
            }
        }
        let found = tokio::time::timeout(RESOLVE_TIMEOUT, self.resolve(&mut resolver.client))
            .await
            .unwrap_or_else(|_| {
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the sentinels did not name a primary for {:?} within {RESOLVE_TIMEOUT:?}",
                        self.0.master
                    ),
                )))
            });
        match found {
            Ok(p) => {
                resolver.failed = None;
                if resolver.last.as_deref() != Some(p.addr.as_str()) {
                    tracing::info!(
                        master = %self.0.master,
                        primary = %p.addr,
                        "store: the sentinels name the Redis primary"
                    );
                    resolver.last = Some(p.addr.clone());
                }
                *self.0.primary.lock().expect("primary lock") = Some(p.clone());
                Ok(p)
            }
            Err(e) => {
                tracing::debug!(master = %self.0.master, error = %e, "store: no Redis primary");
                resolver.failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    async fn resolve(&self, sentinels: &mut SentinelClient) -> RedisResult<Arc<Primary>> {
        let client = sentinels.async_get_client().await?;
        let first = client
            .get_multiplexed_async_connection_with_config(&self.0.config)
            .await?;
        let addr = client.get_connection_info().addr().to_string();
        let (shared, idle) = if self.0.acks == 0 {
            (Some(first), Vec::new())
        } else {
            (None, vec![first])
        };
        Ok(Arc::new(Primary {
            addr,
            named_at: Instant::now(),
            client,
            shared,
            idle: Mutex::new(idle),
        }))
    }

    /// Stops trusting `primary` (if it is still the current one).
    fn forget(&self, primary: &Primary, why: &dyn std::fmt::Display) {
        if self.unset(primary) {
            tracing::warn!(
                master = %self.0.master,
                primary = %primary.addr,
                reason = %why,
                "store: lost the Redis primary; asking the sentinels again"
            );
        }
    }

    /// Makes the next request ask the sentinels again whether `primary` is
    /// still the primary.
    fn recheck(&self, primary: &Primary) {
        if self.unset(primary) {
            tracing::debug!(
                master = %self.0.master,
                primary = %primary.addr,
                "store: too few replica acknowledgements; asking the sentinels again"
            );
        }
    }

    fn unset(&self, primary: &Primary) -> bool {
        let mut current = self.0.primary.lock().expect("primary lock");
        // The same lookup's primary (a later one may name the same address).
        let was = current
            .as_ref()
            .is_some_and(|p| std::ptr::eq(Arc::as_ptr(p), primary));
        if was {
            *current = None;
        }
        was
    }

    /// A connection of the request's own (with replica acks).
    async fn lease(
        &self,
        primary: &Primary,
    ) -> RedisResult<(MultiplexedConnection, OwnedSemaphorePermit)> {
        let permit = self
            .0
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let idle = primary.idle.lock().expect("idle lock").pop();
        let conn = match idle {
            Some(c) => c,
            None => primary
                .client
                .get_multiplexed_async_connection_with_config(&self.0.config)
                .await
                .inspect_err(|e| self.forget(primary, e))?,
        };
        Ok((conn, permit))
    }

    async fn exchange(&self, batch: Batch<'_>) -> RedisResult<Vec<Value>> {
        let primary = self.primary().await?;
        if let Some(shared) = &primary.shared {
            let mut conn = shared.clone();
            let result = match batch {
                Batch::Command(cmd) => conn.req_packed_command(cmd).await.map(|v| vec![v]),
                Batch::Pipeline(p, offset, count) => {
                    conn.req_packed_commands(p, offset, count).await
                }
            };
            return self.check(&primary, result).map(|(values, _)| values);
        }

        let (pipe, offset, count) = self.with_wait(&batch);
        let (mut conn, permit) = self.lease(&primary).await?;
        let result = conn.req_packed_commands(&pipe, 0, pipe.len()).await;
        let result = result.and_then(|values| {
            if values.len() == pipe.len() {
                Ok(values)
            } else {
                Err(RedisError::from((
                    ErrorKind::Client,
                    "a reply short of the commands sent",
                )))
            }
        });
        let (mut values, trusted) = self.check(&primary, result)?;
        let wait = values.pop();
        let acks = self.acknowledged(&primary, wait);
        if trusted && acks != Acks::Refused {
            primary.idle.lock().expect("idle lock").push(conn);
        }
        drop(permit);
        if let Acks::Short(acked) = acks {
            // Done on the primary only: a failover now could lose it, so it
            // is not acknowledged. The caller retries (idempotently).
            return Err(RedisError::from((
                ErrorKind::Client,
                "too few replicas confirmed the write",
                format!(
                    "{acked} of {} within {} ms (store.replica_acks); it may not survive \
                     a failover: retry",
                    self.0.acks, self.0.ack_timeout_ms
                ),
            )));
        }
        if offset + count > values.len() {
            return Err(RedisError::from((
                ErrorKind::Client,
                "more replies asked for than commands sent",
            )));
        }
        Ok(values.drain(offset..offset + count).collect())
    }

    /// The request with `WAIT` behind it, and which replies are the caller's.
    fn with_wait(&self, batch: &Batch<'_>) -> (Pipeline, usize, usize) {
        let mut pipe;
        let wanted = match *batch {
            Batch::Command(cmd) => {
                pipe = Pipeline::with_capacity(2);
                pipe.add_command(cmd.clone());
                (0, 1)
            }
            Batch::Pipeline(p, offset, count) => {
                pipe = Pipeline::with_capacity(p.len() + 3);
                if p.is_transaction() {
                    pipe.add_command(::redis::cmd("MULTI"));
                }
                for c in p.cmd_iter() {
                    pipe.add_command(c.clone());
                }
                if p.is_transaction() {
                    pipe.add_command(::redis::cmd("EXEC"));
                }
                (offset, count)
            }
        };
        pipe.cmd("WAIT").arg(self.0.acks).arg(self.0.ack_timeout_ms);
        (pipe, wanted.0, wanted.1)
    }

    /// Forgets the primary on an error or reply that says it is gone or no
    /// longer one; returns the replies and whether the primary is trusted.
    fn check(
        &self,
        primary: &Primary,
        result: RedisResult<Vec<Value>>,
    ) -> RedisResult<(Vec<Value>, bool)> {
        match result {
            Err(e) => {
                if lost(&e) {
                    self.forget(primary, &e);
                }
                Err(e)
            }
            Ok(values) => {
                let gone = values.iter().find_map(|v| match v {
                    Value::ServerError(e)
                        if matches!(
                            e.kind(),
                            Some(
                                ServerErrorKind::ReadOnly
                                    | ServerErrorKind::BusyLoading
                                    | ServerErrorKind::MasterDown
                            )
                        ) =>
                    {
                        Some(e.clone())
                    }
                    _ => None,
                });
                match gone {
                    Some(e) => {
                        self.forget(primary, &RedisError::from(e));
                        Ok((values, false))
                    }
                    None => Ok((values, true)),
                }
            }
        }
    }

    /// Sorts `WAIT`'s reply.
    fn acknowledged(&self, primary: &Primary, reply: Option<Value>) -> Acks {
        let wanted = i64::from(self.0.acks);
        match reply {
            Some(Value::Int(n)) if n >= wanted => Acks::Enough,
            Some(Value::Int(n)) => {
                self.shortfall(primary, n);
                if primary.named_at.elapsed() >= RECHECK_AFTER {
                    self.recheck(primary);
                }
                Acks::Short(n)
            }
            Some(Value::ServerError(e)) => {
                self.shortfall(primary, 0);
                self.forget(primary, &RedisError::from(e));
                Acks::Refused
            }
            _ => {
                self.shortfall(primary, 0);
                Acks::Short(0)
            }
        }
    }

    fn shortfall(&self, primary: &Primary, acked: i64) {
        metrics::counter!("fsgate_store_replica_ack_shortfall_total").increment(1);
        if let Some(suppressed) = self.0.shortfalls.fire(Instant::now()) {
            tracing::warn!(
                master = %self.0.master,
                primary = %primary.addr,
                acked,
                wanted = self.0.acks,
                timeout_ms = self.0.ack_timeout_ms,
                more_since_last_warning = suppressed,
                "store: fewer replicas than store.replica_acks confirmed a write; answered as unavailable"
            );
        }
    }
}

/// What `WAIT` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acks {
    /// At least `replica_acks` replicas have the write.
    Enough,
    /// Fewer (this many) did within the timeout.
    Short(i64),
    /// The node refused `WAIT` (it is a replica now).
    Refused,
}

/// An error after which the connection, or the node as primary, cannot be
/// trusted.
fn lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::MasterDown
            )
        )
}

/// Lets an event through at most once per [`WARN_EVERY`], counting the ones
/// held back.
#[derive(Default)]
struct Throttle {
    last: Mutex<Option<Instant>>,
    held: AtomicU64,
}

impl Throttle {
    /// `Some(held back since the last one)` when this one goes through.
    fn fire(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().expect("throttle lock");
        match *last {
            Some(at) if now.duration_since(at) < WARN_EVERY => {
                self.held.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.held.swap(0, Ordering::Relaxed))
            }
        }
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut values = self.exchange(Batch::Command(cmd)).await?;
            values.pop().ok_or_else(|| {
                RedisError::from((ErrorKind::Client, "no reply to the command sent"))
            })
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.exchange(Batch::Pipeline(pipeline, offset, count))
                .await
        })
    }

    fn get_db(&self) -> i64 {
        self.0.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_through_per_period() {
        let t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.fire(t0), Some(0));
        assert_eq!(t.fire(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.fire(t0 + Duration::from_secs(2)), None);
        assert_eq!(t.fire(t0 + WARN_EVERY), Some(2));
    }

    #[test]
    fn wait_follows_every_request() {
        let target = parse(false, "s:26379/m").unwrap();
        let mut o = StoreOptions::from("redis+sentinel://s:26379/m");
        o.replica_acks = 2;
        o.replica_ack_timeout = Duration::from_millis(300);
        let conn = SentinelConn::new(target, &o, None).unwrap();
        let get = ::redis::cmd("GET").arg("k").clone();
        let (pipe, offset, count) = conn.with_wait(&Batch::Command(&get));
        assert_eq!((offset, count), (0, 1));
        let packed = String::from_utf8(pipe.get_packed_pipeline()).unwrap();
        assert_eq!(
            packed,
            "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$4\r\nWAIT\r\n$1\r\n2\r\n$3\r\n300\r\n"
        );
        let mut tx = Pipeline::new();
        tx.atomic().cmd("INCR").arg("a").cmd("INCR").arg("b");
        let (pipe, offset, count) = conn.with_wait(&Batch::Pipeline(&tx, 3, 1));
        let packed = String::from_utf8(pipe.get_packed_pipeline()).unwrap();
        let names: Vec<&str> = packed
            .split("\r\n")
            .filter(|w| ["MULTI", "INCR", "EXEC", "WAIT"].contains(w))
            .collect();
        assert_eq!(names, ["MULTI", "INCR", "INCR", "EXEC", "WAIT"]);
        // The caller's reply is EXEC's.
        assert_eq!((offset, count), (3, 1));
    }
}
