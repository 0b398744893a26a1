//! The simulated switch core: the channel table and FreeSWITCH's channel
//! state machine (create, ring, answer, park, execute, transfer, bridge,
//! hangup, reporting, destroy), firing the same events in the same order as
//! the recordings. Every state change and its event happen under one lock,
//! so the event order is deterministic; waiting (answer delays, park,
//! playback) happens outside it in per-channel driver tasks.
//!
//! `Switch` is the in-process API (`SimHandle::switch()`); the ESL `api`
//! commands (`api.rs`), the dialplan runner (`exec.rs`) and the control API
//! drive channels only through it. It must not know about sockets or HTTP.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::behaviour::{Behaviours, Reaction};
use super::bus::{local_stamp, Bus};
use super::channel::{Channel, Direction, Profile, RunningApp, Times, Vars};
use super::dialplan::Dialplan;
use super::events::{channel_event, ChanEvent, Extra, SessionStats};
use super::originate::{DialString, Endpoint, Leg};
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
    bridge_owned: std::collections::HashSet<String>,
    /// SIP hangup disposition decided when the hangup started.
    disposition: HashMap<String, Option<&'static str>>,
    serial: u64,
    since_startup: u64,
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
    /// Failed with a cause.
    Failed(HangupCause),
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Switch {
    pub(crate) fn new(
        bus: Arc<Bus>,
        behaviours: Behaviours,
        dialplan: Option<Arc<Dialplan>>,
        default_timeout: Duration,
        globals: std::collections::HashMap<String, String>,
    ) -> Switch {
        Switch(Arc::new(Inner {
            bus,
            st: Mutex::new(State::default()),
            behaviours: Mutex::new(behaviours),
            dialplan,
            http: super::dialplan::curl::client().unwrap_or_default(),
            default_timeout,
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

    fn now(&self) -> i64 {
        self.0.bus.clock.now_us()
    }

    fn emit(&self, st: &State, uuid: &str, kind: ChanEvent, extra: &Extra<'_>) {
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

    fn insert(&self, st: &mut State, mut ch: Channel) {
        st.serial += 1;
        st.since_startup += 1;
        ch.serial = st.serial;
        st.notify.insert(ch.uuid.clone(), Arc::new(Notify::new()));
        st.chans.insert(ch.uuid.clone(), ch);
        st.peak = st.peak.max(st.chans.len());
    }

    fn signal(&self, st: &mut State, uuid: &str, s: Signal) {
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

    fn answer_locked(
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

    fn hangup_locked(
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
                if partner.is_some() && ch.vars.get("originator").is_none() {
                    ch.vars.put("last_bridge_role", "originator");
                }
            }
            HangupOrigin::Remote => {
                let code = cause.sip_status();
                ch.vars.put("sip_term_status", code.to_string());
                ch.vars
                    .put("proto_specific_hangup_cause", format!("sip:{code}"));
                ch.vars.put("sip_term_cause", cause.q850().to_string());
            }
            HangupOrigin::Bridge => {
                if answered {
                    ch.vars.put("sip_hangup_phrase", "OK");
                }
                ch.vars.put("last_bridge_hangup_cause", cause.name());
                ch.vars
                    .put("last_bridge_proto_specific_hangup_cause", "sip:200");
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
        self.signal(st, uuid, Signal::Hangup);
        if let Some(p) = partner {
            self.signal(st, &p, Signal::PartnerGone);
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
        hangup_vars(ch, now);
        if ch.vars.get("originator").is_some() {
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
            if d == "send_refuse" {
                let cause = ch.hangup_cause.unwrap_or(HangupCause::NORMAL_CLEARING);
                let code = cause.sip_status();
                ch.vars.put("sip_term_status", code.to_string());
                ch.vars
                    .put("proto_specific_hangup_cause", format!("sip:{code}"));
            }
            ch.vars.put("sip_hangup_disposition", d);
        }
        let talk_ms = if answered {
            (now - ch.profile.times.answered) / 1000
        } else {
            0
        };
        sofia::rtp_stats(ch, talk_ms);
        self.emit(st, uuid, ChanEvent::HangupComplete, &Extra::default());
    }

    fn destroy_locked(&self, st: &mut State, uuid: &str) {
        if let Some(ch) = st.chans.get_mut(uuid) {
            ch.state_number = 12;
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
        ch.state_number = if ch.hanging_up { 10 } else { 4 };
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

    // ----- dialing -----------------------------------------------------------

    /// Dials one far end. `a` is the originating channel (bridge) if any.
    /// Fires CREATE/PROGRESS/ANSWER (or the failure events) of the new leg.
    pub async fn dial(
        &self,
        a: Option<&str>,
        leg: &Leg,
        global: &[(String, String)],
        cid: (Option<String>, Option<String>),
        timeout: Duration,
    ) -> Dialed {
        let endpoint = Endpoint::parse(&leg.endpoint);
        let (user, host, port) = match &endpoint {
            Endpoint::Error(c) => {
                return Dialed::Failed(
                    HangupCause::from_name_ignore_case(c).unwrap_or(HangupCause::NORMAL_CLEARING),
                )
            }
            Endpoint::Sofia {
                user, host, port, ..
            } => (user.clone(), host.clone(), *port),
            Endpoint::Other { dest } => (dest.clone(), "127.0.0.1".to_string(), 5060),
        };
        let reaction = self
            .0
            .behaviours
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reaction(&leg.endpoint, endpoint.dest());
        let vars: Vec<(String, String)> = global.iter().chain(leg.vars.iter()).cloned().collect();
        let b = match self.create_outbound(a, &leg.endpoint, &user, &host, port, &vars, cid) {
            Some(b) => b,
            None => return Dialed::Failed(HangupCause::ORIGINATOR_CANCEL),
        };
        let timeout = vars
            .iter()
            .rev()
            .find(|(k, _)| k == "leg_timeout" || k == "originate_timeout" || k == "call_timeout")
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(timeout);
        match reaction {
            Reaction::Reject(cause) => {
                {
                    let mut st = self.lock();
                    self.hangup_locked(&mut st, &b, cause, HangupOrigin::Remote);
                }
                self.finish(&b);
                Dialed::Failed(cause)
            }
            Reaction::NoAnswer => {
                self.outbound_ringing(a, &b);
                let sig = self.wait_signal(&b, Some(timeout)).await;
                let cause = if sig.is_some() {
                    HangupCause::ORIGINATOR_CANCEL
                } else {
                    HangupCause::NO_ANSWER
                };
                self.hangup(&b, cause, HangupOrigin::Local);
                self.finish(&b);
                Dialed::Failed(cause)
            }
            Reaction::Answer(delay) => {
                self.outbound_ringing(a, &b);
                if delay > timeout {
                    let sig = self.wait_signal(&b, Some(timeout)).await;
                    let cause = if sig.is_some() {
                        HangupCause::ORIGINATOR_CANCEL
                    } else {
                        HangupCause::NO_ANSWER
                    };
                    self.hangup(&b, cause, HangupOrigin::Local);
                    self.finish(&b);
                    return Dialed::Failed(cause);
                }
                if !delay.is_zero() {
                    if let Some(a) = a {
                        self.a_leg_ringing(a, &b);
                    }
                    if self.wait_signal(&b, Some(delay)).await.is_some() {
                        self.hangup(&b, HangupCause::ORIGINATOR_CANCEL, HangupOrigin::Local);
                        self.finish(&b);
                        return Dialed::Failed(HangupCause::ORIGINATOR_CANCEL);
                    }
                }
                if let Some(a) = a {
                    if self.channel(a).is_none_or(|c| c.hanging_up) {
                        self.hangup(&b, HangupCause::ORIGINATOR_CANCEL, HangupOrigin::Local);
                        self.finish(&b);
                        return Dialed::Failed(HangupCause::ORIGINATOR_CANCEL);
                    }
                }
                self.outbound_answer(&b);
                Dialed::Answered(b)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_outbound(
        &self,
        a: Option<&str>,
        endpoint: &str,
        user: &str,
        host: &str,
        port: u16,
        vars: &[(String, String)],
        cid: (Option<String>, Option<String>),
    ) -> Option<String> {
        let now = self.now();
        let mut st = self.lock();
        let a_ch = match a {
            Some(a) => Some(st.chans.get(a)?.clone()),
            None => None,
        };
        let var = |k: &str| {
            vars.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        let mut uuid = var("origination_uuid").unwrap_or_else(new_uuid);
        if st.chans.contains_key(&uuid) {
            tracing::error!(uuid, "origination_uuid already in use, using a random uuid");
            uuid = new_uuid();
        }
        // sofia url-escapes the user part in the channel name, destination
        // number and request URI ("+1555…" becomes "%2B1555…").
        let esc_user = crate::esl::urlenc::encode_str(user).into_owned();
        let (name, dest_url) = match Endpoint::parse(endpoint) {
            Endpoint::Sofia {
                profile,
                host,
                port,
                ..
            } if !endpoint.starts_with("sofia/gateway/") => {
                let hp = if endpoint.contains(&format!(":{port}")) {
                    format!("{host}:{port}")
                } else {
                    host.clone()
                };
                (
                    format!("sofia/{profile}/{esc_user}@{hp}"),
                    format!("{esc_user}@{hp}"),
                )
            }
            _ => {
                let name = endpoint.replace("sip:", "");
                let dest = name.splitn(3, '/').nth(2).unwrap_or(&name).to_string();
                (name, dest)
            }
        };
        let (cid_name, cid_num) = match &a_ch {
            Some(a) => (
                var("origination_caller_id_name").unwrap_or(a.profile.caller_id_name.clone()),
                var("origination_caller_id_number").unwrap_or(a.profile.caller_id_number.clone()),
            ),
            None => (
                var("origination_caller_id_name")
                    .or(cid.0)
                    .unwrap_or_default(),
                var("origination_caller_id_number")
                    .or(cid.1)
                    .unwrap_or_else(|| "0000000000".to_string()),
            ),
        };
        let mut profile = Profile {
            direction: "outbound".into(),
            logical_direction: "outbound".into(),
            caller_id_name: cid_name.clone(),
            caller_id_number: cid_num.clone(),
            orig_caller_id_name: cid_name.clone(),
            orig_caller_id_number: cid_num.clone(),
            callee_id_name: "Outbound Call".into(),
            callee_id_number: user.to_string(),
            ani: cid_num.clone(),
            destination_number: esc_user.clone(),
            uuid: uuid.clone(),
            source: "src/switch_ivr_originate.c".into(),
            context: "default".into(),
            channel_name: name.clone(),
            profile_index: Some(1),
            times: Times {
                profile_created: now,
                created: now,
                ..Times::default()
            },
            ..Profile::default()
        };
        let mut other = None;
        if let Some(a) = &a_ch {
            profile.username = a.profile.username.clone();
            profile.dialplan = a.profile.dialplan.clone();
            profile.network_addr = a.profile.network_addr.clone();
            profile.ani = a.profile.ani.clone();
            profile.source = "mod_sofia".into();
            profile.context = a.profile.context.clone();
            let mut op = a.profile.clone();
            op.profile_index = None;
            op.times = Times::default();
            op.callee_id_name.clear();
            op.callee_id_number.clear();
            other = Some(("originator", op));
        }
        let session_id = st.since_startup + 1;
        let mut ch = Channel {
            uuid: uuid.clone(),
            name: name.clone(),
            direction: Direction::Outbound,
            running_state: "CS_INIT",
            state_number: 2,
            callstate: "DOWN",
            answer_state: "ringing",
            hit_dialplan: false,
            has_media: false,
            profile,
            other,
            hangup_cause: None,
            vars: Vars::default(),
            current_app: None,
            partner: None,
            hanging_up: false,
            created_us: now,
            sip: sofia::new_peer(user, host, port, false),
            serial: 0,
            progressed: false,
            bridged_us: 0,
            last_app: None,
        };
        let bridged = a_ch.is_some();
        ch.vars.put("direction", "outbound");
        ch.vars.put("is_outbound", "true");
        ch.vars.put("uuid", &uuid);
        if !bridged {
            ch.vars.put("call_uuid", &uuid);
        }
        ch.vars.put("session_id", session_id.to_string());
        sofia::outbound_create_head(&mut ch, bridged, &dest_url);
        for (k, v) in vars {
            ch.vars.put(k, v);
        }
        if let Some(a) = &a_ch {
            let fwd = a
                .vars
                .get("max_forwards")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(70)
                - 1;
            ch.vars.put("max_forwards", fwd.to_string());
            ch.vars.put("originator_codec", "PCMU@8000h@20i");
            ch.vars.put("originator", &a.uuid);
            ch.vars.put("signal_bond", &a.uuid);
            if let Some(sdp) = a.vars.get("switch_r_sdp") {
                ch.vars.put("switch_m_sdp", sdp);
            }
            ch.vars.put("call_uuid", a.call_uuid());
        }
        ch.vars.put("originate_early_media", "true");
        if let Some(a) = &a_ch {
            ch.vars.put("originating_leg_uuid", &a.uuid);
        }
        sofia::outbound_create_tail(&mut ch, bridged, &dest_url);
        self.insert(&mut st, ch);
        if bridged {
            st.bridge_owned.insert(uuid.clone());
        }
        self.emit(&st, &uuid, ChanEvent::Create, &Extra::default());
        Some(uuid)
    }

    fn outbound_ringing(&self, _a: Option<&str>, b: &str) {
        let now = self.now();
        let mut st = self.lock();
        let Some(ch) = st.chans.get_mut(b) else {
            return;
        };
        sofia::outbound_ringing(ch);
        ch.running_state = "CS_CONSUME_MEDIA";
        ch.state_number = 7;
        ch.progressed = true;
        ch.profile.network_addr = ch.sip.host.clone();
        ch.profile.times.progress = now;
        if let Some((_, o)) = ch.other.as_mut() {
            o.times.progress = now;
        }
        self.emit(&st, b, ChanEvent::Progress, &Extra::default());
        if let Some(ch) = st.chans.get_mut(b) {
            ch.callstate = "RINGING";
        }
    }

    fn outbound_answer(&self, b: &str) {
        let now = self.now();
        let mut st = self.lock();
        let Some(ch) = st.chans.get_mut(b) else {
            return;
        };
        sofia::outbound_answer(ch);
        ch.has_media = true;
        ch.answer_state = "answered";
        ch.profile.times.answered = now;
        self.emit(&st, b, ChanEvent::Answer, &Extra::default());
        if let Some(ch) = st.chans.get_mut(b) {
            ch.callstate = "ACTIVE";
            ch.vars.put("endpoint_disposition", "ANSWER");
        }
    }

    /// The A leg learns that B rings (CHANNEL_PROGRESS on A).
    pub fn a_leg_ringing(&self, a: &str, b: &str) {
        let Some(bch) = self.channel(b) else {
            return;
        };
        let a_tag = self.channel(a).map(|c| c.sip.to_tag).unwrap_or_default();
        let mut ops: Vec<(&str, Option<String>)> = vec![
            ("originate_disposition", Some("failure".into())),
            ("DIALSTATUS", Some("INVALIDARGS".into())),
            ("originate_signal_bond", Some(b.to_string())),
            (
                "originated_legs",
                Some(format!(
                    "{b};{};{}",
                    bch.profile.callee_id_name, bch.profile.callee_id_number
                )),
            ),
        ];
        if bch.answered() {
            ops.extend(media_ops(&bch));
        }
        ops.push(("sip_to_tag", Some(a_tag)));
        self.ring_ready(
            a,
            Some((&bch.profile.callee_id_name, &bch.profile.callee_id_number)),
            &ops,
        );
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
            ch.vars.put("last_bridge_to", a);
            ch.vars.put("bridge_channel", &ach.name);
            ch.vars.put("bridge_uuid", a);
            ch.vars.put("signal_bond", a);
            ch.vars
                .put("last_sent_callee_id_name", &ach.profile.caller_id_name);
            ch.vars
                .put("last_sent_callee_id_number", &ach.profile.caller_id_number);
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
        match how {
            BridgeEnd::AHungUp => {
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

    /// Sets the variables of a bridge's originate result on A.
    pub fn originate_result_vars(&self, a: &str, b: Option<&str>, cause: Option<HangupCause>) {
        let mut st = self.lock();
        if let Some(ch) = st.chans.get_mut(a) {
            match (b, cause) {
                (Some(b), _) => {
                    ch.vars.del("originate_signal_bond");
                    ch.vars.put("originate_disposition", "SUCCESS");
                    ch.vars.put("DIALSTATUS", "SUCCESS");
                    ch.vars.put("originate_causes", format!("{b};NONE"));
                    ch.vars.put("signal_bond", b);
                }
                (None, Some(c)) => {
                    ch.vars.put("originate_disposition", c.name());
                    ch.vars.put(
                        "DIALSTATUS",
                        match c {
                            HangupCause::USER_BUSY => "BUSY",
                            HangupCause::NO_ANSWER | HangupCause::NO_USER_RESPONSE => "NOANSWER",
                            _ => "CHANUNAVAIL",
                        },
                    );
                    ch.vars.put("originate_causes", c.name());
                }
                _ => {}
            }
        }
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

    /// Parses a dial string and dials its legs in failover order, first leg
    /// of each group; returns the answered leg or the last failure.
    pub async fn dial_string(
        &self,
        a: Option<&str>,
        ds: &DialString,
        cid: (Option<String>, Option<String>),
        timeout: Duration,
    ) -> Dialed {
        let mut last = Dialed::Failed(HangupCause::NORMAL_TEMPORARY_FAILURE);
        for group in &ds.groups {
            let Some(leg) = group.first() else { continue };
            match Box::pin(self.dial(a, leg, &ds.global, cid.clone(), timeout)).await {
                Dialed::Answered(b) => return Dialed::Answered(b),
                f => last = f,
            }
            if let Some(a) = a {
                if self.channel(a).is_none_or(|c| c.hanging_up) {
                    break;
                }
            }
        }
        last
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

/// The variables FreeSWITCH computes at reporting time, in its order.
fn hangup_vars(ch: &mut Channel, end: i64) {
    let t = ch.profile.times;
    let cause = ch.hangup_cause.unwrap_or(HangupCause::NORMAL_CLEARING);
    let start = ch.created_us;
    let v = &mut ch.vars;
    v.put("hangup_cause", cause.name());
    v.put("hangup_cause_q850", cause.q850().to_string());
    v.put("digits_dialed", "none");
    v.put("start_stamp", local_stamp(start));
    v.put("profile_start_stamp", local_stamp(t.profile_created));
    if t.answered != 0 {
        v.put("answer_stamp", local_stamp(t.answered));
    }
    if ch.bridged_us != 0 {
        v.put("bridge_stamp", local_stamp(ch.bridged_us));
    }
    if t.progress != 0 {
        v.put("progress_stamp", local_stamp(t.progress));
    }
    if t.progress_media != 0 {
        v.put("progress_media_stamp", local_stamp(t.progress_media));
    }
    v.put("end_stamp", local_stamp(end));
    let pair = |v: &mut Vars, n: &str, us: i64| {
        v.put(&format!("{n}_epoch"), (us / 1_000_000).to_string());
        v.put(&format!("{n}_uepoch"), us.to_string());
    };
    pair(v, "start", start);
    pair(v, "profile_start", t.profile_created);
    pair(v, "answer", t.answered);
    pair(v, "bridge", ch.bridged_us);
    pair(v, "last_hold", 0);
    v.put("hold_accum_seconds", "0");
    v.put("hold_accum_usec", "0");
    v.put("hold_accum_ms", "0");
    pair(v, "resurrect", 0);
    pair(v, "progress", t.progress);
    pair(v, "progress_media", t.progress_media);
    pair(v, "end", end);
    if let Some((app, arg)) = &ch.last_app {
        v.put("last_app", app);
        if !arg.is_empty() {
            v.put("last_arg", arg);
        }
    }
    v.put(
        "caller_id",
        format!(
            "\"{}\" <{}>",
            ch.profile.caller_id_name, ch.profile.caller_id_number
        ),
    );
    let since = |from: i64| if from == 0 { 0 } else { end - from };
    let diff = |a: i64, b: i64| if a == 0 || b == 0 { 0 } else { a - b };
    let spans = [
        ("duration", end - start),
        ("billsec", since(t.answered)),
        ("progresssec", diff(t.progress, start)),
        ("answersec", diff(t.answered, start)),
        ("waitsec", diff(ch.bridged_us, start)),
        ("progress_mediasec", diff(t.progress_media, start)),
        ("flow_billsec", end - start),
    ];
    let name = |n: &str, unit: &str| match n {
        "duration" => format!("{unit}duration"),
        other => format!("{}{unit}sec", other.trim_end_matches("sec")),
    };
    for (n, us) in spans {
        let secs = if n == "duration" || n == "flow_billsec" {
            end / 1_000_000 - start / 1_000_000
        } else if n == "billsec" && t.answered != 0 {
            end / 1_000_000 - t.answered / 1_000_000
        } else {
            us / 1_000_000
        };
        v.put(n, secs.to_string());
    }
    for (n, us) in spans {
        v.put(&name(n, "m"), (us / 1000).to_string());
    }
    for (n, us) in spans {
        v.put(&name(n, "u"), us.to_string());
    }
}
