//! Test support for the simulator tests: a raw-TCP ESL client (frames split
//! on `\n\n` + Content-Length), plain/json event parsing that keeps duplicate
//! headers, loading of the real recordings, and a frame-by-frame comparison
//! of a simulator stream with a recording (names in order, key values exact,
//! the rest by shape, uuids mapped consistently).
#![allow(dead_code)]

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

struct Pairs(Vec<(String, serde_json::Value)>);

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

/// A recording from shared/esl/captures.
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
    /// Loads `<name>.jsonl`, or None when the recordings are not available.
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

/// Headers whose values must match the recording exactly (after uuid mapping).
pub const STABLE: &[&str] = &[
    "Event-Name",
    "FreeSWITCH-Hostname",
    "FreeSWITCH-Switchname",
    "Event-Calling-File",
    "Event-Calling-Function",
    "Event-Calling-Line-Number",
    "Unique-ID",
    "Channel-Call-UUID",
    "Answer-State",
    "Call-Direction",
    "Presence-Call-Direction",
    "Channel-State",
    "Channel-Call-State",
    "Channel-State-Number",
    "Channel-HIT-Dialplan",
    "Hangup-Cause",
    "Caller-Direction",
    "Caller-Logical-Direction",
    "Caller-Username",
    "Caller-Dialplan",
    "Caller-Caller-ID-Name",
    "Caller-Caller-ID-Number",
    "Caller-Callee-ID-Name",
    "Caller-Callee-ID-Number",
    "Caller-Destination-Number",
    "Caller-Unique-ID",
    "Caller-Source",
    "Caller-Context",
    "Caller-RDNIS",
    "Caller-Profile-Index",
    "Other-Type",
    "Other-Leg-Unique-ID",
    "Other-Leg-Direction",
    "Other-Leg-Logical-Direction",
    "Other-Leg-Caller-ID-Number",
    "Other-Leg-Destination-Number",
    "Application",
    "Application-Data",
    "Application-Response",
    "Application-UUID",
    "Bridge-A-Unique-ID",
    "Bridge-B-Unique-ID",
    "Job-UUID",
    "Job-Command",
    "Job-Command-Arg",
    "variable_direction",
    "variable_is_outbound",
    "variable_uuid",
    "variable_call_uuid",
    "variable_endpoint_disposition",
    "variable_current_application",
    "variable_current_application_data",
    "variable_current_application_response",
    "variable_DP_MATCH",
    "variable_hangup_after_bridge",
    "variable_continue_on_fail",
    "variable_originate_disposition",
    "variable_DIALSTATUS",
    "variable_originate_causes",
    "variable_originator",
    "variable_originating_leg_uuid",
    "variable_signal_bond",
    "variable_bridge_to",
    "variable_bridge_uuid",
    "variable_last_bridge_to",
    "variable_max_forwards",
    "variable_fsgate_session",
    "variable_origination_uuid",
    "variable_origination_caller_id_number",
    "variable_origination_caller_id_name",
    "variable_channel_cid_flipped",
    "variable_pre_transfer_caller_id_name",
    "variable_pre_transfer_caller_id_number",
    "variable_hangup_cause",
    "variable_hangup_cause_q850",
    "variable_sip_term_status",
    "variable_proto_specific_hangup_cause",
    "variable_sip_hangup_disposition",
    "variable_bridge_hangup_cause",
    "variable_last_bridge_hangup_cause",
    "variable_last_bridge_role",
    "variable_last_app",
    "variable_last_arg",
    "variable_caller_id",
    "variable_sip_from_user",
    "variable_sip_to_user",
    "variable_sip_req_user",
    "variable_last_sent_callee_id_name",
    "variable_last_sent_callee_id_number",
];

fn shape(s: &str) -> &'static str {
    if is_uuid(s) {
        "uuid"
    } else if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        "digits"
    } else {
        "text"
    }
}

