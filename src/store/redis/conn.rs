//! The connection to Redis: one server through a self-reconnecting
//! `ConnectionManager`, a Redis Cluster through `cluster_async`, or the
//! primary that Redis Sentinel names (see [`super::sentinel`]), behind one
//! cloneable type; the store URL forms; TLS (`rediss`) with the configured CA
//! bundle and client certificate; and the mapping of client errors to
//! `StoreError`.
//!
//! Owns connecting and error classification only; it must not know any key
//! or script. Connections are lazy: a store opened while Redis is down
//! answers `Unavailable` until Redis is back, then works without being
//! re-created; opening fails only for a malformed URL or an unusable TLS
//! file.

use std::path::Path;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClientBuilder, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    ClientTlsConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, TlsCertificates, Value,
};
use base64::Engine as _;

use super::sentinel::{SentinelConn, SentinelTarget};
use crate::store::{StoreError, StoreOptions};

pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to one server, a cluster, or a Sentinel-managed primary;
/// cheap to clone (multiplexed).
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
    /// The primary the sentinels name, followed through failovers.
    Sentinel(SentinelConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
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
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

/// What a store URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One server: its URL (`redis://…` or `rediss://…`).
    Single(String),
    /// A cluster: one URL per seed node.
    Cluster(Vec<String>),
    /// The primary of a Sentinel-monitored master.
    Sentinel(SentinelTarget),
}

impl Target {
    /// Whether the URL asks for TLS.
    fn tls(&self) -> bool {
        match self {
            Target::Single(url) => url.starts_with("rediss://"),
            Target::Cluster(urls) => urls.iter().all(|u| u.starts_with("rediss://")),
            Target::Sentinel(s) => s.tls,
        }
    }
}

fn bad_url(url: &str, why: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "bad redis store url {:?}: {why}",
        crate::config::model::redact_url(url)
    ))
}

/// What a store URL names: `redis://h:p[/db]` and `rediss://…` are one
/// server; `redis+cluster://h1:p1,h2:p2` (or `rediss+cluster://…`, or a plain
/// `redis://` URL listing several hosts) is a cluster, credentials given on
/// the first host applying to every host;
/// `redis+sentinel://[user:pass@]s1:p1,s2:p2/master[/db]` (or
/// `rediss+sentinel://…`) is the primary the sentinels name for `master`,
/// the credentials being the data nodes'.
pub(crate) fn parse_url(url: &str) -> Result<Target, StoreError> {
    let bad = |why: &str| bad_url(url, why);
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let (base, cluster) = match scheme {
        "redis" | "rediss" => (scheme, false),
        "redis+cluster" => ("redis", true),
        "rediss+cluster" => ("rediss", true),
        "redis+sentinel" | "rediss+sentinel" => {
            return super::sentinel::parse(scheme == "rediss+sentinel", rest)
                .map(Target::Sentinel)
                .map_err(|why| bad(&why));
        }
        _ => {
            return Err(bad(
                "expected redis://, rediss://, redis+cluster:// or redis+sentinel://",
            ))
        }
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
    if cluster || nodes.len() > 1 {
        Ok(Target::Cluster(nodes))
    } else {
        Ok(Target::Single(nodes.into_iter().next().expect("one host")))
    }
}

/// Opens a lazy connection for the store options (never fails because Redis
/// is down; only for a malformed URL or an unusable TLS file).
pub(crate) fn connect(options: &StoreOptions) -> Result<Conn, StoreError> {
    let target = parse_url(&options.url)?;
    let certs = if target.tls() {
        crate::tls::install_crypto_provider();
        tls_certificates(options)?
    } else {
        None
    };
    match target {
        Target::Cluster(nodes) => {
            let mut builder = ClusterClientBuilder::new(nodes)
                .retries(2)
                .min_retry_wait(20)
                .max_retry_wait(500);
            if let Some(certs) = certs {
                builder = builder.certs(certs);
            }
            let client = builder
                .build()
                .map_err(|e| StoreError::Unavailable(format!("bad redis cluster url: {e}")))?;
            let config = ClusterConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT);
            Ok(Conn::Cluster(
                client.get_pending_async_connection_with_config(config),
            ))
        }
        Target::Single(node) => {
            let client = match certs {
                Some(certs) => ::redis::Client::build_with_tls(node.as_str(), certs),
                None => ::redis::Client::open(node.as_str()),
            }
            .map_err(|e| StoreError::Unavailable(format!("bad redis url: {e}")))?;
            let config = ConnectionManagerConfig::new()
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(20))
                .set_max_delay(Duration::from_millis(500))
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT));
            let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
                StoreError::Unavailable(format!("cannot set up redis connection: {e}"))
            })?;
            Ok(Conn::Single(manager))
        }
        Target::Sentinel(target) => Ok(Conn::Sentinel(SentinelConn::new(target, options, certs)?)),
    }
}

