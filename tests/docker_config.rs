//! `docker/fsgate.toml` is valid with exactly the environment that
//! `docker/compose.yaml` gives the fsgate service: the variables are parsed
//! out of the compose file (so this test follows it), `${VAR:?…}` and
//! `${VAR:-default}` are resolved from `docker/.env.example`, and the built
//! binary runs `fsgate check-config` with nothing else in its environment.
//!
//! Also `fsgate healthcheck`, the image's HEALTHCHECK command. Docker itself
//! is not run here; this checks the configuration contract only.

use std::process::Command;

#[path = "support/compose.rs"]
mod compose;
use compose::{env_example, interpolate};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `environment:` list of the `fsgate` service in compose.yaml.
fn fsgate_environment() -> Vec<(String, String)> {
    compose::service_environment("fsgate")
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
