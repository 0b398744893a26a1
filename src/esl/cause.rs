//! Q.850 hangup causes as FreeSWITCH names them (`CAUSE_CHART` in switch_channel.c).
//!
//! This module owns the table of the 82 cause names FreeSWITCH knows, their Q.850
//! codes and the SIP status mod_sofia answers an unanswered inbound call with. It
//! exists so that nothing upstream ever sends a cause FreeSWITCH would silently
//! turn into `NORMAL_CLEARING` (its behaviour for an unknown name): a
//! [`HangupCause`] can only be built from a name or code that is in the table.

use std::fmt;
use std::str::FromStr;

/// One row of the cause chart: name, Q.850 code, SIP status, and whether that
/// SIP status is only mod_sofia's default (480) for an unmapped cause.
type Row = (&'static str, u16, u16, bool);

const CHART: [Row; 82] = [
    ("NONE", 0, 480, true),
    ("UNALLOCATED_NUMBER", 1, 404, false),
    ("NO_ROUTE_TRANSIT_NET", 2, 404, false),
    ("NO_ROUTE_DESTINATION", 3, 404, false),
    ("CHANNEL_UNACCEPTABLE", 6, 480, true),
    ("CALL_AWARDED_DELIVERED", 7, 480, true),
    ("NORMAL_CLEARING", 16, 480, true),
    ("USER_BUSY", 17, 486, false),
    ("NO_USER_RESPONSE", 18, 408, false),
    ("NO_ANSWER", 19, 480, false),
    ("SUBSCRIBER_ABSENT", 20, 480, false),
    ("CALL_REJECTED", 21, 603, false),
    ("NUMBER_CHANGED", 22, 410, false),
    ("REDIRECTION_TO_NEW_DESTINATION", 23, 410, false),
    ("EXCHANGE_ROUTING_ERROR", 25, 483, false),
    ("DESTINATION_OUT_OF_ORDER", 27, 502, false),
    ("INVALID_NUMBER_FORMAT", 28, 484, false),
    ("FACILITY_REJECTED", 29, 501, false),
    ("RESPONSE_TO_STATUS_ENQUIRY", 30, 480, true),
    ("NORMAL_UNSPECIFIED", 31, 480, false),
    ("NORMAL_CIRCUIT_CONGESTION", 34, 503, false),
    ("NETWORK_OUT_OF_ORDER", 38, 503, false),
    ("NORMAL_TEMPORARY_FAILURE", 41, 503, false),
    ("SWITCH_CONGESTION", 42, 503, false),
    ("ACCESS_INFO_DISCARDED", 43, 480, true),
    ("REQUESTED_CHAN_UNAVAIL", 44, 503, false),
    ("PRE_EMPTED", 45, 480, true),
    ("FACILITY_NOT_SUBSCRIBED", 50, 480, true),
    ("OUTGOING_CALL_BARRED", 52, 403, false),
    ("INCOMING_CALL_BARRED", 54, 403, false),
    ("BEARERCAPABILITY_NOTAUTH", 57, 403, false),
    ("BEARERCAPABILITY_NOTAVAIL", 58, 503, false),
    ("SERVICE_UNAVAILABLE", 63, 480, true),
    ("BEARERCAPABILITY_NOTIMPL", 65, 488, false),
    ("CHAN_NOT_IMPLEMENTED", 66, 480, true),
    ("FACILITY_NOT_IMPLEMENTED", 69, 501, false),
    ("SERVICE_NOT_IMPLEMENTED", 79, 501, false),
    ("INVALID_CALL_REFERENCE", 81, 480, true),
    ("INCOMPATIBLE_DESTINATION", 88, 488, false),
    ("INVALID_MSG_UNSPECIFIED", 95, 480, true),
    ("MANDATORY_IE_MISSING", 96, 480, true),
    ("MESSAGE_TYPE_NONEXIST", 97, 480, true),
    ("WRONG_MESSAGE", 98, 480, true),
    ("IE_NONEXIST", 99, 480, true),
    ("INVALID_IE_CONTENTS", 100, 480, true),
    ("WRONG_CALL_STATE", 101, 480, true),
    ("RECOVERY_ON_TIMER_EXPIRE", 102, 504, false),
    ("MANDATORY_IE_LENGTH_ERROR", 103, 480, true),
    ("PROTOCOL_ERROR", 111, 480, true),
    ("INTERWORKING", 127, 480, true),
    ("SUCCESS", 142, 480, true),
    ("ORIGINATOR_CANCEL", 487, 487, false),
    ("CRASH", 700, 480, true),
    ("SYSTEM_SHUTDOWN", 701, 480, true),
    ("LOSE_RACE", 702, 480, true),
    ("MANAGER_REQUEST", 703, 480, true),
    ("BLIND_TRANSFER", 800, 480, true),
    ("ATTENDED_TRANSFER", 801, 480, true),
    ("ALLOTTED_TIMEOUT", 802, 480, true),
    ("USER_CHALLENGE", 803, 480, true),
    ("MEDIA_TIMEOUT", 804, 480, true),
    ("PICKED_OFF", 805, 480, true),
    ("USER_NOT_REGISTERED", 806, 480, true),
    ("PROGRESS_TIMEOUT", 807, 480, true),
    ("INVALID_GATEWAY", 808, 484, false),
    ("GATEWAY_DOWN", 809, 503, false),
    ("INVALID_URL", 810, 484, false),
    ("INVALID_PROFILE", 811, 502, false),
    ("NO_PICKUP", 812, 480, true),
    ("SRTP_READ_ERROR", 813, 480, true),
    ("BOWOUT", 814, 480, true),
    ("BUSY_EVERYWHERE", 815, 600, false),
    ("DECLINE", 816, 603, false),
    ("DOES_NOT_EXIST_ANYWHERE", 817, 604, false),
    ("NOT_ACCEPTABLE", 818, 606, false),
    ("UNWANTED", 819, 607, false),
    ("NO_IDENTITY", 820, 428, false),
    ("BAD_IDENTITY_INFO", 821, 429, false),
    ("UNSUPPORTED_CERTIFICATE", 822, 437, false),
    ("INVALID_IDENTITY", 823, 438, false),
    ("STALE_DATE", 824, 403, false),
    ("REJECT_ALL", 825, 603, false),
];

/// A hangup cause FreeSWITCH knows by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HangupCause(u8);

#[allow(missing_docs)]
impl HangupCause {
    pub const NONE: HangupCause = HangupCause(0);
    pub const UNALLOCATED_NUMBER: HangupCause = HangupCause(1);
    pub const NO_ROUTE_TRANSIT_NET: HangupCause = HangupCause(2);
    pub const NO_ROUTE_DESTINATION: HangupCause = HangupCause(3);
    pub const CHANNEL_UNACCEPTABLE: HangupCause = HangupCause(4);
    pub const CALL_AWARDED_DELIVERED: HangupCause = HangupCause(5);
    pub const NORMAL_CLEARING: HangupCause = HangupCause(6);
    pub const USER_BUSY: HangupCause = HangupCause(7);
    pub const NO_USER_RESPONSE: HangupCause = HangupCause(8);
    pub const NO_ANSWER: HangupCause = HangupCause(9);
    pub const SUBSCRIBER_ABSENT: HangupCause = HangupCause(10);
    pub const CALL_REJECTED: HangupCause = HangupCause(11);
    pub const NUMBER_CHANGED: HangupCause = HangupCause(12);
    pub const REDIRECTION_TO_NEW_DESTINATION: HangupCause = HangupCause(13);
    pub const EXCHANGE_ROUTING_ERROR: HangupCause = HangupCause(14);
    pub const DESTINATION_OUT_OF_ORDER: HangupCause = HangupCause(15);
    pub const INVALID_NUMBER_FORMAT: HangupCause = HangupCause(16);
    pub const FACILITY_REJECTED: HangupCause = HangupCause(17);
    pub const RESPONSE_TO_STATUS_ENQUIRY: HangupCause = HangupCause(18);
    pub const NORMAL_UNSPECIFIED: HangupCause = HangupCause(19);
    pub const NORMAL_CIRCUIT_CONGESTION: HangupCause = HangupCause(20);
    pub const NETWORK_OUT_OF_ORDER: HangupCause = HangupCause(21);
    pub const NORMAL_TEMPORARY_FAILURE: HangupCause = HangupCause(22);
    pub const SWITCH_CONGESTION: HangupCause = HangupCause(23);
    pub const ACCESS_INFO_DISCARDED: HangupCause = HangupCause(24);
    pub const REQUESTED_CHAN_UNAVAIL: HangupCause = HangupCause(25);
    pub const PRE_EMPTED: HangupCause = HangupCause(26);
    pub const FACILITY_NOT_SUBSCRIBED: HangupCause = HangupCause(27);
    pub const OUTGOING_CALL_BARRED: HangupCause = HangupCause(28);
    pub const INCOMING_CALL_BARRED: HangupCause = HangupCause(29);
    pub const BEARERCAPABILITY_NOTAUTH: HangupCause = HangupCause(30);
    pub const BEARERCAPABILITY_NOTAVAIL: HangupCause = HangupCause(31);
    pub const SERVICE_UNAVAILABLE: HangupCause = HangupCause(32);
    pub const BEARERCAPABILITY_NOTIMPL: HangupCause = HangupCause(33);
    pub const CHAN_NOT_IMPLEMENTED: HangupCause = HangupCause(34);
    pub const FACILITY_NOT_IMPLEMENTED: HangupCause = HangupCause(35);
    pub const SERVICE_NOT_IMPLEMENTED: HangupCause = HangupCause(36);
    pub const INVALID_CALL_REFERENCE: HangupCause = HangupCause(37);
    pub const INCOMPATIBLE_DESTINATION: HangupCause = HangupCause(38);
    pub const INVALID_MSG_UNSPECIFIED: HangupCause = HangupCause(39);
    pub const MANDATORY_IE_MISSING: HangupCause = HangupCause(40);
    pub const MESSAGE_TYPE_NONEXIST: HangupCause = HangupCause(41);
    pub const WRONG_MESSAGE: HangupCause = HangupCause(42);
    pub const IE_NONEXIST: HangupCause = HangupCause(43);
    pub const INVALID_IE_CONTENTS: HangupCause = HangupCause(44);
    pub const WRONG_CALL_STATE: HangupCause = HangupCause(45);
    pub const RECOVERY_ON_TIMER_EXPIRE: HangupCause = HangupCause(46);
    pub const MANDATORY_IE_LENGTH_ERROR: HangupCause = HangupCause(47);
    pub const PROTOCOL_ERROR: HangupCause = HangupCause(48);
    pub const INTERWORKING: HangupCause = HangupCause(49);
    pub const SUCCESS: HangupCause = HangupCause(50);
    pub const ORIGINATOR_CANCEL: HangupCause = HangupCause(51);
    pub const CRASH: HangupCause = HangupCause(52);
    pub const SYSTEM_SHUTDOWN: HangupCause = HangupCause(53);
    pub const LOSE_RACE: HangupCause = HangupCause(54);
    pub const MANAGER_REQUEST: HangupCause = HangupCause(55);
    pub const BLIND_TRANSFER: HangupCause = HangupCause(56);
    pub const ATTENDED_TRANSFER: HangupCause = HangupCause(57);
    pub const ALLOTTED_TIMEOUT: HangupCause = HangupCause(58);
    pub const USER_CHALLENGE: HangupCause = HangupCause(59);
    pub const MEDIA_TIMEOUT: HangupCause = HangupCause(60);
    pub const PICKED_OFF: HangupCause = HangupCause(61);
    pub const USER_NOT_REGISTERED: HangupCause = HangupCause(62);
    pub const PROGRESS_TIMEOUT: HangupCause = HangupCause(63);
    pub const INVALID_GATEWAY: HangupCause = HangupCause(64);
    pub const GATEWAY_DOWN: HangupCause = HangupCause(65);
    pub const INVALID_URL: HangupCause = HangupCause(66);
    pub const INVALID_PROFILE: HangupCause = HangupCause(67);
    pub const NO_PICKUP: HangupCause = HangupCause(68);
    pub const SRTP_READ_ERROR: HangupCause = HangupCause(69);
    pub const BOWOUT: HangupCause = HangupCause(70);
    pub const BUSY_EVERYWHERE: HangupCause = HangupCause(71);
    pub const DECLINE: HangupCause = HangupCause(72);
    pub const DOES_NOT_EXIST_ANYWHERE: HangupCause = HangupCause(73);
    pub const NOT_ACCEPTABLE: HangupCause = HangupCause(74);
    pub const UNWANTED: HangupCause = HangupCause(75);
    pub const NO_IDENTITY: HangupCause = HangupCause(76);
    pub const BAD_IDENTITY_INFO: HangupCause = HangupCause(77);
    pub const UNSUPPORTED_CERTIFICATE: HangupCause = HangupCause(78);
    pub const INVALID_IDENTITY: HangupCause = HangupCause(79);
    pub const STALE_DATE: HangupCause = HangupCause(80);
    pub const REJECT_ALL: HangupCause = HangupCause(81);
}

/// The name is not one of FreeSWITCH's cause names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hangup cause {0:?}: not one of FreeSWITCH's Q.850 cause names")]
pub struct UnknownCause(pub String);

impl HangupCause {
    /// Every cause, in table order.
    pub fn all() -> impl Iterator<Item = HangupCause> {
        (0..CHART.len() as u8).map(HangupCause)
    }

    /// Looks a cause up by its exact (upper-case) FreeSWITCH name.
    ///
    /// Unlike FreeSWITCH itself, which compares case-insensitively and maps
    /// unknown names to `NORMAL_CLEARING`, this is strict: the API rejects what
    /// FreeSWITCH would silently rewrite.
    pub fn from_name(name: &str) -> Option<HangupCause> {
        CHART
            .iter()
            .position(|row| row.0 == name)
            .map(|i| HangupCause(i as u8))
    }

    /// Looks a cause up the way FreeSWITCH's `switch_channel_str2cause` does for
    /// names: case-insensitively. Unknown names give `None` (FreeSWITCH would
    /// use `NORMAL_CLEARING`; callers that emulate it say so explicitly).
    pub fn from_name_ignore_case(name: &str) -> Option<HangupCause> {
        CHART
            .iter()
            .position(|row| row.0.eq_ignore_ascii_case(name))
            .map(|i| HangupCause(i as u8))
    }

    /// Looks a cause up by its numeric code.
    pub fn from_code(code: u16) -> Option<HangupCause> {
        CHART
            .iter()
            .position(|row| row.1 == code)
            .map(|i| HangupCause(i as u8))
    }

    /// The FreeSWITCH name, e.g. `USER_BUSY`.
    pub fn name(self) -> &'static str {
        CHART[self.0 as usize].0
    }

    /// The numeric cause code (Q.850 for codes up to 127, FreeSWITCH's own above).
    pub fn code(self) -> u16 {
        CHART[self.0 as usize].1
    }

    /// What FreeSWITCH puts in `variable_hangup_cause_q850`: the code if it is a
    /// real Q.850 value (≤ 127), otherwise 16.
    pub fn q850(self) -> u16 {
        let code = self.code();
        if code <= 127 {
            code
        } else {
            16
        }
    }

    /// The SIP status mod_sofia answers an unanswered inbound call with.
    pub fn sip_status(self) -> u16 {
        CHART[self.0 as usize].2
    }

    /// True when [`Self::sip_status`] is only the 480 default for an unmapped cause.
    pub fn sip_status_is_default(self) -> bool {
        CHART[self.0 as usize].3
    }
}

