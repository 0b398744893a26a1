//! The shapes of the call-session API (seed 001): the create request with its
//! two enums, and the call session a client reads back.
//!
//! This file owns the wire names and the mapping from a stored
//! [`CallRecord`] to what a tenant sees. It holds no rules: what a valid
//! request is lives in [`super::validate`], what reaches FreeSWITCH in
//! [`super::dial`]. It must not read the store or talk to the switch.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::{CallDirection, CallRecord, CallState};

/// `POST /api/v1/sessions`: ring `caller`, then `callee`, and bridge them.
///
/// Unknown fields are refused (a typo must not silently drop an option).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCallRequest {
    /// The party rung first (≤ 256): digits with an optional leading `+`, or
    /// a SIP user (`[A-Za-z0-9*#._-]`).
    #[schema(
        example = "+15557770001",
        min_length = 1,
        max_length = 256,
        pattern = r"^\+?[A-Za-z0-9*#._-]+$"
    )]
    pub caller: String,
    /// Display name presented on both INVITEs (≤ 1024; letters, digits,
    /// spaces and `. - _ & + @ ! ? # *`).
    #[schema(
        example = "Acme Support",
        max_length = 1024,
        pattern = r"^([\w.&+@!?#*-]([\w .&+@!?#*-]*[\w.&+@!?#*-])?)?$"
    )]
    pub caller_display_name: Option<String>,
    /// The party rung once the caller answered (≤ 256, same characters as
    /// `caller`).
    #[schema(
        example = "+15557770002",
        min_length = 1,
        max_length = 256,
        pattern = r"^\+?[A-Za-z0-9*#._-]+$"
    )]
    pub callee: String,
    /// Must be `true`: FreeSWITCH always offers SDP on an originated leg, so
    /// `false` (an INVITE without SDP) is refused with 422.
    #[schema(schema_with = send_sdp_schema)]
    pub send_sdp: bool,
    /// Gateway to dial both legs through (1–64, `[A-Za-z0-9_.-]`); the
    /// tenant's default trunk when omitted.
    #[schema(
        example = "carrier",
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$"
    )]
    pub trunk: Option<String>,
    /// User part of the From header of both INVITEs (1–16, digits with an
    /// optional leading `+`).
    #[schema(min_length = 1, max_length = 16, pattern = r"^\+?[0-9]+$")]
    pub rewrite_from: Option<String>,
    /// User part of the P-Asserted-Identity header of both INVITEs (1–16,
    /// digits with an optional leading `+`).
    #[schema(min_length = 1, max_length = 16, pattern = r"^\+?[0-9]+$")]
    pub rewrite_pai: Option<String>,
    /// User part of the Remote-Party-ID header of both INVITEs (1–16, digits
    /// with an optional leading `+`).
    #[schema(min_length = 1, max_length = 16, pattern = r"^\+?[0-9]+$")]
    pub rewrite_rpi: Option<String>,
    /// Echoed on every webhook of the call (≤ 128, `[A-Za-z0-9._:/@+=~*#!&-]`).
    #[schema(max_length = 128, pattern = r"^[A-Za-z0-9._:/@+=~*#!&-]*$")]
    pub user_data: Option<String>,
    /// The target address (≤ 128, same characters as `user_data`); carried on
    /// both legs and returned by `GET`.
    #[schema(max_length = 128, pattern = r"^[A-Za-z0-9._:/@+=~*#!&-]*$")]
    pub target: Option<String>,
    /// The target instance ID (≤ 128, same characters as `user_data`).
    #[schema(max_length = 128, pattern = r"^[A-Za-z0-9._:/@+=~*#!&-]*$")]
    pub target_instance_id: Option<String>,
    /// The target extension number (≤ 128, same characters as `user_data`).
    #[schema(max_length = 128, pattern = r"^[A-Za-z0-9._:/@+=~*#!&-]*$")]
    pub target_extension_number: Option<String>,
    /// An auto-answer header (RFC 5373 and vendor forms) for the INVITE(s)
    /// that `header_direction` names.
    pub additional_header: Option<AdditionalHeader>,
    /// Which INVITE gets `additional_header` (default `CALLER`); ignored
    /// without `additional_header`.
    pub header_direction: Option<HeaderDirection>,
}

