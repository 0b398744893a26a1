//! The configuration file's shape: sections, keys and defaults.
//!
//! The sections and keys (docs/operations.md §2) are a contract with
//! operators and are fixed; keys added later all have defaults, so a file
//! written against the first release is complete. Unknown keys are refused (a typo must not silently
//! become a default). Loading, environment overrides and validation live in
//! the sibling modules; this file only says what a valid file can contain.

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The REST API and the dialplan lookup.
    #[serde(default)]
    pub http: HttpConfig,
    /// Where shared state lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// One block per FreeSWITCH node.
    #[serde(default)]
    pub freeswitch: Vec<NodeConfig>,
    /// Call-control commands.
    #[serde(default)]
    pub control: ControlConfig,
    /// The call table.
    #[serde(default)]
    pub calls: CallsConfig,
    /// Webhook delivery.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// Graceful shutdown.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// The tenants, provisioned here.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
}

/// `[http]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address, `host:port`.
    #[serde(default = "defaults::listen")]
    pub listen: String,
    /// Shared token mod_curl sends to `/v1/dialplan/route`; without one, only
    /// loopback clients may ask.
    #[serde(default)]
    pub dialplan_token: Option<String>,
    /// Largest accepted request body, in bytes.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Without a `dialplan_token`, source addresses (IPs or CIDR blocks) that
    /// may ask `/v1/dialplan/route` besides loopback. Loopback and these
    /// addresses may also use the `dialplan_reserved_connections`.
    #[serde(default)]
    pub dialplan_allow: Vec<String>,
    /// A client that has not sent complete request headers this long after
    /// connecting (or after the first byte of a request on a kept-alive
    /// connection) is disconnected.
    #[serde(default = "defaults::header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// A kept-alive connection with no request for this long is closed.
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// A request body not fully received this long after its headers is
    /// answered 408 and its connection closed; a client that does not take
    /// its response this long after the handler answered is disconnected.
    #[serde(default = "defaults::body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Most connections open at once; past it new connections are answered
    /// 503 `overloaded` (or closed) at once.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Of `max_connections`, how many only loopback and `dialplan_allow`
    /// sources may use (the dialplan's route lookup keeps answering while
    /// other clients hold every other connection).
    #[serde(default = "defaults::dialplan_reserved_connections")]
    pub dialplan_reserved_connections: usize,
    /// Bearer token `/metrics` requires; without one, only loopback clients
    /// may read it.
    #[serde(default)]
    pub metrics_token: Option<String>,
    /// With `tls_key_file`, serve https on `listen` with this PEM certificate
    /// chain (reloaded, with the key, on SIGHUP).
    #[serde(default)]
    pub tls_cert_file: Option<String>,
    /// The PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<String>,
}

/// `[store]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory://` (one process), `redis://host:port/db`, `rediss://…` (TLS),
    /// `redis+cluster://h1:p1,h2:p2`, or
    /// `redis+sentinel://s1:26379,s2:26379/master-name[/db]` (`rediss+…`
    /// for TLS).
    #[serde(default = "defaults::store_url")]
    pub url: String,
    /// A PEM CA bundle trusted, besides the system's roots, for `rediss`.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// With `client_key_file`: the PEM client certificate presented to a
    /// Redis that requires one (`tls-auth-clients yes`).
    #[serde(default)]
    pub client_cert_file: Option<String>,
    /// The PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<String>,
    /// The sentinels' own password (`requirepass` of the sentinels), when it
    /// differs from the data nodes' password given in the URL.
    #[serde(default)]
    pub sentinel_password: Option<String>,
    /// On Sentinel, how many replicas must have a write before it counts as
    /// done (Redis `WAIT`), so that a failover loses no acknowledged write; a
    /// write not confirmed in time fails as unavailable. 0: no waiting.
    #[serde(default = "defaults::replica_acks")]
    pub replica_acks: u32,
    /// How long a write waits for `replica_acks` replicas.
    #[serde(default = "defaults::replica_ack_timeout_ms")]
    pub replica_ack_timeout_ms: u64,
}

/// `[[freeswitch]]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Name used in logs, metrics, webhooks and the call table.
    pub name: String,
    /// mod_event_socket address, `host:port`.
    pub address: String,
    /// mod_event_socket password.
    #[serde(default = "defaults::esl_password")]
    pub password: String,
}

