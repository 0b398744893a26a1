//! The hardened HTTP listener against the real daemon (`tests/support/stack.rs`):
//! header-read and idle keep-alive timeouts, the body timeout (408), early 413
//! on an oversized `Content-Length`, the connection cap and the reserve that
//! keeps `/healthz` and the dialplan's route lookup answering while slow
//! clients hold every general connection, and `/metrics` behind its token or
//! loopback.
//!
//! Clients speak raw HTTP/1.1 over TCP where the point is what happens on the
//! wire. "Closed" means a read returned 0 or an error, waited for with a
//! generous deadline. Clients that must not be loopback (which may use the
//! reserve) connect from this machine's first non-loopback IPv4 address to
//! the daemon's 127.0.0.1 port; the tests need one (see TESTING.md).
//! Connection counts stay in the hundreds: the machine has 2 cores and every
//! connection costs a file descriptor on both ends in this one process.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use support::stack::{Stack, StackOptions};

const A: &str = "+15557770001";
const B: &str = "+15557770002";

async fn stack_with(tweak: impl FnOnce(&mut fsgate::config::Config) + Send + 'static) -> Stack {
    Stack::start(StackOptions {
        tweak: Some(Box::new(tweak)),
        ..Default::default()
    })
    .await
}

/// This machine's first IPv4 address that is not loopback (nor link-local).
fn non_loopback_ipv4() -> IpAddr {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below with freeifaddrs; every
    // pointer is checked for null before it is read, and an AF_INET address
    // is a sockaddr_in.
    unsafe {
        assert_eq!(libc::getifaddrs(&mut list), 0, "getifaddrs failed");
        let mut found = None;
        let mut cur = list;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified() {
                    found = Some(ip);
                    break;
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
        IpAddr::V4(found.expect(
            "these tests need a non-loopback IPv4 address on this machine, to connect from \
             an address that may not use the dialplan's reserved connections",
        ))
    }
}

/// A TCP connection to `to`, from `from` when given.
async fn connect(from: Option<IpAddr>, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    socket.connect(to).await.unwrap()
}

/// Reads until the peer closes (a read returns 0 or an error) or `limit`
/// passes: what arrived, and whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

/// One response read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn parse(bytes: &[u8]) -> Raw {
        let text = String::from_utf8_lossy(bytes).to_string();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete response in {text:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        Raw {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    /// Asserts the body is exactly the error envelope with `code`.
    fn assert_envelope(&self, code: &str) -> Value {
        assert!(
            self.head.contains("content-type: application/json"),
            "{}",
            self.head
        );
        let v = self.json();
        let err = v["error"].as_object().expect("an error object");
        let mut keys: Vec<&str> = err.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["code", "field", "message"], "{v}");
        assert_eq!(err["code"], code, "{v}");
        v
    }
}

/// Reads one response (up to the end of its `Content-Length` body) without
/// waiting for the connection to close.
async fn read_response(stream: &mut TcpStream, limit: Duration) -> Raw {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    tokio::time::timeout(limit, async {
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before a whole response: {out:?}");
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    return;
                }
            }
        }
    })
    .await
    .expect("a response in time");
    Raw::parse(&out)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: fsgate\r\n\r\n")
}

