//! Webhook delivery end to end: outbox → store → workers → a real HTTP
//! receiver (axum on 127.0.0.1:0) that records what it gets.
//!
//! Every scenario is an `async fn(Arc<dyn Store>)`, so the same checks run on
//! any store; the `#[tokio::test]`s at the bottom run them on the memory
//! store and on a redis-server of their own. Signatures are checked with an
//! HMAC-SHA256 written here over `sha2` (not the `hmac` crate the daemon
//! uses), itself checked against RFC 4231, and once against Python's `hmac`
//! (`python3`, which the test command installs when missing).

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use fsgate::clock::{ManualClock, SharedClock, SystemClock};
use fsgate::config::TenantConfig;
use fsgate::store::memory::MemoryStore;
use fsgate::store::{CallDirection, Store};
use fsgate::webhooks::worker::{
    DelivererHandle, METRIC_DEAD, METRIC_DELIVERIES, METRIC_DELIVERY_SECONDS,
};
use fsgate::webhooks::{
    list_events, CallAnsweredData, CallInfo, CommandResultData, CommandStatus, Deliverer,
    DelivererConfig, EmitError, Envelope, EventsQuery, Outbox, RetrySchedule,
};

// --- an independent HMAC-SHA256 -----------------------------------------------------

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

const KEY: &[u8] = b"fsgate test key: 32 bytes long!!";

fn secret() -> String {
    format!("whsec_{}", BASE64.encode(KEY))
}

/// Checks one received request's Standard Webhooks signature independently.
fn assert_signed(req: &Seen) {
    let id = req.header("webhook-id");
    let ts = req.header("webhook-timestamp");
    assert!(ts.parse::<i64>().is_ok(), "timestamp {ts:?}");
    let mut message = format!("{id}.{ts}.").into_bytes();
    message.extend_from_slice(&req.body);
    let expected = hmac_sha256(KEY, &message);
    let header = req.header("webhook-signature");
    let ok = header.split(' ').any(|sig| {
        sig.strip_prefix("v1,")
            .and_then(|b| BASE64.decode(b).ok())
            .is_some_and(|tag| tag == expected)
    });
    assert!(ok, "signature {header:?} does not match for {id} at {ts}");
}

#[test]
fn the_test_hmac_is_right() {
    // RFC 4231, test cases 2 and 6 (a key longer than the block).
    let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn signing_agrees_with_python_and_the_published_vector() {
    use fsgate::webhooks::sign::{sign, WebhookSecret};
    let vector = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let body = r#"{"test": 2432232314}"#;
    let ours = sign(
        &vector,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        body.as_bytes(),
    );
    assert_eq!(ours, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");

    let ours = sign(
        &WebhookSecret::parse(&secret()).unwrap(),
        "evt_01J",
        1_800_000_000,
        "{\"é\":\"ü\"}".as_bytes(),
    );
    let script = r#"
import base64, hashlib, hmac, sys
key = base64.b64decode(sys.argv[1].removeprefix("whsec_"))
msg = (sys.argv[2] + "." + sys.argv[3] + ".").encode() + sys.argv[4].encode()
print("v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode())
"#;
    // Not skipped when python3 is missing: scripts/test.sh installs it.
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &secret(),
            "evt_01J",
            "1800000000",
            "{\"é\":\"ü\"}",
        ])
        .output()
        .expect("python3 runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ours);
}

// --- a recording receiver ------------------------------------------------------------

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
    status: u16,
}

impl Seen {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

/// What the receiver answers.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Status with `Retry-After: secs`.
    RetryAfter(u16, u64),
    /// Wait, then answer.
    Slow(Duration, u16),
}

type Policy = Box<dyn Fn(usize, &str) -> Reply + Send + Sync>;

struct Receiver {
    /// (per-id attempt index, id) → reply.
    policy: Policy,
    seen: Mutex<Vec<Seen>>,
    attempts: Mutex<HashMap<String, usize>>,
    in_flight: Mutex<HashMap<String, usize>>,
    overlaps: AtomicUsize,
}

impl Receiver {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn delivered_ids(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|s| (200..300).contains(&s.status))
            .map(|s| s.header("webhook-id"))
            .collect()
    }
}

