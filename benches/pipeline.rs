//! Event intake: recorded FreeSWITCH events through the whole pipeline into
//! the webhook outbox, next to a decode-only baseline in the same run.
//!
//! A scripted ESL peer (real TCP, real auth handshake) replays the recorded
//! `json-inbound-park-answer-kill` call (CREATE, EXECUTE, PARK, ANSWER,
//! HANGUP, UNPARK, EXECUTE_COMPLETE, HANGUP_COMPLETE, DESTROY: all channel
//! variables, ~6 kB each) as N distinct calls (fresh Unique-ID and
//! Event-Sequence per event) as fast as the socket takes them. The call's
//! destination is tenant `acme`'s call-control number, so each call becomes
//! three webhooks (`call.initiated`, `call.answered`, `call.hangup`).
//!
//! - **decode only**: `esl::connection` reads and parses every event; nothing else.
//! - **pipeline**: the daemon's node supervisor, sharded pipeline, event
//!   de-duplication claims, call table, lifecycle handler and outbox, on the
//!   memory store and on a real redis-server.
//!
//! Run: `cargo bench --bench pipeline` (needs `redis-server` on PATH for the
//! Redis figures). Results go to BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fsgate::clock::SystemClock;
use fsgate::config::{Config, TenantConfig};
use fsgate::esl::codec::FrameCodec;
use fsgate::esl::command::{EventName, Password};
use fsgate::esl::connection::{self, ConnectOptions, Delivery};
use fsgate::esl::node::{Node, NodeConfig};
use fsgate::esl::ContentType;
use fsgate::pipeline::{self, Pipeline};
use fsgate::store::{self, Store};
use fsgate::switch::Switch;
use fsgate::tenants::Tenants;
use fsgate::webhooks::outbox::Outbox;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;

const CALLS: usize = 3000;
const RECORDED_UUID: &str = "548a6e4f-1fa0-48f6-b8bd-9afce0c85825";

/// The recorded call's channel events, as JSON frames.
fn recorded_events() -> Vec<String> {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/captures/json-inbound-park-answer-kill.s2c.bin"
    ))
    .unwrap();
    let mut buf = BytesMut::from(&data[..]);
    let mut codec = FrameCodec::default();
    let mut out = Vec::new();
    while let Some(frame) = codec.decode(&mut buf).unwrap() {
        if frame.content_type() == ContentType::EventJson {
            let body = String::from_utf8(frame.body().unwrap().to_vec()).unwrap();
            if body.contains(RECORDED_UUID) {
                out.push(body);
            }
        }
    }
    out
}

