//! Validation: every rule a loaded [`Config`] must satisfy, all checked in one
//! pass so that an operator fixes a file in one go.
//!
//! This module owns the meaning of "valid": addresses, URLs, numbers (E.164,
//! unique across all tenants and between the masked and control pools), key
//! hashes, ids, TTLs, the HTTP listener's timeouts and connection limits,
//! tokens, webhook URL and secret, dial strings. Each problem
//! carries the path of the offending value (`tenants[acme].masked_numbers[2]`)
//! and a message that says what to write instead. It never reads files or the
//! environment (that is `load.rs`) and never echoes a secret's value.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;

use super::load::{env_name_key, ConfigProblem};

mod store;
use super::model::Config;
use store::store;

/// Every problem of `config`; empty when it is valid.
pub fn validate(config: &Config) -> Vec<ConfigProblem> {
    let mut v = Problems(Vec::new());
    http(config, &mut v);
    store(config, &mut v);
    nodes(config, &mut v);
    control(config, &mut v);
    webhooks(config, &mut v);
    tenants(config, &mut v);
    v.0
}

struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem::new(path, message));
    }
}

fn http(c: &Config, v: &mut Problems) {
    if let Err(why) = host_port(&c.http.listen, true) {
        v.push(
            "http.listen",
            format!("`{}` is not a listen address: {why}", c.http.listen),
        );
    }
    if c.http.max_body_bytes == 0 {
        v.push("http.max_body_bytes", "must be at least 1");
    }
    token(&c.http.dialplan_token, "http.dialplan_token", v);
    token(&c.http.metrics_token, "http.metrics_token", v);
    for (key, value, default) in [
        ("http.header_timeout_ms", c.http.header_timeout_ms, 5_000),
        ("http.idle_timeout_ms", c.http.idle_timeout_ms, 60_000),
        ("http.body_timeout_ms", c.http.body_timeout_ms, 10_000),
    ] {
        if value == 0 {
            v.push(
                key,
                format!(
                    "must be at least 1 (0 would drop every connection at once; the default \
                     is {default})"
                ),
            );
        }
    }
    if c.http.max_connections == 0 {
        v.push(
            "http.max_connections",
            "must be at least 1 (the default is 1024)",
        );
    } else if c.http.dialplan_reserved_connections >= c.http.max_connections {
        v.push(
            "http.dialplan_reserved_connections",
            format!(
                "{} is not below http.max_connections ({}): the general API would get no \
                 connection at all; reserve fewer (the default is 64 of 1024)",
                c.http.dialplan_reserved_connections, c.http.max_connections
            ),
        );
    }
    for (i, entry) in c.http.dialplan_allow.iter().enumerate() {
        if parse_cidr(entry).is_none() {
            v.push(
                format!("http.dialplan_allow[{i}]"),
                format!(
                    "`{entry}` is not an IP address or CIDR block (e.g. 10.0.0.5 or 10.0.0.0/24)"
                ),
            );
        }
    }
}

/// A shared token travelling in a header (or a URL): set, and visible ASCII.
fn token(value: &Option<String>, key: &str, v: &mut Problems) {
    let Some(token) = value else {
        return;
    };
    if token.trim().is_empty() {
        let without = if key == "http.metrics_token" {
            "to let only loopback clients read /metrics"
        } else {
            "to allow only loopback clients"
        };
        v.push(
            key,
            format!("is empty; set a token, or remove the key {without}"),
        );
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        v.push(
            key,
            "may contain only visible ASCII characters (it travels in a header or a URL)",
        );
    }
}

