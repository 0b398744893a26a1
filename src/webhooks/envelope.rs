//! The webhook envelope and the typed `data` of every event type.
//!
//! This file owns the shape tenants see (docs/architecture.md §2.5): one envelope
//! `{"id","type","occurred_at","tenant","data"}` for every event, the seven
//! type names, the `data` structs other modules fill in, event ids
//! (`evt_` + a ULID-like, time-ordered random id) and the exact JSON text that
//! is stored, signed and sent. It must not decide *when* an event is emitted
//! (the domain modules do), sign, queue or deliver anything.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::store::{
    CallDirection, CallRecord, CompletionReason, OperationRecord, OperationStatus, SessionRecord,
    SessionState,
};

/// The seven event types, serialised exactly as tenants see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// An inbound call reached a call-control number and was parked.
    #[serde(rename = "call.initiated")]
    CallInitiated,
    /// A call was answered.
    #[serde(rename = "call.answered")]
    CallAnswered,
    /// A call ended (CHANNEL_HANGUP_COMPLETE, or inferred by reconciliation).
    #[serde(rename = "call.hangup")]
    CallHangup,
    /// A call-control command has its result.
    #[serde(rename = "command.result")]
    CommandResult,
    /// A masked-number session has a call in progress.
    #[serde(rename = "session.active")]
    SessionActive,
    /// A masked-number session's last call ended; it is still live.
    #[serde(rename = "session.open")]
    SessionOpen,
    /// A masked-number session ended (`ttl` or `closed`).
    #[serde(rename = "session.completed")]
    SessionCompleted,
}

impl EventType {
    /// Every type, in the order of docs/architecture.md §2.5.
    pub const ALL: [EventType; 7] = [
        EventType::CallInitiated,
        EventType::CallAnswered,
        EventType::CallHangup,
        EventType::CommandResult,
        EventType::SessionActive,
        EventType::SessionOpen,
        EventType::SessionCompleted,
    ];

    /// The wire name (`call.hangup`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CallInitiated => "call.initiated",
            EventType::CallAnswered => "call.answered",
            EventType::CallHangup => "call.hangup",
            EventType::CommandResult => "command.result",
            EventType::SessionActive => "session.active",
            EventType::SessionOpen => "session.open",
            EventType::SessionCompleted => "session.completed",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an envelope could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The `data` value could not be turned into JSON.
    #[error("event data is not representable as JSON: {0}")]
    Data(String),
}

/// A typed `data` object: knows which event type it is sent as.
pub trait EventData: Serialize {
    /// The envelope `type` this data is sent under.
    fn event_type(&self) -> EventType;
}

/// One webhook envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// `evt_` + 26 Crockford base32 characters; also the `webhook-id` header.
    pub id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened, RFC 3339 UTC with milliseconds.
    #[serde(with = "rfc3339_millis")]
    pub occurred_at: DateTime<Utc>,
    /// The tenant it belongs to.
    pub tenant: String,
    /// The type's data.
    pub data: serde_json::Value,
}

impl Envelope {
    /// An envelope for typed data, with a fresh id ordered by `occurred_at`.
    pub fn new<D: EventData>(
        tenant: &str,
        occurred_at: DateTime<Utc>,
        data: &D,
    ) -> Result<Envelope, EnvelopeError> {
        let value = serde_json::to_value(data).map_err(|e| EnvelopeError::Data(e.to_string()))?;
        Ok(Envelope::from_value(
            data.event_type(),
            tenant,
            occurred_at,
            value,
        ))
    }

    /// An envelope for already-built data (prefer [`Envelope::new`]).
    pub fn from_value(
        event_type: EventType,
        tenant: &str,
        occurred_at: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Envelope {
        Envelope {
            id: new_event_id(occurred_at),
            event_type,
            occurred_at,
            tenant: tenant.to_owned(),
            data,
        }
    }

    /// The same envelope with another id (see [`derived_event_id`]).
    pub fn with_id(mut self, id: String) -> Envelope {
        self.id = id;
        self
    }

    /// The compact JSON text that is stored, signed and sent, keys in the
    /// order `id, type, occurred_at, tenant, data`. Built from `Value`s'
    /// `Display`, so it cannot fail.
    pub fn to_json(&self) -> String {
        use serde_json::Value;
        format!(
            r#"{{"id":{},"type":{},"occurred_at":{},"tenant":{},"data":{}}}"#,
            Value::String(self.id.clone()),
            Value::String(self.event_type.as_str().to_owned()),
            Value::String(format_time(self.occurred_at)),
            Value::String(self.tenant.clone()),
            self.data,
        )
    }
}

/// `2026-11-21T10:15:02.120Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Serde for RFC 3339 UTC with exactly three fractional digits.
pub mod rfc3339_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as `2026-11-21T10:15:02.120Z`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*t))
    }

    /// Accepts any RFC 3339 time, converted to UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Serde for an optional RFC 3339 UTC time with milliseconds (`null` when absent).
