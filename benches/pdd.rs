//! Post-dial delay (PDD) of masked calls on the real switch: the time from
//! the caller's INVITE leaving its socket to the carrier's INVITE arriving on
//! 127.0.0.1:5090, with FreeSWITCH 1.11 routing the call three ways in the
//! same run:
//!
//! 1. `static-bridge`: an extension of this bench's own conf copy bridges the
//!    masked number straight to the carrier gateway, with the leg variables
//!    fsgate's route answer sets (no lookup at all: the switch's floor);
//! 2. `static-lookup`: the project's route extension
//!    (`dialplan/public/00_fsgate.xml`, installed by
//!    `freeswitch-conf/install.sh`) with `fsgate_url` pointing at nginx, which
//!    answers every lookup with one fixed 200 dial string (fsgate's own
//!    answer for a live session, fetched at set-up): the cost of the lookup
//!    itself;
//! 3. `fsgate`: the same extension asking the real `fsgate serve` binary
//!    (release build, Redis store, connected to the switch's Event Socket,
//!    webhooks going out) for live masked sessions.
//!
//! Calls go one after another (interleaved rounds, a fixed pause between
//! calls), then open loop at fixed rates for 2 and 3 (interleaved blocks),
//! then at rising rates until fsgate's p99 doubles against its
//! one-after-another p99 (or calls fail, or the time budget runs out). The
//! carrier answers every INVITE with 486 at once (the PDD ends at its
//! arrival; no media, so channels never pile up and every variant pays the
//! same for the rest of the call).
//!
//! Inside the loopback-only namespace only: `scripts/bench-pdd.sh` builds it
//! and runs it there. Results go to stdout and to
//! `target/bench-pdd/results.md` (and `.json`).

#[allow(dead_code)]
#[path = "../tests/real_switch_support/freeswitch.rs"]
mod freeswitch;
#[path = "../tests/real_switch_support/sip/mod.rs"]
mod sip;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sip::Phone;

/// The switch's `external` profile (base configuration).
const SWITCH_SIP: &str = "127.0.0.1:5080";
/// The `carrier` gateway's proxy (`fsgate_carrier_proxy` default).
const CARRIER: &str = "127.0.0.1:5090";
/// fsgate (the `fsgate_url` default).
const DAEMON: &str = "127.0.0.1:8080";
/// nginx: the static lookup and the webhook receiver.
const STATIC_HTTP: &str = "127.0.0.1:8081";
const REDIS_PORT: u16 = 6390;
const ALICE: &str = "+15557770001";
const BOB: &str = "+15557770002";
const API_KEY: &str = "acme-key";
const WEBHOOK_SECRET: &str = "whsec_ZnNnYXRlLWV4YW1wbGUtc2VjcmV0LTAxMjM0NTY3ODk=";
/// Live sessions the masked calls go round (one more is the set-up probe's).
const SESSIONS: usize = 8;
/// A call without its final response by then failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Between two calls made one after another.
const GAP: Duration = Duration::from_millis(30);
/// Rounds before measuring (one call per variant each).
const WARMUP_ROUNDS: usize = 30;
/// Open-loop rates for static-lookup and fsgate (calls per second).
const FIXED_RATES: [u32; 3] = [10, 25, 50];
/// Blocks per rate and variant (alternating variants).
const BLOCKS: usize = 6;
/// Rising rates after the fixed ones (50 is the fixed rate's result).
const STEP_RATES: [u32; 9] = [50, 100, 150, 200, 250, 300, 400, 500, 600];
/// Seconds of calls per variant at each rising rate (at least 200 calls).
const STEP_SECONDS: f64 = 2.0;
/// The rising rates stop once the run has taken this long.
const BUDGET: Duration = Duration::from_secs(270);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Variant {
    StaticBridge,
    StaticLookup,
    Fsgate,
}

impl Variant {
    const ALL: [Variant; 3] = [
        Variant::StaticBridge,
        Variant::StaticLookup,
        Variant::Fsgate,
    ];

