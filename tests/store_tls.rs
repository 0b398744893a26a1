//! The store over TLS (`rediss://`) against a real TLS-only redis-server
//! that requires client certificates (`--tls-auth-clients yes`; certificates
//! made with rcgen): the whole conformance suite runs there through the
//! runner (`rediss_conformance` in tests/store_conformance.rs and the other
//! store suites); here, what must be refused is — no client certificate, a
//! server certificate from a CA not trusted, a URL name the certificate does
//! not carry — each with an error that says it is TLS, and the daemon runs
//! on rediss and serves a session create whose record is in that Redis;
//! and `rediss+sentinel://`: the primary found through a sentinel that only
//! speaks TLS, written to with `WAIT` over TLS. Never mocks Redis.

mod support;

use std::time::Duration;

use fsgate::store::{StoreError, StoreOptions};
use serde_json::json;
use support::redis_tls::{RedisTlsServer, TlsSentinelSet};
use support::stack::{Stack, StackOptions};

/// The store's answer to a PING through `options`: refusals come on the
/// first request (connections are lazy).
async fn ping(options: StoreOptions) -> Result<(), StoreError> {
    let store = fsgate::store::open(options)
        .await
        .expect("a well-formed rediss store opens lazily");
    // The connection manager retries twice; the answer is the same.
    tokio::time::timeout(Duration::from_secs(10), store.ping())
        .await
        .expect("a refusal is answered, not waited on forever")
}

fn unavailable(result: Result<(), StoreError>) -> String {
    match result {
        Err(StoreError::Unavailable(why)) => why,
        other => panic!("expected the store to be unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn with_the_ca_and_the_client_certificate_the_store_answers() {
    let server = RedisTlsServer::start();
    ping(server.options()).await.expect("rediss with mTLS");
    // `localhost` is on the certificate too.
    let mut o = server.options();
    o.url = format!("rediss://localhost:{}", server.port());
    ping(o).await.expect("rediss://localhost");
}

#[tokio::test]
async fn without_a_client_certificate_the_server_refuses_with_a_clear_error() {
    let server = RedisTlsServer::start();
    let mut o = server.options();
    o.client_cert_file = None;
    o.client_key_file = None;
    let why = unavailable(ping(o).await);
    println!("no client certificate: {why}");
    assert!(why.contains("TLS with Redis failed"), "{why}");
    assert!(
        why.contains("CertificateRequired") || why.contains("certificate"),
        "{why}"
    );
    assert!(why.contains("store.client_cert_file"), "{why}");
}

#[tokio::test]
async fn a_server_certificate_from_an_untrusted_ca_is_refused() {
    let server = RedisTlsServer::start();
    let mut o = server.options();
    o.ca_file = Some(server.files.other_ca.clone());
    let why = unavailable(ping(o).await);
    println!("untrusted CA: {why}");
    assert!(why.contains("TLS with Redis failed"), "{why}");
    assert!(why.contains("UnknownIssuer"), "{why}");
    assert!(why.contains("store.ca_file"), "{why}");

    // Without the CA bundle the system's roots do not know it either.
    let mut o = server.options();
    o.ca_file = None;
    let why = unavailable(ping(o).await);
    assert!(why.contains("UnknownIssuer"), "{why}");
}

#[tokio::test]
async fn a_name_the_server_certificate_does_not_carry_is_refused() {
    let server = RedisTlsServer::start();
    let mut o = server.options();
    // 127.0.0.2 is loopback too, but not on the certificate.
    o.url = format!("rediss://127.0.0.2:{}", server.port());
    let why = unavailable(ping(o).await);
    println!("wrong name: {why}");
    assert!(why.contains("TLS with Redis failed"), "{why}");
    assert!(why.contains("not valid for name"), "{why}");
    assert!(why.contains("store.url"), "{why}");
}

#[tokio::test]
async fn unusable_tls_files_fail_the_open_naming_the_key() {
    let server = RedisTlsServer::start();
    let mut o = server.options();
    // The key of another identity: the CA's certificate is not the client's.
    o.client_cert_file = Some(server.files.ca.clone());
    let Err(StoreError::Unavailable(why)) = fsgate::store::open(o).await else {
        panic!("a certificate whose key is not the configured key must be refused")
    };
    assert!(why.contains("store.client_key_file"), "{why}");
    let mut o = server.options();
    o.ca_file = Some(server.files.client_key.clone());
    let Err(StoreError::Unavailable(why)) = fsgate::store::open(o).await else {
        panic!("a CA file without a certificate must be refused")
    };
    assert!(why.contains("store.ca_file"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_on_rediss_and_serves_a_session_create() {
    let server = RedisTlsServer::start();
    let (url, ca, cert, key) = (
        server.url(),
        server.files.ca.clone(),
        server.files.client_cert.clone(),
        server.files.client_key.clone(),
    );
    let path = |p: std::path::PathBuf| Some(p.to_str().unwrap().to_owned());
    let stack = Stack::start(StackOptions {
        tweak: Some(Box::new(move |c| {
            c.store.url = url;
            c.store.ca_file = path(ca);
            c.store.client_cert_file = path(cert);
            c.store.client_key_file = path(key);
        })),
        ..Default::default()
    })
    .await;
    let (status, session) = stack
        .post_json(
            "/v1/sessions",
            json!({"party_a": "+15557770001", "party_b": "+15557770002"}),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    let sref = session["ref"].as_str().unwrap();

    // The record is in that Redis, read back over TLS.
    let store = fsgate::store::open(server.options()).await.unwrap();
    let stored = store
        .get_session("acme", sref)
        .await
        .unwrap()
        .expect("the session is in the TLS Redis");
    assert_eq!(
        Some(stored.masked_number.as_str()),
        session["masked_number"].as_str()
    );
    let (status, ready) = stack.get_json("/readyz").await;
    assert_eq!(status, 200, "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_is_found_through_sentinels_over_tls() {
    let set = tokio::task::block_in_place(TlsSentinelSet::start);
    let store = fsgate::store::open(set.options()).await.unwrap();
    let numbers = vec!["+15550100001".to_owned(), "+15550100002".to_owned()];
    assert!(store.sync_pool("acme", &numbers).await.unwrap());
    let now = chrono::Utc::now();
    let created = store
        .create_session(fsgate::store::NewSession {
            tenant: "acme".into(),
            session_ref: "ses_tls".into(),
            party_a: "+15557770001".into(),
            party_b: "+15557770002".into(),
            ttl_minutes: 10,
            metadata: None,
            created_at: now,
            expires_at: now + chrono::Duration::minutes(10),
        })
        .await
        .unwrap();
    let read = store.get_session("acme", "ses_tls").await.unwrap().unwrap();
    assert_eq!(read.masked_number, created.masked_number);

    // The sentinel's certificate is checked too.
    let mut o = set.options();
    o.ca_file = None;
    let why = unavailable(ping(o).await);
    assert!(why.contains("UnknownIssuer"), "{why}");
}