fn nodes(c: &Config, v: &mut Problems) {
    if c.freeswitch.is_empty() {
        v.push(
            "freeswitch",
            "no FreeSWITCH node is configured; add a [[freeswitch]] block with name and address",
        );
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut addresses: HashMap<&str, usize> = HashMap::new();
    let all_names: Vec<&str> = c.freeswitch.iter().map(|n| n.name.as_str()).collect();
    for (i, n) in c.freeswitch.iter().enumerate() {
        let at = label("freeswitch", i, &all_names);
        if !is_ident(&n.name) {
            v.push(
                format!("{at}.name"),
                format!(
                    "`{}` is not a valid node name: 1 to 64 of A-Z a-z 0-9 _ -",
                    n.name
                ),
            );
        } else if let Some(first) = first_of(&mut names, env_name_key(&n.name), i) {
            v.push(
                format!("{at}.name"),
                format!(
                    "duplicate node name: [[freeswitch]] block #{} is named `{}` too (names \
                     are compared case-insensitively, - and _ alike)",
                    first + 1,
                    c.freeswitch[first].name
                ),
            );
        }
        match host_port(&n.address, false) {
            Err(why) => v.push(
                format!("{at}.address"),
                format!(
                    "`{}` is not a node address: {why} (expected host:port, e.g. 127.0.0.1:8021)",
                    n.address
                ),
            ),
            Ok(()) => {
                if let Some(first) = first_of(&mut addresses, n.address.as_str(), i) {
                    v.push(
                        format!("{at}.address"),
                        format!("same address as {}", label("freeswitch", first, &all_names)),
                    );
                }
            }
        }
        if n.password.is_empty() {
            v.push(format!("{at}.password"), "is empty");
        } else if n.password.chars().any(|ch| ch.is_control()) {
            v.push(
                format!("{at}.password"),
                "contains a control character (line break, tab, ...)",
            );
        }
    }
}

fn control(c: &Config, v: &mut Problems) {
    for (key, value) in [
        (
            "control.disconnect_extension",
            &c.control.disconnect_extension,
        ),
        ("control.disconnect_context", &c.control.disconnect_context),
    ] {
        if value.is_empty() {
            v.push(key, "is empty");
        } else if !value
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "_-.+@".contains(ch))
        {
            v.push(
                key,
                format!("`{value}` may contain only A-Z a-z 0-9 and _ - . + @"),
            );
        }
    }
    if c.control.answer_timeout_ms == 0 {
        v.push(
            "control.answer_timeout_ms",
            "must be at least 1 (the seed's value is 2000)",
        );
    }
    if c.control.idempotency_hours == 0 {
        v.push("control.idempotency_hours", "must be at least 1");
    }
}

fn webhooks(c: &Config, v: &mut Problems) {
    if c.webhooks.timeout_ms == 0 {
        v.push("webhooks.timeout_ms", "must be at least 1");
    }
    if c.webhooks.concurrency == 0 {
        v.push("webhooks.concurrency", "must be at least 1");
    }
}

fn tenants(c: &Config, v: &mut Problems) {
    if c.tenants.is_empty() {
        v.push(
            "tenants",
            "no tenant is configured; add a [[tenants]] block with an id and api_keys_sha256",
        );
    }
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut hashes: HashMap<String, String> = HashMap::new();
    let mut numbers: HashMap<String, String> = HashMap::new();
    let all_ids: Vec<&str> = c.tenants.iter().map(|t| t.id.as_str()).collect();
    for (i, t) in c.tenants.iter().enumerate() {
        let at = label("tenants", i, &all_ids);
        if !is_ident(&t.id) {
            v.push(
                format!("{at}.id"),
                format!(
                    "`{}` is not a valid tenant id: 1 to 64 of A-Z a-z 0-9 _ -",
                    t.id
                ),
            );
        } else if let Some(first) = first_of(&mut ids, env_name_key(&t.id), i) {
            v.push(
                format!("{at}.id"),
                format!(
                    "duplicate tenant id: [[tenants]] block #{} has id `{}` too (ids are \
                     compared case-insensitively, - and _ alike)",
                    first + 1,
                    c.tenants[first].id
                ),
            );
        }

        if t.api_keys_sha256.is_empty() {
            v.push(
                format!("{at}.api_keys_sha256"),
                "the tenant has no API key; add the SHA-256 of one (`fsgate hash-key`)",
            );
        }
        for (k, hash) in t.api_keys_sha256.iter().enumerate() {
            let path = format!("{at}.api_keys_sha256[{k}]");
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                v.push(
                    path,
                    "is not a SHA-256 in hex (64 characters 0-9 a-f); `fsgate hash-key KEY` prints it",
                );
            } else if let Some(first) =
                first_of(&mut hashes, hash.to_ascii_lowercase(), path.clone())
            {
                v.push(
                    path,
                    format!("the same key hash is already at {first}; a key must name one tenant"),
                );
            }
        }

        for (pool, list) in [
            ("masked_numbers", &t.masked_numbers),
            ("control_numbers", &t.control_numbers),
        ] {
            for (n, number) in list.iter().enumerate() {
                let path = format!("{at}.{pool}[{n}]");
                if !is_e164(number) {
                    v.push(
                        path,
                        format!("`{number}` is not an E.164 number (+ then 7 to 15 digits, e.g. +15550100001)"),
                    );
                } else if let Some(first) = first_of(
                    &mut numbers,
                    crate::tenants::normalize_number(number),
                    path.clone(),
                ) {
                    v.push(
                        path,
                        format!(
                            "{number} is already configured at {first} (a number appears \
                             once, in one pool of one tenant)"
                        ),
                    );
                }
            }
        }

        if t.default_ttl_minutes == 0 {
            v.push(format!("{at}.default_ttl_minutes"), "must be at least 1");
        }
        if t.max_ttl_minutes == 0 {
            v.push(format!("{at}.max_ttl_minutes"), "must be at least 1");
        }
        if t.default_ttl_minutes > t.max_ttl_minutes && t.max_ttl_minutes > 0 {
            v.push(
                format!("{at}.default_ttl_minutes"),
                format!(
                    "{} is above max_ttl_minutes ({})",
                    t.default_ttl_minutes, t.max_ttl_minutes
                ),
            );
        }

        if let Some(url) = &t.webhook_url {
            if let Err(why) = http_url(url) {
                v.push(format!("{at}.webhook_url"), why);
            }
            if t.webhook_secret.is_none() {
                v.push(
                    format!("{at}.webhook_secret"),
                    "is missing: webhooks are always signed, set `whsec_` + base64",
                );
            }
        }
        if let Some(secret) = &t.webhook_secret {
            if let Err(why) = webhook_secret(secret) {
                v.push(format!("{at}.webhook_secret"), why);
            }
        }

        if t.trunk.is_empty()
            || !t
                .trunk
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
        {
            v.push(
                format!("{at}.trunk"),
                format!(
                    "`{}` is not a gateway name (1 or more of A-Z a-z 0-9 _ - .)",
                    t.trunk
                ),
            );
        }
        if !t.dial_string.contains("${number}") {
            v.push(
                format!("{at}.dial_string"),
                "has no `${number}`: it would dial the same endpoint for every number",
            );
        }
        if t.dial_string.chars().any(|ch| ch.is_control()) {
            v.push(
                format!("{at}.dial_string"),
                "contains a control character (line break, tab, ...)",
            );
        }
    }
}

