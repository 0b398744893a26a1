//! ESL intake over a real socket, against a framing-only baseline in the same run.
//!
//! A pusher thread plays FreeSWITCH's side of an inbound connection (it sends
//! `auth/request`, accepts `auth ClueCon`, answers the `event plain|json …`
//! subscription with `+OK`) and then writes a recorded event stream as fast
//! as the socket takes it: every event frame of four real captures
//! (`tests/fixtures/captures`: CHANNEL_* events with all their variables,
//! HEARTBEAT, BACKGROUND_JOB; ~6.2 kB each), repeated to 200,000 events, in
//! the format the client subscribed to. Then it closes its side.
//!
//! Each client counts the events it got; each run is timed from the pusher's
//! first stream byte to the client's last event. Clients, interleaved in
//! every round, medians over the rounds:
//!
//! - **framing only** (the baseline, the limit of this harness): blocking
//!   reads into a 1 MiB buffer, `memchr` for the blank line and
//!   `Content-Length`, the body skipped, frames counted. No ESL library
//!   does less.
//! - **connection**: `esl::connection`: its reader decodes every event into
//!   an [`Event`] and queues it; the consumer drains the queue and reads
//!   `Event-Name`.
//! - **node**: the same through the node supervisor and its channel, as the
//!   daemon consumes events (`Node::spawn` into an `mpsc` of `NodeEvent`).
//! - **`fsgate events`**: the real binary as an operator runs it
//!   (`fsgate events --connect … --format plain|json --count 200000`,
//!   stdout to `/dev/null`), a child process timed until it exits; its peak
//!   RSS and CPU time come from `wait4`.
//!
//! Events a client had to drop (its queue was full) are counted and shown,
//! and rates count delivered events only: a dropped event is not intake.
//!
//! Run: `cargo bench --bench intake` (about 2½ minutes).
//! `FSGATE_INTAKE_ROUNDS` and `FSGATE_INTAKE_EVENTS` change the defaults
//! (5 rounds, 200,000 events). Figures are in BENCHMARKS.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fsgate::esl::codec::FrameCodec;
use fsgate::esl::command::Password;
use fsgate::esl::connection::{self, ConnectOptions, Delivery};
use fsgate::esl::node::{Node, NodeConfig, NodeEvent};
use fsgate::esl::{ContentType, EventFormat};
use tokio_util::codec::Decoder;

const SCENARIOS: [&str; 4] = [
    "api-basics",
    "originate-transfer-kill",
    "inbound-park-answer-kill",
    "inbound-bridge",
];

/// The event frames of the captures of one format, repeated to `target`.
fn stream(format: &str, target: usize) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/captures");
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for scenario in SCENARIOS {
        let data = std::fs::read(format!("{dir}/{format}-{scenario}.s2c.bin")).unwrap();
        let mut buf = BytesMut::from(&data[..]);
        let mut codec = FrameCodec::default();
        let mut at = 0;
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            let end = data.len() - buf.len();
            if matches!(
                frame.content_type(),
                ContentType::EventPlain | ContentType::EventJson
            ) {
                frames.push(data[at..end].to_vec());
            }
            at = end;
        }
    }
    let mut out = Vec::new();
    for i in 0..target {
        out.extend_from_slice(&frames[i % frames.len()]);
    }
    out
}

