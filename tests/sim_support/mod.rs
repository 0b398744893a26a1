//! Test support for the simulator tests: a raw-TCP ESL client (frames split
//! on `\n\n` + Content-Length), plain/json event parsing that keeps duplicate
//! headers, loading of the real recordings, and a frame-by-frame comparison
//! of a simulator stream with a recording (`compare`: names in order, key
//! values exact, the rest by shape, uuids mapped consistently; `show … as
//! json` bodies in `show`), and the replay of a recording against a fresh
//! simulator (`replay`, with the route lookup of the project's dialplan
//! answered by `route`).
#![allow(dead_code)]

mod compare;
mod replay;
mod route;
mod show;

// Not every test crate uses every helper.
#[allow(unused_imports)]
pub use compare::{compare_frame, compare_frame_with, STABLE};
#[allow(unused_imports)]
pub use replay::{
    position_of, recorded_uuid, recorded_uuid_nth, replay, replay_with, Action, Replay,
};
#[allow(unused_imports)]
pub use route::{Route, RouteServer};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use fsgate::sim::{SimConfig, SimHandle};

/// One frame as a client sees it.
#[derive(Debug, Clone)]
pub struct Frame {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> &str {
        self.header("Content-Type").unwrap_or("")
    }

    pub fn is_event(&self) -> bool {
        self.content_type().starts_with("text/event-")
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The event inside an event frame.
    pub fn event(&self) -> Ev {
        match self.content_type() {
            "text/event-plain" => parse_plain(&self.body),
            "text/event-json" => parse_json(&self.body),
            other => panic!("not an event frame: {other}"),
        }
    }
}

/// A parsed event (duplicate headers kept, in order).
#[derive(Debug, Clone)]
pub struct Ev {
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Ev {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn name(&self) -> &str {
        self.get("Event-Name").unwrap_or("")
    }

    pub fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                b.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_plain(body: &[u8]) -> Ev {
    let text = String::from_utf8_lossy(body).into_owned();
    let (head, rest) = match text.find("\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text.as_str(), ""),
    };
    let mut headers = Vec::new();
    for line in head.split('\n') {
        if let Some((k, v)) = line.split_once(": ") {
            headers.push((k.to_string(), url_decode(v)));
        }
    }
    let body = headers
        .iter()
        .any(|(k, _)| k == "Content-Length")
        .then(|| rest.to_string());
    Ev { headers, body }
}

/// A JSON object's members in document order.
pub struct Pairs(pub Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, serde_json::Value>()? {
                    v.push((k, val));
                }
                Ok(Pairs(v))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_json(body: &[u8]) -> Ev {
    let p: Pairs = serde_json::from_slice(body).expect("event json");
    let mut headers = Vec::new();
    let mut ev_body = None;
    for (k, v) in p.0 {
        let s = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Array(a) => format!(
                "ARRAY::{}",
                a.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join("|:")
            ),
            other => other.to_string(),
        };
        if k == "_body" {
            ev_body = Some(s.clone());
        }
        headers.push((k, s));
    }
    Ev {
        headers,
        body: ev_body,
    }
}

/// Splits complete frames off the front of `buf`.
pub fn split_frames(buf: &mut Vec<u8>) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let headers: Vec<(String, String)> = head
            .split('\n')
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim_start().to_string()))
            .collect();
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        if buf.len() < end + 2 + len {
            break;
        }
        let body = buf[end + 2..end + 2 + len].to_vec();
        buf.drain(..end + 2 + len);
        out.push(Frame { headers, body });
    }
    out
}

