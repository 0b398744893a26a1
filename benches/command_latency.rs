//! REST command to ESL line: how long from a client sending
//! `POST /api/v1/sessions/{uuid}/commands/hangup` until the FreeSWITCH side
//! has read `api uuid_kill …` off its socket, next to a `GET /healthz` round
//! trip measured in the same run (the baseline: the HTTP stack alone).
//!
//! The FreeSWITCH side is a scripted ESL peer (auth, event subscription, and
//! `+OK` to every `api`), which timestamps each command line as it reads it.
//! The daemon side is the real HTTP router (auth, extractors, envelope,
//! metrics middleware) with the call-control routes over a MemoryStore and a
//! real ESL node connection. Also measured: the service alone (no HTTP) to
//! the ESL line, and the 202 round trip.
//!
//! Run: `cargo bench --bench command_latency` (prints a table per store:
//! the memory store, then a `redis-server` it starts on loopback when one is
//! on the PATH).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fsgate::clock::SystemClock;
use fsgate::config::ControlConfig;
use fsgate::control::{CollectingSink, ControlService, ControlSettings, HangupRequest, Results};
use fsgate::esl::command::Password;
use fsgate::esl::connection::ConnectOptions;
use fsgate::esl::node::{Node, NodeConfig};
use fsgate::store::memory::MemoryStore;
use fsgate::store::{CallDirection, CallRecord, CallState, Store};
use fsgate::switch::Switch;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const KEY: &str = "bench-key-0001";
const WARMUP: usize = 300;
const RUNS: usize = 3000;

/// The scripted FreeSWITCH: answers auth and event, `+OK` to every api, and
/// reports each api line with the instant it was read.
async fn peer(listener: TcpListener, lines: mpsc::UnboundedSender<(String, Instant)>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let lines = lines.clone();
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let (read, mut write) = socket.into_split();
            let mut read = BufReader::new(read);
            if write
                .write_all(b"Content-Type: auth/request\n\n")
                .await
                .is_err()
            {
                return;
            }
            let mut line = String::new();
            loop {
                line.clear();
                match read.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let at = Instant::now();
                let command = line.trim_end().to_owned();
                if command.is_empty() {
                    continue;
                }
                // Skip the rest of the command block (up to the blank line).
                let mut rest = String::new();
                loop {
                    rest.clear();
                    match read.read_line(&mut rest).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) if rest.trim_end().is_empty() => break,
                        Ok(_) => {}
                    }
                }
                let reply: Vec<u8> = if command.starts_with("api ") {
                    let _ = lines.send((command, at));
                    b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n".to_vec()
                } else if command.starts_with("auth") {
                    b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n".to_vec()
                } else {
                    b"Content-Type: command/reply\nReply-Text: +OK\n\n".to_vec()
                };
                if write.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn config(esl: &str) -> fsgate::config::Config {
    let text = format!(
        r#"
[http]
listen = "127.0.0.1:0"
[[freeswitch]]
name = "fs1"
address = "{esl}"
[[tenants]]
id = "acme"
api_keys_sha256 = ["{key}"]
"#,
        key = fsgate::tenants::hash_key(KEY)
    );
    fsgate::config::load_str(&text, "bench.toml", Vec::new()).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn row(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "| {name} | {:.0} µs | {:.0} µs | {:.0} µs | {} |",
        us(percentile(&samples, 0.5)),
        us(percentile(&samples, 0.99)),
        us(*samples.last().unwrap()),
        samples.len()
    );
}

/// A `redis-server` child on a free port, killed on drop.
struct Redis(std::process::Child, u16);

