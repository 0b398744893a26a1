//! From a FreeSWITCH channel event to a call-table record.
//!
//! Each CHANNEL_* event carries the whole caller profile, so every event
//! yields a full picture of its channel as of that moment; the store merges it
//! with what it has (never moving a call backwards), which makes processing
//! order between daemon instances irrelevant. This module reads headers only:
//! which tenant a call belongs to and what a change means are decided by the
//! pipeline and the domain handlers.

use chrono::{DateTime, TimeZone, Utc};

use crate::esl::event::{AnswerState, CallDirection as EslDirection};
use crate::esl::Event;
use crate::store::{CallDirection, CallRecord, CallState};

/// The channel events the call table follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallEventKind {
    /// CHANNEL_CREATE.
    Created,
    /// CHANNEL_PROGRESS / CHANNEL_PROGRESS_MEDIA.
    Progress,
    /// CHANNEL_ANSWER.
    Answered,
    /// CHANNEL_BRIDGE.
    Bridged,
    /// CHANNEL_UNBRIDGE.
    Unbridged,
    /// CHANNEL_PARK.
    Parked,
    /// CHANNEL_HANGUP (teardown started).
    Hangup,
    /// CHANNEL_HANGUP_COMPLETE (the final record).
    HangupComplete,
}

impl CallEventKind {
    /// The kind of a FreeSWITCH event name, when the call table follows it.
    pub fn of(name: &str) -> Option<CallEventKind> {
        Some(match name {
            "CHANNEL_CREATE" => CallEventKind::Created,
            "CHANNEL_PROGRESS" | "CHANNEL_PROGRESS_MEDIA" => CallEventKind::Progress,
            "CHANNEL_ANSWER" => CallEventKind::Answered,
            "CHANNEL_BRIDGE" => CallEventKind::Bridged,
            "CHANNEL_UNBRIDGE" => CallEventKind::Unbridged,
            "CHANNEL_PARK" => CallEventKind::Parked,
            "CHANNEL_HANGUP" => CallEventKind::Hangup,
            "CHANNEL_HANGUP_COMPLETE" => CallEventKind::HangupComplete,
            _ => return None,
        })
    }
}

/// The channel variables fsgate puts on legs it creates or routes, so that
/// their events name the tenant, session and user data.
pub mod vars {
    /// Tenant id.
    pub const TENANT: &str = "fsgate_tenant";
    /// Masked session ref.
    pub const SESSION: &str = "fsgate_session";
    /// Tenant's user data.
    pub const USER_DATA: &str = "fsgate_user_data";
    /// Caller display name asked for at creation.
    pub const DISPLAY_NAME: &str = "fsgate_display_name";
}

/// Key in [`CallRecord::extra`] marking a leg created by a bridge (its events
/// name another channel's call UUID). A call session is its first leg; B-legs
/// are tracked but are not sessions of their own.
pub const B_LEG: &str = "b_leg";

