//! `[store]`: the store URL forms (memory, Redis, Cluster, Sentinel), the
//! TLS files that only a `rediss` URL uses, the Sentinel password and the
//! replica acknowledgements. Part of [`super`]'s one pass; it reads no file
//! (that is `config::files`).

use super::{host_port, Config, Problems};

pub(super) fn store(c: &Config, v: &mut Problems) {
    let url = c.store.url.trim();
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    store_url(url, v);
    let tls = scheme.starts_with("rediss");
    for (key, value) in [
        ("store.ca_file", &c.store.ca_file),
        ("store.client_cert_file", &c.store.client_cert_file),
        ("store.client_key_file", &c.store.client_key_file),
    ] {
        if crate::config::file_path(value).is_some() && !tls {
            v.push(
                key,
                "only applies to a TLS store: store.url must be rediss://, rediss+cluster:// \
                 or rediss+sentinel://",
            );
        }
    }
    if c.store.sentinel_password.is_some() && !scheme.ends_with("+sentinel") {
        v.push(
            "store.sentinel_password",
            "only applies to a Sentinel store: store.url must be redis+sentinel:// or \
             rediss+sentinel://",
        );
    }
    if c.store.replica_acks > 0 && c.store.replica_ack_timeout_ms == 0 {
        v.push(
            "store.replica_ack_timeout_ms",
            "must be at least 1 while store.replica_acks is above 0 (Redis WAIT with 0 waits \
             forever); or set store.replica_acks = 0",
        );
    } else if c.store.replica_ack_timeout_ms > 60_000 {
        v.push(
            "store.replica_ack_timeout_ms",
            "must be at most 60000: every write may wait this long for its replicas",
        );
    }
}

fn store_url(url: &str, v: &mut Problems) {
    if url.is_empty() {
        v.push(
            "store.url",
            "is empty; use memory:// (one process) or redis://host:port/db",
        );
        return;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        v.push(
            "store.url",
            "is not a URL; use memory:// (one process) or redis://host:port/db",
        );
        return;
    };
    match scheme.to_ascii_lowercase().as_str() {
        "memory" => {
            if !rest.is_empty() {
                v.push("store.url", "memory:// takes nothing after the scheme");
            }
        }
        "redis" | "rediss" => {
            if rest.is_empty() || rest.starts_with('/') {
                v.push("store.url", "names no Redis host (redis://host:port/db)");
            }
        }
        "redis+cluster" | "rediss+cluster" => {
            if rest
                .split(',')
                .any(|node| host_port(node.trim(), false).is_err())
            {
                v.push(
                    "store.url",
                    "a cluster URL lists host:port nodes (redis+cluster://h1:6379,h2:6379)",
                );
            }
        }
        "redis+sentinel" | "rediss+sentinel" => {
            if let Err(why) = sentinel_url(rest) {
                v.push(
                    "store.url",
                    format!(
                        "{why}; a Sentinel URL lists the sentinels, then the master name \
                         (redis+sentinel://s1:26379,s2:26379/mymaster[/db])"
                    ),
                );
            }
        }
        other => v.push(
            "store.url",
            format!(
                "unknown scheme `{other}`; use memory://, redis://host:port/db, rediss://..., \
                 redis+cluster://host:port,host:port or \
                 redis+sentinel://host:port,host:port/master-name"
            ),
        ),
    }
}

/// What follows `redis+sentinel://`, by the store's own parser of the form;
/// each sentinel's host must also be a valid address or DNS name.
fn sentinel_url(rest: &str) -> Result<(), String> {
    for (host, port) in crate::store::redis::sentinel_url_hosts(rest)? {
        let node = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        host_port(&node, false).map_err(|why| format!("sentinel `{node}`: {why}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{paths, valid};
    use super::super::validate;

    #[test]
    fn store_urls() {
        let mut c = valid();
        for ok in [
            "memory://",
            "redis://127.0.0.1:6379/0",
            "rediss://h:6380",
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
        ] {
            c.store.url = ok.into();
            assert_eq!(validate(&c), vec![], "{ok}");
        }
        for bad in [
            "",
            "memory",
            "mysql://x",
            "redis://",
            "memory://x",
            "redis+unix:///tmp/r.sock",
            "redis+cluster://a:1,b",
        ] {
            c.store.url = bad.into();
            assert_eq!(paths(&c), vec!["store.url"], "{bad}");
        }
    }

    #[test]
    fn sentinel_store_urls() {
        let mut c = valid();
        for ok in [
            "redis+sentinel://10.0.0.1:26379/mymaster",
            "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster/2",
            "rediss+sentinel://s1.example:26379,[::1]:26379/m",
        ] {
            c.store.url = ok.into();
            assert_eq!(validate(&c), vec![], "{ok}");
        }
        for bad in [
            "redis+sentinel://",
            "redis+sentinel://10.0.0.1:26379",
            "redis+sentinel://10.0.0.1:26379/",
            "redis+sentinel://10.0.0.1/mymaster",
            "redis+sentinel://10.0.0.1:26379,,10.0.0.2:26379/m",
            "redis+sentinel://10.0.0.1:26379/m/x",
            "redis+sentinel://10.0.0.1:26379/m/1/2",
            "redis+sentinel://u:SECRET@/m",
        ] {
            c.store.url = bad.into();
            let problems = validate(&c);
            assert_eq!(
                problems.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
                vec!["store.url"],
                "{bad}"
            );
            assert!(!problems[0].message.contains("SECRET"), "{}", problems[0]);
        }
    }

    #[test]
    fn store_tls_sentinel_and_ack_keys() {
        let mut c = valid();
        c.store.url = "redis://127.0.0.1:6379/0".into();
        c.store.ca_file = Some("/etc/ca.pem".into());
        c.store.client_cert_file = Some("/etc/c.pem".into());
        c.store.client_key_file = Some("/etc/c.key".into());
        c.store.sentinel_password = Some("pw".into());
        assert_eq!(
            paths(&c),
            vec![
                "store.ca_file",
                "store.client_cert_file",
                "store.client_key_file",
                "store.sentinel_password"
            ]
        );
        let problems = validate(&c);
        assert!(problems[0].message.contains("rediss://"), "{}", problems[0]);
        c.store.url = "rediss+sentinel://10.0.0.1:26379/m".into();
        assert_eq!(validate(&c), vec![]);
        c.store.url = "rediss://h:6380".into();
        c.store.sentinel_password = None;
        assert_eq!(validate(&c), vec![]);
        // An empty path is no file.
        c.store.url = "redis://h:6379".into();
        c.store.ca_file = Some(" ".into());
        c.store.client_cert_file = None;
        c.store.client_key_file = None;
        assert_eq!(validate(&c), vec![]);

        c.store.replica_acks = 1;
        c.store.replica_ack_timeout_ms = 0;
        assert_eq!(paths(&c), vec!["store.replica_ack_timeout_ms"]);
        c.store.replica_acks = 0;
        assert_eq!(validate(&c), vec![]);
        c.store.replica_ack_timeout_ms = 60_001;
        assert_eq!(paths(&c), vec!["store.replica_ack_timeout_ms"]);
        c.store.replica_ack_timeout_ms = 60_000;
        c.store.replica_acks = 2;
        assert_eq!(validate(&c), vec![]);
    }
}