/// A raw ESL client.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pending: std::collections::VecDeque<Frame>,
    pub closed: bool,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        RawClient {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
            pending: Default::default(),
            closed: false,
        }
    }

    /// Connects, reads auth/request, authenticates.
    pub async fn authed(addr: SocketAddr) -> RawClient {
        let mut c = RawClient::connect(addr).await;
        let f = c.next().await.expect("auth/request");
        assert_eq!(f.content_type(), "auth/request");
        c.send("auth ClueCon").await;
        let f = c.next().await.expect("auth reply");
        assert_eq!(f.header("Reply-Text"), Some("+OK accepted"));
        c
    }

    pub async fn send(&mut self, cmd: &str) {
        let mut s = cmd.to_string();
        if !s.ends_with("\n\n") {
            s.push_str("\n\n");
        }
        self.stream.write_all(s.as_bytes()).await.expect("write");
    }

    /// Sends a command and returns the next non-event frame.
    pub async fn cmd(&mut self, cmd: &str) -> Frame {
        self.send(cmd).await;
        loop {
            let f = self.next().await.expect("reply");
            if !f.is_event() {
                return f;
            }
        }
    }

    /// Next frame within 5 s.
    pub async fn next(&mut self) -> Option<Frame> {
        self.next_within(Duration::from_secs(5)).await
    }

    pub async fn next_within(&mut self, t: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Some(f);
            }
            if self.closed {
                return None;
            }
            let mut tmp = vec![0u8; 65536];
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut tmp)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.closed = true;
                    0
                }
                Ok(Ok(n)) => n,
            };
            self.buf.extend_from_slice(&tmp[..n]);
            self.pending.extend(split_frames(&mut self.buf));
        }
    }

    /// The next event with this name (skipping others) within 5 s.
    pub async fn next_event(&mut self, name: &str) -> Option<Ev> {
        loop {
            let f = self.next().await?;
            if f.is_event() {
                let e = f.event();
                if e.name() == name {
                    return Some(e);
                }
            }
        }
    }
}

/// A recording from tests/fixtures/captures.
pub struct Capture {
    /// Every s2c frame.
    pub frames: Vec<Frame>,
    /// Client commands with the number of s2c frames that had arrived before each.
    pub commands: Vec<(usize, String)>,
}

pub fn captures_dir() -> PathBuf {
    std::env::var("ESL_CAPTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/captures"
            ))
        })
}

impl Capture {
    /// Loads `<name>.jsonl`; panics when it is missing (the recordings are
    /// part of the repository).
    pub fn require(name: &str) -> Capture {
        Capture::load(name).unwrap_or_else(|| {
            panic!(
                "recording {name}.jsonl missing from {}",
                captures_dir().display()
            )
        })
    }

    /// Loads `<name>.jsonl`, or None when there is no such file.
    pub fn load(name: &str) -> Option<Capture> {
        let path = captures_dir().join(format!("{name}.jsonl"));
        let text = std::fs::read_to_string(path).ok()?;
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        let mut commands = Vec::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("jsonl");
            let data = v["data"].as_str().unwrap_or_default();
            if v["dir"] == "s2c" {
                buf.extend_from_slice(data.as_bytes());
                frames.extend(split_frames(&mut buf));
            } else {
                commands.push((frames.len(), data.to_string()));
            }
        }
        Some(Capture { frames, commands })
    }
}

/// Starts a simulator with the fixture dialplan.
pub async fn start_sim(tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut cfg = SimConfig::ephemeral();
    cfg.dialplan_dir = Some(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sim-dialplan"
    )));
    cfg.heartbeat_interval = Duration::from_secs(3600);
    cfg.switchname = "vm".into();
    tweak(&mut cfg);
    fsgate::sim::start(cfg).await.expect("sim starts")
}

pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

/// Maps recorded uuids to simulator uuids, consistently.
#[derive(Default, Debug)]
pub struct UuidMap(pub HashMap<String, String>);

impl UuidMap {
    /// Learns/checks one pair; false if inconsistent.
    pub fn pair(&mut self, rec: &str, got: &str) -> bool {
        if rec == got {
            self.0.entry(rec.to_string()).or_insert(got.to_string());
            return self.0[rec] == got;
        }
        match self.0.get(rec) {
            Some(g) => g == got,
            None => {
                if self.0.values().any(|v| v == got) {
                    return false;
                }
                self.0.insert(rec.to_string(), got.to_string());
                true
            }
        }
    }

    /// Replaces every known recorded uuid in `s`.
    pub fn apply(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (r, g) in &self.0 {
            out = out.replace(r, g);
        }
        out
    }
}