/// True when the record is a B-leg (see [`B_LEG`]).
pub fn is_b_leg(call: &CallRecord) -> bool {
    call.extra
        .get(B_LEG)
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

fn micros(event: &Event, header: &str) -> Option<DateTime<Utc>> {
    let us: i64 = event.get(header)?.parse().ok()?;
    (us > 0)
        .then(|| Utc.timestamp_micros(us).single())
        .flatten()
}

fn non_empty(value: Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    value.map(|v| v.into_owned()).filter(|v| !v.is_empty())
}

/// The SIP status FreeSWITCH gives for a hangup, where it gives one:
/// `sip_term_status` (a final response we sent or got), else the
/// protocol-specific cause (`sip:486`), also of the last bridged peer.
pub fn sip_code(event: &Event) -> Option<u16> {
    if let Some(code) = event
        .variable("sip_term_status")
        .and_then(|s| s.parse().ok())
    {
        return Some(code);
    }
    [
        "proto_specific_hangup_cause",
        "last_bridge_proto_specific_hangup_cause",
    ]
    .iter()
    .find_map(|v| event.variable(v)?.strip_prefix("sip:")?.parse().ok())
}

/// The record an event describes, or `None` for events the table ignores or
/// that name no channel.
pub fn record_of(
    node: &str,
    event: &Event,
    now: DateTime<Utc>,
) -> Option<(CallEventKind, CallRecord)> {
    let kind = CallEventKind::of(&event.name()?)?;
    let uuid = non_empty(event.unique_id())?;
    let direction = match event.call_direction() {
        Some(EslDirection::Outbound) => CallDirection::Outbound,
        _ => CallDirection::Inbound,
    };
    let state = match kind {
        CallEventKind::HangupComplete => CallState::Ended,
        CallEventKind::Answered => CallState::Answered,
        _ => match event.answer_state() {
            Some(AnswerState::Answered) => CallState::Answered,
            Some(AnswerState::Early) => CallState::Early,
            // `hangup` before HANGUP_COMPLETE: the final record ends it.
            _ => CallState::Ringing,
        },
    };
    let ended = kind == CallEventKind::HangupComplete;
    let other_leg = match kind {
        CallEventKind::Bridged => non_empty(event.get("Bridge-B-Unique-ID"))
            .or_else(|| non_empty(event.other_leg_unique_id())),
        _ => non_empty(event.other_leg_unique_id()),
    };
    let mut extra = serde_json::Map::new();
    // FreeSWITCH names the A-leg's call UUID on a bridged B-leg's events
    // (until its HANGUP_COMPLETE, so the mark must stick: the store keeps it).
    if non_empty(event.channel_call_uuid()).is_some_and(|c| c != uuid) {
        extra.insert(B_LEG.to_owned(), serde_json::Value::Bool(true));
    }
    let record = CallRecord {
        uuid,
        tenant: non_empty(event.variable(vars::TENANT)),
        node: node.to_owned(),
        direction,
        state,
        caller: non_empty(event.caller_id_number()),
        caller_display_name: non_empty(event.variable(vars::DISPLAY_NAME))
            .or_else(|| non_empty(event.caller_id_name())),
        callee: non_empty(event.destination_number())
            .map(|d| crate::esl::urlenc::decode_lossy(d.as_bytes()).into_owned()),
        other_leg,
        created_at: micros(event, "Caller-Channel-Created-Time").unwrap_or(now),
        answered_at: micros(event, "Caller-Channel-Answered-Time"),
        ended_at: ended.then(|| micros(event, "Caller-Channel-Hangup-Time").unwrap_or(now)),
        hangup_cause: if ended {
            event.get("Hangup-Cause").map(|c| c.into_owned())
        } else {
            None
        },
        q850: if ended {
            event
                .variable("hangup_cause_q850")
                .and_then(|q| q.parse().ok())
        } else {
            None
        },
        sip_code: if ended { sip_code(event) } else { None },
        duration_s: if ended {
            event.variable("duration").and_then(|d| d.parse().ok())
        } else {
            None
        },
        billsec: if ended {
            event.variable("billsec").and_then(|d| d.parse().ok())
        } else {
            None
        },
        user_data: non_empty(event.variable(vars::USER_DATA)),
        session_ref: non_empty(event.variable(vars::SESSION)),
        reconciled: false,
        extra,
    };
    Some((kind, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn json(text: &'static str) -> Event {
        Event::parse_json(Bytes::from_static(text.as_bytes())).unwrap()
    }

    #[test]
    fn hangup_complete_gives_the_final_record() {
        let e = json(
            r#"{"Event-Name":"CHANNEL_HANGUP_COMPLETE","Unique-ID":"u1","Call-Direction":"outbound","Answer-State":"hangup",
            "Caller-Caller-ID-Number":"+15550100001","Caller-Destination-Number":"%2B15557770002","Hangup-Cause":"USER_BUSY",
            "Caller-Channel-Created-Time":"1795283575999351","Caller-Channel-Answered-Time":"1795283576019349","Caller-Channel-Hangup-Time":"1795283577099490",
            "variable_hangup_cause_q850":"17","variable_duration":"2","variable_billsec":"1","variable_proto_specific_hangup_cause":"sip:486",
            "variable_fsgate_session":"ses_1","variable_fsgate_tenant":"acme","Hangup-Cause":"USER_BUSY"}"#,
        );
        let (kind, r) = record_of("fs1", &e, Utc::now()).unwrap();
        assert_eq!(kind, CallEventKind::HangupComplete);
        assert_eq!(r.state, CallState::Ended);
        assert_eq!(r.direction, CallDirection::Outbound);
        assert_eq!(r.callee.as_deref(), Some("+15557770002"));
        assert_eq!(
            (r.hangup_cause.as_deref(), r.q850, r.sip_code),
            (Some("USER_BUSY"), Some(17), Some(486))
        );
        assert_eq!((r.duration_s, r.billsec), (Some(2), Some(1)));
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        assert_eq!(r.session_ref.as_deref(), Some("ses_1"));
        assert!(r.answered_at.is_some() && r.ended_at.is_some());
    }

    #[test]
    fn ignores_events_without_channel() {
        let e = json(r#"{"Event-Name":"HEARTBEAT"}"#);
        assert!(record_of("fs1", &e, Utc::now()).is_none());
        let e = json(r#"{"Event-Name":"CHANNEL_CREATE"}"#);
        assert!(record_of("fs1", &e, Utc::now()).is_none());
    }
}