/// `CALLS` copies of the call, each with its own UUID and sequence numbers.
fn stream() -> (Vec<u8>, usize) {
    let events = recorded_events();
    let mut out = Vec::new();
    let mut seq = 1u64;
    for call in 0..CALLS {
        let uuid = format!("00000000-0000-4000-8000-{call:012}");
        for body in &events {
            let body = body.replace(RECORDED_UUID, &uuid);
            let at = body.find("\"Event-Sequence\":\"").unwrap() + 18;
            let end = at + body[at..].find('"').unwrap();
            let body = format!("{}{}{}", &body[..at], seq, &body[end..]);
            seq += 1;
            out.extend_from_slice(
                format!(
                    "Content-Length: {}\nContent-Type: text/event-json\n\n",
                    body.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(body.as_bytes());
        }
    }
    (out, CALLS * events.len())
}

/// An ESL peer: auth, one `event` reply, then the whole stream.
async fn peer(stream: Arc<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        sock.write_all(b"Content-Type: auth/request\n\n")
            .await
            .unwrap();
        read_packet(&mut sock).await; // auth
        sock.write_all(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
            .await
            .unwrap();
        read_packet(&mut sock).await; // event json …
        sock.write_all(
            b"Content-Type: command/reply\nReply-Text: +OK event listener enabled json\n\n",
        )
        .await
        .unwrap();
        sock.write_all(&stream).await.unwrap();
        // Answer whatever else comes (the pipeline's reconciliation asks
        // `show channels as json` on connect) until the client leaves.
        while let Some(command) = read_packet(&mut sock).await {
            // Every call is alive as far as this peer knows.
            let body: &[u8] = if command.contains("uuid_exists") {
                b"true"
            } else {
                b"{\"row_count\": 0}\n"
            };
            let head = format!(
                "Content-Type: api/response\nContent-Length: {}\n\n",
                body.len()
            );
            if sock.write_all(head.as_bytes()).await.is_err() || sock.write_all(body).await.is_err()
            {
                break;
            }
        }
    });
    addr
}

/// Reads one client packet (up to its blank line); `None` at end of stream.
async fn read_packet(sock: &mut tokio::net::TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1];
    while !got.ends_with(b"\n\n") {
        match sock.read(&mut buf).await {
            Ok(1) => got.push(buf[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

fn options() -> ConnectOptions {
    let mut o = ConnectOptions::new(Password::new("ClueCon").unwrap());
    o.idle_timeout = None;
    o
}

async fn decode_only(stream: Arc<Vec<u8>>, events: usize) -> Duration {
    let addr = peer(stream).await;
    let started = Instant::now();
    let (client, mut rx) = connection::connect(&addr, &options()).await.unwrap();
    client
        .subscribe(fsgate::esl::EventFormat::Json, &[])
        .await
        .unwrap();
    let mut n = 0;
    while n < events {
        match rx.recv().await.unwrap() {
            Delivery::Event(e) => {
                std::hint::black_box(e.unique_id());
                n += 1;
            }
            Delivery::Lagged(k) => panic!("baseline dropped {k} events"),
        }
    }
    started.elapsed()
}

async fn through_pipeline(stream: Arc<Vec<u8>>, events: usize, store: Arc<dyn Store>) -> Duration {
    let addr = peer(stream).await;
    let mut tenant: TenantConfig =
        serde_json::from_value(serde_json::json!({ "id": "acme" })).unwrap();
    tenant.control_numbers = vec!["+15550109000".into()];
    let config = Config {
        tenants: vec![tenant],
        ..Default::default()
    };
    let tenants = Arc::new(Tenants::from_config(&config));
    let clock = Arc::new(SystemClock);
    let outbox = Outbox::new(store.clone(), clock.clone(), Duration::from_secs(3600));

    let started = Instant::now();
    let mut node_cfg = NodeConfig::new("fs1", addr, options());
    node_cfg.events = vec![EventName::new("ALL").unwrap()];
    let (tx, rx) = mpsc::channel(65_536);
    let node = Node::spawn(node_cfg, tx);
    let deps = pipeline::Deps {
        store: store.clone(),
        clock: clock.clone(),
        switch: Switch::new(vec![node.handle()]),
        directory: tenants.clone(),
        handlers: vec![Arc::new(fsgate::calls::lifecycle::Lifecycle::new(
            store.clone(),
            outbox,
            tenants,
        ))],
        retention: Duration::from_secs(600),
    };
    let shards = std::env::var("FSGATE_BENCH_SHARDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let _pipeline = Pipeline::spawn(deps, rx, shards);
    // Done when every call's last webhook (call.hangup, sequence 3) is queued.
    let last = format!("00000000-0000-4000-8000-{:012}", CALLS - 1);
    loop {
        let page = store.list_live_calls("acme", None, 1).await.unwrap();
        let last_done = store
            .get_call(&last)
            .await
            .unwrap()
            .is_some_and(|c| c.state == fsgate::store::CallState::Ended);
        if last_done && page.items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!("  all calls ended after {:?}", started.elapsed());
    // Then every call's three envelopes are in the outbox (the last
    // handlers may still be writing).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = logged(store.as_ref()).await;
        if n == CALLS * 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "every call's three webhooks reach the outbox: {n} of {}",
            CALLS * 3
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let _ = events;
    node.shutdown().await;
    elapsed
}

async fn logged(store: &dyn Store) -> usize {
    let (mut n, mut after) = (0, None);
    loop {
        let page = store
            .events_after("acme", after.as_deref(), 1000)
            .await
            .unwrap();
        n += page.items.len();
        after = page.items.last().map(|e| e.cursor.clone());
        if page.next_cursor.is_none() {
            return n;
        }
    }
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn report(name: &str, events: usize, d: Duration) {
    println!(
        "{name:<28} {events} events in {:>7.1} ms = {:>9.0} events/s",
        d.as_secs_f64() * 1e3,
        events as f64 / d.as_secs_f64()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` only checks that this builds
    }
    if std::env::var_os("FSGATE_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("FSGATE_LOG"))
            .try_init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (bytes, events) = stream();
        let bytes = Arc::new(bytes);
        println!(
            "{CALLS} calls, {events} events, {:.1} MB",
            bytes.len() as f64 / 1e6
        );
        println!("RSS before: {:.0} MB", rss_mb());
        for round in 0..2 {
            println!("-- round {}", round + 1);
            report(
                "decode only",
                events,
                decode_only(bytes.clone(), events).await,
            );
            let memory = store::open("memory://").await.unwrap();
            report(
                "pipeline (memory store)",
                events,
                through_pipeline(bytes.clone(), events, memory).await,
            );
            println!("RSS: {:.0} MB", rss_mb());
            if let Some(redis) = RedisProcess::start() {
                let store = store::open(&redis.url()).await.unwrap();
                report(
                    "pipeline (redis store)",
                    events,
                    through_pipeline(bytes.clone(), events, store).await,
                );
                println!("RSS: {:.0} MB", rss_mb());
            } else {
                println!("pipeline (redis store)      skipped: redis-server not on PATH");
            }
        }
    });
}

/// A throwaway redis-server on a free port.
struct RedisProcess {
    child: std::process::Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl RedisProcess {
    fn start() -> Option<RedisProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = std::env::temp_dir().join(format!("fsgate-bench-redis-{port}"));
        std::fs::create_dir_all(&dir).ok()?;
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(RedisProcess {
                    child,
                    port,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
