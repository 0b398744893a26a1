//! The variables FreeSWITCH writes into a channel when it reports it
//! (CS_REPORTING, before CHANNEL_HANGUP_COMPLETE): hangup cause, time
//! stamps, epochs, durations in s/ms/µs, last application, caller ID, in
//! the recordings' order.
//!
//! A pure function of the channel; `core` calls it and fires the event.

use super::bus::local_stamp;
use super::channel::{Channel, Vars};
use crate::esl::HangupCause;

/// The variables FreeSWITCH computes at reporting time, in its order.
pub(super) fn hangup_vars(ch: &mut Channel, end: i64) {
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
    // Without a name, only the number (originate-no-answer).
    let p = &ch.profile;
    let caller_id = if p.caller_id_name.is_empty() {
        p.caller_id_number.clone()
    } else {
        format!("\"{}\" <{}>", p.caller_id_name, p.caller_id_number)
    };
    v.put("caller_id", caller_id);
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
