//! Replaying a recording against a fresh simulator: the recorded commands
//! are sent when as many frames have arrived as had in the recording, the
//! scenario's [`Action`]s (calls placed, far ends hanging up, behaviours)
//! are run through the control API at their places, and the simulator's
//! frames are compared with the recorded ones (in strict order, or per leg).

use std::path::PathBuf;
use std::time::Duration;

use super::compare::compare_frame_with;
use super::route::{Route, RouteServer};
use super::{start_sim, Capture, Frame, RawClient, UuidMap};

/// A scenario step besides the recorded commands.
pub enum Action {
    /// Place an inbound call through the control API.
    PlaceCall {
        from: &'static str,
        to: &'static str,
    },
    /// The far end of the (recorded) channel hangs up.
    RemoteHangup { recorded_uuid: String },
    /// The far end of the (recorded) channel ends it with this cause: a BYE
    /// once answered, a CANCEL (inbound) or an error response (outbound) before.
    RemoteHangupWith {
        recorded_uuid: String,
        cause: &'static str,
    },
    /// Far ends matching `pattern` answer after `ms`.
    AnswerAfter { pattern: &'static str, ms: u64 },
    /// Far ends matching `pattern` refuse with this cause (e.g. 486: USER_BUSY).
    Reject {
        pattern: &'static str,
        cause: &'static str,
    },
    /// Far ends matching `pattern` ring and never answer.
    NoAnswer { pattern: &'static str },
}

/// A replay of one recording against a fresh simulator.
pub struct Replay {
    capture: String,
    actions: Vec<(usize, Action)>,
    strict_order: bool,
    routes: Option<Vec<Route>>,
    unordered: Vec<&'static str>,
}

impl Replay {
    /// Replays `capture` with the fixture dialplan, frames in strict order.
    pub fn new(capture: &str) -> Replay {
        Replay {
            capture: capture.to_string(),
            actions: Vec::new(),
            strict_order: true,
            routes: None,
            unordered: Vec::new(),
        }
    }

    /// Adds a step: `at` is the number of recorded non-heartbeat frames before it.
    pub fn at(mut self, at: usize, action: Action) -> Replay {
        self.actions.push((at, action));
        self
    }

    /// Only each channel's own event order (and the replies' order) must
    /// match: FreeSWITCH does not fix the interleaving of two legs.
    pub fn per_leg_order(mut self) -> Replay {
        self.strict_order = false;
        self
    }

    /// Runs the project's `dialplan/` (as the new recordings did) with the
    /// route lookup answered from `routes`.
    pub fn project_dialplan(mut self, routes: &[Route]) -> Replay {
        self.routes = Some(routes.to_vec());
        self
    }

    /// Leaves these event headers out of the order check (for variables that
    /// two of FreeSWITCH's threads write in a racing order; say why where
    /// you call it).
    pub fn unordered(mut self, names: &[&'static str]) -> Replay {
        self.unordered.extend_from_slice(names);
        self
    }

    /// Runs the replay; returns the mismatches.
    pub async fn run(self) -> Vec<String> {
        run_replay(self).await
    }
}

/// Replays a recording against a fresh simulator and returns mismatches.
/// `actions` are (number of recorded non-heartbeat frames before, action).
pub async fn replay(capture: &str, actions: Vec<(usize, Action)>) -> Vec<String> {
    replay_with(capture, actions, true).await
}

async fn post(http: &reqwest::Client, url: String, body: serde_json::Value) {
    let r = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("control api");
    assert!(r.status().is_success(), "{url}: {}", r.status());
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
    let mut r = Replay::new(capture);
    r.actions = actions;
    r.strict_order = strict_order;
    r.run().await
}

async fn run_replay(replay: Replay) -> Vec<String> {
    let Replay {
        capture,
        actions,
        strict_order,
        routes,
        unordered,
    } = replay;
    let cap = Capture::require(&capture);
    let route = match &routes {
        Some(r) => Some(RouteServer::start(r).await),
        None => None,
    };
    let sim = start_sim(|cfg| {
        if let Some(route) = &route {
            cfg.dialplan_dir = Some(PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/dialplan"
            )));
            cfg.globals = vec![
                ("fsgate_url".into(), route.url()),
                ("fsgate_token".into(), String::new()),
            ];
        }
    })
    .await;
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
    if let Some(route) = &route {
        // The recordings' route server listened on 127.0.0.1:8080.
        map.pair("http://127.0.0.1:8080", &route.url());
    }
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
            errs.extend(compare_frame_with(
                compared,
                &rec_frames[compared],
                &got[compared],
                &mut map,
                &unordered,
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
                let url = format!("http://{ctl}/calls/{uuid}/hangup");
                post(&http, url, serde_json::json!({"cause": "NORMAL_CLEARING"})).await;
            }
            Some(Action::RemoteHangupWith {
                recorded_uuid,
                cause,
            }) => {
                let uuid = map.apply(&recorded_uuid);
                let url = format!("http://{ctl}/calls/{uuid}/hangup");
                post(&http, url, serde_json::json!({ "cause": cause })).await;
            }
            Some(Action::AnswerAfter { pattern, ms }) => {
                let body = serde_json::json!({"pattern": pattern, "answer_after_ms": ms});
                post(&http, format!("http://{ctl}/behaviours"), body).await;
            }
            Some(Action::Reject { pattern, cause }) => {
                let body = serde_json::json!({"pattern": pattern, "reject": cause});
                post(&http, format!("http://{ctl}/behaviours"), body).await;
            }
            Some(Action::NoAnswer { pattern }) => {
                let body = serde_json::json!({"pattern": pattern, "no_answer": true});
                post(&http, format!("http://{ctl}/behaviours"), body).await;
            }
            None => {}
        }
    }
    fill(&mut client, &mut got, rec_frames.len()).await;
    dump(&capture, &got);
    if !strict_order {
        got = align_legs(&rec_frames, got);
    }
    while compared < got.len().min(rec_frames.len()) {
        errs.extend(compare_frame_with(
            compared,
            &rec_frames[compared],
            &got[compared],
            &mut map,
            &unordered,
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
    drop(route);
    errs
}

/// A debugging aid: with `SIM_DUMP=<dir>` set, a replay writes the frames
/// the simulator sent (heartbeats left out) to `<dir>/<capture>.sim.s2c.bin`,
/// to read side by side with the recording.
fn dump(capture: &str, frames: &[Frame]) {
    let Some(dir) = std::env::var_os("SIM_DUMP") else {
        return;
    };
    let mut out = Vec::new();
    for f in frames {
        for (k, v) in &f.headers {
            out.extend_from_slice(format!("{k}: {v}\n").as_bytes());
        }
        out.push(b'\n');
        out.extend_from_slice(&f.body);
    }
    let path = PathBuf::from(dir).join(format!("{capture}.sim.s2c.bin"));
    std::fs::write(&path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Index of the first recorded non-heartbeat event with this name (and uuid prefix).
pub fn position_of(capture: &str, event: &str, nth: usize) -> usize {
    let cap = Capture::require(capture);
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

/// The Unique-ID of the `nth` (from 0) recorded event with this name.
pub fn recorded_uuid_nth(capture: &str, event: &str, nth: usize) -> String {
    let cap = Capture::require(capture);
    cap.frames
        .iter()
        .filter(|f| f.is_event())
        .map(|f| f.event())
        .filter(|e| e.name() == event)
        .nth(nth)
        .and_then(|e| e.get("Unique-ID").map(str::to_string))
        .expect("recorded event")
}

/// The Unique-ID of the first recorded event with this name.
pub fn recorded_uuid(capture: &str, event: &str) -> String {
    let cap = Capture::require(capture);
    cap.frames
        .iter()
        .filter(|f| f.is_event())
        .map(|f| f.event())
        .find(|e| e.name() == event)
        .and_then(|e| e.get("Unique-ID").map(str::to_string))
        .expect("recorded event")
}