pub mod rfc3339_millis_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as `2026-11-21T10:15:02.120Z` or `null`.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_time(*t)),
            None => s.serialize_none(),
        }
    }

    /// Accepts `null` or any RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

// --- event ids -----------------------------------------------------------------

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const RANDOM_BITS: u32 = 80;
const RANDOM_MASK: u128 = (1u128 << RANDOM_BITS) - 1;

/// Makes event ids; [`new_event_id`] uses one per process.
#[derive(Debug, Default)]
pub struct IdGenerator {
    /// The last id handed out: (milliseconds, random part).
    last: Mutex<(u64, u128)>,
}

impl IdGenerator {
    /// A generator that has handed out nothing yet.
    pub const fn new() -> IdGenerator {
        IdGenerator {
            last: Mutex::new((0, 0)),
        }
    }

    /// A new event id: `evt_` + 26 Crockford base32 characters encoding 48
    /// bits of milliseconds since the epoch and 80 random bits (the ULID
    /// layout).
    ///
    /// Ids sort like their times. From one generator they are strictly
    /// increasing in the order they are made: an id in the same millisecond
    /// as the last one (or earlier, when `at` lags) reuses the last time and
    /// increments its random part, as ULID's monotonic mode does.
    pub fn next_id(&self, at: DateTime<Utc>) -> String {
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0) & ((1 << 48) - 1);
        let fresh: u128 = rand::thread_rng().gen::<u128>() & RANDOM_MASK;
        let (ms, random) = {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let next = if ms > last.0 {
                (ms, fresh)
            } else if last.1 < RANDOM_MASK {
                (last.0, last.1 + 1)
            } else {
                // The random part overflowed within one millisecond: borrow the next one.
                (last.0 + 1, fresh)
            };
            *last = next;
            next
        };
        encode_id(ms, random)
    }
}

/// `evt_` + the ULID text of `ms` and an 80-bit `random` part.
fn encode_id(ms: u64, random: u128) -> String {
    let value = (u128::from(ms & ((1 << 48) - 1)) << RANDOM_BITS) | (random & RANDOM_MASK);
    let mut id = String::with_capacity(30);
    id.push_str("evt_");
    for i in (0..26).rev() {
        let digit = ((value >> (i * 5)) & 0x1f) as usize;
        id.push(char::from(CROCKFORD[digit]));
    }
    id
}

/// The id of a webhook every daemon instance derives alike for the same
/// thing (`key`, e.g. a call's uuid and the event type), dated `at`: the
/// outbox queues an id once, so an event handled by every instance, or
/// handled again after a crash, is announced once. Same layout as
/// [`new_event_id`], with the 80 bits taken from SHA-256 of `key`.
pub fn derived_event_id(at: DateTime<Utc>, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes[6..].copy_from_slice(&digest[..10]);
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    encode_id(ms, u128::from_be_bytes(bytes))
}

static IDS: IdGenerator = IdGenerator::new();

/// A new event id from this process's generator (see [`IdGenerator::next_id`]).
pub fn new_event_id(at: DateTime<Utc>) -> String {
    IDS.next_id(at)
}

/// The time encoded in an event id made by [`new_event_id`], if it is one.
pub fn event_id_time(id: &str) -> Option<DateTime<Utc>> {
    let body = id.strip_prefix("evt_")?;
    if body.len() != 26 {
        return None;
    }
    let mut value: u128 = 0;
    for c in body.bytes() {
        let digit = CROCKFORD.iter().position(|&d| d == c)?;
        value = (value << 5) | digit as u128;
    }
    let ms = i64::try_from(value >> RANDOM_BITS).ok()?;
    Utc.timestamp_millis_opt(ms).single()
}

// --- typed data ------------------------------------------------------------------

/// The fields every `call.*` event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallInfo {
    /// The call session id: the FreeSWITCH UUID of the first leg.
    pub call_id: String,
    /// Position of this webhook among the call's webhooks (1, 2, …).
    pub sequence: u64,
    /// As FreeSWITCH sees the first leg.
    pub direction: CallDirection,
    /// Caller number.
    pub from: Option<String>,
    /// Destination number.
    pub to: Option<String>,
    /// The masked-number session the call belongs to.
    pub session_ref: Option<String>,
    /// The tenant's `user_data`, echoed.
    pub user_data: Option<String>,
    /// The FreeSWITCH node holding the call.
    pub node: String,
}

