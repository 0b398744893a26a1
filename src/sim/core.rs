//! The simulated switch core: the channel table and FreeSWITCH's channel
//! state machine (create, ring, answer, park, execute, transfer, bridge,
//! hangup, reporting, destroy), firing the same events in the same order as
//! the recordings. Every state change and its event happen under one lock,
//! so the event order is deterministic; waiting (answer delays, park,
//! playback) happens outside it in per-channel driver tasks.
//!
//! `Switch` is the in-process API (`SimHandle::switch()`); the ESL `api`
//! commands (`api.rs`), the dialplan runner (`exec.rs`) and the control API
//! drive channels only through it. Dialing new legs lives in `dial.rs`, the
//! reporting variables in `report.rs`. It must not know about sockets or HTTP.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::behaviour::Behaviours;
use super::bus::Bus;
use super::channel::{Channel, Direction, Profile, RunningApp, Times, Vars};
use super::dialplan::Dialplan;
use super::events::{channel_event, ChanEvent, Extra, SessionStats};
use super::report::hangup_vars;
use super::sofia;
use crate::esl::HangupCause;

/// Something that interrupts a channel's current application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The channel is hanging up.
    Hangup,
    /// The channel was transferred (new caller profile already in place).
    Transfer,
    /// The bridged partner hung up.
    PartnerGone,
    /// The bridged partner was transferred out of the bridge.
    PartnerTransferred,
}

/// How a bridge ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeEnd {
    /// A hung up: B is hung up too and reported together with A.
    AHungUp,
    /// B hung up: B is reported once A's bridge application has returned.
    BHungUp,
    /// B was transferred away and lives on.
    BTransferred,
}

/// Who ends a call, which decides the SIP details FreeSWITCH records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupOrigin {
    /// The switch hangs up (uuid_kill, hangup app, end of dialplan).
    Local,
    /// The far end hangs up (BYE / CANCEL / final error response).
    Remote,
    /// The bridged partner's hangup propagates.
    Bridge,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub chans: HashMap<String, Channel>,
    notify: HashMap<String, Arc<Notify>>,
    signals: HashMap<String, VecDeque<Signal>>,
    /// B legs to report/destroy together with their A leg.
    linked_finish: HashMap<String, String>,
    /// B legs that hung up while bridged, finished after A's bridge app.
    dead_partner: HashMap<String, String>,
    /// B legs whose life is run by their A leg's bridge (no driver of their own).
    pub(super) bridge_owned: std::collections::HashSet<String>,
    /// Bridged B legs that ended the bridge themselves (a BYE): they report
    /// before A's bridge thread writes their `call_uuid` back (originate-bridge).
    pub(super) b_ended_bridge: std::collections::HashSet<String>,
    /// A legs dialing a B leg (`bridge`), so that A's hangup cancels B.
    pub(super) dialing: HashMap<String, String>,
    /// SIP hangup disposition decided when the hangup started.
    disposition: HashMap<String, Option<&'static str>>,
    serial: u64,
    pub(super) since_startup: u64,
    peak: usize,
    /// Errors a channel ran into (missing application …), for the control API.
    pub errors: HashMap<String, Vec<String>>,
}

pub(crate) struct Inner {
    pub bus: Arc<Bus>,
    st: Mutex<State>,
    pub behaviours: Mutex<Behaviours>,
    pub dialplan: Option<Arc<Dialplan>>,
    pub http: reqwest::Client,
    pub default_timeout: Duration,
    /// Gateways (`sofia/gateway/<name>/…`): name to proxy `host:port`.
    pub gateways: HashMap<String, String>,
    /// Global variables (FreeSWITCH's `vars.xml`): `${name}` falls back to
    /// them when the channel has no such variable.
    pub globals: std::collections::HashMap<String, String>,
}

/// The in-process handle on the simulated switch (cheap to clone).
#[derive(Clone)]
pub struct Switch(pub(crate) Arc<Inner>);

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("core_uuid", &self.0.bus.core_uuid)
            .finish()
    }
}

/// `uuid_transfer` was refused (no such channel, hanging up, or too many transfers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("transfer refused")]
pub struct TransferRefused;

/// How an application run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next action.
    Next,
    /// The channel was transferred: hunt again.
    Transfer,
    /// The channel is hanging up.
    Stop,
    /// Hang the channel up once the application has completed
    /// (`hangup_after_bridge`).
    HangupAfter,
}