async fn hook(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let n = {
        let mut attempts = rx.attempts.lock().unwrap();
        let n = attempts.entry(id.clone()).or_insert(0);
        *n += 1;
        *n - 1
    };
    {
        let mut in_flight = rx.in_flight.lock().unwrap();
        let k = in_flight.entry(id.clone()).or_insert(0);
        *k += 1;
        if *k > 1 {
            rx.overlaps.fetch_add(1, Ordering::SeqCst);
        }
    }
    let reply = (rx.policy)(n, &id);
    let status = match reply {
        Reply::Status(s) | Reply::RetryAfter(s, _) | Reply::Slow(_, s) => s,
    };
    rx.seen.lock().unwrap().push(Seen {
        headers,
        body,
        status,
    });
    // Overlap detection needs a window: every request lasts a little.
    tokio::time::sleep(Duration::from_millis(3)).await;
    if let Reply::Slow(d, _) = reply {
        tokio::time::sleep(d).await;
    }
    if let Some(k) = rx.in_flight.lock().unwrap().get_mut(&id) {
        *k -= 1;
    }
    let code = StatusCode::from_u16(status).unwrap();
    match reply {
        Reply::RetryAfter(_, secs) => (code, [("retry-after", secs.to_string())]).into_response(),
        _ => code.into_response(),
    }
}

