//! TLS at fsgate's HTTP edges, with certificates each test makes: webhooks
//! to https receivers (trusted through `webhooks.ca_file`, refused and
//! counted when the certificate is not trusted or not for the host), the
//! https listener of `fsgate serve` (the API over TLS, its certificate
//! reloaded on SIGHUP, a bad renewal keeping the old one), and
//! `check-config` explaining certificate, key and CA files that cannot be
//! used.

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fsgate::config::Config;
use serde_json::json;
use support::certs::{self, TestCa};
use support::receiver::Receiver;
use support::stack::{Stack, StackOptions, SECRET};

const WAIT: Duration = Duration::from_secs(10);

/// Creates a session for `tenant` and completes it (its
/// `session.completed`).
async fn session_round(s: &Stack, tenant: &str, a: &str, b: &str) -> String {
    let r = s
        .as_tenant(tenant, reqwest::Method::POST, "/v1/sessions")
        .json(&json!({"party_a": a, "party_b": b, "ttl_minutes": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    let session = v["ref"].as_str().unwrap().to_owned();
    let r = s
        .as_tenant(
            tenant,
            reqwest::Method::POST,
            &format!("/v1/sessions/{session}/complete"),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    session
}

/// `GET url` with `client`, as text.
async fn text_of(client: &reqwest::Client, url: String) -> String {
    let response = client.get(url).send().await.unwrap();
    response.text().await.unwrap()
}

/// A sample of the daemon's `/metrics` (from loopback, no token needed).
async fn metric(s: &Stack, line_prefix: &str) -> f64 {
    let text = text_of(&s.http, format!("{}/metrics", s.base)).await;
    sample(&text, line_prefix)
}

fn sample(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_receiver_gets_every_webhook_signed() {
    let ca = TestCa::new("webhooks");
    let receiver_cert = ca.server("receiver", &["localhost"]);
    let https = Receiver::start_tls(certs::server_config(&receiver_cert)).await;
    let (url, ca_file) = (https.url(), ca.ca_file());
    assert!(url.starts_with("https://localhost:"), "{url}");
    let s = Stack::start(StackOptions {
        tweak: Some(Box::new(move |c: &mut Config| {
            c.webhooks.ca_file = Some(ca_file.display().to_string());
            for t in &mut c.tenants {
                t.webhook_url = Some(url.clone());
            }
        })),
        ..Default::default()
    })
    .await;

    let mut refs = Vec::new();
    for i in 0..3 {
        let a = format!("+1555777{i:04}");
        let b = format!("+1555778{i:04}");
        refs.push(session_round(&s, "acme", &a, &b).await);
    }
    for r in &refs {
        https
            .wait_for("session.completed", WAIT, |d| d.data()["ref"] == r.as_str())
            .await;
    }
    // Every envelope of acme's event log arrived, signed.
    let (status, events) = s.get_json("/v1/events?limit=100").await;
    assert_eq!(status, 200, "{events}");
    let emitted: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(emitted.len(), 3, "{events}");
    let all = https.all();
    let mut received: Vec<&str> = all.iter().map(|d| d.header("webhook-id")).collect();
    received.sort_unstable();
    let mut expected = emitted.clone();
    expected.sort_unstable();
    assert_eq!(received, expected);
    for d in &all {
        d.assert_signed(SECRET);
    }
    assert!(s.receiver.all().is_empty(), "nothing went over plain http");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_or_misnamed_receiver_certificate_is_refused_and_counted() {
    let trusted = TestCa::new("trusted");
    let stranger = TestCa::new("stranger");
    // acme's receiver: a certificate from a CA fsgate does not trust.
    let untrusted = Receiver::start_tls(certs::server_config(
        &stranger.server("receiver", &["localhost"]),
    ))
    .await;
    // globex's receiver: a trusted CA, but for another host.
    let misnamed = Receiver::start_tls(certs::server_config(
        &trusted.server("elsewhere", &["elsewhere.example"]),
    ))
    .await;
    let (acme_url, globex_url) = (untrusted.url(), misnamed.url());
    let ca_file = trusted.ca_file();
    let s = Stack::start(StackOptions {
        tweak: Some(Box::new(move |c: &mut Config| {
            c.webhooks.ca_file = Some(ca_file.display().to_string());
            c.tenants[0].webhook_url = Some(acme_url);
            c.tenants[1].webhook_url = Some(globex_url);
        })),
        ..Default::default()
    })
    .await;
    session_round(&s, "acme", "+15557770001", "+15557770002").await;
    session_round(&s, "globex", "+15557770003", "+15557770004").await;

    let deadline = Instant::now() + WAIT;
    let untrusted_line = r#"fsgate_webhook_tls_failures_total{reason="untrusted_certificate"}"#;
    let misnamed_line = r#"fsgate_webhook_tls_failures_total{reason="wrong_host"}"#;
    while metric(&s, untrusted_line).await < 1.0 || metric(&s, misnamed_line).await < 1.0 {
        if Instant::now() > deadline {
            let text = text_of(&s.http, format!("{}/metrics", s.base)).await;
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("webhook")).collect();
            panic!("both refusals are counted by reason: {lines:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        untrusted.all().is_empty(),
        "no request crossed a refused TLS"
    );
    assert!(
        misnamed.all().is_empty(),
        "no request crossed a refused TLS"
    );
    // Refused deliveries stay queued for a retry (a fixed certificate, a
    // corrected ca_file): nothing was dead-lettered.
    assert_eq!(metric(&s, "fsgate_webhooks_dead_total").await, 0.0);
}

/// The simulator asks an https `fsgate_url` the way the real switch does
/// (`real_switch::route_lookup_over_https_verifies_the_daemon_certificate`):
/// the shipped dialplan's `secure` refuses a daemon whose CA is not the
/// switch's (NORMAL_TEMPORARY_FAILURE), and routes once `cacert.pem` is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_verifies_an_https_route_lookup_like_the_real_switch() {
    let ca = TestCa::new("sim-https");
    let cert = ca.server("fsgate", &["localhost"]);
    let certs_dir = ca.dir.join("switch-certs");
    std::fs::create_dir_all(&certs_dir).unwrap();
    let s = Stack::start(StackOptions {
        tls: Some(support::stack::StackTls {
            cert_file: cert.cert_file.clone(),
            key_file: cert.key_file.clone(),
            ca_file: ca.ca_file(),
            certs_dir: certs_dir.clone(),
        }),
        ..Default::default()
    })
    .await;
    assert!(s.base.starts_with("https://localhost:"), "{}", s.base);
    let (status, v) = s
        .post_json(
            "/v1/sessions",
            json!({"party_a": "+15557770001", "party_b": "+15557770002"}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (masked, session) = (
        v["masked_number"].as_str().unwrap().to_owned(),
        v["ref"].as_str().unwrap().to_owned(),
    );
    let store = s.daemon().state().store.clone();
    let ended_with = |uuid: String| {
        let store = store.clone();
        async move {
            let deadline = Instant::now() + WAIT;
            loop {
                if let Some(call) = store.get_call(&uuid).await.unwrap() {
                    if call.ended_at.is_some() {
                        return call.hangup_cause;
                    }
                }
                assert!(Instant::now() < deadline, "{uuid} never ended");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    let refused = s.sim.switch().place_inbound("+15557770001", &masked);
    assert_eq!(
        ended_with(refused).await.as_deref(),
        Some("NORMAL_TEMPORARY_FAILURE"),
        "an unverified daemon is not asked"
    );
    std::fs::copy(ca.ca_file(), certs_dir.join("cacert.pem")).unwrap();
    s.sim.switch().place_inbound("+15557770001", &masked);
    s.receiver
        .wait_for("session.active", WAIT, |d| {
            d.data()["ref"] == session.as_str()
        })
        .await;
}

// --- the https listener ---------------------------------------------------------------

/// `fsgate serve` with `http.tls_*` set; SIGKILLed on drop.
struct Server {
    child: Child,
    port: u16,
    _config: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A configuration `serve` accepts: one node (never reached here) and one
/// tenant.
fn base_config() -> Config {
    let mut config = Config::default();
    config.freeswitch = vec![fsgate::config::NodeConfig {
        name: "fs1".into(),
        address: "127.0.0.1:9".into(),
        password: "ClueCon".into(),
    }];
    let mut tenant: fsgate::config::TenantConfig =
        serde_json::from_value(json!({"id": "acme"})).unwrap();
    tenant.api_keys_sha256 = vec![fsgate::tenants::hash_key("acme-key")];
    config.tenants = vec![tenant];
    config
}

impl Server {
    fn spawn(dir: &Path, cert: &Path, key: &Path) -> Server {
        let port = free_port();
        let mut config = base_config();
        config.http.listen = format!("127.0.0.1:{port}");
        config.http.tls_cert_file = Some(cert.display().to_string());
        config.http.tls_key_file = Some(key.display().to_string());
        let path = dir.join("fsgate.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fsgate"))
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server {
            child,
            port,
            _config: path,
        }
    }

    /// The certificate the listener presents now (DER), once it accepts.
    async fn presented(&self, ca: &TestCa) -> Vec<u8> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(certs::client_config(ca)));
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                if let Ok(tls) = connector.connect(name, tcp).await {
                    let (_, session) = tls.get_ref();
                    return session.peer_certificates().unwrap()[0].to_vec();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the https listener never accepted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the listener presents `der`.
    async fn wait_presenting(&self, ca: &TestCa, der: &[u8]) {
        let deadline = Instant::now() + WAIT;
        while self.presented(ca).await != der {
            assert!(
                Instant::now() < deadline,
                "the new certificate was never served"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn hangup(&self) {
        let rc = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(rc.success());
    }

    fn client(&self, ca: &TestCa) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(certs::client_config(ca))
            .build()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_listener_serves_the_api_and_reloads_its_certificate_on_sighup() {
    let ca = TestCa::new("listener");
    let first = ca.server("api", &["localhost", "127.0.0.1"]);
    let server = Server::spawn(&ca.dir, &first.cert_file, &first.key_file);
    assert_eq!(server.presented(&ca).await, first.der);

    let https = server.client(&ca);
    let r = https.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = https.get(server.url("/v1/sessions")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the API itself answers over TLS");
    // The image's HEALTHCHECK over https: with the CA, and refused without.
    let healthcheck = |ca_file: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fsgate"));
        cmd.args(["healthcheck", "--url", &server.url("/healthz")]);
        if let Some(ca) = ca_file {
            cmd.arg("--ca-file").arg(ca);
        }
        cmd.output().unwrap()
    };
    assert!(healthcheck(Some(&ca.ca_file())).status.success());
    let untrusted = healthcheck(None);
    assert_eq!(untrusted.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", server.port))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain http is not served on the https port"
    );

    // A renewal: new files in place, then SIGHUP; the kept-alive client
    // goes on working and new connections get the new certificate.
    let renewed = ca.server("renewed", &["localhost", "127.0.0.1"]);
    certs::write(
        &first.cert_file,
        &std::fs::read_to_string(&renewed.cert_file).unwrap(),
    );
    certs::write(
        &first.key_file,
        &std::fs::read_to_string(&renewed.key_file).unwrap(),
    );
    server.hangup();
    server.wait_presenting(&ca, &renewed.der).await;
    let r = https.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // A broken renewal (a key that is not the certificate's): the reload
    // fails, is counted, and the certificate in use stays.
    let other = ca.server("other", &["localhost"]);
    certs::write(
        &first.key_file,
        &std::fs::read_to_string(&other.key_file).unwrap(),
    );
    server.hangup();
    let failed = r#"fsgate_http_tls_reloads_total{result="failed"}"#;
    let deadline = Instant::now() + WAIT;
    loop {
        let text = text_of(&server.client(&ca), server.url("/metrics")).await;
        if sample(&text, failed) >= 1.0 {
            assert_eq!(
                sample(&text, r#"fsgate_http_tls_reloads_total{result="ok"}"#),
                1.0
            );
            break;
        }
        assert!(Instant::now() < deadline, "the failed reload is counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.presented(&ca).await, renewed.der);
}

// --- check-config ---------------------------------------------------------------------

#[test]
fn check_config_explains_certificate_key_and_ca_files_it_cannot_use() {
    let ca = TestCa::new("check");
    let api = ca.server("api", &["localhost"]);
    let other = ca.server("other", &["localhost"]);
    let junk = ca.dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let missing = ca.dir.join("missing.pem");

    let mut config = base_config();
    // A key that belongs to another certificate.
    config.http.tls_cert_file = Some(api.cert_file.display().to_string());
    config.http.tls_key_file = Some(other.key_file.display().to_string());
    // A CA bundle that is not PEM.
    config.webhooks.ca_file = Some(junk.display().to_string());
    // A path that does not exist, and a "key" that is a directory.
    config.store.url = "rediss://127.0.0.1:6380/0".into();
    config.store.ca_file = Some(missing.display().to_string());
    config.store.client_cert_file = Some(api.cert_file.display().to_string());
    config.store.client_key_file = Some(ca.dir.display().to_string());
    let path = ca.dir.join("fsgate.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();

    for subcommand in [&["check-config"][..], &["serve", "--config"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_fsgate"))
            .args(subcommand)
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{subcommand:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for needle in [
            "4 problems".to_owned(),
            format!(
                "http.tls_key_file: the key in {} does not belong to the certificate in {}",
                other.key_file.display(),
                api.cert_file.display()
            ),
            format!(
                "webhooks.ca_file: {} holds no PEM certificate",
                junk.display()
            ),
            format!(
                "store.ca_file: cannot read {}: No such file or directory",
                missing.display()
            ),
            format!("store.client_key_file: cannot read {}", ca.dir.display()),
        ] {
            assert!(
                stderr.contains(&needle),
                "{subcommand:?}: {needle}\n{stderr}"
            );
        }
    }
}
