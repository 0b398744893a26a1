//! `docker/fsgate.toml` is valid with exactly the environment that
//! `docker/compose.yaml` gives the fsgate service: the variables are parsed
//! out of the compose file (so this test follows it), `${VAR:?…}` and
//! `${VAR:-default}` are resolved from `docker/.env.example`, and the built
//! binary runs `fsgate check-config` with nothing else in its environment.
//!
//! Also `fsgate healthcheck`, the image's HEALTHCHECK command. Docker itself
//! is not run here; this checks the configuration contract only.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `KEY=value` lines of `docker/.env.example`.
fn env_example() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docker/.env.example")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Resolves compose's `${NAME}`, `${NAME:?msg}`, `${NAME:-default}`.
fn interpolate(value: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').expect("unclosed ${ in compose.yaml");
        let expr = &after[..end];
        let (name, default) = if let Some((n, _msg)) = expr.split_once(":?") {
            (n, None)
        } else if let Some((n, d)) = expr.split_once(":-") {
            (n, Some(d))
        } else {
            (expr, None)
        };
        let resolved = vars
            .get(name)
            .cloned()
            .or_else(|| default.map(str::to_owned))
            .unwrap_or_else(|| panic!("{name} is neither in .env.example nor defaulted"));
        out.push_str(&resolved);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The `environment:` list of the `fsgate` service in compose.yaml.
fn fsgate_environment() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docker/compose.yaml")).unwrap();
    let mut in_fsgate = false;
    let mut in_env = false;
    let mut env = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 2 && trimmed.ends_with(':') {
            in_fsgate = trimmed == "fsgate:";
            in_env = false;
            continue;
        }
        if indent == 0 {
            in_fsgate = false;
            in_env = false;
            continue;
        }
        if !in_fsgate {
            continue;
        }
        if indent == 4 {
            in_env = trimmed == "environment:";
            continue;
        }
        if in_env {
            let item = trimmed
                .strip_prefix("- ")
                .expect("environment is a list of NAME=value");
            let (k, v) = item.split_once('=').expect("NAME=value");
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    env
}

#[test]
fn compose_sets_the_documented_overrides() {
    let env = fsgate_environment();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("FSGATE__STORE__URL"), Some("redis://redis:6379/0"));
    assert_eq!(
        get("FSGATE__FREESWITCH__FS1__ADDRESS"),
        Some("freeswitch:8021")
    );
    for secret in [
        "FSGATE__FREESWITCH__FS1__PASSWORD",
        "FSGATE__TENANTS__ACME__WEBHOOK_SECRET",
        "FSGATE__HTTP__DIALPLAN_TOKEN",
    ] {
        let v = get(secret).unwrap_or_else(|| panic!("{secret} not set in compose.yaml"));
        assert!(
            v.starts_with("${"),
            "{secret} must come from .env, not the file"
        );
    }
}

#[test]
fn docker_config_is_valid_with_the_compose_environment() {
    let vars = env_example();
    let env: Vec<(String, String)> = fsgate_environment()
        .into_iter()
        .map(|(k, v)| {
            let v = interpolate(&v, &vars);
            (k, v)
        })
        .collect();
    assert!(env.len() >= 7, "parsed too few variables: {env:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_fsgate"))
        .current_dir(ROOT)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["check-config", "docker/fsgate.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check-config failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("docker/fsgate.toml: OK"), "{stdout}");
    assert!(stdout.contains("store: redis://redis:6379/0"), "{stdout}");
    assert!(
        stdout.contains("dialplan lookup needs the token"),
        "{stdout}"
    );
    assert!(stdout.contains("acme: 1 key"), "{stdout}");
}

#[test]
fn the_file_alone_is_not_enough() {
    // Without compose's variables the tenant has no API key and no webhook
    // secret: the secrets really come from the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_fsgate"))
        .current_dir(ROOT)
        .env_clear()
        .args(["check-config", "--ignore-env", "docker/fsgate.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("api_keys_sha256"), "{stderr}");
}

/// Answers one HTTP request with `status_line` on a free loopback port.
fn one_shot_server(status_line: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 {status_line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    format!("http://{addr}/healthz")
}

#[test]
fn the_image_healthcheck_command_follows_the_status() {
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_fsgate"))
            .args(["healthcheck", "--url", url, "--timeout-ms", "2000"])
            .output()
            .unwrap()
    };
    assert!(run(&one_shot_server("200 OK")).status.success());
    let down = run(&one_shot_server("503 Service Unavailable"));
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("503"));
    // Nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/healthz", listener.local_addr().unwrap());
    drop(listener);
    assert_eq!(run(&closed).status.code(), Some(1));
}
