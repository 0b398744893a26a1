//! [`StoreOptions`]: what opening a store needs from `[store]` — the URL, the
//! TLS files for `rediss`, the sentinels' password and the replica
//! acknowledgements asked of every write on Sentinel — built from the
//! configuration or from a bare URL (tests, benches, tools).
//!
//! Owns the conversions and their defaults only (the defaults are the
//! configuration's). It must not check anything (that is
//! `config::validate` and `config::files`) nor read a file or open a
//! connection (that is the Redis connection module).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::model::{defaults, file_path as path, redact_url, StoreConfig};

/// How to open a store. Every `[store]` key a backend may need; a bare URL
/// converts with the configuration's defaults for the rest.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// `memory://`, `redis://…`, `rediss://…`, `redis+cluster://…`,
    /// `redis+sentinel://…` (see `StoreConfig::url`).
    pub url: String,
    /// A PEM CA bundle trusted besides the system's roots (`rediss`).
    pub ca_file: Option<PathBuf>,
    /// The client certificate presented for mutual TLS (`rediss`).
    pub client_cert_file: Option<PathBuf>,
    /// The private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// The sentinels' own password, when they have one (the URL's
    /// credentials are the data nodes').
    pub sentinel_password: Option<String>,
    /// On Sentinel, replicas that must acknowledge each write (`WAIT`); 0
    /// sends no `WAIT`.
    pub replica_acks: u32,
    /// How long each `WAIT` may take.
    pub replica_ack_timeout: Duration,
}

impl From<&StoreConfig> for StoreOptions {
    fn from(c: &StoreConfig) -> StoreOptions {
        StoreOptions {
            url: c.url.trim().to_owned(),
            ca_file: path(&c.ca_file),
            client_cert_file: path(&c.client_cert_file),
            client_key_file: path(&c.client_key_file),
            sentinel_password: c.sentinel_password.clone(),
            replica_acks: c.replica_acks,
            replica_ack_timeout: Duration::from_millis(c.replica_ack_timeout_ms),
        }
    }
}

impl From<&str> for StoreOptions {
    fn from(url: &str) -> StoreOptions {
        StoreOptions {
            url: url.trim().to_owned(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            sentinel_password: None,
            replica_acks: defaults::replica_acks(),
            replica_ack_timeout: Duration::from_millis(defaults::replica_ack_timeout_ms()),
        }
    }
}

impl From<&String> for StoreOptions {
    fn from(url: &String) -> StoreOptions {
        StoreOptions::from(url.as_str())
    }
}

impl From<String> for StoreOptions {
    fn from(url: String) -> StoreOptions {
        StoreOptions::from(url.as_str())
    }
}

impl From<&StoreOptions> for StoreOptions {
    fn from(o: &StoreOptions) -> StoreOptions {
        o.clone()
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &redact_url(&self.url))
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .field("replica_acks", &self.replica_acks)
            .field("replica_ack_timeout", &self.replica_ack_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_config_and_from_a_url() {
        let mut c = StoreConfig {
            url: " redis+sentinel://a:1/m ".into(),
            ..StoreConfig::default()
        };
        c.ca_file = Some("/etc/ca.pem".into());
        c.client_cert_file = Some("  ".into());
        c.replica_acks = 2;
        c.replica_ack_timeout_ms = 250;
        c.sentinel_password = Some("hush".into());
        let o = StoreOptions::from(&c);
        assert_eq!(o.url, "redis+sentinel://a:1/m");
        assert_eq!(o.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(o.client_cert_file, None);
        assert_eq!(o.replica_acks, 2);
        assert_eq!(o.replica_ack_timeout, Duration::from_millis(250));
        assert!(!format!("{o:?}").contains("hush"));

        let d = StoreOptions::from("redis://h:1");
        assert_eq!(d.replica_acks, StoreConfig::default().replica_acks);
        assert_eq!(d, StoreOptions::from(String::from("redis://h:1")));
    }
}