/// Outcome of dialing one far end.
#[derive(Debug)]
pub enum Dialed {
    /// Answered: the new leg's uuid.
    Answered(String),
    /// Failed with a cause (and the leg that was tried, if one was created).
    Failed(HangupCause, Option<String>),
}

pub(super) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Switch {
    pub(crate) fn new(
        bus: Arc<Bus>,
        behaviours: Behaviours,
        dialplan: Option<Arc<Dialplan>>,
        default_timeout: Duration,
        globals: std::collections::HashMap<String, String>,
        gateways: HashMap<String, String>,
    ) -> Switch {
        Switch(Arc::new(Inner {
            bus,
            st: Mutex::new(State::default()),
            behaviours: Mutex::new(behaviours),
            dialplan,
            http: super::dialplan::curl::client().unwrap_or_default(),
            default_timeout,
            gateways,
            globals,
        }))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.0.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The event bus (Core-UUID, sequence, clients).
    pub fn bus(&self) -> &Arc<Bus> {
        &self.0.bus
    }

    pub(super) fn now(&self) -> i64 {
        self.0.bus.clock.now_us()
    }

    pub(super) fn emit(&self, st: &State, uuid: &str, kind: ChanEvent, extra: &Extra<'_>) {
        if let Some(ch) = st.chans.get(uuid) {
            self.0.bus.fire(channel_event(&self.0.bus, ch, kind, extra));
        }
    }

    /// A copy of one channel.
    pub fn channel(&self, uuid: &str) -> Option<Channel> {
        self.lock().chans.get(uuid).cloned()
    }

    /// Copies of every channel, oldest first.
    pub fn channels(&self) -> Vec<Channel> {
        let st = self.lock();
        let mut v: Vec<Channel> = st.chans.values().cloned().collect();
        v.sort_by_key(|c| c.serial);
        v
    }

    /// Errors recorded for a channel.
    pub fn errors(&self, uuid: &str) -> Vec<String> {
        self.lock().errors.get(uuid).cloned().unwrap_or_default()
    }

    /// Every recorded channel error (kept after the channel is gone).
    pub fn all_errors(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.lock()
            .errors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Session counters.
    pub fn stats(&self) -> SessionStats {
        let st = self.lock();
        SessionStats {
            count: st.chans.len(),
            since_startup: st.since_startup,
            peak: st.peak,
        }
    }

    /// Whether a channel exists and is not hanging up (what `uuid_*` can find).
    pub fn locate(&self, uuid: &str) -> bool {
        self.lock().chans.get(uuid).is_some_and(|c| !c.hanging_up)
    }

    pub(super) fn insert(&self, st: &mut State, mut ch: Channel) {
        st.serial += 1;
        st.since_startup += 1;
        ch.serial = st.serial;
        st.notify.insert(ch.uuid.clone(), Arc::new(Notify::new()));
        st.chans.insert(ch.uuid.clone(), ch);
        st.peak = st.peak.max(st.chans.len());
    }

    pub(super) fn signal(&self, st: &mut State, uuid: &str, s: Signal) {
        st.signals.entry(uuid.to_string()).or_default().push_back(s);
        if let Some(n) = st.notify.get(uuid) {
            n.notify_one();
        }
    }

    /// Forgets pending signals of a channel.
    pub fn clear_signals(&self, uuid: &str) {
        self.lock().signals.remove(uuid);
    }

    /// Waits for a signal to the channel, or the timeout (None).
    pub async fn wait_signal(&self, uuid: &str, timeout: Option<Duration>) -> Option<Signal> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let notify = {
                let mut st = self.lock();
                if let Some(s) = st.signals.get_mut(uuid).and_then(|q| q.pop_front()) {
                    return Some(s);
                }
                match st.notify.get(uuid) {
                    Some(n) => n.clone(),
                    None => return Some(Signal::Hangup),
                }
            };
            match deadline {
                Some(d) => {
                    tokio::select! {
                        _ = notify.notified() => {}
                        _ = tokio::time::sleep_until(d) => return None,
                    }
                }
                None => notify.notified().await,
            }
        }
    }

    // ----- inbound calls -------------------------------------------------

    /// A new inbound SIP call from `from` to `to` in context `public`; runs the dialplan.
    pub fn place_inbound(&self, from: &str, to: &str) -> String {
        self.place_inbound_with(from, to, &[])
    }

    /// [`Switch::place_inbound`] with extra channel variables (as SIP headers
    /// mapped to variables would arrive), set before the dialplan runs.
    pub fn place_inbound_with(&self, from: &str, to: &str, vars: &[(String, String)]) -> String {
        let uuid = new_uuid();
        let port = 5062 + (rand::random::<u16>() % 900);
        let name = format!("sofia/external/{from}@127.0.0.1:{port}");
        let now = self.now();
        {
            let mut st = self.lock();
            let session_id = st.since_startup + 1;
            let profile = Profile {
                direction: "inbound".into(),
                logical_direction: "inbound".into(),
                username: from.into(),
                dialplan: "XML".into(),
                caller_id_name: from.into(),
                caller_id_number: from.into(),
                orig_caller_id_name: from.into(),
                orig_caller_id_number: from.into(),
                network_addr: "127.0.0.1".into(),
                ani: from.into(),
                destination_number: to.into(),
                uuid: uuid.clone(),
                source: "mod_sofia".into(),
                context: "public".into(),
                channel_name: name.clone(),
                profile_index: Some(1),
                times: Times {
                    profile_created: now,
                    created: now,
                    ..Times::default()
                },
                ..Profile::default()
            };
            let mut ch = Channel {
                uuid: uuid.clone(),
                name,
                direction: Direction::Inbound,
                running_state: "CS_INIT",
                state_number: 2,
                callstate: "DOWN",
                answer_state: "ringing",
                hit_dialplan: true,
                has_media: true,
                initial: profile.clone(),
                profile,
                other: None,
                hangup_cause: None,
                vars: Vars::default(),
                current_app: None,
                partner: None,
                hanging_up: false,
                created_us: now,
                sip: sofia::new_peer(from, "127.0.0.1", port, true),
                serial: 0,
                progressed: false,
                bridged_us: 0,
                last_app: None,
            };
            ch.vars.put("direction", "inbound");
            ch.vars.put("uuid", &uuid);
            ch.vars.put("call_uuid", &uuid);
            ch.vars.put("session_id", session_id.to_string());
            sofia::inbound_create(&mut ch, to, now);
            for (k, v) in vars {
                ch.vars.put(k, v);
            }
            self.insert(&mut st, ch);
            self.emit(&st, &uuid, ChanEvent::Create, &Extra::default());
            if let Some(ch) = st.chans.get_mut(&uuid) {
                ch.callstate = "RINGING";
                ch.running_state = "CS_ROUTING";
            }
        }
        let sw = self.clone();
        let u = uuid.clone();
        tokio::spawn(async move { sw.drive(u, super::exec::Plan::Hunt).await });
        uuid
    }

    /// Answers a channel (inbound: 200 OK; outbound legs are already answered).
    /// `between` are variable changes FreeSWITCH makes after the answer event
    /// and before the ACK (bridge results).
    pub fn answer(&self, uuid: &str, between: &[(&str, Option<String>)]) -> bool {
        let mut st = self.lock();
        self.answer_locked(&mut st, uuid, between)
    }

    pub(super) fn answer_locked(
        &self,
        st: &mut State,
        uuid: &str,
        between: &[(&str, Option<String>)],
    ) -> bool {
        let now = self.now();
        let Some(ch) = st.chans.get_mut(uuid) else {
            return false;
        };
        if ch.hanging_up {
            return false;
        }
        if ch.answered() || ch.direction == Direction::Outbound {
            return true;
        }
        sofia::inbound_answer(ch);
        ch.profile.times.answered = now;
        ch.answer_state = "answered";
        self.emit(st, uuid, ChanEvent::Answer, &Extra::default());
        if let Some(ch) = st.chans.get_mut(uuid) {
            ch.callstate = "ACTIVE";
            ch.vars.put("endpoint_disposition", "ANSWER");
            for (k, v) in between {
                ch.vars.set(k, v.as_deref());
            }
            sofia::inbound_ack(ch);
        }
        true
    }

    /// 183 with media on an inbound channel (pre_answer).
    pub fn pre_answer(&self, uuid: &str) {
        let mut st = self.lock();
        let now = self.now();
        let Some(ch) = st.chans.get_mut(uuid) else {
            return;
        };
        if ch.answered() || ch.hanging_up || ch.profile.times.progress_media != 0 {
            return;
        }
        sofia::inbound_answer(ch);
        ch.profile.times.progress_media = now;
        ch.answer_state = "early";
        self.emit(&st, uuid, ChanEvent::ProgressMedia, &Extra::default());
        if let Some(ch) = st.chans.get_mut(uuid) {
            ch.callstate = "EARLY";
        }
    }

    /// 180 on an inbound channel (ring_ready), optionally with the callee of a dialed leg.
    pub fn ring_ready(
        &self,
        uuid: &str,
        callee: Option<(&str, &str)>,
        ops: &[(&str, Option<String>)],
    ) {
        let mut st = self.lock();
        let now = self.now();
        let Some(ch) = st.chans.get_mut(uuid) else {
            return;
        };
        if ch.answered() || ch.hanging_up || ch.progressed {
            return;
        }
        ch.progressed = true;
        for (k, v) in ops {
            ch.vars.set(k, v.as_deref());
        }
        if let Some((n, num)) = callee {
            ch.profile.callee_id_name = n.to_string();
            ch.profile.callee_id_number = num.to_string();
        }
        ch.profile.times.progress = now;
        self.emit(&st, uuid, ChanEvent::Progress, &Extra::default());
    }

    // ----- hangup --------------------------------------------------------

    /// Starts hanging a channel up: fires CHANNEL_HANGUP and interrupts its
    /// application. Returns false if it is unknown or already hanging up.
    pub fn hangup(&self, uuid: &str, cause: HangupCause, origin: HangupOrigin) -> bool {
        let mut st = self.lock();
        self.hangup_locked(&mut st, uuid, cause, origin)
    }

    pub(super) fn hangup_locked(
        &self,
        st: &mut State,
        uuid: &str,
        cause: HangupCause,
        origin: HangupOrigin,
    ) -> bool {
        let Some(ch) = st.chans.get_mut(uuid) else {
            return false;
        };
        if ch.hanging_up {
            return false;
        }
        ch.hanging_up = true;
        ch.hangup_cause = Some(cause);
        ch.answer_state = "hangup";
        ch.state_number = 10;
        let answered = ch.answered();
        let partner = ch.partner.clone();
        match origin {
            HangupOrigin::Remote if answered => {
                ch.vars.put("sip_term_status", "200");
                ch.vars.put("proto_specific_hangup_cause", "sip:200");
                ch.vars.put("sip_term_cause", cause.q850().to_string());
                if partner.is_some() {
                    let role = if ch.vars.get("originator").is_none() {
                        "originator"
                    } else {
                        "originatee"
                    };
                    ch.vars.put("last_bridge_role", role);
                }
            }
            HangupOrigin::Remote => match ch.direction {
                Direction::Inbound => sofia::inbound_cancelled(ch),
                Direction::Outbound => {
                    sofia::outbound_refused(ch, cause.sip_status(), cause.q850())
                }
            },
            HangupOrigin::Bridge => {
                if answered {
                    ch.vars.put("sip_hangup_phrase", "OK");
                }
                ch.vars.put("last_bridge_hangup_cause", cause.name());
                ch.vars
                    .put("last_bridge_proto_specific_hangup_cause", "sip:200");
            }
            // The bridge cancels a leg that is still ringing (route-bridge-cancel).
            HangupOrigin::Local
                if !answered
                    && ch.direction == Direction::Outbound
                    && ch.vars.get("originator").is_some() =>
            {
                ch.vars.put("sip_hangup_phrase", sofia::reason_phrase(487));
                ch.vars.put("last_bridge_hangup_cause", cause.name());
                ch.vars
                    .put("last_bridge_proto_specific_hangup_cause", "sip:487");
            }
            HangupOrigin::Local => {}
        }
        let disposition = match (origin, answered, ch.direction) {
            (HangupOrigin::Remote, true, _) => Some("recv_bye"),
            (HangupOrigin::Remote, false, Direction::Inbound) => Some("recv_cancel"),
            (HangupOrigin::Remote, false, Direction::Outbound) => Some("recv_refuse"),
            _ => None,
        };
        st.pending_disposition(uuid, disposition);
        self.emit(st, uuid, ChanEvent::Hangup, &Extra::default());
        let b_leg = st
            .chans
            .get(uuid)
            .is_some_and(|c| c.vars.get("originator").is_some());
        if origin == HangupOrigin::Remote && partner.is_some() && b_leg {
            // B's own thread leaves the bridge (originate-bridge).
            if let Some(ch) = st.chans.get_mut(uuid) {
                ch.vars.del("bridge_to");
            }
            st.b_ended_bridge.insert(uuid.to_string());
        }
        self.signal(st, uuid, Signal::Hangup);
        if let Some(p) = partner {
            self.signal(st, &p, Signal::PartnerGone);
        }
        // A leg still ringing for this channel is cancelled.
        if let Some(b) = st.dialing.get(uuid).cloned() {
            self.signal(st, &b, Signal::Hangup);
        }
        true
    }

    /// CHANNEL_HANGUP_COMPLETE and CHANNEL_DESTROY for a hung-up channel
    /// (and the B leg whose life is tied to it).
    pub fn finish(&self, uuid: &str) {
        let mut st = self.lock();
        let linked = st.linked_finish.remove(uuid);
        if let Some(b) = &linked {
            self.complete_locked(&mut st, b);
        }
        self.complete_locked(&mut st, uuid);
        if let Some(b) = &linked {
            self.destroy_locked(&mut st, b);
        }
        self.destroy_locked(&mut st, uuid);
    }

    fn complete_locked(&self, st: &mut State, uuid: &str) {
        let now = self.now();
        let disposition = st.disposition.remove(uuid).flatten();
        let Some(ch) = st.chans.get_mut(uuid) else {
            return;
        };
        if ch.running_state == "CS_REPORTING" {
            return;
        }
        if ch.hangup_cause.is_none() {
            ch.hangup_cause = Some(HangupCause::NORMAL_CLEARING);
            ch.answer_state = "hangup";
            ch.hanging_up = true;
        }
        ch.running_state = "CS_REPORTING";
        ch.state_number = 11;
        ch.callstate = "HANGUP";
        ch.profile.times.hangup = now;
        // A BYE is recorded before reporting starts; what the switch sends, after.
        if disposition == Some("recv_bye") && ch.vars.get("sip_hangup_disposition").is_none() {
            ch.vars.put("sip_hangup_disposition", "recv_bye");
        }
        hangup_vars(ch, now);
        // A B leg that was bridged (only then) reports under its own uuid,
        // which A's bridge thread writes when the bridge ends: before B
        // reports if A ended it, after (see destroy) if B did.
        if ch.vars.get("originator").is_some()
            && ch.bridged_us != 0
            && !st.b_ended_bridge.contains(uuid)
        {
            if let Some(c) = ch.vars.get("last_bridge_hangup_cause").map(str::to_string) {
                ch.vars.put("bridge_hangup_cause", c);
            }
            ch.vars.put("call_uuid", ch.uuid.clone());
        }
        let answered = ch.answered();
        if ch.vars.get("sip_hangup_disposition").is_none() {
            let d = disposition.unwrap_or(match (answered, ch.direction) {
                (true, _) => "send_bye",
                (false, Direction::Inbound) => "send_refuse",
                (false, Direction::Outbound) => "send_cancel",
            });
            // A refused inbound call records no sip_term_status (route-reject).
            ch.vars.put("sip_hangup_disposition", d);
            // The far end's 487 to our CANCEL (route-bridge-cancel).
            if d == "send_cancel" {
                ch.vars.put("sip_invite_failure_status", "487");
                ch.vars.put("sip_invite_failure_phrase", "CANCEL");
            }
        }
        // RTP statistics exist only where media flowed (answered or early media).
        if answered || ch.profile.times.progress_media != 0 {
            let talk_ms = if answered {
                (now - ch.profile.times.answered) / 1000
            } else {
                0
            };
            sofia::rtp_stats(ch, talk_ms);
        }
        self.emit(st, uuid, ChanEvent::HangupComplete, &Extra::default());
    }

    fn destroy_locked(&self, st: &mut State, uuid: &str) {
        let b_ended = st.b_ended_bridge.remove(uuid);
        if let Some(ch) = st.chans.get_mut(uuid) {
            ch.state_number = 12;
            if b_ended {
                ch.vars.put("call_uuid", ch.uuid.clone());
            }
        } else {
            return;
        }
        self.emit(st, uuid, ChanEvent::Destroy, &Extra::default());
        st.chans.remove(uuid);
        st.notify.remove(uuid);
        st.signals.remove(uuid);
        st.disposition.remove(uuid);
        st.bridge_owned.remove(uuid);
    }

    // ----- applications ---------------------------------------------------

    /// The dialplan hunt starts (CS_ROUTING): `call_uuid` is set again.
    pub fn enter_routing(&self, uuid: &str) {
        self.with_channel(uuid, |ch| {
            let cu = ch.call_uuid();
            ch.vars.put("call_uuid", cu);
        });
    }

    /// Enters CS_EXECUTE (start of an extension's application list).
    pub fn enter_execute(&self, uuid: &str) {
        let mut st = self.lock();
        if let Some(ch) = st.chans.get_mut(uuid) {
            ch.running_state = "CS_EXECUTE";
            ch.state_number = 4;
            ch.hit_dialplan = true;
            let cu = ch.call_uuid();
            ch.vars.put("call_uuid", cu);
        }
    }

    /// CHANNEL_EXECUTE: the application starts.
    pub fn app_start(&self, uuid: &str, name: &str, data: &str) -> Option<RunningApp> {
        let mut st = self.lock();
        let ch = st.chans.get_mut(uuid)?;
        let app = RunningApp {
            name: name.to_string(),
            data: data.to_string(),
            uuid: new_uuid(),
        };
        ch.vars.put("current_application", name);
        ch.vars.set("current_application_data", Some(data));
        ch.vars.del("current_application_response");
        ch.current_app = Some(app.clone());
        ch.state_number = match (ch.hanging_up, ch.running_state) {
            (true, _) => 10,
            (false, "CS_ROUTING") => 2,
            _ => 4,
        };
        let a = app.clone();
        self.emit(
            &st,
            uuid,
            ChanEvent::Execute,
            &Extra {
                app: Some(&a),
                ..Extra::default()
            },
        );
        // switch_core_session_exec sets it again right before running the app.
        if let Some(ch) = st.chans.get_mut(uuid) {
            ch.vars.put("current_application", name);
        }
        Some(app)
    }

    /// CHANNEL_EXECUTE_COMPLETE; then finishes a B leg that died while bridged.
    pub fn app_complete(&self, uuid: &str, app: &RunningApp) {
        let mut st = self.lock();
        let Some(ch) = st.chans.get_mut(uuid) else {
            return;
        };
        ch.current_app = None;
        ch.last_app = Some((app.name.clone(), app.data.clone()));
        let response = ch
            .vars
            .get("current_application_response")
            .unwrap_or("_none_")
            .to_string();
        self.emit(
            &st,
            uuid,
            ChanEvent::ExecuteComplete,
            &Extra {
                app: Some(app),
                response: Some(&response),
                ..Extra::default()
            },
        );
        if let Some(b) = st.dead_partner.remove(uuid) {
            self.complete_locked(&mut st, &b);
            self.destroy_locked(&mut st, &b);
        }
    }

    /// Sets (or unsets) a channel variable.
    pub fn set_var(&self, uuid: &str, name: &str, value: Option<&str>) -> bool {
        let mut st = self.lock();
        match st.chans.get_mut(uuid) {
            Some(ch) => {
                ch.vars.set(name, value);
                true
            }
            None => false,
        }
    }

    /// Runs `f` on a channel under the lock.
    pub(crate) fn with_channel<R>(
        &self,
        uuid: &str,
        f: impl FnOnce(&mut Channel) -> R,
    ) -> Option<R> {
        let mut st = self.lock();
        st.chans.get_mut(uuid).map(f)
    }

    /// Records an error against a channel (shown by the control API) and logs it.
    pub fn record_error(&self, uuid: &str, msg: String) {
        tracing::error!(uuid, "{msg}");
        self.lock()
            .errors
            .entry(uuid.to_string())
            .or_default()
            .push(msg);
    }

    /// CHANNEL_PARK.
    pub fn park_event(&self, uuid: &str) {
        let st = self.lock();
        self.emit(&st, uuid, ChanEvent::Park, &Extra::default());
    }

    /// CHANNEL_UNPARK.
    pub fn unpark_event(&self, uuid: &str) {
        let st = self.lock();
        self.emit(&st, uuid, ChanEvent::Unpark, &Extra::default());
    }

    // ----- transfer --------------------------------------------------------

    /// `uuid_transfer`: new caller profile, then the running app is interrupted.
    /// Fails for unknown or hanging-up channels and when `max_forwards` runs out.
    pub fn transfer(
        &self,
        uuid: &str,
        exten: &str,
        dialplan: &str,
        context: &str,
    ) -> Result<(), TransferRefused> {
        let mut st = self.lock();
        let now = self.now();
        let Some(ch) = st.chans.get_mut(uuid) else {
            return Err(TransferRefused);
        };
        if ch.hanging_up {
            return Err(TransferRefused);
        }
        let fwd = match ch
            .vars
            .get("max_forwards")
            .and_then(|v| v.parse::<i64>().ok())
        {
            Some(n) => n - 1,
            None => 70,
        };
        if fwd <= 0 {
            self.hangup_locked(
                &mut st,
                uuid,
                HangupCause::EXCHANGE_ROUTING_ERROR,
                HangupOrigin::Local,
            );
            return Err(TransferRefused);
        }
        let exten = if exten.is_empty() { "service" } else { exten };
        let source = format!(
            "{}:{}:bl_xfer:{exten}/{context}/{dialplan}",
            now / 1_000_000,
            new_uuid()
        );
        let old = ch.profile.clone();
        let mut p = old.clone();
        p.profile_index = Some(old.profile_index.unwrap_or(1) + 1);
        p.logical_direction = "inbound".into();
        p.dialplan = dialplan.to_string();
        p.destination_number = exten.to_string();
        p.context = context.to_string();
        p.rdnis = old.destination_number.clone();
        p.transfer_source = source.clone();
        p.times.profile_created = now;
        ch.profile = p;
        ch.vars.put("max_forwards", fwd.to_string());
        let hist = match ch.vars.get("transfer_history") {
            Some(h) => format!("ARRAY::{}|:{source}", h.trim_start_matches("ARRAY::")),
            None => source.clone(),
        };
        ch.vars.put("transfer_history", hist);
        ch.vars.put("transfer_source", &source);
        ch.state_number = 2;
        let partner = ch.partner.clone();
        self.signal(&mut st, uuid, Signal::Transfer);
        if st.bridge_owned.contains(uuid) {
            if let Some(a) = partner {
                self.signal(&mut st, &a, Signal::PartnerTransferred);
            }
        }
        Ok(())
    }

    /// The bridged partner of a channel.
    pub fn partner(&self, uuid: &str) -> Option<String> {
        self.lock().chans.get(uuid).and_then(|c| c.partner.clone())
    }

    /// Bridges answered legs A and B (CHANNEL_BRIDGE on A).
    pub fn bridge(&self, a: &str, b: &str) -> bool {
        let now = self.now();
        let mut st = self.lock();
        let (Some(bch), Some(ach)) = (st.chans.get(b).cloned(), st.chans.get(a).cloned()) else {
            return false;
        };
        if bch.hanging_up || ach.hanging_up {
            return false;
        }
        if let Some(ch) = st.chans.get_mut(a) {
            ch.profile.times.bridged = now;
            ch.bridged_us = now;
            let mut op = bch.profile.clone();
            op.logical_direction = "inbound".into();
            op.profile_index = None;
            op.times.bridged = 0;
            ch.other = Some(("originatee", op));
            ch.partner = Some(b.to_string());
            ch.callstate = "ACTIVE";
        }
        if let Some(ch) = st.chans.get_mut(b) {
            ch.profile.times.bridged = now;
            ch.bridged_us = now;
            ch.running_state = "CS_EXCHANGE_MEDIA";
            ch.state_number = 5;
            ch.partner = Some(a.to_string());
        }
        self.emit(
            &st,
            a,
            ChanEvent::Bridge,
            &Extra {
                bridge: Some((a, b)),
                ..Extra::default()
            },
        );
        if let Some(ch) = st.chans.get_mut(a) {
            ch.vars.put("bridge_to", b);
            ch.vars.put("last_bridge_to", b);
            ch.vars.put("bridge_channel", &bch.name);
            ch.vars.put("bridge_uuid", b);
            ch.vars.put("signal_bond", b);
            ch.vars
                .put("last_sent_callee_id_name", &bch.profile.callee_id_name);
            ch.vars
                .put("last_sent_callee_id_number", &bch.profile.callee_id_number);
        }
        if let Some(ch) = st.chans.get_mut(b) {
            ch.vars.put("call_uuid", ach.call_uuid());
            ch.vars.put("bridge_to", a);
            ch.vars.put("last_bridge_to", a);
            ch.vars.put("bridge_channel", &ach.name);
            ch.vars.put("bridge_uuid", a);
            ch.vars.put("signal_bond", a);
            ch.vars
                .put("last_sent_callee_id_name", &bch.profile.caller_id_name);
            ch.vars
                .put("last_sent_callee_id_number", &bch.profile.caller_id_number);
        }
        true
    }

    /// Ends the bridge on A: CHANNEL_UNBRIDGE. `a_hung_up`: A ended the call
    /// (B is hung up now and finished together with A); otherwise B ended it
    /// and is finished after A's bridge application returns.
    pub fn unbridge(&self, a: &str, b: &str, how: BridgeEnd) {
        let mut st = self.lock();
        let cause = st
            .chans
            .get(a)
            .and_then(|c| c.hangup_cause)
            .or_else(|| st.chans.get(b).and_then(|c| c.hangup_cause))
            .unwrap_or(HangupCause::NORMAL_CLEARING);
        let b_ch = st.chans.get(b).cloned();
        match how {
            BridgeEnd::AHungUp => {
                if let Some(ch) = st.chans.get_mut(b) {
                    ch.vars.del("bridge_to");
                }
                self.hangup_locked(&mut st, b, cause, HangupOrigin::Bridge);
                st.linked_finish.insert(a.to_string(), b.to_string());
            }
            BridgeEnd::BHungUp => {
                st.dead_partner.insert(a.to_string(), b.to_string());
            }
            BridgeEnd::BTransferred => {
                st.bridge_owned.remove(b);
            }
        }
        let a_remote = st.disposition.get(a).copied().flatten() == Some("recv_bye");
        if let Some(ch) = st.chans.get_mut(a) {
            ch.vars.del("bridge_to");
            if a_remote {
                ch.vars.put("sip_hangup_disposition", "recv_bye");
            }
            // B ended the call: A records how (originate-bridge).
            if let (BridgeEnd::BHungUp, Some(bch)) = (how, &b_ch) {
                if bch.answered() {
                    ch.vars.put("sip_hangup_phrase", sofia::reason_phrase(200));
                }
                ch.vars.put("last_bridge_hangup_cause", cause.name());
                ch.vars.put(
                    "last_bridge_proto_specific_hangup_cause",
                    bch.vars
                        .get("proto_specific_hangup_cause")
                        .unwrap_or("sip:200"),
                );
            }
            ch.vars.put("bridge_hangup_cause", cause.name());
            ch.partner = None;
        }
        if let Some(ch) = st.chans.get_mut(b) {
            ch.partner = None;
        }
        // Signals raised by the partner's hangup are consumed here.
        if let Some(q) = st.signals.get_mut(a) {
            q.retain(|s| !matches!(s, Signal::PartnerGone | Signal::PartnerTransferred));
        }
        self.emit(
            &st,
            a,
            ChanEvent::Unbridge,
            &Extra {
                bridge: Some((a, b)),
                ..Extra::default()
            },
        );
    }

    /// Originate-without-A-leg: after answer FreeSWITCH flips the caller ID.
    pub fn originate_answered_flip(&self, b: &str) {
        self.with_channel(b, |ch| {
            ch.vars.put("endpoint_disposition", "ANSWER");
            ch.vars.put(
                "pre_transfer_caller_id_name",
                ch.profile.caller_id_name.clone(),
            );
            ch.vars.put(
                "pre_transfer_caller_id_number",
                ch.profile.caller_id_number.clone(),
            );
            ch.vars.put("channel_cid_flipped", "yes");
            let p = &mut ch.profile;
            std::mem::swap(&mut p.caller_id_name, &mut p.callee_id_name);
            std::mem::swap(&mut p.caller_id_number, &mut p.callee_id_number);
        });
    }

    /// Spawns the driver of a channel that runs `plan`.
    pub fn spawn_driver(&self, uuid: &str, plan: super::exec::Plan) {
        let sw = self.clone();
        let u = uuid.to_string();
        tokio::spawn(async move { sw.drive(u, plan).await });
    }

    /// The default originate timeout.
    pub fn default_timeout(&self) -> Duration {
        self.0.default_timeout
    }
}

impl State {
    fn pending_disposition(&mut self, uuid: &str, d: Option<&'static str>) {
        self.disposition.insert(uuid.to_string(), d);
    }
}

/// A leg's media variables once the far end's SDP is known.
pub fn media_ops(b: &Channel) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("switch_m_sdp", Some(sofia::remote_sdp(b))),
        ("video_media_flow", Some("inactive".into())),
        ("text_media_flow", Some("inactive".into())),
        ("audio_media_flow", Some("sendrecv".into())),
    ]
}