    /// The `X-Bench-Variant` header the bench's extension routes on.
    fn tag(self) -> &'static str {
        match self {
            Variant::StaticBridge => "static-bridge",
            Variant::StaticLookup => "static-lookup",
            Variant::Fsgate => "fsgate",
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The 1-minute load average (other work on the machine skews every figure).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- processes

/// Child processes killed with this process (PR_SET_PDEATHSIG; the forking
/// thread is the main thread, which lives as long as the process) and
/// stopped with SIGTERM on drop.
struct Children(Vec<(String, Child)>);

impl Children {
    fn spawn(&mut self, name: &str, mut cmd: Command) {
        use std::os::unix::process::CommandExt;
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.0.push((name.to_owned(), child));
    }

    fn stop(&mut self, name: &str) {
        if let Some(i) = self.0.iter().position(|(n, _)| n == name) {
            let (_, child) = self.0.remove(i);
            terminate(child);
        }
    }

    /// Fails loudly if a child has exited.
    fn check(&mut self) {
        for (name, child) in &mut self.0 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited with {status}");
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in self.0.drain(..).rev() {
            terminate(child);
        }
    }
}

fn terminate(mut child: Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    Stdio::from(std::fs::File::create(dir.join(name)).unwrap())
}

fn wait_tcp(addr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} not listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------ configuration

/// The bench's own extensions, before `00_fsgate.xml` in name order. Every
/// call passes the first one (its sequence number goes into the carrier
/// INVITE's Request-URI, so that overlapping calls are told apart); the
/// static-bridge calls end in the second; the static-lookup calls get
/// nginx's `fsgate_url` from the third and go on into the project's route
/// extension, as the fsgate calls do.
fn bench_dialplan(dial_string: &str) -> String {
    assert!(
        !dial_string.contains(['"', '<', '>', '&', '$']),
        "unexpected characters in the dial string: {dial_string}"
    );
    format!(
        r#"<include>
  <extension name="pdd_bench_tag" continue="true">
    <condition field="${{sip_h_X-Bench-Seq}}" expression="^([0-9]+)$">
      <action application="export" data="nolocal:sip_invite_params=bseq=$1"/>
    </condition>
  </extension>
  <extension name="pdd_bench_static_bridge">
    <condition field="${{sip_h_X-Bench-Variant}}" expression="^static-bridge$">
      <action application="set" data="hangup_after_bridge=true"/>
      <action application="set" data="continue_on_fail=false"/>
      <action application="bridge" data="{dial_string}"/>
    </condition>
  </extension>
  <extension name="pdd_bench_static_lookup" continue="true">
    <condition field="${{sip_h_X-Bench-Variant}}" expression="^static-lookup$">
      <action application="set" data="fsgate_url=http://{STATIC_HTTP}" inline="true"/>
    </condition>
  </extension>
</include>
"#
    )
}

/// nginx as a single process: the fixed route answer and a 204 for webhooks.
fn nginx_conf(dir: &Path, dial_string: &str) -> String {
    assert!(!dial_string.contains(['"', '\\', '$']), "{dial_string}");
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  server {{
    listen {STATIC_HTTP};
    location = /v1/dialplan/route {{
      default_type text/plain;
      return 200 "{dial_string}";
    }}
    location = /hooks {{
      return 204;
    }}
  }}
}}
"#
    )
}

fn fsgate_config() -> String {
    let numbers: Vec<String> = (1..=SESSIONS + 1)
        .map(|i| format!("\"+155501{i:05}\""))
        .collect();
    format!(
        r#"[http]
listen = "{DAEMON}"

[store]
url = "redis://127.0.0.1:{REDIS_PORT}/0"

[[freeswitch]]
name = "fs1"
address = "{esl}"
password = "{password}"

[[tenants]]
id = "acme"
api_keys_sha256 = ["{key}"]
masked_numbers = [{numbers}]
control_numbers = ["+15550109000"]
default_ttl_minutes = 240
max_ttl_minutes = 240
webhook_url = "http://{STATIC_HTTP}/hooks"
webhook_secret = "{WEBHOOK_SECRET}"
trunk = "carrier"
dial_string = "sofia/gateway/${{trunk}}/${{number}}"
"#,
        esl = freeswitch::ESL,
        password = freeswitch::ESL_PASSWORD,
        key = fsgate::tenants::hash_key(API_KEY),
        numbers = numbers.join(", "),
    )
}

// ------------------------------------------------------------------ carrier

/// What the carrier saw of one call's INVITE.
struct Seen {
    at: Instant,
    from_user: String,
    to_bob: bool,
}

/// The carrier: a plain UDP socket on its own thread that timestamps each
/// INVITE as it is read and answers 486 at once (200 to anything else but ACK).
#[derive(Default)]
struct Carrier {
    seen: Mutex<HashMap<u64, Seen>>,
    untagged: AtomicU64,
}

impl Carrier {
    fn start() -> Arc<Carrier> {
        let socket = UdpSocket::bind(CARRIER)
            .unwrap_or_else(|e| panic!("cannot bind the carrier on {CARRIER}: {e}"));
        let carrier = Arc::new(Carrier::default());
        let c = carrier.clone();
        std::thread::Builder::new()
            .name("carrier".into())
            .spawn(move || c.serve(socket))
            .unwrap();
        carrier
    }

    fn take(&self, seq: u64) -> Option<Seen> {
        self.seen.lock().unwrap().remove(&seq)
    }

