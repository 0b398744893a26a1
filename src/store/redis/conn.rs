//! The connection to Redis: one server through a self-reconnecting
//! `ConnectionManager`, or a Redis Cluster through `cluster_async`, behind
//! one cloneable type; the store URL forms; and the mapping of client errors
//! to `StoreError`.
//!
//! Owns connecting and error classification only; it must not know any key
//! or script. Connections are lazy: a store opened while Redis is down
//! answers `Unavailable` until Redis is back, then works without being
//! re-created.

use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClientBuilder, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};

use crate::store::StoreError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to one server or to a cluster; cheap to clone (multiplexed).
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server (or a Sentinel-fronted primary reached by its address).
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The node URLs of a store URL, and whether they form a cluster:
/// `redis://h:p[/db]` and `rediss://…` are one server;
/// `redis+cluster://h1:p1,h2:p2` (or `rediss+cluster://…`, or a plain
/// `redis://` URL listing several hosts) is a cluster. Credentials given on
/// the first host apply to every host.
pub(crate) fn parse_url(url: &str) -> Result<(Vec<String>, bool), StoreError> {
    let bad = |why: &str| StoreError::Unavailable(format!("bad redis store url {url:?}: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let (base, cluster) = match scheme {
        "redis" | "rediss" => (scheme, false),
        "redis+cluster" => ("redis", true),
        "rediss+cluster" => ("rediss", true),
        _ => return Err(bad("expected redis://, rediss:// or redis+cluster://")),
    };
    let hosts: Vec<&str> = rest.split(',').map(str::trim).collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err(bad("empty host"));
    }
    let auth = hosts[0].split_once('@').map(|(a, _)| a);
    let nodes = hosts
        .iter()
        .map(|h| match (auth, h.contains('@')) {
            (Some(a), false) => format!("{base}://{a}@{h}"),
            _ => format!("{base}://{h}"),
        })
        .collect::<Vec<_>>();
    let cluster = cluster || nodes.len() > 1;
    Ok((nodes, cluster))
}

/// Opens a lazy connection for a store URL (never fails because Redis is
/// down; only for a malformed URL).
pub(crate) fn connect(url: &str) -> Result<Conn, StoreError> {
    let (nodes, cluster) = parse_url(url)?;
    if cluster {
        let client = ClusterClientBuilder::new(nodes)
            .retries(2)
            .min_retry_wait(20)
            .max_retry_wait(500)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("bad redis cluster url: {e}")))?;
        let config = ClusterConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        return Ok(Conn::Cluster(
            client.get_pending_async_connection_with_config(config),
        ));
    }
    let client = ::redis::Client::open(nodes[0].as_str())
        .map_err(|e| StoreError::Unavailable(format!("bad redis url: {e}")))?;
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(500))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let manager = ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| StoreError::Unavailable(format!("cannot set up redis connection: {e}")))?;
    Ok(Conn::Single(manager))
}

/// What a client error means for the caller: data that cannot be what we
/// wrote is `Corrupt`; everything else (I/O, timeouts, a cluster or replica
/// in transition, a server loading) is `Unavailable`, to retry later.
pub(crate) fn classify(e: RedisError) -> StoreError {
    let corrupt = matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
        || e.code() == Some("WRONGTYPE")
        || e.to_string().contains("WRONGTYPE");
    if corrupt {
        StoreError::Corrupt(e.to_string())
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("redis://h:1/2").unwrap(),
            (vec!["redis://h:1/2".to_string()], false)
        );
        assert_eq!(
            parse_url("redis+cluster://u:p@a:1,b:2").unwrap(),
            (
                vec!["redis://u:p@a:1".to_string(), "redis://u:p@b:2".to_string()],
                true
            )
        );
        assert!(parse_url("redis://a:1,b:2").unwrap().1);
        assert!(parse_url("http://a").is_err());
        assert!(parse_url("redis+cluster://a:1,,b:2").is_err());
    }
}