/// `[control]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Extension a `disconnect` transfers the call to.
    #[serde(default = "defaults::disconnect_extension")]
    pub disconnect_extension: String,
    /// Context of that extension.
    #[serde(default = "defaults::disconnect_context")]
    pub disconnect_context: String,
    /// How long `answer` waits for CHANNEL_ANSWER before `timeout`.
    #[serde(default = "defaults::answer_timeout_ms")]
    pub answer_timeout_ms: u64,
    /// How long a `command_uid` stays bound to its operation.
    #[serde(default = "defaults::idempotency_hours")]
    pub idempotency_hours: u64,
}

/// `[calls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsConfig {
    /// How long an ended call stays readable.
    #[serde(default = "defaults::call_retention_minutes")]
    pub retention_minutes: u64,
}

/// `[webhooks]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Per-attempt request timeout.
    #[serde(default = "defaults::webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// How long `GET /v1/events` can replay envelopes.
    #[serde(default = "defaults::events_retention_hours")]
    pub events_retention_hours: u64,
    /// Concurrent deliveries per daemon instance.
    #[serde(default = "defaults::webhook_concurrency")]
    pub concurrency: usize,
    /// A PEM CA bundle trusted, besides the system's roots, for https
    /// receivers (a private CA).
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// `[shutdown]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Longest graceful drain after SIGTERM/SIGINT.
    #[serde(default = "defaults::drain_timeout_ms")]
    pub drain_timeout_ms: u64,
}

/// `[[tenants]]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Tenant id; also the `X-App-ID`.
    pub id: String,
    /// SHA-256 (hex) of each API key (`fsgate hash-key`).
    #[serde(default)]
    pub api_keys_sha256: Vec<String>,
    /// The masked-number pool (E.164).
    #[serde(default)]
    pub masked_numbers: Vec<String>,
    /// Inbound calls to these are parked for call control (E.164).
    #[serde(default)]
    pub control_numbers: Vec<String>,
    /// TTL applied when a session is created without one.
    #[serde(default = "defaults::default_ttl_minutes")]
    pub default_ttl_minutes: u32,
    /// Largest TTL a session may ask for.
    #[serde(default = "defaults::max_ttl_minutes")]
    pub max_ttl_minutes: u32,
    /// Cut a call still up when its session expires (default: let it finish).
    #[serde(default)]
    pub hangup_on_expiry: bool,
    /// Where webhooks go; none means events are only kept for `/v1/events`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Standard Webhooks secret, `whsec_` + base64.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Default trunk (gateway) for outbound legs.
    #[serde(default = "defaults::trunk")]
    pub trunk: String,
    /// Dial-string template; `${trunk}` and `${number}` are replaced.
    #[serde(default = "defaults::dial_string")]
    pub dial_string: String,
}

/// Default values, one function each (serde wants functions).
pub mod defaults {
    pub(crate) fn listen() -> String {
        "127.0.0.1:8080".into()
    }
    pub(crate) fn max_body_bytes() -> usize {
        64 * 1024
    }
    pub(crate) fn header_timeout_ms() -> u64 {
        5_000
    }
    pub(crate) fn idle_timeout_ms() -> u64 {
        60_000
    }
    pub(crate) fn body_timeout_ms() -> u64 {
        10_000
    }
    pub(crate) fn max_connections() -> usize {
        1024
    }
    pub(crate) fn dialplan_reserved_connections() -> usize {
        64
    }
    pub(crate) fn store_url() -> String {
        "memory://".into()
    }
    pub(crate) fn replica_acks() -> u32 {
        1
    }
    pub(crate) fn replica_ack_timeout_ms() -> u64 {
        1_000
    }
    pub(crate) fn esl_password() -> String {
        "ClueCon".into()
    }
    pub(crate) fn disconnect_extension() -> String {
        "fsgate_disconnected".into()
    }
    pub(crate) fn disconnect_context() -> String {
        "fsgate".into()
    }
    pub(crate) fn answer_timeout_ms() -> u64 {
        2000
    }
    pub(crate) fn idempotency_hours() -> u64 {
        24
    }
    pub(crate) fn call_retention_minutes() -> u64 {
        10
    }
    pub(crate) fn webhook_timeout_ms() -> u64 {
        10_000
    }
    pub(crate) fn events_retention_hours() -> u64 {
        72
    }
    pub(crate) fn webhook_concurrency() -> usize {
        16
    }
    pub(crate) fn drain_timeout_ms() -> u64 {
        10_000
    }
    pub(crate) fn default_ttl_minutes() -> u32 {
        60
    }
    pub(crate) fn max_ttl_minutes() -> u32 {
        240
    }
    pub(crate) fn trunk() -> String {
        "carrier".into()
    }
    pub(crate) fn dial_string() -> String {
        "sofia/gateway/${trunk}/${number}".into()
    }
}