// --- header and idle timeouts ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_dropped_after_the_header_timeout() {
    let s = stack_with(|c| {
        c.http.header_timeout_ms = 300;
        c.http.idle_timeout_ms = 5000;
    })
    .await;
    let addr = s.addr();

    // Half a request line, then nothing.
    let start = Instant::now();
    let mut half = connect(None, addr).await;
    half.write_all(b"GET /heal").await.unwrap();
    let (got, closed) = read_until_closed(&mut half, Duration::from_secs(5)).await;
    let elapsed = start.elapsed();
    assert!(closed, "still open after 5 s");
    assert!(
        got.is_empty(),
        "answered {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        elapsed >= Duration::from_millis(290),
        "closed after {elapsed:?}, before the 300 ms header timeout"
    );
    assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
    eprintln!("half a request line: closed after {elapsed:?} (header timeout 300 ms)");

    // A slowloris: header bytes keep coming, one every 50 ms, but the
    // headers never end. The timeout is on the whole head, not per read.
    let start = Instant::now();
    let mut slow = connect(None, addr).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: fsgate\r\nX-Pad: ")
        .await
        .unwrap();
    let mut sent = 0;
    let mut buf = [0u8; 256];
    let closed_after = loop {
        tokio::select! {
            r = slow.read(&mut buf) => {
                assert!(matches!(r, Ok(0) | Err(_)), "answered: {r:?}");
                break start.elapsed();
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                if slow.write_all(b"a").await.is_err() {
                    break start.elapsed();
                }
                sent += 1;
                assert!(start.elapsed() < Duration::from_secs(5), "never closed");
            }
        }
    };
    assert!(
        closed_after >= Duration::from_millis(290),
        "closed after {closed_after:?}"
    );
    assert!(
        closed_after < Duration::from_secs(3),
        "closed after {closed_after:?}"
    );
    assert!(sent >= 4, "only {sent} bytes trickled");
    eprintln!("slowloris ({sent} header bytes trickled): closed after {closed_after:?}");

    // A well-behaved client on the same daemon is served.
    let r = s
        .http
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_outlives_the_header_timeout_and_closes_after_the_idle_timeout() {
    let s = stack_with(|c| {
        c.http.header_timeout_ms = 300;
        c.http.idle_timeout_ms = 1500;
    })
    .await;
    let mut conn = connect(None, s.addr()).await;
    conn.write_all(get("/healthz").as_bytes()).await.unwrap();
    let r = read_response(&mut conn, Duration::from_secs(5)).await;
    assert_eq!(r.status, 200, "{r:?}");

    // Idle for longer than the header timeout: the connection stays usable
    // (mod_curl keeps connections alive between lookups).
    tokio::time::sleep(Duration::from_millis(700)).await;
    conn.write_all(get("/healthz").as_bytes()).await.unwrap();
    let r = read_response(&mut conn, Duration::from_secs(5)).await;
    assert_eq!(r.status, 200, "{r:?}");

    let start = Instant::now();
    let (got, closed) = read_until_closed(&mut conn, Duration::from_secs(6)).await;
    let elapsed = start.elapsed();
    assert!(closed, "still open 6 s after the response");
    assert!(got.is_empty());
    assert!(
        elapsed >= Duration::from_millis(1200),
        "closed {elapsed:?} after the response, before the 1.5 s idle timeout"
    );
    assert!(elapsed < Duration::from_secs(4), "closed after {elapsed:?}");
    eprintln!(
        "kept-alive connection: closed {elapsed:?} after its last response (idle timeout 1.5 s)"
    );
}