    fn serve(&self, socket: UdpSocket) {
        let mut buf = vec![0u8; 65536];
        let mut tags: HashMap<String, String> = HashMap::new();
        let mut next_tag = 0u64;
        loop {
            let Ok((len, src)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let at = Instant::now();
            let Ok(text) = std::str::from_utf8(&buf[..len]) else {
                continue;
            };
            let head = text.split("\r\n\r\n").next().unwrap_or("");
            let mut lines = head.split("\r\n");
            let first = lines.next().unwrap_or("");
            let method = first.split(' ').next().unwrap_or("");
            if method.is_empty() || method == "ACK" || method.starts_with("SIP/") {
                continue;
            }
            let (mut vias, mut from, mut to, mut call_id, mut cseq) = (Vec::new(), "", "", "", "");
            for line in lines {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "via" | "v" => vias.push(value),
                    "from" | "f" => from = value,
                    "to" | "t" => to = value,
                    "call-id" | "i" => call_id = value,
                    "cseq" => cseq = value,
                    _ => {}
                }
            }
            let status = if method == "INVITE" {
                match request_seq(first) {
                    Some(seq) => {
                        self.seen.lock().unwrap().entry(seq).or_insert(Seen {
                            at,
                            from_user: uri_user(from).to_owned(),
                            to_bob: first.contains(&format!("sip:{BOB}@")),
                        });
                    }
                    None => {
                        self.untagged.fetch_add(1, Ordering::Relaxed);
                    }
                }
                "486 Busy Here"
            } else {
                "200 OK"
            };
            let to = if to.contains(";tag=") {
                to.to_owned()
            } else {
                let tag = tags.entry(call_id.to_owned()).or_insert_with(|| {
                    next_tag += 1;
                    format!("carrier{next_tag}")
                });
                format!("{to};tag={tag}")
            };
            let mut reply = format!("SIP/2.0 {status}\r\n");
            for via in vias {
                let _ = write!(reply, "Via: {via}\r\n");
            }
            let _ = write!(
                reply,
                "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = socket.send_to(reply.as_bytes(), src);
        }
    }
}

/// `bseq=N` in the Request-URI of an INVITE's request line.
fn request_seq(request_line: &str) -> Option<u64> {
    let rest = &request_line[request_line.find(";bseq=")? + 6..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The user part of the first `sip:` URI in a header value.
fn uri_user(value: &str) -> &str {
    value
        .split_once("sip:")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map_or("", |(user, _)| user)
}

// -------------------------------------------------------------------- calls

struct Ctx {
    phone: Phone,
    carrier: Arc<Carrier>,
    switch: SocketAddr,
    /// The live sessions' masked numbers, called in turn.
    masked: Vec<String>,
    seq: AtomicU64,
}

/// One masked call: INVITE to the switch, the carrier's INVITE timestamped,
/// the switch's 486 to us (ACKed by the phone). Returns the PDD.
async fn one_call(ctx: &Ctx, variant: Variant) -> Result<Duration, String> {
    let seq = ctx.seq.fetch_add(1, Ordering::Relaxed);
    let masked = &ctx.masked[seq as usize % ctx.masked.len()];
    let seq_text = seq.to_string();
    let headers = [
        ("X-Bench-Variant", variant.tag()),
        ("X-Bench-Seq", seq_text.as_str()),
    ];
    let sent = Instant::now();
    let mut out = ctx.phone.call(ctx.switch, ALICE, masked, &headers).await;
    // The phone panics (with its whole log) past its own wait: stop first.
    let answer = tokio::time::timeout(CALL_TIMEOUT, out.answered(CALL_TIMEOUT * 4)).await;
    let seen = ctx.carrier.take(seq);
    let code = match answer {
        Err(_) => return Err(format!("no final response within {CALL_TIMEOUT:?}")),
        Ok(Ok(_)) => {
            out.hangup().await;
            return Err("answered (expected 486)".into());
        }
        Ok(Err(fin)) => fin.status().unwrap_or(0),
    };
    let Some(seen) = seen else {
        return Err(format!("{code} to the caller, no INVITE at the carrier"));
    };
    if code != 486 {
        return Err(format!("{code} to the caller (expected 486)"));
    }
    if !seen.to_bob {
        return Err("the carrier's INVITE was not for the other party".into());
    }
    if variant == Variant::Fsgate && seen.from_user != *masked {
        return Err(format!(
            "the carrier's INVITE came from {} (expected the session's {masked})",
            seen.from_user
        ));
    }
    Ok(seen.at.saturating_duration_since(sent))
}

/// PDDs and failures of one variant in one phase.
#[derive(Default, Clone)]
struct Sample {
    pdd_us: Vec<u64>,
    failures: Vec<String>,
    /// Open loop: how late the generator sent its worst INVITE.
    max_lag: Duration,
    /// Open loop: calls sent per second of sending.
    sent_rate: f64,
}

impl Sample {
    fn push(&mut self, r: Result<Duration, String>) {
        match r {
            Ok(d) => self.pdd_us.push(d.as_micros() as u64),
            Err(e) => self.failures.push(e),
        }
    }

    fn merge(&mut self, other: Sample) {
        self.pdd_us.extend(other.pdd_us);
        self.failures.extend(other.failures);
        self.max_lag = self.max_lag.max(other.max_lag);
        self.sent_rate = if self.sent_rate == 0.0 {
            other.sent_rate
        } else {
            self.sent_rate.min(other.sent_rate)
        };
    }

    /// Nearest-rank percentile, in milliseconds.
    fn pct(&self, p: f64) -> f64 {
        if self.pdd_us.is_empty() {
            return f64::NAN;
        }
        let mut v = self.pdd_us.clone();
        v.sort_unstable();
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        v[rank.min(v.len()) - 1] as f64 / 1000.0
    }

    fn n(&self) -> usize {
        self.pdd_us.len() + self.failures.len()
    }

    fn json(&self) -> Value {
        json!({
            "calls": self.n(),
            "failed": self.failures.len(),
            "first_failures": self.failures.iter().take(5).collect::<Vec<_>>(),
            "p50_ms": self.pct(50.0),
            "p90_ms": self.pct(90.0),
            "p99_ms": self.pct(99.0),
            "max_ms": self.pct(100.0),
            "max_send_lag_ms": self.max_lag.as_secs_f64() * 1000.0,
            "sent_per_s": self.sent_rate,
        })
    }
}

/// `n` calls of `variant` sent open loop at `rate` per second.
async fn open_loop(ctx: &Arc<Ctx>, variant: Variant, rate: u32, n: usize) -> Sample {
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = tokio::time::Instant::now() + Duration::from_millis(2);
    let mut tasks = Vec::with_capacity(n);
    let mut max_lag = Duration::ZERO;
    for i in 0..n {
        let at = start + period * i as u32;
        tokio::time::sleep_until(at).await;
        max_lag = max_lag.max(tokio::time::Instant::now() - at);
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move { one_call(&ctx, variant).await }));
    }
    let sending = start.elapsed().as_secs_f64();
    let mut sample = Sample {
        max_lag,
        sent_rate: if sending > 0.0 {
            n.saturating_sub(1) as f64 / sending
        } else {
            0.0
        },
        ..Sample::default()
    };
    for t in tasks {
        sample.push(t.await.unwrap_or_else(|e| Err(format!("call task: {e}"))));
    }
    sample
}

/// One `GET` on a new connection (`Connection: close`, as mod_curl's one
/// request per handle); the time to the whole answer, which must be a 200.
fn http_get(addr: &str, path: &str) -> Result<Duration, String> {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let took = started.elapsed();
    if answer.starts_with(b"HTTP/1.1 200") {
        Ok(took)
    } else {
        Err(String::from_utf8_lossy(&answer[..answer.len().min(40)]).into_owned())
    }
}

/// Both open-loop variants at `rate`, `n` calls each, in two blocks each
/// ordered A B B A (which one is A alternates with `turn`).
async fn abba(ctx: &Arc<Ctx>, rate: u32, n: usize, turn: usize) -> HashMap<Variant, Sample> {
    let (a, b) = if turn.is_multiple_of(2) {
        (Variant::StaticLookup, Variant::Fsgate)
    } else {
        (Variant::Fsgate, Variant::StaticLookup)
    };
    let mut m: HashMap<Variant, Sample> = HashMap::new();
    for v in [a, b, b, a] {
        settle().await;
        let s = open_loop(ctx, v, rate, n.div_ceil(2)).await;
        m.entry(v).or_default().merge(s);
    }
    m
}

/// Waits for the switch to have no channel left (and a moment for the
/// daemon to finish with the calls' events), between blocks.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = tokio::task::spawn_blocking(|| {
            freeswitch::api("show channels as json")
                .ok()
                .and_then(|b| serde_json::from_str::<Value>(&b).ok())
                .and_then(|v| v["row_count"].as_u64())
        })
        .await
        .unwrap();
        if rows == Some(0) || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --------------------------------------------------------------------- main