/// Records `value` under `key` unless the key is taken; returns what took it.
fn first_of<K: std::hash::Hash + Eq, V: Clone>(
    seen: &mut HashMap<K, V>,
    key: K,
    value: V,
) -> Option<V> {
    match seen.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => Some(e.get().clone()),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(value);
            None
        }
    }
}

/// `section[name]` when the element's name is valid and unique, else
/// `section[index]`.
fn label(section: &str, index: usize, names: &[&str]) -> String {
    let name = names[index];
    let key = env_name_key(name);
    let unique = names.iter().filter(|n| env_name_key(n) == key).count() == 1;
    if is_ident(name) && unique {
        format!("{section}[{name}]")
    } else {
        format!("{section}[{index}]")
    }
}

/// Tenant ids and node names: `[A-Za-z0-9_-]{1,64}`.
pub fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `^\+[1-9]\d{6,14}$`
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// `host:port`: an IP socket address, or a DNS name and a port.
fn host_port(s: &str, port_zero_ok: bool) -> Result<(), String> {
    let port = if let Ok(addr) = s.parse::<SocketAddr>() {
        addr.port()
    } else {
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err("no port".into());
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` is not a port number"))?;
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid_host {
            return Err(format!(
                "`{host}` is not a host name or IP address (IPv6 goes in brackets)"
            ));
        }
        port
    };
    if port == 0 && !port_zero_ok {
        return Err("port 0".into());
    }
    Ok(())
}

fn http_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => {
            Ok(())
        }
        Ok(u) if u.scheme() != "http" && u.scheme() != "https" => Err(format!(
            "`{url}` is not an http(s) URL (scheme `{}`)",
            u.scheme()
        )),
        Ok(_) => Err(format!("`{url}` has no host")),
        Err(e) => Err(format!("`{url}` is not a URL: {e}")),
    }
}

/// `whsec_` + base64 of 24 to 64 bytes (Standard Webhooks).
fn webhook_secret(secret: &str) -> Result<(), String> {
    let Some(b64) = secret.strip_prefix("whsec_") else {
        return Err("must start with `whsec_` followed by base64 (Standard Webhooks)".into());
    };
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(bytes) if (24..=64).contains(&bytes.len()) => Ok(()),
        Ok(bytes) => Err(format!(
            "the base64 after `whsec_` decodes to {} bytes; Standard Webhooks secrets are 24 to 64 bytes",
            bytes.len()
        )),
        Err(_) => Err("the part after `whsec_` is not valid base64".into()),
    }
}

/// An IP address or a CIDR block, as `(network, prefix length)`.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, Some(len.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeConfig, TenantConfig};

    const HASH: &str = "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3";

    fn tenant(id: &str) -> TenantConfig {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "api_keys_sha256": [HASH.replace('a', if id == "acme" { "a" } else { "b" })],
        }))
        .unwrap()
    }

    pub(super) fn valid() -> Config {
        let mut c = Config::default();
        c.freeswitch.push(NodeConfig {
            name: "fs1".into(),
            address: "127.0.0.1:8021".into(),
            password: "ClueCon".into(),
        });
        c.tenants.push(tenant("acme"));
        c
    }

    pub(super) fn paths(c: &Config) -> Vec<String> {
        validate(c).into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn a_minimal_config_is_valid() {
        assert_eq!(validate(&valid()), vec![]);
    }

    #[test]
    fn e164() {
        assert!(is_e164("+15550100001"));
        assert!(is_e164("+1234567"));
        assert!(!is_e164("15550100001"));
        assert!(!is_e164("+05550100001"));
        assert!(!is_e164("+123456"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+1555010000a"));
    }

    #[test]
    fn addresses() {
        assert!(host_port("127.0.0.1:8080", true).is_ok());
        assert!(host_port("[::1]:8080", true).is_ok());
        assert!(host_port("fs-1.example:8021", false).is_ok());
        assert!(host_port("0.0.0.0:0", true).is_ok());
        assert!(host_port("127.0.0.1:0", false).is_err());
        assert!(host_port("127.0.0.1", true).is_err());
        assert!(host_port("bad host:80", true).is_err());
        assert!(host_port("::1:80", true).is_err());
    }

    #[test]
    fn cidrs() {
        assert!(parse_cidr("10.0.0.0/8").is_some());
        assert!(parse_cidr("::1").is_some());
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("nope").is_none());
    }

    #[test]
    fn numbers_must_be_unique_across_tenants_and_pools() {
        let mut c = valid();
        c.tenants[0].masked_numbers = vec!["+15550100001".into(), "+15550100002".into()];
        c.tenants[0].control_numbers = vec!["+15550100002".into()];
        let mut b = tenant("beta");
        b.masked_numbers = vec!["+15550100001".into()];
        c.tenants.push(b);
        let problems = validate(&c);
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "tenants[acme].control_numbers[0]",
                "tenants[beta].masked_numbers[0]"
            ],
            "{problems:?}"
        );
        assert!(problems[1]
            .message
            .contains("tenants[acme].masked_numbers[0]"));
    }

    #[test]
    fn ttl_rules() {
        let mut c = valid();
        c.tenants[0].default_ttl_minutes = 300;
        assert_eq!(paths(&c), vec!["tenants[acme].default_ttl_minutes"]);
        c.tenants[0].default_ttl_minutes = 0;
        c.tenants[0].max_ttl_minutes = 0;
        assert_eq!(
            paths(&c),
            vec![
                "tenants[acme].default_ttl_minutes",
                "tenants[acme].max_ttl_minutes"
            ]
        );
    }

    #[test]
    fn secrets_are_never_echoed() {
        let mut c = valid();
        c.tenants[0].webhook_secret = Some("not-a-secret-format-SECRET".into());
        c.freeswitch[0].password = "pw\nSECRET".into();
        c.http.dialplan_token = Some("tok SECRET".into());
        c.http.metrics_token = Some("metrics\tSECRET".into());
        let problems = validate(&c);
        assert_eq!(problems.len(), 4, "{problems:?}");
        for p in problems {
            assert!(!p.message.contains("SECRET"), "{p}");
        }
    }

    #[test]
    fn listener_limits() {
        let mut c = valid();
        c.http.header_timeout_ms = 0;
        c.http.idle_timeout_ms = 0;
        c.http.body_timeout_ms = 0;
        c.http.dialplan_reserved_connections = 1024;
        c.http.metrics_token = Some(" ".into());
        assert_eq!(
            paths(&c),
            vec![
                "http.metrics_token",
                "http.header_timeout_ms",
                "http.idle_timeout_ms",
                "http.body_timeout_ms",
                "http.dialplan_reserved_connections",
            ]
        );
        let mut c = valid();
        c.http.max_connections = 0;
        c.http.dialplan_reserved_connections = 0;
        assert_eq!(paths(&c), vec!["http.max_connections"]);
        c.http.max_connections = 1;
        assert_eq!(validate(&c), vec![]);
    }

    #[test]
    fn webhook_secrets() {
        assert!(webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(webhook_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(webhook_secret("whsec_c2hvcnQ=").is_err());
        assert!(webhook_secret("whsec_!!!").is_err());
    }
}