impl Redis {
    fn start() -> Option<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis(child, port));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run(label: &str, store: Arc<dyn Store>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let esl = listener.local_addr().unwrap().to_string();
    let (tx, mut lines) = mpsc::unbounded_channel();
    tokio::spawn(peer(listener, tx));

    let (events_tx, mut events_rx) = mpsc::channel(1024);
    tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
    let node = Node::spawn(
        NodeConfig::new(
            "fs1",
            esl.clone(),
            ConnectOptions::new(Password::new("ClueCon").unwrap()),
        ),
        events_tx,
    );
    let switch = Switch::new(vec![node.handle()]);
    while !switch.any_connected() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let call = uuid::Uuid::new_v4().to_string();
    store
        .put_call(
            CallRecord {
                uuid: call.clone(),
                tenant: Some("acme".into()),
                node: "fs1".into(),
                direction: CallDirection::Inbound,
                state: CallState::Answered,
                caller: Some("+15557770001".into()),
                caller_display_name: None,
                callee: Some("+15550109000".into()),
                other_leg: None,
                created_at: Utc::now(),
                answered_at: Some(Utc::now()),
                ended_at: None,
                hangup_cause: None,
                q850: None,
                sip_code: None,
                duration_s: None,
                billsec: None,
                user_data: None,
                session_ref: None,
                reconciled: false,
                extra: Default::default(),
            },
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let results = Results::new(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(CollectingSink::default()),
    );
    let settings = ControlSettings::from_config(&ControlConfig::default()).unwrap();
    let control = ControlService::new(switch.clone(), results, settings);

    let state = fsgate::http::AppState::new(
        config(&esl),
        store.clone(),
        Arc::new(vec![node.handle()]),
        Arc::new(SystemClock),
        fsgate::telemetry::metrics(),
    );
    let router = fsgate::http::router(
        state,
        vec![fsgate::control::routes::routes(control.clone())],
    );
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", http.local_addr().unwrap());
    tokio::spawn(fsgate::http::serve(http, router, std::future::pending()));
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let hangup_url = format!("{base}/api/v1/sessions/{call}/commands/hangup");
    let health_url = format!("{base}/healthz");

    let mut to_line = Vec::new();
    let mut to_202 = Vec::new();
    let mut health = Vec::new();
    let mut service_to_line = Vec::new();
    for i in 0..WARMUP + RUNS {
        // Baseline: the HTTP stack alone.
        let t0 = Instant::now();
        let r = client.get(&health_url).send().await.unwrap();
        assert!(r.status().is_success());
        let _ = r.bytes().await;
        let healthz = t0.elapsed();

        // REST command to ESL line.
        let body = format!(r#"{{"command_uid":"bench-{i}","cause":"USER_BUSY"}}"#);
        let t0 = Instant::now();
        let r = client
            .post(&hangup_url)
            .header("X-API-Key", KEY)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let _ = r.bytes().await;
        let accepted = t0.elapsed();
        let (line, at) = lines.recv().await.unwrap();
        assert!(line.starts_with("api uuid_kill "), "{line}");

        // The service alone (no HTTP) to the ESL line.
        let req = HangupRequest {
            command_uid: Some(format!("direct-{i}")),
            cause: Some("USER_BUSY".into()),
        };
        let s0 = Instant::now();
        control.hangup("acme", &call, &req).await.unwrap();
        let (_, s_at) = lines.recv().await.unwrap();

        if i >= WARMUP {
            health.push(healthz);
            to_line.push(at.duration_since(t0));
            to_202.push(accepted);
            service_to_line.push(s_at.duration_since(s0));
        }
    }
    println!("\nstore: {label}\n");
    println!("| measurement | p50 | p99 | max | n |");
    println!("| --- | --- | --- | --- | --- |");
    row("GET /healthz round trip (baseline)", health);
    row(
        "POST …/commands/hangup → `api uuid_kill` read by FreeSWITCH",
        to_line,
    );
    row("POST …/commands/hangup → 202 received", to_202);
    row(
        "ControlService::hangup (no HTTP) → `api uuid_kill` read",
        service_to_line,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run("memory://", Arc::new(MemoryStore::new())));
    match Redis::start() {
        Some(redis) => rt.block_on(async {
            let url = format!("redis://127.0.0.1:{}/0", redis.1);
            let store = fsgate::store::open(&url).await.unwrap();
            run("redis-server on loopback", store).await;
        }),
        None => println!("\n(redis-server not found: Redis run skipped)"),
    }
}