/// Compares one simulator frame with the recorded one; returns mismatches.
pub fn compare_frame(i: usize, rec: &Frame, got: &Frame, map: &mut UuidMap) -> Vec<String> {
    let mut errs = Vec::new();
    if rec.content_type() != got.content_type() {
        errs.push(format!(
            "frame {i}: content type {:?} != recorded {:?}",
            got.content_type(),
            rec.content_type()
        ));
        return errs;
    }
    let rec_names: Vec<&str> = rec.headers.iter().map(|(k, _)| k.as_str()).collect();
    let got_names: Vec<&str> = got.headers.iter().map(|(k, _)| k.as_str()).collect();
    if rec_names != got_names {
        errs.push(format!(
            "frame {i}: outer header names {got_names:?} != recorded {rec_names:?}"
        ));
    }
    if !rec.is_event() {
        if let Some(r) = rec.header("Reply-Text") {
            let g = got.header("Reply-Text").unwrap_or_default();
            if let (Some(ru), Some(gu)) = (
                r.strip_prefix("+OK Job-UUID: "),
                g.strip_prefix("+OK Job-UUID: "),
            ) {
                if !map.pair(ru, gu) {
                    errs.push(format!("frame {i}: job uuid {gu} inconsistent with {ru}"));
                }
            } else if map.apply(r) != g {
                errs.push(format!("frame {i}: Reply-Text {g:?} != recorded {r:?}"));
            }
        }
        if rec.content_type() == "api/response" {
            let r = rec.body_str();
            let g = got.body_str();
            if r.starts_with("UP ") {
                if !g.starts_with("UP ") || g.lines().count() != r.lines().count() {
                    errs.push(format!(
                        "frame {i}: status body {g:?} not shaped like {r:?}"
                    ));
                }
            } else if map.apply(&r) != g {
                errs.push(format!("frame {i}: api body {g:?} != recorded {r:?}"));
            }
        }
        return errs;
    }
    let re = rec.event();
    let ge = got.event();
    let name = re.name().to_string();
    let rn = re.names();
    let gn = ge.names();
    if rn != gn {
        let missing: Vec<&&str> = rn.iter().filter(|n| !gn.contains(n)).collect();
        let extra: Vec<&&str> = gn.iter().filter(|n| !rn.contains(n)).collect();
        errs.push(format!(
            "frame {i} {name}: header names differ (missing {missing:?}, extra {extra:?}, first difference at {:?})",
            rn.iter()
                .zip(gn.iter())
                .position(|(a, b)| a != b)
                .map(|p| (p, rn[p], gn[p]))
        ));
    }
    for (k, rv) in &re.headers {
        let Some(gv) = ge.get(k) else { continue };
        if STABLE.contains(&k.as_str()) {
            if is_uuid(rv) {
                if !is_uuid(gv) || !map.pair(rv, gv) {
                    errs.push(format!(
                        "frame {i} {name}: {k} {gv:?} inconsistent with recorded {rv:?}"
                    ));
                }
            } else if map.apply(rv) != *gv {
                errs.push(format!("frame {i} {name}: {k} = {gv:?}, recorded {rv:?}"));
            }
        } else if shape(rv) != shape(gv) && k != "_body" {
            errs.push(format!(
                "frame {i} {name}: {k} = {gv:?} not shaped like recorded {rv:?}"
            ));
        }
    }
    match (&re.body, &ge.body) {
        (Some(r), Some(g)) => {
            if !r.starts_with("UP ") && &map.apply(r) != g {
                errs.push(format!("frame {i} {name}: body {g:?} != recorded {r:?}"));
            }
        }
        (None, None) => {}
        (r, g) => errs.push(format!("frame {i} {name}: body {g:?} vs recorded {r:?}")),
    }
    errs
}

