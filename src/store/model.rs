//! The records the store keeps: plain data, serialisable, with no behaviour.
//!
//! The rules that move these records from state to state belong to the domain
//! modules (`masking`, `calls`, `control`, `webhooks`); the store only applies
//! the few changes that must be atomic across daemon instances, as the
//! [`super::Store`] methods document.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A page of results and the cursor of the next page, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, in a stable order.
    pub items: Vec<T>,
    /// Opaque cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

// --- masked-number sessions --------------------------------------------------

/// Where a masked-number session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Live, no call in progress.
    Open,
    /// Live, at least one call on the masked number in progress.
    Active,
    /// Over: expired or closed. Its number went back to the pool.
    Completed,
}

/// Why a session completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionReason {
    /// Its TTL expired.
    Ttl,
    /// The tenant completed it early.
    Closed,
}

/// What creating a session needs; the store adds the masked number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSession {
    /// Owning tenant.
    pub tenant: String,
    /// `ses_` + random.
    pub session_ref: String,
    /// First real number (E.164).
    pub party_a: String,
    /// Second real number (E.164).
    pub party_b: String,
    /// Lifetime in minutes.
    pub ttl_minutes: u32,
    /// Free-form tenant data, returned as given.
    pub metadata: Option<serde_json::Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// `created_at + ttl_minutes`.
    pub expires_at: DateTime<Utc>,
}

/// A masked-number session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Owning tenant.
    pub tenant: String,
    /// `ses_` + random.
    pub session_ref: String,
    /// Current state.
    pub state: SessionState,
    /// The number from the pool, exclusive to this session while it is live.
    pub masked_number: String,
    /// First real number.
    pub party_a: String,
    /// Second real number.
    pub party_b: String,
    /// Lifetime in minutes.
    pub ttl_minutes: u32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the TTL ends.
    pub expires_at: DateTime<Utc>,
    /// When it completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Why it completed.
    pub completion_reason: Option<CompletionReason>,
    /// Free-form tenant data.
    pub metadata: Option<serde_json::Value>,
    /// UUIDs of calls on the masked number in progress (non-empty ⇔ active).
    pub active_calls: Vec<String>,
}

/// The result of a state change that may or may not have happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition<T> {
    /// The record after the call.
    pub record: T,
    /// True when this call changed the state (exactly one caller across all
    /// instances sees `true`; the webhook it causes was queued with it, see
    /// [`Emission`]).
    pub changed: bool,
}

/// A webhook queued by the very step that changes the state it announces:
/// the transactional outbox. A transition given an emission queues it when,
/// and only when, that step changes the state, so a crash or a store outage
/// can never leave the change without its webhook, nor send it twice.
#[derive(Debug, Clone, PartialEq)]
pub struct Emission {
    /// The envelope to queue.
    pub job: WebhookJob,
    /// Queue it for delivery (false: only log it, a tenant without a URL).
    pub deliver: bool,
    /// Log time (the event log's order).
    pub now: DateTime<Utc>,
    /// How long the tenant's event log keeps envelopes.
    pub retention: std::time::Duration,
}

// --- the call table ----------------------------------------------------------

/// Direction of a call's first leg, as FreeSWITCH sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    /// Came in to FreeSWITCH.
    Inbound,
    /// Placed by FreeSWITCH (originate, click-to-call).
    Outbound,
}

/// Where a call is. Ordered: a call only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Created, not answered.
    Ringing,
    /// Early media.
    Early,
    /// Answered.
    Answered,
    /// Hung up.
    Ended,
}