/// Reads one client command (up to its blank line); `None` at end of stream.
fn read_command(sock: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\n\n") {
        match sock.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// The scripted switch: one connection, the handshake, the whole stream,
/// then FIN. Returns the address and, once the client has gone, the instant
/// the stream started.
fn pusher(stream: Arc<Vec<u8>>) -> (String, thread::JoinHandle<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_nodelay(true).unwrap();
        sock.write_all(b"Content-Type: auth/request\n\n").unwrap();
        let auth = read_command(&mut sock).unwrap();
        assert_eq!(auth.trim_end(), "auth ClueCon");
        sock.write_all(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
            .unwrap();
        let sub = read_command(&mut sock).unwrap();
        assert!(sub.starts_with("event "), "{sub:?}");
        sock.write_all(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled\n\n")
            .unwrap();
        let started = Instant::now();
        // A client that stops early (fsgate events at its --count) may
        // close first; that ends the run, not the bench.
        let _ = sock.write_all(&stream);
        let _ = sock.shutdown(Shutdown::Write);
        let mut sink = [0u8; 4096];
        while matches!(sock.read(&mut sink), Ok(n) if n > 0) {}
        started
    });
    (addr, handle)
}

/// What one client run measured.
struct Run {
    elapsed: Duration,
    dropped: u64,
    /// Peak RSS (KiB) and CPU time of the child process, when there is one.
    child: Option<(u64, Duration)>,
}

impl Run {
    /// Events delivered (not dropped) per second.
    fn rate(&self, events: usize) -> f64 {
        (events as u64 - self.dropped) as f64 / self.elapsed.as_secs_f64()
    }
}

/// The baseline: frames counted with memchr, bodies skipped.
fn framing_only(addr: &str, format: &str, events: usize) -> Instant {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.write_all(format!("auth ClueCon\n\nevent {format} ALL\n\n").as_bytes())
        .unwrap();
    let target = events + 3; // auth/request and two replies
    let mut buf = vec![0u8; 1 << 20];
    let (mut lo, mut hi, mut skip, mut frames) = (0usize, 0usize, 0usize, 0usize);
    let finder = memchr::memmem::Finder::new(b"\n\n");
    let length = memchr::memmem::Finder::new(b"Content-Length: ");
    loop {
        loop {
            if skip > 0 {
                let k = skip.min(hi - lo);
                lo += k;
                skip -= k;
                if skip > 0 {
                    break;
                }
            }
            let Some(end) = finder.find(&buf[lo..hi]) else {
                break;
            };
            let head = &buf[lo..lo + end];
            skip = length.find(head).map_or(0, |i| {
                head[i + 16..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .fold(0, |n, &d| n * 10 + usize::from(d - b'0'))
            });
            lo += end + 2;
            frames += 1;
        }
        if frames >= target && skip == 0 {
            return Instant::now();
        }
        if lo == hi {
            (lo, hi) = (0, 0);
        } else if buf.len() - hi < 64 * 1024 {
            buf.copy_within(lo..hi, 0);
            (lo, hi) = (0, hi - lo);
        }
        let n = sock.read(&mut buf[hi..]).unwrap();
        assert!(n > 0, "stream ended after {frames} of {target} frames");
        hi += n;
    }
}

fn options() -> ConnectOptions {
    let mut o = ConnectOptions::new(Password::new("ClueCon").unwrap());
    o.idle_timeout = None;
    o
}

fn format_of(format: &str) -> EventFormat {
    format.parse().unwrap()
}

/// `esl::connection`, its queue drained by a consumer reading Event-Name.
async fn through_connection(addr: &str, format: &str, events: usize) -> (Instant, u64) {
    let (client, mut rx) = connection::connect(addr, &options()).await.unwrap();
    client.subscribe(format_of(format), &[]).await.unwrap();
    let (mut got, mut dropped) = (0usize, 0u64);
    let mut batch = Vec::with_capacity(256);
    while got + (dropped as usize) < events {
        assert!(rx.recv_many(&mut batch, 256).await > 0, "connection ended");
        for d in batch.drain(..) {
            match d {
                Delivery::Event(e) => {
                    std::hint::black_box(e.name());
                    got += 1;
                }
                Delivery::Lagged(k) => dropped += k,
            }
        }
    }
    let end = Instant::now();
    client.close().await;
    (end, dropped)
}

/// The node supervisor into a channel, as the daemon consumes it.
async fn through_node(addr: &str, format: &str, events: usize) -> (Instant, u64) {
    let mut config = NodeConfig::new("fs1", addr, options());
    config.format = format_of(format);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let node = Node::spawn(config, tx);
    let (mut got, mut dropped) = (0usize, 0u64);
    let mut batch = Vec::with_capacity(256);
    while got + (dropped as usize) < events {
        assert!(rx.recv_many(&mut batch, 256).await > 0, "node stopped");
        for m in batch.drain(..) {
            match m {
                NodeEvent::Event { event, .. } => {
                    std::hint::black_box(event.name());
                    got += 1;
                }
                NodeEvent::Lagged { dropped: k, .. } => dropped += k,
                NodeEvent::Disconnected { .. } if got + dropped as usize >= events => {}
                NodeEvent::Disconnected { reason, .. } => {
                    panic!("node lost after {got} events, {dropped} dropped: {reason}")
                }
                _ => {}
            }
        }
    }
    let end = Instant::now();
    node.shutdown().await;
    (end, dropped)
}

enum ChildNews {
    Exited(Instant, libc::rusage),
    Lost(Instant),
    Dropped(u64),
}

/// The real binary, stdout to /dev/null, timed until it exits.
fn fsgate_events(addr: &str, format: &str, events: usize) -> (Instant, u64, (u64, Duration)) {
    // Reaped with wait4 below (for its rusage), not Child::wait.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(env!("CARGO_BIN_EXE_fsgate"))
        .args(["events", "--connect", addr, "--password", "ClueCon"])
        .args(["--format", format, "--count", &events.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std_mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let news = tx.clone();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("connection to") && line.contains("lost") {
                let _ = news.send(ChildNews::Lost(Instant::now()));
            } else if let Some(n) = line
                .strip_prefix("fsgate events: ")
                .and_then(|l| l.strip_suffix(" events dropped (output too slow)"))
            {
                let _ = news.send(ChildNews::Dropped(n.parse().unwrap_or(0)));
            } else {
                eprintln!("  fsgate events said: {line}");
            }
        }
    });
    // Peak RSS: the child's VmHWM, sampled until it exits. (`ru_maxrss`
    // would count this process's own memory, which the child's address
    // space held until its exec.)
    let hwm = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let peak = hwm.clone();
    thread::spawn(move || {
        let path = format!("/proc/{pid}/status");
        while let Ok(status) = std::fs::read_to_string(&path) {
            let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            else {
                break; // exited (a zombie has no memory left)
            };
            peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
            thread::sleep(Duration::from_millis(2));
        }
    });
    thread::spawn(move || {
        // SAFETY: plain FFI; `usage` is written by the kernel.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let mut status = 0;
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(r, pid, "wait4");
        let _ = tx.send(ChildNews::Exited(Instant::now(), usage));
    });
    let (mut end, mut dropped) = (None, 0u64);
    let usage = loop {
        match rx
            .recv_timeout(Duration::from_secs(120))
            .expect("fsgate events finishes")
        {
            ChildNews::Dropped(n) => dropped += n,
            // Drops kept it from reaching --count: everything it will ever
            // print is printed once it reports the end of the stream.
            ChildNews::Lost(at) => {
                end.get_or_insert(at);
                let _ = child.kill();
            }
            ChildNews::Exited(at, usage) => {
                end.get_or_insert(at);
                break usage;
            }
        }
    };
    let cpu = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let rss_kib = hwm.load(std::sync::atomic::Ordering::Relaxed);
    (
        end.unwrap(),
        dropped,
        (rss_kib, cpu(usage.ru_utime) + cpu(usage.ru_stime)),
    )
}

const CLIENTS: [&str; 4] = ["framing only", "connection", "node", "fsgate events"];

fn run_one(
    rt: &tokio::runtime::Runtime,
    client: &str,
    format: &str,
    data: &Arc<Vec<u8>>,
    events: usize,
) -> Run {
    let (addr, pusher) = pusher(data.clone());
    let (end, dropped, child) = match client {
        "framing only" => (framing_only(&addr, format, events), 0, None),
        "connection" => {
            let (end, dropped) = rt.block_on(through_connection(&addr, format, events));
            (end, dropped, None)
        }
        "node" => {
            let (end, dropped) = rt.block_on(through_node(&addr, format, events));
            (end, dropped, None)
        }
        _ => {
            let (end, dropped, child) = fsgate_events(&addr, format, events);
            (end, dropped, Some(child))
        }
    };
    let started = pusher.join().unwrap();
    Run {
        elapsed: end.duration_since(started),
        dropped,
        child,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo test --all-targets` runs this without `--bench`: then one small
    // round, a smoke test of every client (in a debug build the real run
    // would take many minutes).
    let smoke = !std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = if smoke {
        1
    } else {
        env("FSGATE_INTAKE_ROUNDS", 5)
    };
    let events = if smoke {
        2_000
    } else {
        env("FSGATE_INTAKE_EVENTS", 200_000)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let formats = ["plain", "json"];
    let data: Vec<Arc<Vec<u8>>> = formats
        .iter()
        .map(|f| Arc::new(stream(f, events)))
        .collect();
    for (f, d) in formats.iter().zip(&data) {
        println!(
            "{f}: {events} events, {:.1} MB, {:.0} bytes per event",
            d.len() as f64 / 1e6,
            d.len() as f64 / events as f64
        );
    }
    // results[format][client] = runs
    let mut results: Vec<Vec<Vec<Run>>> = (0..formats.len())
        .map(|_| (0..CLIENTS.len()).map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        for (fi, format) in formats.iter().enumerate() {
            for (ci, client) in CLIENTS.iter().enumerate() {
                let run = run_one(&rt, client, format, &data[fi], events);
                println!(
                    "round {} {format:<5} {client:<14} {:>8.0} events/s{}{}",
                    round + 1,
                    run.rate(events),
                    run.child.map_or(String::new(), |(rss, cpu)| format!(
                        "  peak RSS {:.1} MiB, CPU {:.2} us/event",
                        rss as f64 / 1024.0,
                        cpu.as_secs_f64() * 1e6 / events as f64
                    )),
                    if run.dropped > 0 {
                        format!("  ({} dropped)", run.dropped)
                    } else {
                        String::new()
                    },
                );
                results[fi][ci].push(run);
            }
        }
    }
    println!();
    println!("medians of {rounds} interleaved rounds, {events} events per run");
    println!(
        "| client | format | events/s | of framing only | dropped | peak RSS | CPU per event |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (fi, format) in formats.iter().enumerate() {
        let base = &results[fi][0];
        for (ci, client) in CLIENTS.iter().enumerate() {
            let runs = &results[fi][ci];
            let rate = median(runs.iter().map(|r| r.rate(events)).collect());
            // Each run against the baseline of its own round.
            let ratio = median(
                runs.iter()
                    .zip(base)
                    .map(|(r, b)| r.rate(events) / b.rate(events))
                    .collect(),
            );
            let dropped: u64 = runs.iter().map(|r| r.dropped).sum();
            let (rss, cpu) = if runs[0].child.is_some() {
                let rss = runs.iter().filter_map(|r| r.child).map(|c| c.0).max();
                let cpu = median(
                    runs.iter()
                        .filter_map(|r| r.child)
                        .map(|c| c.1.as_secs_f64() * 1e6 / events as f64)
                        .collect(),
                );
                (
                    format!("{:.1} MiB (max)", rss.unwrap_or(0) as f64 / 1024.0),
                    format!("{cpu:.2} us"),
                )
            } else {
                ("-".into(), "-".into())
            };
            println!(
                "| {client} | {format} | {:.1}k | {:.0} % | {dropped} | {rss} | {cpu} |",
                rate / 1e3,
                ratio * 100.0
            );
        }
    }
}