impl CallInfo {
    /// The common fields from a call-table record.
    pub fn from_record(call: &CallRecord, sequence: u64) -> CallInfo {
        CallInfo {
            call_id: call.uuid.clone(),
            sequence,
            direction: call.direction,
            from: call.caller.clone(),
            to: call.callee.clone(),
            session_ref: call.session_ref.clone(),
            user_data: call.user_data.clone(),
            node: call.node.clone(),
        }
    }
}

/// `call.initiated`: an inbound call was parked for call control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallInitiatedData {
    /// The call.
    #[serde(flatten)]
    pub call: CallInfo,
    /// Caller display name, when FreeSWITCH had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_name: Option<String>,
}

impl EventData for CallInitiatedData {
    fn event_type(&self) -> EventType {
        EventType::CallInitiated
    }
}

/// `call.answered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallAnsweredData {
    /// The call.
    #[serde(flatten)]
    pub call: CallInfo,
    /// When it was answered.
    #[serde(default, with = "rfc3339_millis_opt")]
    pub answered_at: Option<DateTime<Utc>>,
}

impl EventData for CallAnsweredData {
    fn event_type(&self) -> EventType {
        EventType::CallAnswered
    }
}

/// `call.hangup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallHangupData {
    /// The call.
    #[serde(flatten)]
    pub call: CallInfo,
    /// FreeSWITCH's cause name (`USER_BUSY`).
    pub cause: String,
    /// Its Q.850 code.
    pub q850: Option<u16>,
    /// SIP status, where known.
    pub sip_code: Option<u16>,
    /// Seconds from creation to hangup.
    pub duration_s: Option<u64>,
    /// Seconds from answer to hangup.
    pub billsec: Option<u64>,
    /// True when the end was inferred by reconciliation, not seen.
    pub reconciled: bool,
}

impl CallHangupData {
    /// From an ended call-table record (`NORMAL_CLEARING` when it has no cause).
    pub fn from_record(call: &CallRecord, sequence: u64) -> CallHangupData {
        CallHangupData {
            call: CallInfo::from_record(call, sequence),
            cause: call
                .hangup_cause
                .clone()
                .unwrap_or_else(|| "NORMAL_CLEARING".to_owned()),
            q850: call.q850,
            sip_code: call.sip_code,
            duration_s: call.duration_s,
            billsec: call.billsec,
            reconciled: call.reconciled,
        }
    }
}

impl EventData for CallHangupData {
    fn event_type(&self) -> EventType {
        EventType::CallHangup
    }
}

/// The final status of a command, as `command.result` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Done.
    Succeeded,
    /// FreeSWITCH refused, or it could not be sent.
    Failed,
    /// No confirmation in time.
    Timeout,
}

impl CommandStatus {
    /// The final status of an operation; `None` while it is in progress.
    pub fn from_operation(status: OperationStatus) -> Option<CommandStatus> {
        match status {
            OperationStatus::InProgress => None,
            OperationStatus::Succeeded => Some(CommandStatus::Succeeded),
            OperationStatus::Failed => Some(CommandStatus::Failed),
            OperationStatus::Timeout => Some(CommandStatus::Timeout),
        }
    }
}

/// `command.result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResultData {
    /// The operation id returned by the 202.
    pub operation_id: String,
    /// The idempotency key (the caller's, or generated).
    pub command_uid: String,
    /// `answer`, `hangup`, `disconnect`, …
    pub command: String,
    /// The call it acted on.
    pub call_id: String,
    /// Its result.
    pub status: CommandStatus,
    /// FreeSWITCH's words, or why it could not be sent.
    pub detail: Option<String>,
}

impl CommandResultData {
    /// From a finished operation; `None` while it is still in progress.
    pub fn from_operation(op: &OperationRecord) -> Option<CommandResultData> {
        Some(CommandResultData {
            operation_id: op.id.clone(),
            command_uid: op.command_uid.clone(),
            command: op.command.clone(),
            call_id: op.call_id.clone(),
            status: CommandStatus::from_operation(op.status)?,
            detail: op.detail.clone(),
        })
    }
}

impl EventData for CommandResultData {
    fn event_type(&self) -> EventType {
        EventType::CommandResult
    }
}