/// `send_sdp`: only `true` is accepted (`false` answers 422 `unsupported`).
fn send_sdp_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .description(Some(
            "Must be `true`: FreeSWITCH always offers SDP on an originated leg, so `false` \
             (an INVITE without SDP) is refused with 422 `unsupported`.",
        ))
        .enum_values(Some([true]))
        .build()
}

/// The header `additional_header` adds, and how FreeSWITCH is asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AdditionalHeader {
    /// `Answer-Mode: Auto` (channel variable `sip_h_Answer-Mode`).
    AnswerMode,
    /// `Call-Info: <sip:…>;answer-after=0` (channel variable
    /// `sip_auto_answer=true`: mod_sofia writes the header with its own
    /// address, and `intercom=true` in the request URI).
    CallInfo,
    /// `Alert-Info: <http://localhost>;info=alert-autoanswer;delay=0` (`alert_info`).
    AlertInfoAutoAnswerDelay0,
    /// `Alert-Info: <http://localhost>;info="Auto Answer"` (`alert_info`).
    AlertInfoAutoAnswer,
    /// `Alert-Info: <http://localhost>;info=intercom` (`alert_info`).
    AlertInfoIntercom,
}

/// Which INVITE gets the additional header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeaderDirection {
    /// The INVITE to `caller` (the default).
    #[default]
    Caller,
    /// The INVITE to `callee`.
    Callee,
    /// Both.
    All,
}

impl HeaderDirection {
    /// True when the caller's INVITE gets the header.
    pub fn caller(self) -> bool {
        matches!(self, HeaderDirection::Caller | HeaderDirection::All)
    }

    /// True when the callee's INVITE gets the header.
    pub fn callee(self) -> bool {
        matches!(self, HeaderDirection::Callee | HeaderDirection::All)
    }
}

/// Where a call is, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Created, not answered.
    Ringing,
    /// Early media.
    Early,
    /// Answered.
    Answered,
    /// Hung up.
    Ended,
}

impl From<CallState> for SessionState {
    fn from(s: CallState) -> SessionState {
        match s {
            CallState::Ringing => SessionState::Ringing,
            CallState::Early => SessionState::Early,
            CallState::Answered => SessionState::Answered,
            CallState::Ended => SessionState::Ended,
        }
    }
}

/// Direction of the call's first leg, as FreeSWITCH sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionDirection {
    /// Came in to FreeSWITCH.
    Inbound,
    /// Placed by FreeSWITCH (click-to-call).
    Outbound,
}

/// Keys of a click-to-call's parameters in [`CallRecord::extra`].
pub mod extra {
    /// The `caller` it was created with.
    pub const CALLER: &str = "caller";
    /// The `callee` it was created with.
    pub const CALLEE: &str = "callee";
    /// The callee leg's UUID, chosen at creation.
    pub const CALLEE_LEG: &str = "callee_leg";
    /// The trunk used.
    pub const TRUNK: &str = "trunk";
    /// `target`.
    pub const TARGET: &str = "target";
    /// `target_instance_id`.
    pub const TARGET_INSTANCE_ID: &str = "target_instance_id";
    /// `target_extension_number`.
    pub const TARGET_EXTENSION_NUMBER: &str = "target_extension_number";
}