/// The daemon under test: this build's `fsgate`, or `FSGATE_PDD_DAEMON`
/// (another build, for a before/after comparison).
fn daemon_binary() -> PathBuf {
    std::env::var_os("FSGATE_PDD_DAEMON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_fsgate")))
}

fn main() {
    // `cargo bench` (and scripts/bench-pdd.sh) pass `--bench`; `cargo test
    // --all-targets --all-features` runs bench targets without it: nothing
    // to do then (this needs the namespace and minutes).
    if !std::env::args().any(|a| a == "--bench") {
        println!("pdd: skipped (run scripts/bench-pdd.sh)");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = rt.block_on(run());
    std::process::exit(code);
}

async fn run() -> i32 {
    let began = Instant::now();
    let load_before = loadavg();
    let work = std::env::var_os("FSGATE_PDD_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/bench-pdd"));
    let _ = std::fs::remove_dir_all(&work);
    for d in ["redis", "nginx/tmp", "switch"] {
        std::fs::create_dir_all(work.join(d)).unwrap();
    }
    let seq_calls = env_usize("FSGATE_PDD_CALLS", 300);
    let rate_calls = env_usize("FSGATE_PDD_RATE_CALLS", 300);
    let max_rate = env_usize("FSGATE_PDD_MAX_RATE", 600) as u32;
    let mut children = Children(Vec::new());

    // The switch: the base configuration, the operator's install, and this
    // bench's extensions; sessions-per-second raised for the rising rates.
    let switch_dir = work.join("switch");
    let conf = freeswitch::copy_base_conf(&switch_dir);
    freeswitch::run_script(&repo().join("freeswitch-conf/install.sh"), &[&conf], &[]);
    let switch_conf = conf.join("autoload_configs/switch.conf.xml");
    let text = std::fs::read_to_string(&switch_conf).unwrap();
    let raised = regex::Regex::new(r#"name="sessions-per-second" value="[0-9]+""#)
        .unwrap()
        .replace(&text, r#"name="sessions-per-second" value="2000""#)
        .into_owned();
    assert_ne!(raised, text, "no sessions-per-second in {switch_conf:?}");
    std::fs::write(&switch_conf, raised).unwrap();
    let bench_xml = conf.join("dialplan/public/000_pdd_bench.xml");
    std::fs::write(&bench_xml, bench_dialplan("error/USER_BUSY")).unwrap();
    let fs = freeswitch::FreeSwitch::spawn(&conf, &switch_dir, None);
    fs.wait_ready();
    let gateway = freeswitch::api("sofia status gateway carrier").unwrap();
    assert!(gateway.contains(CARRIER), "carrier gateway: {gateway}");
    let version = freeswitch::api("version short").unwrap_or_default();

    let carrier = Carrier::start();

    let mut redis = Command::new("redis-server");
    redis
        .args(["--port", &REDIS_PORT.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(work.join("redis"))
        .stdout(log_file(&work, "redis.log"))
        .stderr(Stdio::null());
    children.spawn("redis-server", redis);
    wait_tcp(&format!("127.0.0.1:{REDIS_PORT}"), "redis-server");

    // nginx first with a placeholder answer (webhooks from the set-up).
    let nginx_dir = work.join("nginx");
    let start_nginx = |children: &mut Children, dial: &str| {
        let conf = nginx_dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&nginx_dir, dial)).unwrap();
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&nginx_dir)
            .arg("-e")
            .arg(nginx_dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log_file(&nginx_dir, "stderr.txt"));
        children.spawn("nginx", cmd);
        wait_tcp(STATIC_HTTP, "nginx");
    };
    start_nginx(&mut children, "error/USER_BUSY");

    // The daemon: the release binary as deployed, on the Redis store.
    let config_path = work.join("fsgate.toml");
    std::fs::write(&config_path, fsgate_config()).unwrap();
    let mut daemon = Command::new(daemon_binary());
    daemon
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .stdout(log_file(&work, "fsgate.stdout.txt"))
        .stderr(log_file(&work, "fsgate.log"));
    children.spawn("fsgate", daemon);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        children.check();
        let ready = http
            .get(format!("http://{DAEMON}/readyz"))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        if ready == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "fsgate never ready: {ready:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Live sessions between Alice and Bob; the last one for the probe.
    let mut sessions: Vec<(String, String)> = Vec::new();
    for _ in 0..=SESSIONS {
        let r = http
            .post(format!("http://{DAEMON}/v1/sessions"))
            .header("X-API-Key", API_KEY)
            .json(&json!({"party_a": ALICE, "party_b": BOB, "ttl_minutes": 240}))
            .send()
            .await
            .expect("fsgate answers");
        assert_eq!(r.status().as_u16(), 201, "POST /v1/sessions");
        let s: Value = r.json().await.unwrap();
        sessions.push((
            s["masked_number"].as_str().unwrap().to_owned(),
            s["ref"].as_str().unwrap().to_owned(),
        ));
    }
    let (probe_number, probe_ref) = sessions.pop().unwrap();
    // fsgate's own answer, as the switch would ask for it, made the answer
    // of the first measured session: the static lookup's fixed body.
    let probe = http
        .get(format!(
            "http://{DAEMON}/v1/dialplan/route?masked={}&caller={}&uuid={}&token=",
            &probe_number[1..],
            &ALICE[1..],
            uuid::Uuid::new_v4()
        ))
        .send()
        .await
        .expect("the route lookup answers");
    assert_eq!(probe.status().as_u16(), 200, "probe lookup");
    let probe = probe.text().await.unwrap();
    let (first_number, first_ref) = &sessions[0];
    let dial_string = probe
        .trim()
        .replace(&probe_number, first_number)
        .replace(&probe_ref, first_ref);
    assert!(
        dial_string.ends_with(&format!("sofia/gateway/carrier/{BOB}")),
        "{dial_string}"
    );
    children.stop("nginx");
    start_nginx(&mut children, &dial_string);
    std::fs::write(&bench_xml, bench_dialplan(&dial_string)).unwrap();
    let reload = freeswitch::api("reloadxml").unwrap_or_default();
    assert!(reload.contains("+OK"), "reloadxml: {reload}");

    let ctx = Arc::new(Ctx {
        phone: Phone::bind("127.0.0.1:0").await,
        carrier: carrier.clone(),
        switch: SWITCH_SIP.parse().unwrap(),
        masked: sessions.iter().map(|(n, _)| n.clone()).collect(),
        seq: AtomicU64::new(0),
    });
    println!(
        "pdd: set up in {:.1} s (FreeSWITCH {}; fsgate {}; nginx on {STATIC_HTTP}); dial string {dial_string}",
        began.elapsed().as_secs_f64(),
        version.trim(),
        daemon_binary().display(),
    );

    // 1. One after another, interleaved rounds (rotating order).
    let mut sequential: HashMap<Variant, Sample> = HashMap::new();
    for round in 0..WARMUP_ROUNDS + seq_calls {
        for k in 0..3 {
            let v = Variant::ALL[(round + k) % 3];
            let r = one_call(&ctx, v).await;
            if round >= WARMUP_ROUNDS {
                sequential.entry(v).or_default().push(r);
            } else if let Err(e) = r {
                eprintln!("pdd: warm-up call ({}) failed: {e}", v.tag());
            }
            tokio::time::sleep(GAP).await;
        }
    }
    children.check();
    println!(
        "pdd: {seq_calls} calls per variant one after another done ({:.0} s, load {})",
        began.elapsed().as_secs_f64(),
        loadavg()
    );

    // 2. Fixed rates, interleaved blocks.
    let pair = [Variant::StaticLookup, Variant::Fsgate];
    let mut rates: Vec<(u32, HashMap<Variant, Sample>)> = Vec::new();
    for rate in FIXED_RATES {
        settle().await;
        let mut at_rate: HashMap<Variant, Sample> = HashMap::new();
        let per_block = rate_calls.div_ceil(BLOCKS);
        for b in 0..BLOCKS {
            for k in 0..2 {
                let v = pair[(b + k) % 2];
                let s = open_loop(&ctx, v, rate, per_block).await;
                at_rate.entry(v).or_default().merge(s);
                settle().await;
            }
        }
        println!(
            "pdd: {rate}/s done ({:.0} s, load {})",
            began.elapsed().as_secs_f64(),
            loadavg()
        );
        rates.push((rate, at_rate));
    }
    children.check();

    // 3. Rising rates until fsgate's p99 doubles.
    let fsgate_seq_p99 = sequential[&Variant::Fsgate].pct(99.0);
    let lookup_seq_p99 = sequential[&Variant::StaticLookup].pct(99.0);
    let mut steps: Vec<(u32, bool, HashMap<Variant, Sample>)> = Vec::new();
    let mut doubled: Option<(u32, String)> = None;
    let mut i = 0;
    while i < STEP_RATES.len() {
        let rate = STEP_RATES[i];
        // A rate whose p99 doubled is measured a second time before it
        // counts (one burst of other work on the machine is not enough).
        let again = steps.last().is_some_and(|(r, _, _)| *r == rate);
        let at_rate = match rates.iter().find(|(r, _)| *r == rate) {
            Some((_, m)) if !again => m.clone(),
            _ => {
                if began.elapsed() > BUDGET || rate > max_rate {
                    break;
                }
                let n = ((f64::from(rate) * STEP_SECONDS) as usize).max(200);
                let m = abba(&ctx, rate, n, i + usize::from(again)).await;
                println!(
                    "pdd: rising {rate}/s{} done ({:.0} s, load {})",
                    if again { " (again)" } else { "" },
                    began.elapsed().as_secs_f64(),
                    loadavg()
                );
                m
            }
        };
        let f = &at_rate[&Variant::Fsgate];
        let failed = !f.failures.is_empty();
        let why = if failed {
            Some(format!("{} of {} calls failed", f.failures.len(), f.n()))
        } else if f.pct(99.0) >= 2.0 * fsgate_seq_p99 {
            Some(format!(
                "p99 {:.2} ms ≥ 2 × {:.2} ms",
                f.pct(99.0),
                fsgate_seq_p99
            ))
        } else {
            None
        };
        steps.push((rate, again, at_rate));
        match why {
            Some(why) if failed || again => {
                let confirmed = if again { ", measured twice" } else { "" };
                doubled = Some((rate, format!("{why}{confirmed}")));
                break;
            }
            Some(_) => {}
            None => i += 1,
        }
    }
    settle().await;

    // 4. The lookup alone, over HTTP without the switch: what mod_curl does
    // (a new connection per lookup), to nginx and to fsgate in turn. Last,
    // since every fsgate answer ties an unknown call UUID to a session.
    let lookups = env_usize("FSGATE_PDD_LOOKUPS", 300);
    let masked = ctx.masked.clone();
    let http_only = tokio::task::spawn_blocking(move || {
        let mut m: HashMap<Variant, Sample> = HashMap::new();
        for i in 0..lookups {
            let number = &masked[i % masked.len()][1..];
            let order = if i % 2 == 0 {
                [
                    (Variant::StaticLookup, STATIC_HTTP),
                    (Variant::Fsgate, DAEMON),
                ]
            } else {
                [
                    (Variant::Fsgate, DAEMON),
                    (Variant::StaticLookup, STATIC_HTTP),
                ]
            };
            for (v, addr) in order {
                let path = format!(
                    "/v1/dialplan/route?masked={number}&caller={}&uuid={}&token=",
                    &ALICE[1..],
                    uuid::Uuid::new_v4()
                );
                m.entry(v).or_default().push(http_get(addr, &path));
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        m
    })
    .await
    .unwrap();

    // Switch-side errors of the run (a refused lookup logs one).
    let lookup_errors = fs
        .log()
        .lines()
        .filter(|l| l.contains("fsgate route lookup failed"))
        .count();
    let untagged = carrier.untagged.load(Ordering::Relaxed);
    let elapsed = began.elapsed().as_secs_f64();
    let load_after = loadavg();

    // ------------------------------------------------------------ report
    let ms = |x: f64| format!("{x:.2}");
    let ratio = |a: f64, b: f64| format!("{:.2}", a / b);
    let signed = |x: f64| format!("{x:+.2}");
    let mut md = String::new();
    let commit = std::env::var("FSGATE_PDD_COMMIT").unwrap_or_else(|_| "unknown".into());
    let _ = writeln!(
        md,
        "Run: {commit}; FreeSWITCH {}; {elapsed:.0} s in all; load average {load_before} before, {load_after} after.\n",
        version.trim()
    );
    let _ = writeln!(
        md,
        "One after another ({seq_calls} calls per variant after {WARMUP_ROUNDS} warm-up rounds, interleaved, {} ms between calls):\n",
        GAP.as_millis()
    );
    let _ = writeln!(
        md,
        "| variant | calls | failed | p50 ms | p90 ms | p99 ms | max ms | p50 ÷ static bridge | p99 ÷ static bridge |"
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let base = &sequential[&Variant::StaticBridge];
    for v in Variant::ALL {
        let s = &sequential[&v];
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.tag(),
            s.n(),
            s.failures.len(),
            ms(s.pct(50.0)),
            ms(s.pct(90.0)),
            ms(s.pct(99.0)),
            ms(s.pct(100.0)),
            ratio(s.pct(50.0), base.pct(50.0)),
            ratio(s.pct(99.0), base.pct(99.0)),
        );
    }
    let (l, f) = (
        &sequential[&Variant::StaticLookup],
        &sequential[&Variant::Fsgate],
    );
    let seq_d50 = f.pct(50.0) - l.pct(50.0);
    let seq_d99 = f.pct(99.0) - l.pct(99.0);
    let _ = writeln!(
        md,
        "\nfsgate over the static lookup, one after another: p50 {} ms ({}×), p99 {} ms ({}×); the lookup itself over the static bridge: p50 {} ms, p99 {} ms.\n",
        signed(seq_d50),
        ratio(f.pct(50.0), l.pct(50.0)),
        signed(seq_d99),
        ratio(f.pct(99.0), l.pct(99.0)),
        signed(l.pct(50.0) - base.pct(50.0)),
        signed(l.pct(99.0) - base.pct(99.0)),
    );
    let _ = writeln!(
        md,
        "Open loop at fixed rates ({BLOCKS} alternating blocks per variant and rate):\n"
    );
    let _ = writeln!(
        md,
        "| rate /s | variant | calls | failed | p50 ms | p90 ms | p99 ms | max ms | p99 ÷ own one-after-another p99 | fsgate − static lookup p50 / p99 ms | fsgate ÷ static lookup p50 / p99 | worst send lag ms |"
    );
    let _ = writeln!(
        md,
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut at_50: Option<(f64, f64)> = None;
    for (rate, m) in &rates {
        let (l, f) = (&m[&Variant::StaticLookup], &m[&Variant::Fsgate]);
        let (d50, d99) = (f.pct(50.0) - l.pct(50.0), f.pct(99.0) - l.pct(99.0));
        if *rate == 50 {
            at_50 = Some((d50, d99));
        }
        for v in pair {
            let s = &m[&v];
            let own = sequential[&v].pct(99.0);
            let (diff, rat) = if v == Variant::Fsgate {
                (
                    format!("{} / {}", signed(d50), signed(d99)),
                    format!(
                        "{} / {}",
                        ratio(f.pct(50.0), l.pct(50.0)),
                        ratio(f.pct(99.0), l.pct(99.0))
                    ),
                )
            } else {
                ("".into(), "".into())
            };
            let _ = writeln!(
                md,
                "| {rate} | {} | {} | {} | {} | {} | {} | {} | {} | {diff} | {rat} | {:.1} |",
                v.tag(),
                s.n(),
                s.failures.len(),
                ms(s.pct(50.0)),
                ms(s.pct(90.0)),
                ms(s.pct(99.0)),
                ms(s.pct(100.0)),
                ratio(s.pct(99.0), own),
                s.max_lag.as_secs_f64() * 1000.0,
            );
        }
    }
    let _ = writeln!(
        md,
        "\nRising rates (p99 against each variant's own one-after-another p99: static lookup {} ms, fsgate {} ms):\n",
        ms(lookup_seq_p99),
        ms(fsgate_seq_p99)
    );
    let _ = writeln!(
        md,
        "| rate /s | calls each | sent /s | static lookup p50 / p99 ms | ÷ own p99 | fsgate p50 / p99 ms | ÷ own p99 | fsgate − static lookup p99 ms | failed (lookup / fsgate) |"
    );
    let _ = writeln!(
        md,
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (rate, again, m) in &steps {
        let (l, f) = (&m[&Variant::StaticLookup], &m[&Variant::Fsgate]);
        let again = if *again { " (again)" } else { "" };
        let _ = writeln!(
            md,
            "| {rate}{again} | {} | {:.0} | {} / {} | {} | {} / {} | {} | {} | {} / {} |",
            f.n(),
            f.sent_rate.min(l.sent_rate),
            ms(l.pct(50.0)),
            ms(l.pct(99.0)),
            ratio(l.pct(99.0), lookup_seq_p99),
            ms(f.pct(50.0)),
            ms(f.pct(99.0)),
            ratio(f.pct(99.0), fsgate_seq_p99),
            signed(f.pct(99.0) - l.pct(99.0)),
            l.failures.len(),
            f.failures.len(),
        );
    }
    let _ = writeln!(
        md,
        "\n{}",
        match &doubled {
            Some((rate, why)) => format!("fsgate's p99 doubled at {rate} calls/s ({why})."),
            None => format!(
                "fsgate's p99 did not double up to {} calls/s (the last rate run).",
                steps.last().map_or(0, |(r, _, _)| *r)
            ),
        }
    );
    let target = |d50: f64, d99: f64| {
        format!(
            "p50 {} ms (target ≤ +0.50: {}), p99 {} ms (target ≤ +1.00: {})",
            signed(d50),
            if d50 <= 0.5 { "met" } else { "missed" },
            signed(d99),
            if d99 <= 1.0 { "met" } else { "missed" }
        )
    };
    let _ = writeln!(
        md,
        "\nAgainst the target (fsgate − static lookup): one after another {}; at 50 calls/s {}.",
        target(seq_d50, seq_d99),
        at_50.map_or("not run".into(), |(a, b)| target(a, b))
    );
    let (hl, hf) = (
        &http_only[&Variant::StaticLookup],
        &http_only[&Variant::Fsgate],
    );
    let _ = writeln!(
        md,
        "\nThe lookup alone over HTTP (no switch; a new connection each, {} each, alternating): nginx p50 / p99 {} / {} ms, fsgate {} / {} ms (failed {} / {}); fsgate − nginx p50 {} ms, p99 {} ms.",
        hf.n(),
        ms(hl.pct(50.0)),
        ms(hl.pct(99.0)),
        ms(hf.pct(50.0)),
        ms(hf.pct(99.0)),
        hl.failures.len(),
        hf.failures.len(),
        signed(hf.pct(50.0) - hl.pct(50.0)),
        signed(hf.pct(99.0) - hl.pct(99.0)),
    );
    let _ = writeln!(
        md,
        "\nSwitch log: {lookup_errors} \"fsgate route lookup failed\" lines; carrier INVITEs without a sequence number: {untagged}."
    );
    println!("\n{md}");

    let mut failures_shown = 0;
    let all_samples = sequential
        .iter()
        .map(|(v, s)| (format!("one after another {}", v.tag()), s))
        .chain(
            rates
                .iter()
                .map(|(r, m)| (r, m))
                .chain(steps.iter().map(|(r, _, m)| (r, m)))
                .flat_map(|(r, m)| {
                    m.iter()
                        .map(move |(v, s)| (format!("{r}/s {}", v.tag()), s))
                }),
        );
    for (what, s) in all_samples {
        for e in s.failures.iter().take(3) {
            if failures_shown < 20 {
                eprintln!("pdd: failed call ({what}): {e}");
                failures_shown += 1;
            }
        }
    }

    let phase = |m: &HashMap<Variant, Sample>| {
        Value::Object(
            m.iter()
                .map(|(v, s)| (v.tag().to_owned(), s.json()))
                .collect(),
        )
    };
    let results = json!({
        "commit": commit,
        "freeswitch": version.trim(),
        "dial_string": dial_string,
        "seconds": elapsed,
        "load_average": [load_before, load_after],
        "one_after_another": phase(&sequential),
        "fixed_rates": rates.iter().map(|(r, m)| json!({"rate": r, "variants": phase(m)})).collect::<Vec<_>>(),
        "rising_rates": steps.iter().map(|(r, again, m)| json!({"rate": r, "repeat": again, "variants": phase(m)})).collect::<Vec<_>>(),
        "fsgate_p99_doubled_at": doubled.as_ref().map(|(r, _)| r),
        "lookup_alone_http": phase(&http_only),
        "lookup_errors_in_switch_log": lookup_errors,
    });
    std::fs::write(work.join("results.md"), &md).unwrap();
    std::fs::write(
        work.join("results.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
    println!("pdd: results in {}", work.join("results.md").display());

    drop(ctx);
    drop(children);
    fs.stop();
    let failed: usize = sequential.values().map(|s| s.failures.len()).sum();
    i32::from(failed > 0)
}
