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
    let env = resolved(fsgate_environment());
    assert!(env.len() >= 7, "parsed too few variables: {env:?}");
    let (ok, stdout) = check_docker_config(&env);
    assert!(ok, "check-config failed:\n{stdout}");
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

/// Runs `check-config docker/fsgate.toml` with `env` only.
fn check_docker_config(env: &[(String, String)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fsgate"))
        .current_dir(ROOT)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["check-config", "docker/fsgate.toml"])
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn resolved(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let vars = env_example();
    env.into_iter()
        .map(|(k, v)| (k, interpolate(&v, &vars)))
        .collect()
}

#[test]
fn the_sentinel_overlay_is_valid_and_points_at_the_sentinels() {
    let env = resolved(compose::merged_environment(
        "docker/compose.ha.yaml",
        "fsgate",
    ));
    let (ok, text) = check_docker_config(&env);
    assert!(ok, "check-config failed:\n{text}");
    assert!(
        text.contains(
            "redis+sentinel://sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/fsgate/0"
        ),
        "{text}"
    );
}

#[test]
fn the_tls_overlay_is_valid_with_the_certificates_its_script_makes() {
    // make-certs.sh writes beside itself: run a copy in a scratch folder.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("docker-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        format!("{ROOT}/docker/tls/make-certs.sh"),
        dir.join("make-certs.sh"),
    )
    .unwrap();
    let made = Command::new("sh")
        .arg(dir.join("make-certs.sh"))
        .env("DAYS", "2")
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "make-certs.sh failed (is openssl installed?):\n{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // The container's /etc/fsgate/tls is that folder here.
    let env: Vec<(String, String)> = resolved(compose::merged_environment(
        "docker/compose.tls.yaml",
        "fsgate",
    ))
    .into_iter()
    .map(|(k, v)| (k, v.replace("/etc/fsgate/tls", &dir.display().to_string())))
    .collect();
    assert!(
        env.iter().any(|(k, _)| k == "FSGATE__HTTP__TLS_CERT_FILE"),
        "{env:?}"
    );
    let (ok, text) = check_docker_config(&env);
    assert!(ok, "check-config failed:\n{text}");
    let freeswitch = compose::merged_environment("docker/compose.tls.yaml", "freeswitch");
    assert!(
        freeswitch
            .iter()
            .any(|(k, v)| k == "FSGATE_URL" && v.starts_with("https://fsgate:")),
        "{freeswitch:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