async fn receiver_on(
    addr: SocketAddr,
    policy: impl Fn(usize, &str) -> Reply + Send + Sync + 'static,
) -> (Arc<Receiver>, SocketAddr) {
    let rx = Arc::new(Receiver {
        policy: Box::new(policy),
        seen: Mutex::new(Vec::new()),
        attempts: Mutex::new(HashMap::new()),
        in_flight: Mutex::new(HashMap::new()),
        overlaps: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hooks", post(hook))
        .with_state(Arc::clone(&rx));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (rx, addr)
}

async fn receiver(
    policy: impl Fn(usize, &str) -> Reply + Send + Sync + 'static,
) -> (Arc<Receiver>, SocketAddr) {
    receiver_on("127.0.0.1:0".parse().unwrap(), policy).await
}

fn always(code: u16) -> impl Fn(usize, &str) -> Reply + Send + Sync + 'static {
    move |_, _| Reply::Status(code)
}

// --- helpers -------------------------------------------------------------------------

fn tenant(id: &str, addr: Option<SocketAddr>) -> TenantConfig {
    let mut v = serde_json::json!({ "id": id, "webhook_secret": secret() });
    if let Some(addr) = addr {
        v["webhook_url"] = format!("http://{addr}/hooks").into();
    }
    serde_json::from_value(v).unwrap()
}

fn fast(retries: usize) -> DelivererConfig {
    DelivererConfig {
        timeout: Duration::from_secs(2),
        concurrency: 8,
        batch: 8,
        lease: Duration::from_secs(600),
        idle_poll: Duration::from_millis(10),
        drain: Duration::from_secs(2),
        schedule: RetrySchedule::new(vec![Duration::from_millis(20); retries], 0.0),
        ca_file: None,
    }
}

fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn outbox(store: &Arc<dyn Store>, clock: &SharedClock) -> Outbox {
    Outbox::new(
        Arc::clone(store),
        Arc::clone(clock),
        Duration::from_secs(72 * 3600),
    )
}

fn start(
    store: &Arc<dyn Store>,
    clock: &SharedClock,
    outbox: &Outbox,
    tenants: &[TenantConfig],
    config: DelivererConfig,
) -> DelivererHandle {
    Deliverer::new(Arc::clone(store), Arc::clone(clock), tenants, config)
        .unwrap()
        .with_wake(outbox.wake_signal())
        .start()
}

fn answered(call: &str, sequence: u64) -> CallAnsweredData {
    CallAnsweredData {
        call: CallInfo {
            call_id: call.to_owned(),
            sequence,
            direction: CallDirection::Inbound,
            from: Some("+15557770001".into()),
            to: Some("+15550109000".into()),
            session_ref: None,
            user_data: Some("order-42".into()),
            node: "fs1".into(),
        },
        answered_at: None,
    }
}

async fn emit(outbox: &Outbox, tenant: &TenantConfig, now: DateTime<Utc>, n: u64) -> Envelope {
    outbox
        .emit_data(tenant, now, &answered(&format!("call-{n}"), n))
        .await
        .unwrap()
}

/// Polls `cond` every 10 ms for up to `secs` seconds.
async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// The delivery metrics, read back through the Prometheus exporter.
fn metrics_text() -> String {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// --- scenarios (store-agnostic) --------------------------------------------------------

/// An envelope arrives once, as JSON, with valid headers; a tenant without a
/// URL only logs; an envelope cannot be emitted as another tenant.
pub async fn delivers_a_signed_envelope(store: Arc<dyn Store>) {
    let (rx, addr) = receiver(always(204)).await;
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let quiet = tenant("quiet", None);
    let handle = start(
        &store,
        &clock,
        &outbox,
        &[acme.clone(), quiet.clone()],
        fast(3),
    );

    let before = Utc::now().timestamp();
    let env = emit(&outbox, &acme, Utc::now(), 1).await;
    let logged_only = emit(&outbox, &quiet, Utc::now(), 2).await;
    assert!(eventually(5, || rx.count() == 1).await);
    handle.settled().await;
    assert_eq!(
        rx.count(),
        1,
        "delivered once; the quiet tenant gets nothing"
    );

    let req = &rx.seen()[0];
    assert_eq!(req.header("content-type"), "application/json");
    assert_eq!(req.header("webhook-id"), env.id);
    let ts: i64 = req.header("webhook-timestamp").parse().unwrap();
    assert!(ts >= before && ts <= Utc::now().timestamp(), "{ts}");
    assert_signed(req);
    assert!(req.header("user-agent").starts_with("fsgate"));
    assert_eq!(&req.body[..], env.to_json().as_bytes(), "the stored bytes");
    let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(v["type"], "call.answered");
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["data"]["call_id"], "call-1");
    assert_eq!(v["data"]["user_data"], "order-42");
    let occurred = v["occurred_at"].as_str().unwrap();
    assert!(
        occurred.ends_with('Z') && occurred.len() == 24,
        "{occurred}"
    );

    // Both are in their tenants' logs.
    let page = list_events(store.as_ref(), "quiet", &EventsQuery::default())
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].get(), logged_only.to_json());

    let wrong = outbox.emit(&quiet, &env).await;
    assert!(matches!(wrong, Err(EmitError::WrongTenant { .. })));
    handle.shutdown().await;
}