/// One call (a call session), live or recently ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallSession {
    /// The FreeSWITCH UUID of the call's first leg.
    #[schema(example = "8438156f-f28b-45f8-9eff-0b7839c69aab")]
    pub id: String,
    /// Where the call is.
    pub state: SessionState,
    /// Direction of the first leg.
    pub direction: SessionDirection,
    /// Caller number (for a click-to-call, the `caller` it was created with).
    pub caller: Option<String>,
    /// Callee number (for a click-to-call, the `callee` it was created with).
    pub callee: Option<String>,
    /// Caller display name.
    pub caller_display_name: Option<String>,
    /// The bridged (or originating) partner leg's UUID, once known.
    pub other_leg: Option<String>,
    /// The FreeSWITCH node holding the call.
    pub node: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// FreeSWITCH's hangup cause name, once ended.
    pub hangup_cause: Option<String>,
    /// The Q.850 code of the hangup cause, once ended.
    pub q850: Option<u16>,
    /// SIP status of the hangup, where FreeSWITCH gave one.
    pub sip_code: Option<u16>,
    /// Seconds from creation to hangup, once ended.
    pub duration_s: Option<u64>,
    /// The tenant's `user_data`.
    pub user_data: Option<String>,
    /// `target` given at creation.
    pub target: Option<String>,
    /// `target_instance_id` given at creation.
    pub target_instance_id: Option<String>,
    /// `target_extension_number` given at creation.
    pub target_extension_number: Option<String>,
}

fn extra_str(call: &CallRecord, key: &str) -> Option<String> {
    call.extra
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

impl From<&CallRecord> for CallSession {
    fn from(call: &CallRecord) -> CallSession {
        CallSession {
            id: call.uuid.clone(),
            state: call.state.into(),
            direction: match call.direction {
                CallDirection::Inbound => SessionDirection::Inbound,
                CallDirection::Outbound => SessionDirection::Outbound,
            },
            // A click-to-call's first leg is a call *to* the caller, so its
            // events name the numbers the other way round; the request wins.
            caller: extra_str(call, extra::CALLER).or_else(|| call.caller.clone()),
            callee: extra_str(call, extra::CALLEE).or_else(|| call.callee.clone()),
            caller_display_name: call.caller_display_name.clone(),
            other_leg: call.other_leg.clone(),
            node: call.node.clone(),
            created_at: call.created_at,
            answered_at: call.answered_at,
            ended_at: call.ended_at,
            hangup_cause: call.hangup_cause.clone(),
            q850: call.q850,
            sip_code: call.sip_code,
            duration_s: call.duration_s,
            user_data: call.user_data.clone(),
            target: extra_str(call, extra::TARGET),
            target_instance_id: extra_str(call, extra::TARGET_INSTANCE_ID),
            target_extension_number: extra_str(call, extra::TARGET_EXTENSION_NUMBER),
        }
    }
}

/// A page of call sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallSessionPage {
    /// The tenant's live calls, oldest first.
    pub items: Vec<CallSession>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_use_the_seed_spelling() {
        let r: CreateCallRequest = serde_json::from_value(serde_json::json!({
            "caller": "1", "callee": "2", "send_sdp": true,
            "additional_header": "ALERT_INFO_AUTO_ANSWER_DELAY0", "header_direction": "ALL"
        }))
        .unwrap();
        assert_eq!(
            r.additional_header,
            Some(AdditionalHeader::AlertInfoAutoAnswerDelay0)
        );
        assert_eq!(r.header_direction, Some(HeaderDirection::All));
        for (text, h) in [
            ("ANSWER_MODE", AdditionalHeader::AnswerMode),
            ("CALL_INFO", AdditionalHeader::CallInfo),
            (
                "ALERT_INFO_AUTO_ANSWER",
                AdditionalHeader::AlertInfoAutoAnswer,
            ),
            ("ALERT_INFO_INTERCOM", AdditionalHeader::AlertInfoIntercom),
        ] {
            assert_eq!(serde_json::to_value(h).unwrap(), text);
        }
        let missing = serde_json::from_value::<CreateCallRequest>(
            serde_json::json!({"caller": "1", "callee": "2"}),
        );
        assert!(missing.unwrap_err().to_string().contains("send_sdp"));
        assert!(
            serde_json::from_value::<CreateCallRequest>(serde_json::json!({"calee": "2"})).is_err()
        );
    }
}