/// A scenario step besides the recorded commands.
pub enum Action {
    /// Place an inbound call through the control API.
    PlaceCall {
        from: &'static str,
        to: &'static str,
    },
    /// The far end of the (recorded) channel hangs up.
    RemoteHangup { recorded_uuid: String },
    /// Far ends matching `pattern` answer after `ms`.
    AnswerAfter { pattern: &'static str, ms: u64 },
}

/// Replays a recording against a fresh simulator and returns mismatches.
/// `actions` are (number of recorded non-heartbeat frames before, action).
pub async fn replay(capture: &str, actions: Vec<(usize, Action)>) -> Vec<String> {
    replay_with(capture, actions, true).await
}

/// Key for matching frames when the interleaving of legs is not fixed:
/// content type, event name, and the ordinal of the channel it belongs to.
type LegKey = (String, String, usize);

fn leg_key(f: &Frame, order: &mut Vec<String>) -> LegKey {
    if !f.is_event() {
        return (f.content_type().to_string(), String::new(), 0);
    }
    let e = f.event();
    let ord = match e.get("Unique-ID") {
        Some(u) => match order.iter().position(|x| x == u) {
            Some(p) => p + 1,
            None => {
                order.push(u.to_string());
                order.len()
            }
        },
        None => 0,
    };
    (f.content_type().to_string(), e.name().to_string(), ord)
}

/// Reorders `got` to follow `rec` where only the per-channel order is fixed.
fn align_legs(rec: &[Frame], got: Vec<Frame>) -> Vec<Frame> {
    let mut ro = Vec::new();
    let mut go = Vec::new();
    let rk: Vec<_> = rec.iter().map(|f| leg_key(f, &mut ro)).collect();
    let mut gk: Vec<Option<(LegKey, Frame)>> = got
        .into_iter()
        .map(|f| Some((leg_key(&f, &mut go), f)))
        .collect();
    let mut out = Vec::new();
    for k in &rk {
        if let Some(slot) = gk
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|(gk, _)| gk == k))
        {
            out.push(slot.take().map(|(_, f)| f).expect("slot"));
        }
    }
    out.extend(gk.into_iter().flatten().map(|(_, f)| f));
    out
}