/// 500, 503, then 200: delivered once the receiver recovers, each attempt
/// signed afresh with a later timestamp. Runs on a manual clock with the
/// production schedule (5 s, 30 s, …), moved forward by hand.
pub async fn retries_server_errors_with_fresh_signatures(store: Arc<dyn Store>) {
    let (rx, addr) = receiver(|n, _| match n {
        0 => Reply::Status(500),
        1 => Reply::Status(503),
        _ => Reply::Status(200),
    })
    .await;
    let start_at = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let manual = ManualClock::new(start_at);
    let clock: SharedClock = Arc::new(manual.clone());
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let config = DelivererConfig {
        schedule: RetrySchedule::default(),
        ..fast(0)
    };
    let handle = start(&store, &clock, &outbox, std::slice::from_ref(&acme), config);
    let before = metrics_text();

    let env = emit(&outbox, &acme, clock.now(), 1).await;
    assert!(
        eventually(5, || rx.count() == 1).await,
        "first attempt at once"
    );
    handle.settled().await;
    assert_eq!(rx.count(), 1, "nothing before the retry is due");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.count() < 3 && Instant::now() < deadline {
        manual.advance(chrono::Duration::seconds(6));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(rx.count(), 3);
    // Delivered: nothing more, however far time moves.
    for _ in 0..5 {
        manual.advance(chrono::Duration::hours(1));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(rx.count(), 3);

    let seen = rx.seen();
    assert_eq!(
        seen.iter().map(|s| s.status).collect::<Vec<_>>(),
        [500, 503, 200]
    );
    let stamps: Vec<i64> = seen
        .iter()
        .map(|s| s.header("webhook-timestamp").parse().unwrap())
        .collect();
    assert_eq!(stamps[0], start_at.timestamp());
    assert!(
        stamps[0] + 5 <= stamps[1] && stamps[1] + 30 <= stamps[2],
        "{stamps:?}"
    );
    let signatures: HashSet<String> = seen.iter().map(|s| s.header("webhook-signature")).collect();
    assert_eq!(signatures.len(), 3, "re-signed on every attempt");
    for s in &seen {
        assert_signed(s);
        assert_eq!(s.header("webhook-id"), env.id);
        assert_eq!(s.body, seen[0].body);
    }
    assert!(store.dead_webhooks("acme", 10).await.unwrap().is_empty());

    let after = metrics_text();
    let retry = format!("{METRIC_DELIVERIES}{{result=\"retry\"}}");
    let delivered = format!("{METRIC_DELIVERIES}{{result=\"delivered\"}}");
    assert!(
        metric(&after, &retry) >= metric(&before, &retry) + 2.0,
        "{after}"
    );
    assert!(metric(&after, &delivered) >= metric(&before, &delivered) + 1.0);
    let count = format!("{METRIC_DELIVERY_SECONDS}_count");
    assert!(metric(&after, &count) >= metric(&before, &count) + 3.0);
    handle.shutdown().await;
}

/// An emit wakes its tenant's idle worker: delivery does not wait for the poll.
pub async fn emit_wakes_the_idle_worker(store: Arc<dyn Store>) {
    let (rx, addr) = receiver(always(200)).await;
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let config = DelivererConfig {
        idle_poll: Duration::from_secs(60),
        ..fast(3)
    };
    let handle = start(&store, &clock, &outbox, std::slice::from_ref(&acme), config);
    for n in 0..3u64 {
        // Let the worker go idle (its first claim finds nothing).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        emit(&outbox, &acme, Utc::now(), n).await;
        assert!(eventually(5, || rx.count() == n as usize + 1).await);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    handle.shutdown().await;
}

/// A 4xx other than 408/429 is permanent: dead-lettered at once, counted.
pub async fn client_errors_dead_letter_at_once(store: Arc<dyn Store>) {
    let (rx, addr) = receiver(always(410)).await;
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let handle = start(
        &store,
        &clock,
        &outbox,
        std::slice::from_ref(&acme),
        fast(5),
    );
    let before = metrics_text();

    let env = emit(&outbox, &acme, Utc::now(), 1).await;
    let dead = eventually(5, || rx.count() == 1).await;
    assert!(dead);
    let mut jobs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while jobs.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        jobs = store.dead_webhooks("acme", 10).await.unwrap();
    }
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, env.id);
    assert_eq!(jobs[0].payload, env.to_json());
    handle.settled().await;
    assert_eq!(rx.count(), 1, "never retried");
    let after = metrics_text();
    assert!(metric(&after, METRIC_DEAD) >= metric(&before, METRIC_DEAD) + 1.0);
    let dead = format!("{METRIC_DELIVERIES}{{result=\"dead\"}}");
    assert!(metric(&after, &dead) >= metric(&before, &dead) + 1.0);
    handle.shutdown().await;
}

/// 429 (with a short Retry-After) is retried, then delivered.
pub async fn too_many_requests_is_retried(store: Arc<dyn Store>) {
    let (rx, addr) = receiver(|n, _| {
        if n == 0 {
            Reply::RetryAfter(429, 0)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let handle = start(
        &store,
        &clock,
        &outbox,
        std::slice::from_ref(&acme),
        fast(5),
    );
    let env = emit(&outbox, &acme, Utc::now(), 1).await;
    assert!(eventually(5, || rx.delivered_ids() == [env.id.clone()]).await);
    assert_eq!(rx.count(), 2);
    rx.seen().iter().for_each(assert_signed);
    handle.shutdown().await;
}

/// No answer within the timeout is retried.
pub async fn timeouts_are_retried(store: Arc<dyn Store>) {
    let (rx, addr) = receiver(|n, _| {
        if n == 0 {
            Reply::Slow(Duration::from_secs(3), 200)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let config = DelivererConfig {
        timeout: Duration::from_millis(300),
        ..fast(5)
    };
    let handle = start(&store, &clock, &outbox, std::slice::from_ref(&acme), config);
    let started = Instant::now();
    emit(&outbox, &acme, Utc::now(), 1).await;
    assert!(eventually(5, || rx.count() == 2).await);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the retry did not wait for the slow answer"
    );
    rx.seen().iter().for_each(assert_signed);
    assert!(store.dead_webhooks("acme", 10).await.unwrap().is_empty());
    handle.shutdown().await;
}

/// A receiver that is down (connection refused) gets the envelope once it is up.
pub async fn receiver_down_then_up(store: Arc<dyn Store>) {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let handle = start(
        &store,
        &clock,
        &outbox,
        std::slice::from_ref(&acme),
        fast(100),
    );
    let env = emit(&outbox, &acme, Utc::now(), 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rx, _) = receiver_on(addr, always(200)).await;
    assert!(eventually(5, || rx.delivered_ids() == [env.id.clone()]).await);
    assert!(store.dead_webhooks("acme", 10).await.unwrap().is_empty());
    handle.shutdown().await;
}

/// Many envelopes for several tenants, with failures: every one is delivered
/// at least once and none is dead or lost.
pub async fn many_envelopes_none_lost(store: Arc<dyn Store>) {
    // Every other envelope fails its first attempt, every third its second too.
    let (rx, addr) = receiver(|n, id| {
        let h = id.bytes().map(usize::from).sum::<usize>();
        match n {
            0 if h % 2 == 0 => Reply::Status(500),
            1 if h % 3 == 0 => Reply::Status(502),
            _ => Reply::Status(200),
        }
    })
    .await;
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let tenants = [tenant("acme", Some(addr)), tenant("globex", Some(addr))];
    let handle = start(&store, &clock, &outbox, &tenants, fast(10));
    let mut ids = HashSet::new();
    for n in 0..300u64 {
        let env = emit(&outbox, &tenants[(n % 2) as usize], Utc::now(), n).await;
        ids.insert(env.id);
    }
    assert!(
        eventually(20, || rx
            .delivered_ids()
            .into_iter()
            .collect::<HashSet<_>>()
            == ids)
        .await,
        "delivered {} of {}",
        rx.delivered_ids().len(),
        ids.len()
    );
    for t in ["acme", "globex"] {
        assert!(store.dead_webhooks(t, 10).await.unwrap().is_empty());
    }
    let seen = rx.seen();
    assert!(seen.len() > ids.len(), "some were retried");
    for s in seen.iter().step_by(17) {
        assert_signed(s);
    }
    handle.shutdown().await;
}

/// Two daemon instances on one store: each claim is delivered by one of them
/// at a time, and (with no crash) each envelope exactly once.
pub async fn two_instances_never_overlap(store: Arc<dyn Store>) {
    let (rx, addr) = receiver(|_, _| Reply::Slow(Duration::from_millis(5), 200)).await;
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let tenants = std::slice::from_ref(&acme);
    let a = Deliverer::new(Arc::clone(&store), Arc::clone(&clock), tenants, fast(3))
        .unwrap()
        .with_consumer_id("instance-a")
        .with_wake(outbox.wake_signal())
        .start();
    let b = Deliverer::new(Arc::clone(&store), Arc::clone(&clock), tenants, fast(3))
        .unwrap()
        .with_consumer_id("instance-b")
        .with_wake(outbox.wake_signal())
        .start();
    let mut ids = HashSet::new();
    for n in 0..200u64 {
        ids.insert(emit(&outbox, &acme, Utc::now(), n).await.id);
    }
    assert!(eventually(20, || rx.count() >= ids.len()).await);
    tokio::join!(a.settled(), b.settled());
    assert_eq!(
        rx.overlaps.load(Ordering::SeqCst),
        0,
        "a claim ran twice at once"
    );
    let delivered = rx.delivered_ids();
    assert_eq!(delivered.len(), ids.len(), "no duplicates without a crash");
    assert_eq!(delivered.into_iter().collect::<HashSet<_>>(), ids);
    a.shutdown().await;
    b.shutdown().await;
}

/// A worker that claimed a job and died (it never settles) does not lose it:
/// after the lease another instance delivers it.
pub async fn a_crashed_claim_is_delivered_after_its_lease(store: Arc<dyn Store>) {
    let (rx, addr) = receiver(always(200)).await;
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let env = emit(&outbox, &acme, Utc::now(), 1).await;
    let lease = Duration::from_millis(300);
    let taken = store
        .claim_webhooks("acme", "crashed-instance", 10, lease, Utc::now())
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let config = DelivererConfig {
        timeout: Duration::from_millis(200),
        lease,
        ..fast(3)
    };
    let started = Instant::now();
    let handle = start(&store, &clock, &outbox, std::slice::from_ref(&acme), config);
    assert!(eventually(5, || rx.count() == 1).await);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "not before the lease ran out"
    );
    assert_eq!(rx.delivered_ids(), [env.id]);
    handle.shutdown().await;
}

/// Emitting only writes to the store: a receiver that never answers does not
/// slow it, and stopping abandons the stuck attempts after the drain bound.
pub async fn emit_never_waits_on_http(store: Arc<dyn Store>) {
    let (rx, addr) = receiver(|_, _| Reply::Slow(Duration::from_secs(60), 200)).await;
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let config = DelivererConfig {
        timeout: Duration::from_secs(60),
        concurrency: 2,
        drain: Duration::from_millis(200),
        ..fast(3)
    };
    let handle = start(&store, &clock, &outbox, std::slice::from_ref(&acme), config);
    let started = Instant::now();
    for n in 0..1000u64 {
        emit(&outbox, &acme, Utc::now(), n).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "1000 emits took {:?}",
        started.elapsed()
    );
    assert!(
        eventually(5, || rx.count() == 2).await,
        "two stuck attempts"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.count(), 2, "concurrency is bounded");
    let stopping = Instant::now();
    handle.shutdown().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "drain is bounded"
    );
}

/// Stopping lets an in-flight attempt finish and settle; what was not sent
/// stays in the store and the next instance sends it.
pub async fn shutdown_drains_and_leaves_the_rest(store: Arc<dyn Store>) {
    let (rx, addr) = receiver(|_, _| Reply::Slow(Duration::from_millis(400), 200)).await;
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", Some(addr));
    let first = start(
        &store,
        &clock,
        &outbox,
        std::slice::from_ref(&acme),
        fast(3),
    );
    let env1 = emit(&outbox, &acme, Utc::now(), 1).await;
    assert!(eventually(5, || rx.count() == 1).await);
    let stopping = Instant::now();
    first.shutdown().await;
    assert!(
        stopping.elapsed() >= Duration::from_millis(200),
        "waited for the attempt in flight"
    );
    // Settled: nothing is left claimed, even for a lease of zero.
    let left = store
        .claim_webhooks("acme", "probe", 10, Duration::ZERO, Utc::now())
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "the in-flight attempt was settled: {left:?}"
    );

    let env2 = emit(&outbox, &acme, Utc::now(), 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.count(), 1, "no worker is running");
    let second = start(
        &store,
        &clock,
        &outbox,
        std::slice::from_ref(&acme),
        fast(3),
    );
    assert!(eventually(5, || rx.count() == 2).await);
    second.settled().await;
    assert_eq!(rx.delivered_ids(), [env1.id, env2.id]);
    second.shutdown().await;
}

/// `GET /v1/events` pages through a tenant's envelopes, exactly as sent, and
/// only that tenant's.
pub async fn events_paging(store: Arc<dyn Store>) {
    let clock = system_clock();
    let outbox = outbox(&store, &clock);
    let acme = tenant("acme", None);
    let other = tenant("other", None);
    let mut sent = Vec::new();
    for n in 0..25u64 {
        sent.push(emit(&outbox, &acme, Utc::now(), n).await.to_json());
        if n % 8 == 0 {
            emit(&outbox, &other, Utc::now(), n).await;
        }
    }
    let result = CommandResultData {
        operation_id: "op-1".into(),
        command_uid: "ans-1".into(),
        command: "answer".into(),
        call_id: "call-1".into(),
        status: CommandStatus::Succeeded,
        detail: Some("+OK".into()),
    };
    sent.push(
        outbox
            .emit_data(&acme, Utc::now(), &result)
            .await
            .unwrap()
            .to_json(),
    );

    let mut got = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let query = EventsQuery {
            after: after.clone(),
            limit: Some(10),
        };
        let page = list_events(store.as_ref(), "acme", &query).await.unwrap();
        pages += 1;
        assert!(page.events.len() <= 10);
        got.extend(page.events.iter().map(|e| e.get().to_owned()));
        assert!(page.next_cursor.is_some());
        after = page.next_cursor.clone();
        if !page.has_more {
            break;
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(got, sent, "every envelope, in order, byte for byte");

    // Caught up: empty, and the cursor is kept so a client can keep polling.
    let query = EventsQuery {
        after: after.clone(),
        limit: None,
    };
    let page = list_events(store.as_ref(), "acme", &query).await.unwrap();
    assert!(page.events.is_empty() && !page.has_more);
    assert_eq!(page.next_cursor, after);
    // A new event shows up after that cursor.
    let late = emit(&outbox, &acme, Utc::now(), 99).await;
    let page = list_events(store.as_ref(), "acme", &query).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].get(), late.to_json());

    // The JSON the API answers with.
    let page = list_events(
        store.as_ref(),
        "acme",
        &EventsQuery {
            after: None,
            limit: Some(2),
        },
    )
    .await
    .unwrap();
    let v = serde_json::to_value(&page).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 2);
    assert_eq!(v["events"][0]["type"], "call.answered");
    assert_eq!(v["events"][0]["tenant"], "acme");
    assert!(v["next_cursor"].is_string());
    assert_eq!(v["has_more"], true);

    // Limits are clamped, tenants are separate, an empty log has no cursor.
    let all = EventsQuery {
        after: None,
        limit: Some(5000),
    };
    let page = list_events(store.as_ref(), "acme", &all).await.unwrap();
    assert_eq!(page.events.len(), 27);
    let one = EventsQuery {
        after: None,
        limit: Some(0),
    };
    assert_eq!(
        list_events(store.as_ref(), "acme", &one)
            .await
            .unwrap()
            .events
            .len(),
        1
    );
    let page = list_events(store.as_ref(), "other", &all).await.unwrap();
    assert_eq!(page.events.len(), 4);
    assert!(page
        .events
        .iter()
        .all(|e| e.get().contains(r#""tenant":"other""#)));
    let page = list_events(store.as_ref(), "nobody", &EventsQuery::default())
        .await
        .unwrap();
    assert!(page.events.is_empty() && page.next_cursor.is_none() && !page.has_more);
}

// --- on the memory store and on a redis-server of its own -----------------------------

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

/// Every case on the memory store and on a redis-server of its own: the
/// delivery loop is the same code on both, the store scripts are not.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::memory()).await;
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let server = crate::support::redis::RedisServer::start();
                    let store = fsgate::store::open(&server.url()).await.expect("open redis");
                    super::$case(store).await;
                }
            )*
        }
    };
}

on_both_stores!(
    delivers_a_signed_envelope,
    retries_server_errors_with_fresh_signatures,
    emit_wakes_the_idle_worker,
    client_errors_dead_letter_at_once,
    too_many_requests_is_retried,
    timeouts_are_retried,
    receiver_down_then_up,
    many_envelopes_none_lost,
    two_instances_never_overlap,
    a_crashed_claim_is_delivered_after_its_lease,
    emit_never_waits_on_http,
    shutdown_drains_and_leaves_the_rest,
    events_paging,
);
