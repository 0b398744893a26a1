//! Dialing far ends (`originate` and `bridge`): parsing an endpoint into a
//! SIP peer (a `sofia/gateway/<name>/…` through the gateway's proxy), the
//! new leg's CREATE with the variables sofia and the originate code give it,
//! its ringing, answer or failure as the far end's behaviour decides, and
//! what a failed leg leaves on the A leg (`originate_causes` & co.).
//!
//! Part of the switch core (`core.rs` owns the channel table and the
//! hangup/bridge machinery); it changes channels only under the core's lock.

use std::time::Duration;

use super::behaviour::Reaction;
use super::channel::{Channel, Direction, Profile, Times, Vars};
use super::core::{media_ops, new_uuid, Dialed, HangupOrigin, Switch};
use super::events::{ChanEvent, Extra};
use super::originate::{DialString, Endpoint, Leg};
use super::sofia;
use crate::esl::HangupCause;

/// Where a new leg's SIP goes.
struct FarEnd {
    user: String,
    host: String,
    port: u16,
    /// The port was written in the endpoint (it then shows in the channel name).
    explicit_port: bool,
    /// The gateway it goes through.
    gateway: Option<String>,
}

impl Switch {
    /// Where an endpoint's SIP goes: `sofia/gateway/<gw>/<number>` through
    /// the gateway's proxy (an unknown gateway is taken as host `<gw>`, port
    /// 5060), `sofia/<profile>/<user>@<host>[:port]` straight there.
    fn far_end(&self, text: &str, endpoint: &Endpoint) -> Option<FarEnd> {
        match endpoint {
            Endpoint::Error(_) => None,
            Endpoint::Gateway { gateway, user } => {
                let (host, port) = self.gateway_proxy(gateway);
                Some(FarEnd {
                    user: user.clone(),
                    host,
                    port,
                    explicit_port: true,
                    gateway: Some(gateway.clone()),
                })
            }
            Endpoint::Sofia {
                user, host, port, ..
            } => Some(FarEnd {
                user: user.clone(),
                host: host.clone(),
                port: *port,
                explicit_port: text.contains(&format!(":{port}")),
                gateway: None,
            }),
            Endpoint::Other { dest } => Some(FarEnd {
                user: dest.clone(),
                host: "127.0.0.1".into(),
                port: 5060,
                explicit_port: false,
                gateway: None,
            }),
        }
    }