/// Like [`replay`]; with `strict_order` false only each channel's own event
/// order (and the order of replies) must match, as FreeSWITCH does not fix
/// the interleaving of two legs.
pub async fn replay_with(
    capture: &str,
    actions: Vec<(usize, Action)>,
    strict_order: bool,
) -> Vec<String> {
    let cap = Capture::load(capture).expect("capture available");
    let sim = start_sim(|_| {}).await;
    let ctl = sim.control_addr().expect("control");
    let http = reqwest::Client::new();
    let not_hb = |f: &Frame| !(f.is_event() && f.event().name() == "HEARTBEAT");
    let mut rec_frames = Vec::new();
    let mut index_map = Vec::new(); // all-frame index -> non-hb count before it
    let mut n = 0;
    for f in &cap.frames {
        index_map.push(n);
        if not_hb(f) {
            rec_frames.push(f.clone());
            n += 1;
        }
    }
    index_map.push(n);
    let mut steps: Vec<(usize, usize, Option<String>, Option<Action>)> = Vec::new();
    for (k, (before, cmd)) in cap.commands.iter().enumerate() {
        steps.push((index_map[*before], 1000 + k, Some(cmd.clone()), None));
    }
    for (k, (pos, a)) in actions.into_iter().enumerate() {
        steps.push((pos, k, None, Some(a)));
    }
    steps.sort_by_key(|s| (s.0, s.1));
    let mut client = RawClient::connect(sim.esl_addr()).await;
    let mut got: Vec<Frame> = Vec::new();
    let mut map = UuidMap::default();
    let mut errs = Vec::new();
    let mut compared = 0;
    async fn fill(client: &mut RawClient, got: &mut Vec<Frame>, want: usize) {
        while got.len() < want {
            match client.next().await {
                Some(f) => {
                    if !(f.is_event() && f.event().name() == "HEARTBEAT") {
                        got.push(f)
                    }
                }
                None => break,
            }
        }
    }
    for (pos, _, cmd, action) in steps {
        fill(&mut client, &mut got, pos).await;
        while strict_order && compared < got.len().min(rec_frames.len()) {
            errs.extend(compare_frame(
                compared,
                &rec_frames[compared],
                &got[compared],
                &mut map,
            ));
            compared += 1;
        }
        if got.len() < pos {
            errs.push(format!(
                "simulator sent {} frames, recording had {pos} at this point",
                got.len()
            ));
            break;
        }
        if !strict_order {
            // Channels are paired by order of first appearance.
            let (mut ro, mut go) = (Vec::new(), Vec::new());
            rec_frames[..pos].iter().for_each(|f| {
                leg_key(f, &mut ro);
            });
            got.iter().for_each(|f| {
                leg_key(f, &mut go);
            });
            for (r, g) in ro.iter().zip(go.iter()) {
                map.pair(r, g);
            }
        }
        if let Some(cmd) = cmd {
            client.send(&map.apply(&cmd)).await;
        }
        match action {
            Some(Action::PlaceCall { from, to }) => {
                let r = http
                    .post(format!("http://{ctl}/calls"))
                    .json(&serde_json::json!({"from": from, "to": to}))
                    .send()
                    .await
                    .expect("control api");
                assert!(r.status().is_success());
            }
            Some(Action::RemoteHangup { recorded_uuid }) => {
                let uuid = map.apply(&recorded_uuid);
                let r = http
                    .post(format!("http://{ctl}/calls/{uuid}/hangup"))
                    .json(&serde_json::json!({"cause": "NORMAL_CLEARING"}))
                    .send()
                    .await
                    .expect("control api");
                assert!(r.status().is_success(), "hangup {uuid}: {}", r.status());
            }
            Some(Action::AnswerAfter { pattern, ms }) => {
                let r = http
                    .post(format!("http://{ctl}/behaviours"))
                    .json(&serde_json::json!({"pattern": pattern, "answer_after_ms": ms}))
                    .send()
                    .await
                    .expect("control api");
                assert!(r.status().is_success());
            }
            None => {}
        }
    }
    fill(&mut client, &mut got, rec_frames.len()).await;
    if !strict_order {
        got = align_legs(&rec_frames, got);
    }
    while compared < got.len().min(rec_frames.len()) {
        errs.extend(compare_frame(
            compared,
            &rec_frames[compared],
            &got[compared],
            &mut map,
        ));
        compared += 1;
    }
    if got.len() != rec_frames.len() {
        errs.push(format!(
            "simulator sent {} frames, recording has {}",
            got.len(),
            rec_frames.len()
        ));
    }
    // Nothing more may follow (except heartbeats).
    while let Some(f) = client.next_within(Duration::from_millis(200)).await {
        if not_hb(&f) {
            errs.push(format!("extra frame after the recording: {:?}", f.headers));
        }
    }
    sim.shutdown().await;
    errs
}

/// Index of the first recorded non-heartbeat event with this name (and uuid prefix).
pub fn position_of(capture: &str, event: &str, nth: usize) -> usize {
    let cap = Capture::load(capture).expect("capture");
    let mut n = 0;
    let mut seen = 0;
    for f in &cap.frames {
        if f.is_event() {
            let e = f.event();
            if e.name() == "HEARTBEAT" {
                continue;
            }
            if e.name() == event {
                if seen == nth {
                    return n;
                }
                seen += 1;
            }
        }
        n += 1;
    }
    panic!("{event} #{nth} not in {capture}")
}

/// The Unique-ID of the first recorded event with this name.
pub fn recorded_uuid(capture: &str, event: &str) -> String {
    let cap = Capture::load(capture).expect("capture");
    cap.frames
        .iter()
        .filter(|f| f.is_event())
        .map(|f| f.event())
        .find(|e| e.name() == event)
        .and_then(|e| e.get("Unique-ID").map(str::to_string))
        .expect("recorded event")
}