/// `session.active`, `session.open` and `session.completed`: the type follows
/// `state`, so the two cannot disagree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    /// The session ref (`ses_…`).
    #[serde(rename = "ref")]
    pub session_ref: String,
    /// The masked number.
    pub masked_number: String,
    /// The state the session just entered.
    pub state: SessionState,
    /// Why it completed (`session.completed` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CompletionReason>,
    /// First real number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party_a: Option<String>,
    /// Second real number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party_b: Option<String>,
    /// The call that made it active or open again, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// When the TTL ends.
    #[serde(default, with = "rfc3339_millis_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it completed.
    #[serde(
        default,
        with = "rfc3339_millis_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub completed_at: Option<DateTime<Utc>>,
    /// The tenant's free-form metadata, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

impl SessionData {
    /// From a session record, in the state it is in now.
    pub fn from_record(session: &SessionRecord, call_id: Option<&str>) -> SessionData {
        SessionData {
            session_ref: session.session_ref.clone(),
            masked_number: session.masked_number.clone(),
            state: session.state,
            reason: session.completion_reason,
            party_a: Some(session.party_a.clone()),
            party_b: Some(session.party_b.clone()),
            call_id: call_id.map(str::to_owned),
            expires_at: Some(session.expires_at),
            completed_at: session.completed_at,
            metadata: session.metadata.clone(),
        }
    }
}

impl EventData for SessionData {
    fn event_type(&self) -> EventType {
        match self.state {
            SessionState::Open => EventType::SessionOpen,
            SessionState::Active => EventType::SessionActive,
            SessionState::Completed => EventType::SessionCompleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn call_info() -> CallInfo {
        CallInfo {
            call_id: "c0ffee00-0000-4000-8000-000000000001".into(),
            sequence: 3,
            direction: CallDirection::Inbound,
            from: Some("+15557770001".into()),
            to: Some("+15550109000".into()),
            session_ref: None,
            user_data: None,
            node: "fs1".into(),
        }
    }

    #[test]
    fn type_names_are_the_documented_ones() {
        let names: Vec<String> = EventType::ALL
            .iter()
            .map(|t| serde_json::to_value(t).unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "\"call.initiated\"",
                "\"call.answered\"",
                "\"call.hangup\"",
                "\"command.result\"",
                "\"session.active\"",
                "\"session.open\"",
                "\"session.completed\""
            ]
        );
        for t in EventType::ALL {
            assert_eq!(serde_json::to_value(t).ok(), Some(json!(t.as_str())));
            assert_eq!(t.to_string(), t.as_str());
        }
    }

    #[test]
    fn call_answered_envelope_has_the_documented_shape() {
        let data = CallAnsweredData {
            call: call_info(),
            answered_at: Some(at("2026-11-21T10:15:02.120Z")),
        };
        let env = Envelope::new("acme", at("2026-11-21T10:15:02.12Z"), &data).unwrap();
        let text = env.to_json();
        assert!(
            text.starts_with(r#"{"id":"evt_"#),
            "keys start with id: {text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "call.answered");
        assert_eq!(v["occurred_at"], "2026-11-21T10:15:02.120Z");
        assert_eq!(v["tenant"], "acme");
        let d = &v["data"];
        assert_eq!(d["call_id"], "c0ffee00-0000-4000-8000-000000000001");
        assert_eq!(d["sequence"], 3);
        assert_eq!(d["direction"], "inbound");
        assert_eq!(d["from"], "+15557770001");
        assert_eq!(d["to"], "+15550109000");
        assert!(d["session_ref"].is_null() && d.get("session_ref").is_some());
        assert!(d["user_data"].is_null() && d.get("user_data").is_some());
        assert_eq!(d["node"], "fs1");
        assert_eq!(d["answered_at"], "2026-11-21T10:15:02.120Z");
        // The text and the serde form agree, and read back to the same envelope.
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, env);
        assert_eq!(serde_json::to_value(&env).ok(), Some(v));
    }

    #[test]
    fn call_hangup_carries_cause_codes_and_durations() {
        let data = CallHangupData {
            call: CallInfo {
                session_ref: Some("ses_abc".into()),
                sequence: 7,
                ..call_info()
            },
            cause: "USER_BUSY".into(),
            q850: Some(17),
            sip_code: Some(486),
            duration_s: Some(12),
            billsec: Some(9),
            reconciled: false,
        };
        let env = Envelope::new("acme", Utc::now(), &data).unwrap();
        assert_eq!(env.event_type, EventType::CallHangup);
        let d = &env.data;
        assert_eq!(d["cause"], "USER_BUSY");
        assert_eq!(d["q850"], 17);
        assert_eq!(d["sip_code"], 486);
        assert_eq!(d["duration_s"], 12);
        assert_eq!(d["billsec"], 9);
        assert_eq!(d["reconciled"], false);
        assert_eq!(d["session_ref"], "ses_abc");
        assert_eq!(d["sequence"], 7);
    }

    #[test]
    fn command_result_from_operations() {
        let now = Utc::now();
        let mut op = OperationRecord {
            id: "op-1".into(),
            tenant: "acme".into(),
            command_uid: "ans-1".into(),
            command: "answer".into(),
            call_id: "call-1".into(),
            request_hash: "h".into(),
            status: OperationStatus::InProgress,
            detail: None,
            timeout_ms: 2000,
            created_at: now,
            deadline: now,
            completed_at: None,
        };
        assert_eq!(CommandResultData::from_operation(&op), None);
        op.status = OperationStatus::Succeeded;
        op.detail = Some("+OK".into());
        let data = CommandResultData::from_operation(&op).unwrap();
        let env = Envelope::new("acme", now, &data).unwrap();
        assert_eq!(env.event_type, EventType::CommandResult);
        assert_eq!(
            env.data,
            json!({"operation_id":"op-1","command_uid":"ans-1","command":"answer",
                   "call_id":"call-1","status":"succeeded","detail":"+OK"})
        );
        for (s, name) in [
            (OperationStatus::Failed, "failed"),
            (OperationStatus::Timeout, "timeout"),
        ] {
            op.status = s;
            let d = CommandResultData::from_operation(&op).unwrap();
            assert_eq!(serde_json::to_value(d).unwrap()["status"], name);
        }
    }

    #[test]
    fn session_type_follows_state() {
        let now = at("2026-11-21T10:00:00Z");
        let mut s = SessionRecord {
            tenant: "acme".into(),
            session_ref: "ses_x".into(),
            state: SessionState::Active,
            masked_number: "+15550100001".into(),
            party_a: "+15557770001".into(),
            party_b: "+15557770002".into(),
            ttl_minutes: 60,
            created_at: now,
            expires_at: now + chrono::Duration::minutes(60),
            completed_at: None,
            completion_reason: None,
            metadata: None,
            active_calls: vec!["c1".into()],
        };
        let d = SessionData::from_record(&s, Some("c1"));
        assert_eq!(d.event_type(), EventType::SessionActive);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["ref"], "ses_x");
        assert_eq!(v["state"], "active");
        assert!(v.get("reason").is_none());
        s.state = SessionState::Open;
        assert_eq!(
            SessionData::from_record(&s, None).event_type(),
            EventType::SessionOpen
        );
        s.state = SessionState::Completed;
        s.completion_reason = Some(CompletionReason::Ttl);
        s.completed_at = Some(now);
        let d = SessionData::from_record(&s, None);
        assert_eq!(d.event_type(), EventType::SessionCompleted);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["reason"], "ttl");
        assert_eq!(v["masked_number"], "+15550100001");
        assert_eq!(v["completed_at"], "2026-11-21T10:00:00.000Z");
    }

