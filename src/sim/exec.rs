//! A channel's driver: hunts the XML dialplan (or takes the application an
//! `originate` named), then executes each action on the channel the way
//! FreeSWITCH's execute state does (EXECUTE / EXECUTE_COMPLETE around each
//! application, park until interrupted, bridge to a new leg, transfer and
//! re-hunt, playback as a timed no-op), and finally reports and destroys the
//! channel.
//!
//! It drives channels only through `core::Switch`; it must not fire events
//! or touch channel fields itself.

use std::time::Duration;

use super::channel::{Channel, RunningApp};
use super::core::{BridgeEnd, Dialed, Flow, HangupOrigin, Signal, Switch};
use super::dialplan::{self, App, ChannelVars};
use super::originate::parse_dial_string;
use crate::esl::HangupCause;

/// What a driver runs.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Hunt the dialplan with the channel's current profile.
    Hunt,
    /// Run these applications (originate `&app(arg)`).
    Apps(Vec<(String, String)>),
}

/// A snapshot of a channel for the dialplan: reads from the copy, records sets.
struct View {
    ch: Channel,
    sets: Vec<(String, Option<String>)>,
    globals: Switch,
    /// The inline application running (between its EXECUTE and EXECUTE_COMPLETE).
    inline: Option<RunningApp>,
}

impl View {
    /// Writes the sets so far to the channel and reads it back, so that an
    /// event fired now shows them.
    fn flush(&mut self) {
        let uuid = self.ch.uuid.clone();
        self.globals.apply_sets(&uuid, &self.sets);
        self.sets.clear();
        if let Some(ch) = self.globals.channel(&uuid) {
            self.ch = ch;
        }
    }
}

impl ChannelVars for View {
    fn variable(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.sets.iter().rev().find(|(n, _)| n == name) {
            return v.clone();
        }
        self.ch
            .vars
            .get(name)
            .map(str::to_string)
            .or_else(|| match name {
                "uuid" => Some(self.ch.uuid.clone()),
                _ => None,
            })
            .or_else(|| self.globals.0.globals.get(name).cloned())
    }

    fn profile_field(&self, name: &str) -> Option<String> {
        let p = &self.ch.profile;
        let v = match name {
            "destination_number" => &p.destination_number,
            "caller_id_number" => &p.caller_id_number,
            "caller_id_name" => &p.caller_id_name,
            "ani" => &p.ani,
            "username" => &p.username,
            "context" => &p.context,
            "dialplan" => &p.dialplan,
            "network_addr" => &p.network_addr,
            "rdnis" => &p.rdnis,
            "source" => &p.source,
            "uuid" => &p.uuid,
            "chan_name" => &p.channel_name,
            _ => return None,
        };
        Some(v.clone())
    }

    fn set_variable(&mut self, name: &str, value: Option<String>) {
        self.sets.push((name.to_string(), value));
    }

    fn inline_started(&mut self, application: &str, data: &str) {
        self.flush();
        let uuid = self.ch.uuid.clone();
        self.inline = self.globals.app_start(&uuid, application, data);
        self.flush();
    }

    fn inline_completed(&mut self) {
        self.flush();
        if let Some(app) = self.inline.take() {
            let uuid = self.ch.uuid.clone();
            self.globals.app_complete(&uuid, &app);
            self.flush();
        }
    }
}

impl Switch {
    fn view(&self, uuid: &str) -> Option<View> {
        self.channel(uuid).map(|ch| View {
            ch,
            sets: Vec::new(),
            globals: self.clone(),
            inline: None,
        })
    }

    fn apply_sets(&self, uuid: &str, sets: &[(String, Option<String>)]) {
        self.with_channel(uuid, |ch| {
            for (n, v) in sets {
                ch.vars.set(n, v.as_deref());
            }
        });
    }

    fn hanging_up(&self, uuid: &str) -> bool {
        self.channel(uuid).is_none_or(|c| c.hanging_up)
    }