/// One channel in the call table, keyed by its FreeSWITCH UUID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Channel UUID (a call session's id is its first leg's UUID).
    pub uuid: String,
    /// Owning tenant, once known.
    pub tenant: Option<String>,
    /// FreeSWITCH node holding the channel.
    pub node: String,
    /// Direction.
    pub direction: CallDirection,
    /// State.
    pub state: CallState,
    /// Caller number.
    pub caller: Option<String>,
    /// Caller display name.
    pub caller_display_name: Option<String>,
    /// Callee (destination) number.
    pub callee: Option<String>,
    /// The bridged (or originating) partner's UUID.
    pub other_leg: Option<String>,
    /// Created (CHANNEL_CREATE, or when the daemon chose the UUID).
    pub created_at: DateTime<Utc>,
    /// Answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// Ended (CHANNEL_HANGUP_COMPLETE).
    pub ended_at: Option<DateTime<Utc>>,
    /// FreeSWITCH hangup cause name.
    pub hangup_cause: Option<String>,
    /// Q.850 code.
    pub q850: Option<u16>,
    /// SIP status, where FreeSWITCH gave one.
    pub sip_code: Option<u16>,
    /// Seconds from creation to hangup.
    pub duration_s: Option<u64>,
    /// Seconds from answer to hangup.
    pub billsec: Option<u64>,
    /// Tenant's `user_data`, echoed on every webhook of the call.
    pub user_data: Option<String>,
    /// Masked session the call belongs to.
    pub session_ref: Option<String>,
    /// True when the end was inferred by reconciliation, not seen.
    pub reconciled: bool,
    /// Fields a creator attached (click-to-call parameters, say).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl CallRecord {
    /// A call as its first event shows it: ringing, nothing else known.
    pub fn new(
        uuid: &str,
        node: &str,
        direction: CallDirection,
        created_at: DateTime<Utc>,
    ) -> CallRecord {
        CallRecord {
            uuid: uuid.to_owned(),
            tenant: None,
            node: node.to_owned(),
            direction,
            state: CallState::Ringing,
            caller: None,
            caller_display_name: None,
            callee: None,
            other_leg: None,
            created_at,
            answered_at: None,
            ended_at: None,
            hangup_cause: None,
            q850: None,
            sip_code: None,
            duration_s: None,
            billsec: None,
            user_data: None,
            session_ref: None,
            reconciled: false,
            extra: serde_json::Map::new(),
        }
    }
}

/// What the dialplan lookup or a creator knows about a call before its
/// events are processed; merged into the record whenever it is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallBinding {
    /// Owning tenant.
    pub tenant: String,
    /// Masked session.
    pub session_ref: Option<String>,
    /// Tenant's user data.
    pub user_data: Option<String>,
}

// --- call-control operations ---------------------------------------------------

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    /// Accepted, no result yet.
    InProgress,
    /// Done.
    Succeeded,
    /// FreeSWITCH refused, or it could not be sent.
    Failed,
    /// No confirmation in time.
    Timeout,
}

/// A command (answer, hangup, disconnect, originate) and its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// Operation id (UUID).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Idempotency key (caller's, or generated).
    pub command_uid: String,
    /// `answer`, `hangup`, `disconnect`, `originate`.
    pub command: String,
    /// The call it acts on.
    pub call_id: String,
    /// Hash of the request body, to tell a replay from a conflicting reuse.
    pub request_hash: String,
    /// Status.
    pub status: OperationStatus,
    /// FreeSWITCH's words, or why it could not be sent.
    pub detail: Option<String>,
    /// Timeout announced to the caller.
    pub timeout_ms: u64,
    /// Accepted.
    pub created_at: DateTime<Utc>,
    /// Becomes `timeout` at this time if still in progress.
    pub deadline: DateTime<Utc>,
    /// Result time.
    pub completed_at: Option<DateTime<Utc>>,
}

/// The outcome of registering an operation under its idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum Registered {
    /// New: the caller must execute it.
    Created(OperationRecord),
    /// The key was taken: this is the existing operation; execute nothing.
    Existing(OperationRecord),
}

// --- webhooks ------------------------------------------------------------------

/// One envelope to deliver, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookJob {
    /// Envelope id (`evt_…`), also the `webhook-id` header.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// The envelope JSON, exactly as it is signed and sent.
    pub payload: String,
    /// Deliveries tried so far.
    pub attempt: u32,
}

/// A job claimed by one delivery worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedWebhook {
    /// The job.
    pub job: WebhookJob,
    /// Store-specific handle of this claim (a stream entry id, say).
    pub receipt: String,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookOutcome {
    /// The receiver took it: done.
    Delivered,
    /// Try again at this time (attempt counter incremented by the store).
    RetryAt(DateTime<Utc>),
    /// Given up: keep it as dead-lettered.
    Dead,
}

/// An envelope in a tenant's event log, with its cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// Cursor: pass as `after` to read what follows.
    pub cursor: String,
    /// The envelope JSON.
    pub payload: String,
}