/// The CA bundle and client identity of a `rediss` URL, read from the
/// configured files; `None` when neither is configured (the system's roots,
/// no client certificate). A configured CA bundle is trusted besides the
/// system's roots, not instead of them.
fn tls_certificates(options: &StoreOptions) -> Result<Option<TlsCertificates>, StoreError> {
    let file_error = |key: &str, e: crate::tls::TlsFileError| {
        StoreError::Unavailable(format!("store.{key}: {e}"))
    };
    let root_cert = match &options.ca_file {
        None => None,
        Some(ca) => {
            crate::tls::load_certs(ca).map_err(|e| file_error("ca_file", e))?;
            let mut pem = system_roots_pem();
            pem.extend(read(ca, "ca_file")?);
            pem.push(b'\n');
            Some(pem)
        }
    };
    let client_tls = match (&options.client_cert_file, &options.client_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            crate::tls::load_certs(cert).map_err(|e| file_error("client_cert_file", e))?;
            crate::tls::load_key(key).map_err(|e| file_error("client_key_file", e))?;
            crate::tls::check_identity(cert, key).map_err(|e| file_error("client_key_file", e))?;
            Some(ClientTlsConfig {
                client_cert: read(cert, "client_cert_file")?,
                client_key: read(key, "client_key_file")?,
            })
        }
        (Some(_), None) => {
            return Err(StoreError::Unavailable(
                "store.client_key_file is required with store.client_cert_file".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(StoreError::Unavailable(
                "store.client_cert_file is required with store.client_key_file".into(),
            ))
        }
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| {
        StoreError::Unavailable(format!("store.{key}: cannot read {}: {e}", path.display()))
    })
}

/// The system's root certificates as PEM (the redis client takes one PEM
/// bundle, which replaces the system's roots: they go in first).
fn system_roots_pem() -> Vec<u8> {
    let native = rustls_native_certs::load_native_certs();
    let mut pem = Vec::new();
    for cert in native.certs {
        // Only what the client will accept as a trust anchor.
        if rustls::RootCertStore::empty().add(cert.clone()).is_err() {
            continue;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

/// What a client error means for the caller: data that cannot be what we
/// wrote is `Corrupt`; everything else (I/O, timeouts, TLS, a cluster or
/// replica in transition, a server loading, a failover) is `Unavailable`, to
/// retry later.
pub(crate) fn classify(e: RedisError) -> StoreError {
    let corrupt = matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
        || e.code() == Some("WRONGTYPE")
        || e.to_string().contains("WRONGTYPE");
    if corrupt {
        return StoreError::Corrupt(e.to_string());
    }
    match tls_failure(&e) {
        Some(why) => {
            let hint = if why.contains("not valid for name") || why.contains("NotValidForName") {
                "store.url must name a host the server's certificate carries"
            } else if why.contains("UnknownIssuer") {
                "store.ca_file must hold the CA that signed the server's certificate"
            } else if why.contains("CertificateRequired") {
                "the server requires a client certificate: set store.client_cert_file and \
                 store.client_key_file"
            } else {
                "check store.ca_file, store.client_cert_file and store.client_key_file against \
                 the server's tls-* settings"
            };
            StoreError::Unavailable(format!("TLS with Redis failed: {why} ({hint})"))
        }
        None => StoreError::Unavailable(e.to_string()),
    }
}

/// rustls's words for a TLS failure behind a client error, if it is one.
fn tls_failure(e: &RedisError) -> Option<String> {
    if let Some(found) = crate::tls::tls_failure(e) {
        return Some(found.to_string());
    }
    // The async connection reports some handshake failures as text only
    // (no rustls error in the chain); the text is rustls's.
    let text = e.to_string();
    let hints = [
        "invalid peer certificate",
        "received fatal alert",
        "peer is incompatible",
        "CertificateRequired",
        "peer sent no certificates",
    ];
    hints.iter().any(|h| text.contains(h)).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("redis://h:1/2").unwrap(),
            Target::Single("redis://h:1/2".to_string())
        );
        assert_eq!(
            parse_url("redis+cluster://u:p@a:1,b:2").unwrap(),
            Target::Cluster(vec![
                "redis://u:p@a:1".to_string(),
                "redis://u:p@b:2".to_string()
            ])
        );
        assert!(matches!(
            parse_url("redis://a:1,b:2").unwrap(),
            Target::Cluster(_)
        ));
        assert!(parse_url("rediss://h:1").unwrap().tls());
        assert!(parse_url("rediss+cluster://a:1,b:2").unwrap().tls());
        assert!(!parse_url("redis://h:1").unwrap().tls());
        assert!(parse_url("http://a").is_err());
        assert!(parse_url("redis+cluster://a:1,,b:2").is_err());
    }

    #[test]
    fn sentinel_urls() {
        let Target::Sentinel(s) =
            parse_url("redis+sentinel://u:p%40ss@s1:26379, s2:26380/mymaster/3").unwrap()
        else {
            panic!("a sentinel target")
        };
        assert!(!s.tls);
        assert_eq!(
            s.sentinels,
            vec![("s1".to_string(), 26379), ("s2".to_string(), 26380)]
        );
        assert_eq!(s.master, "mymaster");
        assert_eq!(s.db, 3);
        assert_eq!(s.username.as_deref(), Some("u"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));

        let Target::Sentinel(s) = parse_url("rediss+sentinel://:pw@[::1]:26379/m").unwrap() else {
            panic!("a sentinel target")
        };
        assert!(s.tls);
        assert_eq!(s.sentinels, vec![("::1".to_string(), 26379)]);
        assert_eq!((s.master.as_str(), s.db), ("m", 0));
        assert_eq!(s.username, None);
        assert_eq!(s.password.as_deref(), Some("pw"));

        for bad in [
            "redis+sentinel://",
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel://s1/m",
            "redis+sentinel://s1:x/m",
            "redis+sentinel://s1:1,,s2:2/m",
            "redis+sentinel://s1:1/m/x",
            "redis+sentinel://s1:1/m/1/2",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let e = parse_url("redis+sentinel://u:secret@s1/m").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[tokio::test]
    async fn unusable_tls_files_are_named() {
        let mut o = StoreOptions::from("rediss://127.0.0.1:1");
        o.ca_file = Some("/nonexistent/ca.pem".into());
        let Err(e) = connect(&o) else {
            panic!("a missing CA file must be refused")
        };
        assert!(e.to_string().contains("store.ca_file"), "{e}");
        let mut o = StoreOptions::from("rediss://127.0.0.1:1");
        o.client_cert_file = Some("/nonexistent/c.pem".into());
        let Err(e) = connect(&o) else {
            panic!("a lone client certificate must be refused")
        };
        assert!(e.to_string().contains("store.client_key_file"), "{e}");
        // Without files, rediss opens lazily like redis.
        assert!(connect(&StoreOptions::from("rediss://127.0.0.1:1")).is_ok());
    }
}