    /// Runs a channel until it is destroyed.
    pub(crate) async fn drive(self, uuid: String, mut plan: Plan) {
        'outer: loop {
            let actions: Vec<(String, String)> = match &plan {
                Plan::Apps(list) => list.clone(),
                Plan::Hunt => match self.hunt(&uuid).await {
                    Some(a) if !a.is_empty() => a,
                    _ => {
                        self.hangup(
                            &uuid,
                            HangupCause::NO_ROUTE_DESTINATION,
                            HangupOrigin::Local,
                        );
                        break;
                    }
                },
            };
            if self.hanging_up(&uuid) {
                break;
            }
            self.enter_execute(&uuid);
            for (app, data) in actions {
                if self.hanging_up(&uuid) {
                    break 'outer;
                }
                match Box::pin(self.execute(&uuid, &app, &data)).await {
                    Flow::Next => {}
                    Flow::Transfer => {
                        plan = Plan::Hunt;
                        continue 'outer;
                    }
                    Flow::Stop | Flow::HangupAfter => break 'outer,
                }
            }
            // End of the extension: FreeSWITCH hangs up with NORMAL_CLEARING.
            self.hangup(&uuid, HangupCause::NORMAL_CLEARING, HangupOrigin::Local);
            break;
        }
        self.finish(&uuid);
    }

    async fn hunt(&self, uuid: &str) -> Option<Vec<(String, String)>> {
        let Some(dp) = self.0.dialplan.clone() else {
            self.record_error(
                uuid,
                "no dialplan loaded (start the simulator with --dialplan)".into(),
            );
            return None;
        };
        self.enter_routing(uuid);
        let mut view = self.view(uuid)?;
        let context = view.ch.profile.context.clone();
        let res = dp.hunt(&context, &mut view, &self.0.http).await;
        self.apply_sets(uuid, &view.sets);
        match res {
            Ok(actions) => Some(
                actions
                    .into_iter()
                    .map(|a| (a.application, a.data))
                    .collect(),
            ),
            Err(e) => {
                self.record_error(
                    uuid,
                    format!("dialplan hunt in context {context:?} failed: {e}"),
                );
                None
            }
        }
    }

    /// Executes one application on a channel (EXECUTE … EXECUTE_COMPLETE).
    pub async fn execute(&self, uuid: &str, app: &str, data: &str) -> Flow {
        let Some(view) = self.view(uuid) else {
            return Flow::Stop;
        };
        let expanded = dialplan::expand(data, &view);
        let parsed = match App::parse(app, &expanded) {
            Ok(p) => p,
            Err(e) => {
                self.record_error(uuid, format!("application {app:?} failed: {e}"));
                self.hangup(
                    uuid,
                    HangupCause::DESTINATION_OUT_OF_ORDER,
                    HangupOrigin::Local,
                );
                return Flow::Stop;
            }
        };
        let Some(running) = self.app_start(uuid, app, &expanded) else {
            return Flow::Stop;
        };
        let flow = Box::pin(self.run_app(uuid, &running, parsed)).await;
        self.app_complete(uuid, &running);
        if flow == Flow::HangupAfter {
            self.hangup(uuid, HangupCause::NORMAL_CLEARING, HangupOrigin::Local);
            return Flow::Stop;
        }
        if self.hanging_up(uuid) {
            return Flow::Stop;
        }
        flow
    }

    async fn run_app(&self, uuid: &str, running: &RunningApp, app: App) -> Flow {
        match app {
            App::Set { .. } | App::Unset(_) | App::Export { .. } => {
                if let Some(mut v) = self.view(uuid) {
                    dialplan::apply_variable_app(&app, &mut v);
                    self.apply_sets(uuid, &v.sets);
                }
                Flow::Next
            }
            App::Curl(req) => {
                let Some(mut v) = self.view(uuid) else {
                    return Flow::Stop;
                };
                let (timeout, connect) = dialplan::curl::timeouts(&v);
                let bundle = dialplan::curl::ca_bundle(&v);
                let http = &self.0.http;
                let outcome =
                    dialplan::curl::perform(&req, timeout, connect, bundle.as_deref(), http).await;
                dialplan::curl::apply(&outcome, &mut v);
                self.apply_sets(uuid, &v.sets);
                self.interrupted(uuid)
            }
            App::Answer => {
                self.answer(uuid, &[]);
                Flow::Next
            }
            App::PreAnswer => {
                self.pre_answer(uuid);
                Flow::Next
            }
            App::Park => {
                self.park_event(uuid);
                let sig = self.wait_signal(uuid, None).await;
                self.unpark_event(uuid);
                match sig {
                    Some(Signal::Transfer) => Flow::Transfer,
                    _ => Flow::Stop,
                }
            }
            App::Hangup(cause) => {
                self.hangup(uuid, cause, HangupOrigin::Local);
                Flow::Stop
            }
            App::Respond { code, .. } => {
                match code {
                    180 => {
                        self.ring_ready(uuid, None, &[]);
                    }
                    183 => self.pre_answer(uuid),
                    200..=299 => {
                        self.answer(uuid, &[]);
                    }
                    _ if code >= 300 => {
                        let cause = super::sofia::sip_to_cause(code);
                        self.with_channel(uuid, |ch| {
                            ch.vars.put("sip_term_status", code.to_string());
                            ch.vars
                                .put("proto_specific_hangup_cause", format!("sip:{code}"));
                        });
                        self.hangup(uuid, cause, HangupOrigin::Local);
                        return Flow::Stop;
                    }
                    _ => {}
                }
                Flow::Next
            }
            App::Transfer {
                extension,
                dialplan,
                context,
            } => {
                let ch = self.channel(uuid);
                let dp = dialplan.unwrap_or_else(|| "XML".into());
                let ctx = context
                    .or_else(|| ch.map(|c| c.profile.context))
                    .unwrap_or_else(|| "default".into());
                if self.transfer(uuid, &extension, &dp, &ctx).is_err() {
                    return Flow::Stop;
                }
                // Consume our own transfer signal.
                let _ = self.wait_signal(uuid, Some(Duration::ZERO)).await;
                Flow::Transfer
            }
            App::Playback(file) => {
                let ms = playback_ms(&file);
                let sig = self
                    .wait_signal(uuid, Some(Duration::from_millis(ms)))
                    .await;
                let played = ms.min(2048);
                self.with_channel(uuid, |ch| {
                    let samples = played * 8;
                    ch.vars
                        .put("playback_last_offset_pos", (samples / 2 + 128).to_string());
                    ch.vars.put("playback_seconds", (played / 1000).to_string());
                    ch.vars.put("playback_ms", played.to_string());
                    ch.vars.put("playback_samples", samples.to_string());
                    ch.vars.put("current_application_response", "FILE PLAYED");
                });
                match sig {
                    Some(Signal::Transfer) => Flow::Transfer,
                    Some(_) => Flow::Stop,
                    None => Flow::Next,
                }
            }
            App::Sleep(ms) => match self
                .wait_signal(uuid, Some(Duration::from_millis(ms)))
                .await
            {
                Some(Signal::Transfer) => Flow::Transfer,
                Some(_) => Flow::Stop,
                None => Flow::Next,
            },
            App::Log { level, message } => {
                dialplan::log_line(level, &message);
                Flow::Next
            }
            App::Bridge(ds) => Box::pin(self.bridge_app(uuid, running, &ds)).await,
        }
    }

    fn interrupted(&self, uuid: &str) -> Flow {
        if self.hanging_up(uuid) {
            Flow::Stop
        } else {
            Flow::Next
        }
    }

    async fn bridge_app(&self, a: &str, _running: &RunningApp, data: &str) -> Flow {
        let ds = match parse_dial_string(data) {
            Ok(ds) => ds,
            Err(e) => {
                self.record_error(a, format!("bridge: {e}"));
                self.originate_failed_vars(a, None, HangupCause::INVALID_NUMBER_FORMAT);
                return self.bridge_failed(a, HangupCause::INVALID_NUMBER_FORMAT);
            }
        };
        let timeout = self
            .channel(a)
            .and_then(|c| c.vars.get("call_timeout").and_then(|v| v.parse().ok()))
            .map(Duration::from_secs)
            .unwrap_or(self.default_timeout());
        let b = match Box::pin(self.dial_string(Some(a), &ds, (None, None), timeout)).await {
            Dialed::Answered(b) => b,
            Dialed::Failed(cause, tried) => {
                self.originate_failed_vars(a, tried.as_deref(), cause);
                if self.hanging_up(a) {
                    return Flow::Stop;
                }
                return self.bridge_failed(a, cause);
            }
        };
        if self.hanging_up(a) {
            self.hangup(&b, HangupCause::ORIGINATOR_CANCEL, HangupOrigin::Local);
            self.finish(&b);
            return Flow::Stop;
        }
        // A learns that B rang (if it did not already) and answers.
        let rang_before = self.channel(a).is_some_and(|c| c.progressed);
        self.a_leg_ringing(a, &b);
        if rang_before {
            if let Some(bch) = self.channel(&b) {
                self.with_channel(a, |ch| {
                    for (k, v) in super::core::media_ops(&bch) {
                        ch.vars.set(k, v.as_deref());
                    }
                });
            }
        }
        let between: Vec<(&str, Option<String>)> = vec![
            ("originate_signal_bond", None),
            ("originate_disposition", Some("SUCCESS".into())),
            ("DIALSTATUS", Some("SUCCESS".into())),
            ("originate_causes", Some(format!("{b};NONE"))),
            ("signal_bond", Some(b.clone())),
        ];
        let answered_before = self.channel(a).is_some_and(|c| c.answered());
        if answered_before {
            self.originate_succeeded_vars(a, &b);
        } else {
            self.answer(a, &between);
        }
        if !self.bridge(a, &b) {
            self.hangup(&b, HangupCause::NORMAL_CLEARING, HangupOrigin::Local);
            self.finish(&b);
            return Flow::Stop;
        }
        match self.wait_signal(a, None).await {
            Some(sig @ (Signal::PartnerGone | Signal::PartnerTransferred)) => {
                if sig == Signal::PartnerTransferred {
                    self.unbridge(a, &b, BridgeEnd::BTransferred);
                    // B now runs the dialplan on its own.
                    self.clear_signals(&b);
                    self.spawn_driver(&b, Plan::Hunt);
                } else {
                    self.unbridge(a, &b, BridgeEnd::BHungUp);
                }
                let hab = self
                    .channel(a)
                    .and_then(|c| c.vars.get("hangup_after_bridge").map(str::to_string))
                    .is_some_and(|v| v == "true");
                if hab {
                    // The A leg hangs up once the bridge application returns.
                    Flow::HangupAfter
                } else {
                    Flow::Next
                }
            }
            Some(Signal::Transfer) => {
                self.hangup(&b, HangupCause::NORMAL_CLEARING, HangupOrigin::Local);
                self.clear_signals(a);
                self.unbridge(a, &b, BridgeEnd::BHungUp);
                Flow::Transfer
            }
            Some(Signal::Hangup) | None => {
                self.unbridge(a, &b, BridgeEnd::AHungUp);
                Flow::Stop
            }
        }
    }

    fn bridge_failed(&self, a: &str, cause: HangupCause) -> Flow {
        let cof = self
            .channel(a)
            .and_then(|c| c.vars.get("continue_on_fail").map(str::to_string))
            .unwrap_or_default();
        let cont = cof == "true"
            || cof.split(',').any(|c| {
                c.trim().eq_ignore_ascii_case(cause.name()) || c.trim() == cause.code().to_string()
            });
        if cont {
            Flow::Next
        } else {
            self.hangup(a, cause, HangupOrigin::Local);
            Flow::Stop
        }
    }
}