// --- bodies --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_content_length_is_refused_at_once_without_reading_a_body() {
    let s = Stack::start(StackOptions::default()).await;
    let mut conn = connect(None, s.addr()).await;
    let start = Instant::now();
    conn.write_all(
        b"POST /v1/sessions HTTP/1.1\r\nHost: fsgate\r\nX-API-Key: acme-key\r\n\
          Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n",
    )
    .await
    .unwrap();
    let (got, closed) = read_until_closed(&mut conn, Duration::from_secs(5)).await;
    let elapsed = start.elapsed();
    assert!(closed, "the connection stayed open");
    let r = Raw::parse(&got);
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.head.contains("connection: close"), "{}", r.head);
    let v = r.assert_envelope("payload_too_large");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("65536"), "{message}");
    assert!(
        elapsed < Duration::from_secs(1),
        "answered after {elapsed:?}"
    );
    eprintln!("Content-Length 99999999999: 413 and closed after {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickling_past_the_body_timeout_gets_408_and_the_connection_closes() {
    let s = stack_with(|c| c.http.body_timeout_ms = 500).await;
    let mut conn = connect(None, s.addr()).await;
    let start = Instant::now();
    conn.write_all(
        b"POST /v1/sessions HTTP/1.1\r\nHost: fsgate\r\nX-API-Key: acme-key\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    // One more body byte every 100 ms until the answer starts arriving.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut sent = 1;
    let first_byte = loop {
        tokio::select! {
            r = conn.read(&mut buf) => match r {
                Ok(n) if n > 0 => {
                    got.extend_from_slice(&buf[..n]);
                    break start.elapsed();
                }
                other => panic!("closed without an answer after {:?}: {other:?}", start.elapsed()),
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                assert!(start.elapsed() < Duration::from_secs(5), "no answer within 5 s");
                conn.write_all(b" ").await.unwrap();
                sent += 1;
            }
        }
    };
    let (rest, closed) = read_until_closed(&mut conn, Duration::from_secs(5)).await;
    got.extend_from_slice(&rest);
    assert!(closed, "the connection stayed open after the 408");
    let r = Raw::parse(&got);
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.head.contains("connection: close"), "{}", r.head);
    r.assert_envelope("request_timeout");
    assert!(
        first_byte >= Duration::from_millis(490),
        "answered after {first_byte:?}, before the 500 ms body timeout"
    );
    assert!(
        first_byte < Duration::from_secs(3),
        "answered after {first_byte:?}"
    );
    assert!(sent >= 4, "only {sent} body bytes were sent");
    eprintln!(
        "trickling body ({sent} of 100 bytes): 408 after {first_byte:?} (body timeout 500 ms)"
    );

    // A body that arrives in time is read as usual.
    let (status, v) = s
        .post_json("/v1/sessions", json!({"party_a": A, "party_b": B}))
        .await;
    assert_eq!(status, 201, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_responses_is_disconnected_after_the_body_timeout() {
    const REQUESTS: usize = 1000;
    let s = stack_with(|c| {
        c.http.body_timeout_ms = 500;
        c.http.header_timeout_ms = 60_000;
        c.http.idle_timeout_ms = 60_000;
    })
    .await;
    let doc_len = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    // Far more response bytes than the socket buffers hold.
    assert!(
        doc_len * REQUESTS > 16 << 20,
        "the document is only {doc_len} bytes"
    );
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(s.addr()).await.unwrap();
    conn.write_all(get("/openapi.json").repeat(REQUESTS).as_bytes())
        .await
        .unwrap();
    // Not reading for four times the timeout is the point of this test.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (got, closed) = read_until_closed(&mut conn, Duration::from_secs(10)).await;
    let answered = String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 200")
        .count();
    assert!(
        closed,
        "a client not reading its responses kept its connection"
    );
    assert!(answered < REQUESTS, "all {answered} responses were sent");
    eprintln!(
        "slow reader: {REQUESTS} pipelined requests for a {doc_len}-byte document, \
         {answered} responses sent before the connection was cut (body timeout 500 ms)"
    );
}

// --- the connection cap and its reserve ---------------------------------------------------

/// Opens `n` connections from `from` that each send part of a request head
/// and then nothing (slowloris), and keeps them.
async fn hold_slow(n: usize, from: Option<IpAddr>, to: SocketAddr) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = connect(from, to).await;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: fsgate\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    held
}

/// A full request (`Connection: close`) on a new connection from `from`:
/// the answer, or `None` when the connection was closed without one.
async fn one_shot(from: Option<IpAddr>, to: SocketAddr, path: &str) -> Option<Raw> {
    let mut c = connect(from, to).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: fsgate\r\nConnection: close\r\n\r\n");
    if c.write_all(request.as_bytes()).await.is_err() {
        return None;
    }
    let (got, closed) = read_until_closed(&mut c, Duration::from_secs(10)).await;
    assert!(
        closed,
        "a connection was kept open 10 s after Connection: close"
    );
    (!got.is_empty()).then(|| Raw::parse(&got))
}

/// Asserts that every connection is still open with nothing to read.
fn assert_all_held(held: &[TcpStream]) {
    let mut buf = [0u8; 64];
    for (i, c) in held.iter().enumerate() {
        match c.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("held connection #{i} was answered or closed: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_holding_every_general_connection_leave_the_dialplan_its_reserve() {
    const MAX: usize = 200;
    const RESERVE: usize = 20;
    const LOOKUPS: usize = 60;
    const PARALLEL: usize = 10;
    const EXTRA: usize = 150;
    let outside = non_loopback_ipv4();
    let s = stack_with(|c| {
        c.http.max_connections = MAX;
        c.http.dialplan_reserved_connections = RESERVE;
        c.http.header_timeout_ms = 60_000;
        c.http.idle_timeout_ms = 60_000;
    })
    .await;
    let addr = s.addr();
    let (status, session) = s
        .post_json("/v1/sessions", json!({"party_a": A, "party_b": B}))
        .await;
    assert_eq!(status, 201, "{session}");
    let masked = session["masked_number"]
        .as_str()
        .unwrap()
        .trim_start_matches('+')
        .to_owned();

    // Every general connection held by a slow client from outside loopback.
    let held = hold_slow(MAX - RESERVE, Some(outside), addr).await;
    let held_at = Instant::now();

    // More from outside, all at once: refused without stalling anything,
    // with the envelope (or closed at once when too many refusals are
    // pending).
    let mut refused = JoinSet::new();
    for _ in 0..EXTRA {
        refused.spawn(async move { one_shot(Some(outside), addr, "/healthz").await });
    }

    // Meanwhile loopback clients (FreeSWITCH's side) use the reserve: route
    // lookups as mod_curl sends them, ten at a time, then /healthz.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut answered = 0;
    let mut failures = Vec::new();
    for _ in 0..LOOKUPS / PARALLEL {
        let mut batch = JoinSet::new();
        for _ in 0..PARALLEL {
            let url = format!(
                "http://{addr}/v1/dialplan/route?masked={masked}&caller={}&uuid={}",
                A.trim_start_matches('+'),
                uuid::Uuid::new_v4()
            );
            let client = client.clone();
            batch.spawn(async move {
                match client.get(url).send().await {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                }
            });
        }
        while let Some(r) = batch.join_next().await {
            match r.unwrap() {
                (200, body) if body.ends_with(B) => answered += 1,
                other => failures.push(other),
            }
        }
    }
    let lookups_took = started.elapsed();
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let (mut answered_503, mut closed_at_once) = (0, 0);
    while let Some(r) = refused.join_next().await {
        match r.unwrap() {
            Some(raw) => {
                assert_eq!(raw.status, 503, "{raw:?}");
                assert!(raw.head.contains("retry-after: 1"), "{}", raw.head);
                raw.assert_envelope("overloaded");
                answered_503 += 1;
            }
            None => closed_at_once += 1,
        }
    }
    eprintln!(
        "{} slow connections held from {outside}; {answered}/{LOOKUPS} route lookups from \
         loopback answered 200 in {lookups_took:?}; {EXTRA} more connections from {outside}: \
         {answered_503} answered 503 overloaded, {closed_at_once} closed at once",
        held.len()
    );
    assert_eq!(answered, LOOKUPS, "failed lookups: {failures:?}");
    assert_eq!(answered_503 + closed_at_once, EXTRA);
    assert!(
        answered_503 > 0,
        "no connection over the cap got the 503 envelope"
    );

    // None of the held connections was refused: a refused one would have
    // been answered 503 or closed within a second (the longest a refusal
    // waits for a request head).
    tokio::time::sleep_until((held_at + Duration::from_millis(1500)).into()).await;
    assert_all_held(&held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_whole_cap_even_loopback_is_refused_and_served_again_once_a_slot_frees() {
    const MAX: usize = 40;
    let s = stack_with(|c| {
        c.http.max_connections = MAX;
        c.http.dialplan_reserved_connections = 10;
        c.http.header_timeout_ms = 60_000;
    })
    .await;
    let addr = s.addr();
    // Loopback may use every place; with these held (and the stack's own
    // pooled connection, if any) the cap is reached.
    let mut held = hold_slow(MAX, None, addr).await;
    // Answered 503, or closed at once (refused too).
    if let Some(r) = one_shot(None, addr, "/healthz").await {
        assert_eq!(r.status, 503, "{r:?}");
        r.assert_envelope("overloaded");
    }

    // Free a few places: the daemon notices the closes and serves again.
    held.truncate(MAX - 5);
    let freed_at = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match one_shot(None, addr, "/healthz").await {
            Some(r) if r.status == 200 => break,
            _ => assert!(
                freed_at.elapsed() < Duration::from_secs(10),
                "never served again"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{MAX} held: loopback refused past the cap; served again {:?} after 5 closed \
         ({attempts} attempt(s))",
        freed_at.elapsed()
    );
}

// --- /metrics ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_when_one_is_set() {
    let s = stack_with(|c| c.http.metrics_token = Some("metrics-secret-1".into())).await;
    let url = format!("{}/metrics", s.base);
    for (what, request) in [
        ("no credentials", s.http.get(&url)),
        (
            "a wrong token",
            s.http.get(&url).bearer_auth("metrics-secret-2"),
        ),
        (
            "a tenant key",
            s.http.get(&url).header("X-API-Key", "acme-key"),
        ),
        (
            "a tenant key as bearer",
            s.http.get(&url).bearer_auth("acme-key"),
        ),
        (
            "another scheme",
            s.http
                .get(&url)
                .basic_auth("metrics", Some("metrics-secret-1")),
        ),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized", "{what}: {v}");
    }
    let r = s
        .http
        .get(&url)
        .bearer_auth("metrics-secret-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("fsgate_http_requests_total"), "{text}");
    assert!(text.contains("fsgate_http_connections_open"), "{text}");

    // The document says so.
    let doc: Value = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = &doc["paths"]["/metrics"]["get"];
    for status in ["200", "401", "403"] {
        assert!(
            op["responses"][status].is_object(),
            "{status} missing: {op}"
        );
    }
    assert_eq!(op["security"], json!([{}, {"metrics_token": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["metrics_token"]["scheme"],
        "bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_without_a_token_answer_loopback_only() {
    let s = Stack::start(StackOptions::default()).await;
    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("fsgate_http_requests_total"));

    let outside = non_loopback_ipv4();
    let raw = one_shot(Some(outside), s.addr(), "/metrics")
        .await
        .expect("an answer");
    assert_eq!(raw.status, 403, "{raw:?}");
    raw.assert_envelope("forbidden");
    // The same client reaches the rest of the API.
    let raw = one_shot(Some(outside), s.addr(), "/healthz")
        .await
        .expect("an answer");
    assert_eq!(raw.status, 200, "{raw:?}");
}

// --- configuration --------------------------------------------------------------------------

#[test]
fn check_config_explains_bad_listener_values_and_the_token_comes_from_the_environment() {
    let base = r#"
[[freeswitch]]
name = "fs1"
address = "127.0.0.1:8021"

[[tenants]]
id = "acme"
api_keys_sha256 = ["a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"]
"#;
    let bad = format!(
        "[http]\nheader_timeout_ms = 0\nidle_timeout_ms = 0\nbody_timeout_ms = 0\n\
         max_connections = 100\ndialplan_reserved_connections = 100\nmetrics_token = \"\"\n{base}"
    );
    let e = fsgate::config::load_str(&bad, "bad.toml", Vec::new()).unwrap_err();
    let mut paths: Vec<&str> = e.problems.iter().map(|p| p.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "http.body_timeout_ms",
            "http.dialplan_reserved_connections",
            "http.header_timeout_ms",
            "http.idle_timeout_ms",
            "http.metrics_token",
        ],
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("not below http.max_connections (100)"),
        "{text}"
    );
    assert!(text.contains("must be at least 1"), "{text}");

    let env = vec![(
        "FSGATE__HTTP__METRICS_TOKEN".to_string(),
        "from-the-environment".to_string(),
    )];
    let c = fsgate::config::load_str(base, "ok.toml", env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.http.metrics_token.as_deref(),
        Some("from-the-environment")
    );
    assert_eq!(c.http.header_timeout_ms, 5000);
    assert_eq!(c.http.idle_timeout_ms, 60_000);
    assert_eq!(c.http.body_timeout_ms, 10_000);
    assert_eq!(c.http.max_connections, 1024);
    assert_eq!(c.http.dialplan_reserved_connections, 64);
    assert!(!format!("{c:?}").contains("from-the-environment"));
}