macro_rules! default_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                serde_json::from_value(serde_json::json!({})).expect("every key has a default")
            }
        }
    )*};
}
default_from_serde!(
    Config,
    HttpConfig,
    StoreConfig,
    ControlConfig,
    CallsConfig,
    WebhooksConfig,
    ShutdownConfig
);

// --- Debug without secrets ---------------------------------------------------
//
// Configs end up in logs (`{:?}` in a panic, a trace of the loaded config), so
// the derived Debug would leak passwords and tokens. These print `<redacted>`
// instead of secret values; API-key hashes are not secrets but are shortened.

const REDACTED: &str = "<redacted>";

fn redact_opt(v: &Option<String>) -> Option<&'static str> {
    v.as_ref().map(|_| REDACTED)
}

/// A file key's value as a path: `None` when unset or blank (a key set to
/// `""` by an environment override means "none", as if it were absent).
pub fn file_path(value: &Option<String>) -> Option<std::path::PathBuf> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// A store URL with the password of its userinfo replaced.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:{REDACTED}")
            } else {
                REDACTED.to_string()
            };
            format!("{}{}@{}", &url[..scheme_end + 3], masked, &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("dialplan_token", &redact_opt(&self.dialplan_token))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("dialplan_allow", &self.dialplan_allow)
            .field("header_timeout_ms", &self.header_timeout_ms)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("body_timeout_ms", &self.body_timeout_ms)
            .field("max_connections", &self.max_connections)
            .field(
                "dialplan_reserved_connections",
                &self.dialplan_reserved_connections,
            )
            .field("metrics_token", &redact_opt(&self.metrics_token))
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .finish()
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("sentinel_password", &redact_opt(&self.sentinel_password))
            .field("replica_acks", &self.replica_acks)
            .field("replica_ack_timeout_ms", &self.replica_ack_timeout_ms)
            .finish()
    }
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("password", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for TenantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .api_keys_sha256
            .iter()
            .map(|h| format!("{}…", h.chars().take(8).collect::<String>()))
            .collect();
        f.debug_struct("TenantConfig")
            .field("id", &self.id)
            .field("api_keys_sha256", &keys)
            .field("masked_numbers", &self.masked_numbers)
            .field("control_numbers", &self.control_numbers)
            .field("default_ttl_minutes", &self.default_ttl_minutes)
            .field("max_ttl_minutes", &self.max_ttl_minutes)
            .field("hangup_on_expiry", &self.hangup_on_expiry)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &redact_opt(&self.webhook_secret))
            .field("trunk", &self.trunk)
            .field("dial_string", &self.dial_string)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_default_from_their_key_defaults() {
        assert_eq!(HttpConfig::default().listen, "127.0.0.1:8080");
        assert_eq!(HttpConfig::default().header_timeout_ms, 5000);
        assert_eq!(HttpConfig::default().max_connections, 1024);
        assert_eq!(HttpConfig::default().dialplan_reserved_connections, 64);
        assert_eq!(StoreConfig::default().url, "memory://");
        assert_eq!(ControlConfig::default().answer_timeout_ms, 2000);
        assert_eq!(CallsConfig::default().retention_minutes, 10);
        assert!(Config::default().tenants.is_empty());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut config = Config::default();
        config.http.dialplan_token = Some("tok-SECRET".into());
        config.http.metrics_token = Some("metrics-SECRET".into());
        config.store.url = "redis://user:pw-SECRET@127.0.0.1:6379/0".into();
        config.freeswitch.push(NodeConfig {
            name: "fs1".into(),
            address: "127.0.0.1:8021".into(),
            password: "pw-SECRET".into(),
        });
        let mut tenant: TenantConfig =
            serde_json::from_value(serde_json::json!({"id": "acme"})).unwrap();
        tenant.webhook_secret = Some("whsec_SECRET".into());
        config.tenants.push(tenant);
        let text = format!("{config:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(
            text.contains("redis://user:<redacted>@127.0.0.1:6379/0"),
            "{text}"
        );
        assert_eq!(redact_url("redis://:p@h/0"), "redis://:<redacted>@h/0");
        assert_eq!(redact_url("memory://"), "memory://");
    }
}