/// `switch_channel_str2cause`: digits → that code, names case-insensitive,
/// anything else → NORMAL_CLEARING.
pub fn parse_cause(s: &str) -> HangupCause {
    let s = s.trim_end_matches(['\r', '\n']);
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        let n: u16 = s
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap_or(16);
        return HangupCause::from_code(n).unwrap_or(HangupCause::NORMAL_CLEARING);
    }
    HangupCause::from_name_ignore_case(s).unwrap_or(HangupCause::NORMAL_CLEARING)
}

/// How long a simulated playback lasts.
fn playback_ms(file: &str) -> u64 {
    if let Some(rest) = file.strip_prefix("tone_stream://") {
        // %(on,off,freq…) segments; sum on+off of each.
        let mut total = 0u64;
        for seg in rest.split("%(").skip(1) {
            let nums: Vec<u64> = seg
                .split([',', ')'])
                .take(2)
                .filter_map(|n| n.trim().parse().ok())
                .collect();
            total += nums.iter().sum::<u64>();
        }
        if total > 0 {
            return total;
        }
    }
    if file.starts_with("silence_stream://") {
        if let Some(ms) = file
            .trim_start_matches("silence_stream://")
            .split(',')
            .next()
            .and_then(|m| m.parse().ok())
        {
            return ms;
        }
    }
    1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_like_str2cause() {
        assert_eq!(parse_cause("user_busy"), HangupCause::USER_BUSY);
        assert_eq!(parse_cause("17"), HangupCause::USER_BUSY);
        assert_eq!(parse_cause("NOT_A_CAUSE"), HangupCause::NORMAL_CLEARING);
        assert_eq!(parse_cause(" USER_BUSY"), HangupCause::NORMAL_CLEARING);
    }

    #[test]
    fn playback_lengths() {
        assert_eq!(playback_ms("tone_stream://%(3000,0,350)"), 3000);
        assert_eq!(playback_ms("silence_stream://500"), 500);
        assert_eq!(playback_ms("/x.wav"), 1000);
    }
}