    /// The proxy `host:port` of a configured gateway.
    fn gateway_proxy(&self, gw: &str) -> (String, u16) {
        match self.0.gateways.get(gw) {
            Some(proxy) => match proxy.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().unwrap_or(5060)),
                None => (proxy.clone(), 5060),
            },
            None => (gw.to_string(), 5060),
        }
    }

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
        let Some(far) = self.far_end(&leg.endpoint, &endpoint) else {
            let c = HangupCause::from_name_ignore_case(endpoint.dest())
                .unwrap_or(HangupCause::NORMAL_CLEARING);
            return Dialed::Failed(c, None);
        };
        let reaction = self
            .0
            .behaviours
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reaction(&leg.endpoint, endpoint.dest());
        let Some(b) = self.create_outbound(a, &far, global, &leg.vars, cid) else {
            return Dialed::Failed(HangupCause::ORIGINATOR_CANCEL, None);
        };
        let timeout = global
            .iter()
            .chain(leg.vars.iter())
            .rev()
            .find(|(k, _)| k == "leg_timeout" || k == "originate_timeout" || k == "call_timeout")
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(timeout);
        if let Some(a) = a {
            self.lock().dialing.insert(a.to_string(), b.clone());
        }
        let result = self.far_end_reacts(a, &b, reaction, timeout).await;
        if let Some(a) = a {
            self.lock().dialing.remove(a);
        }
        result
    }

    /// The far end of the new leg `b` rings, answers, refuses or never
    /// answers; A's hangup (or the timeout) cancels it meanwhile.
    async fn far_end_reacts(
        &self,
        a: Option<&str>,
        b: &str,
        reaction: Reaction,
        timeout: Duration,
    ) -> Dialed {
        let ring_for = match reaction {
            Reaction::Reject(cause) => {
                self.hangup(b, cause, HangupOrigin::Remote);
                let refused = self.channel(b);
                self.finish_failed(a, b);
                if let (Some(a), Some(bch)) = (a, refused) {
                    self.leg_refused_vars(a, &bch);
                }
                return Dialed::Failed(cause, Some(b.to_string()));
            }
            Reaction::NoAnswer => None,
            Reaction::Answer(delay) if delay > timeout => None,
            Reaction::Answer(delay) => Some(delay),
        };
        self.outbound_ringing(a, b);
        if ring_for != Some(Duration::ZERO) {
            if let Some(a) = a {
                self.a_leg_ringing(a, b);
            }
        }
        let wait = ring_for.unwrap_or(timeout);
        let a_gone = |sw: &Switch| a.is_some_and(|a| sw.channel(a).is_none_or(|c| c.hanging_up));
        let cancelled = !wait.is_zero() && self.wait_signal(b, Some(wait)).await.is_some();
        if cancelled || a_gone(self) || ring_for.is_none() {
            let cause = if cancelled || a_gone(self) {
                HangupCause::ORIGINATOR_CANCEL
            } else {
                HangupCause::NO_ANSWER
            };
            self.hangup(b, cause, HangupOrigin::Local);
            self.finish_failed(a, b);
            return Dialed::Failed(cause, Some(b.to_string()));
        }
        self.outbound_answer(b);
        Dialed::Answered(b.to_string())
    }

    /// Reports and destroys a failed leg, at once when a bridge dialed it.
    /// An `originate` returns (and its BACKGROUND_JOB fires) as soon as the
    /// leg is hung up; the leg's own thread reports it afterwards
    /// (originate-no-answer), which the caller of [`Switch::dial_string`]
    /// does with [`Switch::finish`].
    fn finish_failed(&self, a: Option<&str>, b: &str) {
        if a.is_some() {
            self.finish(b);
        }
    }

    /// What a leg the far end refused leaves on the A leg that dialed it.
    fn leg_refused_vars(&self, a: &str, bch: &Channel) {
        let mut st = self.lock();
        let b = bch.uuid.as_str();
        let Some(ch) = st.chans.get_mut(a) else {
            return;
        };
        ch.vars.put("originate_signal_bond", b);
        ch.vars.put(
            "originated_legs",
            format!(
                "{b};{};{}",
                bch.profile.callee_id_name, bch.profile.callee_id_number
            ),
        );
        for (to, from) in [
            ("sip_invite_failure_status", "sip_invite_failure_status"),
            ("sip_invite_failure_phrase", "sip_invite_failure_phrase"),
            ("sip_hangup_phrase", "sip_invite_failure_phrase"),
        ] {
            if let Some(v) = bch.vars.get(from) {
                ch.vars.put(to, v);
            }
        }
        if let Some(c) = bch.hangup_cause {
            ch.vars.put("last_bridge_hangup_cause", c.name());
        }
        if let Some(v) = bch.vars.get("proto_specific_hangup_cause") {
            ch.vars.put("last_bridge_proto_specific_hangup_cause", v);
        }
    }

    fn create_outbound(
        &self,
        a: Option<&str>,
        far: &FarEnd,
        global: &[(String, String)],
        leg_vars: &[(String, String)],
        cid: (Option<String>, Option<String>),
    ) -> Option<String> {
        let now = self.now();
        let mut st = self.lock();
        let a_ch = match a {
            Some(a) => Some(st.chans.get(a)?.clone()),
            None => None,
        };
        let find = |vars: &[(String, String)], k: &str| {
            vars.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        let vars: Vec<(String, String)> = global.iter().chain(leg_vars.iter()).cloned().collect();
        let var = |k: &str| find(&vars, k);
        let mut uuid = var("origination_uuid").unwrap_or_else(new_uuid);
        if st.chans.contains_key(&uuid) {
            tracing::error!(uuid, "origination_uuid already in use, using a random uuid");
            uuid = new_uuid();
        }
        let user = far.user.as_str();
        // sofia url-escapes the user part in the channel name, destination
        // number and request URI of a `sofia/<profile>/user@host` leg
        // ("+1555…" becomes "%2B1555…"); a gateway leg keeps it as it is and
        // is named after the gateway's profile, without a host.
        let (name, dest_number, dest_url) = match &far.gateway {
            Some(_) => (
                format!("sofia/external/{user}"),
                user.to_string(),
                format!("{user}@{}:{}", far.host, far.port),
            ),
            None => {
                let esc = crate::esl::urlenc::encode_str(user).into_owned();
                let hp = if far.explicit_port {
                    format!("{}:{}", far.host, far.port)
                } else {
                    far.host.clone()
                };
                (
                    format!("sofia/external/{esc}@{hp}"),
                    esc.clone(),
                    format!("{esc}@{hp}"),
                )
            }
        };
        // The originate's own caller profile takes its caller ID from `{…}`
        // (or the bridging channel); a `[…]` leg variable changes only the
        // caller ID that is presented, not Orig-Caller-ID / ANI.
        let (orig_name, orig_num) = match &a_ch {
            Some(a) => (
                find(global, "origination_caller_id_name")
                    .unwrap_or(a.profile.orig_caller_id_name.clone()),
                find(global, "origination_caller_id_number")
                    .unwrap_or(a.profile.orig_caller_id_number.clone()),
            ),
            None => (
                find(global, "origination_caller_id_name")
                    .or(cid.0)
                    .unwrap_or_default(),
                find(global, "origination_caller_id_number")
                    .or(cid.1)
                    .unwrap_or_else(|| "0000000000".to_string()),
            ),
        };
        // The presented caller ID: a bridge passes A's on (inbound-bridge,
        // originate-bridge), unless a variable names another.
        let (base_name, base_num) = match &a_ch {
            Some(a) => (
                find(global, "origination_caller_id_name")
                    .unwrap_or(a.profile.caller_id_name.clone()),
                find(global, "origination_caller_id_number")
                    .unwrap_or(a.profile.caller_id_number.clone()),
            ),
            None => (orig_name.clone(), orig_num.clone()),
        };
        let cid_name = find(leg_vars, "origination_caller_id_name").unwrap_or(base_name);
        let cid_num = find(leg_vars, "origination_caller_id_number").unwrap_or(base_num);
        let mut profile = Profile {
            direction: "outbound".into(),
            logical_direction: "outbound".into(),
            caller_id_name: cid_name,
            caller_id_number: cid_num,
            orig_caller_id_name: orig_name,
            orig_caller_id_number: orig_num.clone(),
            callee_id_name: "Outbound Call".into(),
            callee_id_number: user.to_string(),
            ani: orig_num,
            destination_number: dest_number,
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
            profile.source = a.profile.source.clone();
            profile.context = a.profile.context.clone();
            let mut op = a.profile.clone();
            op.logical_direction = "inbound".into();
            op.profile_index = None;
            op.times = Times::default();
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
            initial: profile.clone(),
            profile,
            other,
            hangup_cause: None,
            vars: Vars::default(),
            current_app: None,
            partner: None,
            hanging_up: false,
            created_us: now,
            sip: sofia::new_peer(user, &far.host, far.port, false),
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
        sofia::outbound_create_head(&mut ch, bridged, far.gateway.as_deref(), &dest_url);
        if let Some(a) = &a_ch {
            // One less than A's; 70 when A has none (an originated A leg).
            let fwd = a
                .vars
                .get("max_forwards")
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(70, |n| n - 1);
            ch.vars.put("max_forwards", fwd.to_string());
            ch.vars.put("originator_codec", "PCMU@8000h@20i");
            ch.vars.put("originator", &a.uuid);
            ch.vars.put("signal_bond", &a.uuid);
            if let Some(sdp) = a.vars.get("switch_r_sdp") {
                ch.vars.put("switch_m_sdp", sdp);
            }
            ch.vars.put("call_uuid", a.call_uuid());
        }
        // The leg's `[…]` variables first, then the `{…}` ones it does not
        // override (originate-bridge), then what a bridge takes from A.
        for (k, v) in leg_vars {
            ch.vars.put(k, v);
        }
        for (k, v) in global {
            if !leg_vars.iter().any(|(n, _)| n == k) {
                ch.vars.put(k, v);
            }
        }
        let mut ignore_early = var("ignore_early_media");
        if let (None, Some(a)) = (&ignore_early, &a_ch) {
            ignore_early = a.vars.get("ignore_early_media").map(str::to_string);
            if let Some(v) = &ignore_early {
                ch.vars.put("ignore_early_media", v);
            }
        }
        let ignore_early = ignore_early.is_some_and(|v| v == "true");
        ch.vars.put(
            "originate_early_media",
            if ignore_early { "false" } else { "true" },
        );
        if let Some(a) = &a_ch {
            ch.vars.put("originating_leg_uuid", &a.uuid);
        }
        sofia::outbound_create_tail(&mut ch, bridged, far.gateway.as_deref(), &dest_url);
        self.insert(&mut st, ch);
        if bridged {
            st.bridge_owned.insert(uuid.clone());
        }
        self.emit(&st, &uuid, ChanEvent::Create, &Extra::default());
        // The session thread takes the new leg to CS_CONSUME_MEDIA at once.
        if let Some(ch) = st.chans.get_mut(&uuid) {
            ch.running_state = "CS_CONSUME_MEDIA";
            ch.state_number = 7;
        }
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
        let Some(ach) = self.channel(a) else {
            return;
        };
        if ach.answered() {
            // An answered A (an originated leg running `&bridge`) only learns
            // the leg and its callee (originate-bridge).
            self.with_channel(a, |ch| {
                ch.profile.callee_id_name = bch.profile.callee_id_name.clone();
                ch.profile.callee_id_number = bch.profile.callee_id_number.clone();
                ch.vars.put(
                    "originated_legs",
                    format!(
                        "{b};{};{}",
                        bch.profile.callee_id_name, bch.profile.callee_id_number
                    ),
                );
            });
            return;
        }
        let a_tag = ach.sip.to_tag;
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

    /// The variables of a bridge's successful originate, on A.
    pub fn originate_succeeded_vars(&self, a: &str, b: &str) {
        self.with_channel(a, |ch| {
            ch.vars.del("originate_signal_bond");
            ch.vars.put("originate_disposition", "SUCCESS");
            ch.vars.put("DIALSTATUS", "SUCCESS");
            ch.vars.put("originate_causes", format!("{b};NONE"));
            ch.vars.put("signal_bond", b);
        });
    }

    /// The variables of a bridge's failed originate, on A; `b` is the leg
    /// that was tried (`originate_causes` is `<b>;<cause>` then).
    pub fn originate_failed_vars(&self, a: &str, b: Option<&str>, cause: HangupCause) {
        self.with_channel(a, |ch| {
            ch.vars.put("originate_disposition", cause.name());
            ch.vars.put("DIALSTATUS", dialstatus(cause));
            match b {
                Some(b) => {
                    ch.vars
                        .put("originate_causes", format!("{b};{}", cause.name()));
                    ch.vars.put("originate_failed_cause", cause.name());
                }
                None => ch.vars.put("originate_causes", cause.name()),
            }
        });
    }

    /// Parses a dial string and dials its legs in failover order, first leg
    /// of each group; returns the answered leg or the last failure. Without
    /// an A leg, the failed leg returned is hung up but not yet reported:
    /// call [`Switch::finish`] on it.
    pub async fn dial_string(
        &self,
        a: Option<&str>,
        ds: &DialString,
        cid: (Option<String>, Option<String>),
        timeout: Duration,
    ) -> Dialed {
        let mut last = Dialed::Failed(HangupCause::NORMAL_TEMPORARY_FAILURE, None);
        for group in &ds.groups {
            let Some(leg) = group.first() else { continue };
            if let (None, Dialed::Failed(_, Some(b))) = (a, &last) {
                self.finish(b);
            }
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

/// `DIALSTATUS` after a failed originate, as switch_ivr_originate names it.
fn dialstatus(cause: HangupCause) -> &'static str {
    match cause {
        HangupCause::USER_BUSY => "BUSY",
        HangupCause::NO_ANSWER | HangupCause::NO_USER_RESPONSE => "NOANSWER",
        HangupCause::ORIGINATOR_CANCEL => "CANCEL",
        _ => "CHANUNAVAIL",
    }
}