    #[test]
    fn ids_are_ulid_like_and_time_ordered() {
        let ids = IdGenerator::new();
        let t0 = at("2026-11-21T10:15:02.120Z");
        let a = ids.next_id(t0);
        assert_eq!(a.len(), 30);
        assert!(a.starts_with("evt_"));
        assert!(a[4..].bytes().all(|c| CROCKFORD.contains(&c)));
        assert_eq!(event_id_time(&a), Some(t0));
        // Same millisecond, and even an earlier time: still strictly increasing.
        let b = ids.next_id(t0);
        let c = ids.next_id(t0 - chrono::Duration::seconds(1));
        assert!(a < b && b < c, "{a} {b} {c}");
        let d = ids.next_id(t0 + chrono::Duration::milliseconds(1));
        assert!(c < d);
        assert_eq!(
            event_id_time(&d),
            Some(t0 + chrono::Duration::milliseconds(1))
        );
        let many: std::collections::HashSet<String> =
            (0..1000).map(|_| new_event_id(Utc::now())).collect();
        assert_eq!(many.len(), 1000);
        assert_eq!(event_id_time("evt_short"), None);
        assert_eq!(event_id_time("msg_01J0000000000000000000000000"), None);
    }

    #[test]
    fn to_json_escapes_strings() {
        let env = Envelope::from_value(
            EventType::SessionOpen,
            "we\"ird\ntenant",
            at("2026-11-21T10:00:00Z"),
            json!({"k": "v"}),
        );
        let v: serde_json::Value = serde_json::from_str(&env.to_json()).unwrap();
        assert_eq!(v["tenant"], "we\"ird\ntenant");
    }
}