impl Default for HangupCause {
    fn default() -> Self {
        HangupCause::NORMAL_CLEARING
    }
}

impl fmt::Display for HangupCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for HangupCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.code())
    }
}

impl FromStr for HangupCause {
    type Err = UnknownCause;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HangupCause::from_name(s).ok_or_else(|| UnknownCause(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_every_name_once() {
        assert_eq!(HangupCause::all().count(), 82);
        for cause in HangupCause::all() {
            assert_eq!(HangupCause::from_name(cause.name()), Some(cause));
            assert_eq!(HangupCause::from_code(cause.code()), Some(cause));
        }
    }

    #[test]
    fn known_values() {
        let busy: HangupCause = "USER_BUSY".parse().unwrap();
        assert_eq!(busy, HangupCause::USER_BUSY);
        assert_eq!((busy.code(), busy.q850(), busy.sip_status()), (17, 17, 486));
        assert_eq!(HangupCause::DECLINE.q850(), 16);
        assert_eq!(HangupCause::DECLINE.sip_status(), 603);
        assert!(HangupCause::NORMAL_CLEARING.sip_status_is_default());
        assert_eq!(HangupCause::default(), HangupCause::NORMAL_CLEARING);
    }

    #[test]
    fn unknown_and_case() {
        assert!("BUSY".parse::<HangupCause>().is_err());
        assert!(HangupCause::from_name("user_busy").is_none());
        assert_eq!(
            HangupCause::from_name_ignore_case("user_busy"),
            Some(HangupCause::USER_BUSY)
        );
    }
}
