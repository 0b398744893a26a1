//! Shared state: one trait, two implementations, one conformance suite.
//!
//! Everything daemon instances must agree on lives behind [`Store`]:
//! masked-number sessions and their pools, the
//! call table, call-control operations, the webhook outbox and each tenant's
//! event log. [`memory`] is the embedded default for a single process
//! (`store.url = "memory://"`); [`redis`] is for several instances (Redis,
//! Sentinel or Cluster). Both pass `tests/store_conformance.rs`.
//!
//! The trait is shaped by what must be atomic across instances: every method
//! that changes state is one atomic step (a Lua script in Redis, one lock in
//! memory), and every state change that triggers a webhook takes that webhook
//! ([`Emission`]) and queues it in the same step, only when the step changes
//! the state (the transactional outbox): exactly one instance emits it, and
//! a crash or an outage cannot separate the change from its webhook. Every
//! instance handles every FreeSWITCH event; what they write is idempotent
//! (monotonic call-table merges, transitions, webhooks queued once per id). Everything a tenant owns is keyed with the tenant, and lookups
//! take the tenant, so one tenant can never read another's records. Domain
//! rules (what a valid request is, which webhook to send) stay in the domain
//! modules; the store never formats ESL or HTTP.
//!
//! Time comes in as arguments: the store never reads a clock.

mod cursor;
pub mod memory;
mod merge;
pub mod model;
mod options;
pub mod redis;

// Idempotency-Key records and public cursor checks (appended).
pub mod cursors;
pub mod idempotency;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use model::*;
pub use options::StoreOptions;

pub use idempotency::{
    Begun, IdempotencyAttempt, IdempotencyRecord, IdempotencyScope, StoredResponse,
};

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached right now. Answer 503 and try later;
    /// the store reconnects by itself.
    #[error("the state store is unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (a bug or a foreign writer).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Opens the store `[store]` names (`&config.store`, or a bare URL with
/// the defaults for the rest): `memory://` (the embedded store of one
/// process), `redis://host:port[/db]` (or `rediss://`), a Redis Cluster as
/// `redis+cluster://host1:port1,host2:port2,…`, or the primary Redis
/// Sentinel names as `redis+sentinel://s1:port1,s2:port2/master[/db]` (each
/// `rediss+…` for TLS).
pub async fn open(options: impl Into<StoreOptions>) -> Result<Arc<dyn Store>, StoreError> {
    let options = options.into();
    let url = options.url.as_str();
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "memory" => Ok(Arc::new(memory::MemoryStore::new())),
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" | "redis+sentinel"
        | "rediss+sentinel" => Ok(Arc::new(redis::RedisStore::connect(&options).await?)),
        _ => Err(StoreError::Unavailable(format!(
            "unsupported store url {:?}: expected memory://, redis://host:port, \
             redis+cluster://host:port,host:port or redis+sentinel://host:port,host:port/master",
            crate::config::model::redact_url(url)
        ))),
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateSessionError {
    /// Every number of the tenant's pool is held by a live session.
    #[error("no masked number is free in the tenant's pool")]
    PoolExhausted,
    /// The ref is already in use (a random-id collision: retry with another).
    #[error("session ref already exists")]
    DuplicateRef,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shared state of all daemon instances.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    // --- masked-number sessions -------------------------------------------

    /// Makes the tenant's pool the configured numbers: numbers added become
    /// free, numbers removed stop being handed out (a live session keeps its
    /// number until it completes). Idempotent and cheap when nothing is to
    /// change (the daemon calls it every second, so that a store that came
    /// back empty gets its pools again): true when it had to change the pool.
    async fn sync_pool(&self, tenant: &str, numbers: &[String]) -> Result<bool, StoreError>;

    /// Creates a session, allocating a free number of the tenant's pool
    /// atomically: a number is never held by two live sessions, however many
    /// instances create at once. The session starts `open` and is indexed for
    /// expiry at `expires_at`. When the number was released (its last session
    /// completed) after `created_at`, the session starts at that release
    /// instead, with `expires_at` moved as much; the record returned is what
    /// was written.
    async fn create_session(&self, new: NewSession) -> Result<SessionRecord, CreateSessionError>;

    /// One session of a tenant.
    async fn get_session(
        &self,
        tenant: &str,
        session_ref: &str,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// A tenant's sessions, newest first, optionally of one state.
    async fn list_sessions(
        &self,
        tenant: &str,
        state: Option<SessionState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<SessionRecord>, StoreError>;

    /// The live (open or active) session holding `masked_number` in the
    /// tenant's pool, if any. Numbers are stored as given (E.164 with `+`).
    async fn session_by_number(
        &self,
        tenant: &str,
        masked_number: &str,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// A call on the masked number started: adds `call_uuid` to the live
    /// session's active calls; `open` → `active`. `None` when the session does
    /// not exist; a completed session is returned unchanged (nothing reopens
    /// it). `changed` is true only for the `open` → `active` step. With
    /// `bind`, the call's binding is written for its ttl in the same step,
    /// and only when the session is live (the dialplan's lookup ties a call
    /// in one store round trip this way; on a Redis Cluster, where the
    /// binding lives in the call's slot, it takes a second).
    async fn session_call_started(
        &self,
        tenant: &str,
        session_ref: &str,
        call_uuid: &str,
        bind: Option<(CallBinding, Duration)>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError>;

    /// A call on the masked number ended: removes it; `active` → `open` when
    /// it was the last. `changed` is true only for that step.
    async fn session_call_ended(
        &self,
        tenant: &str,
        session_ref: &str,
        call_uuid: &str,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError>;

    /// Completes a live session (`ttl` or `closed`) at `at`, returning its
    /// number to the pool and removing it from the expiry index in the same
    /// step. Idempotent: a completed session is returned unchanged with
    /// `changed = false`.
    async fn complete_session(
        &self,
        tenant: &str,
        session_ref: &str,
        reason: CompletionReason,
        at: DateTime<Utc>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError>;

    /// Refs of the tenant's live sessions whose `expires_at` ≤ `now`, oldest
    /// first.
    async fn due_sessions(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    // --- the call table -------------------------------------------------------

    /// Writes a call. A record with a tenant and not ended is in that tenant's
    /// live list and its node's list; an ended one leaves both and expires
    /// after `retention`. Writes never move a call backwards: the stored
    /// `state` is the greater of the two, the parties (caller, callee, display
    /// name), timestamps and ending details once set are kept, and `None` fields do not erase stored values (events of
    /// one call may be processed by different instances, out of order).
    /// Returns the merged record.
    async fn put_call(
        &self,
        call: CallRecord,
        retention: Duration,
    ) -> Result<CallRecord, StoreError>;

    /// One call by UUID (live, or ended within its retention).
    async fn get_call(&self, uuid: &str) -> Result<Option<CallRecord>, StoreError>;

    /// A tenant's live calls, oldest first.
    async fn list_live_calls(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<CallRecord>, StoreError>;

    /// Every live call the table places on `node` (for reconciliation).
    async fn live_calls_on_node(&self, node: &str) -> Result<Vec<CallRecord>, StoreError>;

    /// Remembers what is known about a call before its events are processed
    /// (the dialplan lookup, a click-to-call), for `ttl`.
    async fn put_call_binding(
        &self,
        uuid: &str,
        binding: CallBinding,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The binding of a call, if any.
    async fn get_call_binding(&self, uuid: &str) -> Result<Option<CallBinding>, StoreError>;

    /// The next number of a call's webhook sequence (1, 2, …).
    async fn next_call_sequence(&self, uuid: &str) -> Result<u64, StoreError>;

    // --- call-control operations ------------------------------------------------

    /// Registers an operation under `(tenant, command_uid)` for `ttl`. Exactly
    /// one of concurrent registrations of the same key gets `Created`; the
    /// others get `Existing` with the winner's record. An in-progress
    /// operation is indexed for its call and for its deadline.
    async fn register_operation(
        &self,
        op: OperationRecord,
        ttl: Duration,
    ) -> Result<Registered, StoreError>;

    /// One operation of a tenant.
    async fn get_operation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<OperationRecord>, StoreError>;

    /// Sets the result of an in-progress operation (and drops it from the
    /// indexes). `changed` is false when it already had a result: each
    /// operation gets exactly one.
    async fn finish_operation(
        &self,
        tenant: &str,
        id: &str,
        status: OperationStatus,
        detail: Option<String>,
        at: DateTime<Utc>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<OperationRecord>>, StoreError>;

    /// In-progress operations on a call (`command` filters, e.g. `answer`).
    async fn pending_operations_for_call(
        &self,
        tenant: &str,
        call_id: &str,
        command: Option<&str>,
    ) -> Result<Vec<OperationRecord>, StoreError>;

    /// In-progress operations of a tenant whose deadline ≤ `now`.
    async fn due_operations(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, StoreError>;

    // --- webhooks: outbox and event log -------------------------------------------

    /// Queues an envelope for delivery and appends it to the tenant's event
    /// log in one step, trimming log entries older than `retention`.
    /// `deliver = false` only logs (a tenant without a webhook URL). At most
    /// once per `job.id` within `retention`: false when that id was queued
    /// before (every instance handles every event, and derives the same id
    /// for the same webhook).
    async fn enqueue_webhook(
        &self,
        job: WebhookJob,
        deliver: bool,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> Result<bool, StoreError>;

    /// Claims up to `max` jobs of a tenant that are due at `now`: new ones,
    /// retries whose time has come, and jobs claimed by a worker that has not
    /// reported for longer than `lease` (it died). A job is claimed by one
    /// worker at a time.
    async fn claim_webhooks(
        &self,
        tenant: &str,
        consumer: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedWebhook>, StoreError>;

    /// Records the outcome of a claimed job's attempt.
    async fn settle_webhook(
        &self,
        tenant: &str,
        claim: &ClaimedWebhook,
        outcome: WebhookOutcome,
    ) -> Result<(), StoreError>;

    /// Jobs given up on, for inspection.
    async fn dead_webhooks(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<WebhookJob>, StoreError>;

    /// The tenant's envelopes after `after` (from the start when `None`), in
    /// order.
    async fn events_after(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<LoggedEvent>, StoreError>;

    // --- Idempotency-Key records (see [`idempotency`]) ----------------------------

    /// Starts an attempt under `scope`: when no record exists, creates one
    /// `in_progress` owned by `attempt`, expiring after `lease` unless
    /// finished, and answers [`Begun::Started`]; otherwise changes nothing
    /// and answers the record found. Exactly one of concurrent begins of one
    /// scope starts.
    async fn begin_idempotent(
        &self,
        scope: &IdempotencyScope,
        attempt: &IdempotencyAttempt,
        lease: Duration,
    ) -> Result<Begun, StoreError>;

    /// Stores the response of the attempt `owner` started, kept for `ttl`
    /// from now. False (and nothing changed) when the record is not that
    /// attempt's in-progress record any more (its lease ran out).
    async fn finish_idempotent(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Deletes the in-progress record of the attempt `owner` started, so
    /// that a retry with the same key runs. False when there was none.
    async fn release_idempotent(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_knows_its_urls() {
        let memory = open("memory://").await.expect("memory");
        memory.ping().await.unwrap();
        // Redis connects lazily: a well-formed URL opens without a server.
        assert!(open("redis://127.0.0.1:1").await.is_ok());
        assert!(open("redis+cluster://127.0.0.1:1,127.0.0.1:2")
            .await
            .is_ok());
        assert!(open("redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster")
            .await
            .is_ok());
        for bad in [
            "postgres://db",
            "memory",
            "",
            "redis+cluster://a:1,,b:2",
            "redis+sentinel://127.0.0.1:1",
        ] {
            assert!(
                matches!(open(bad).await, Err(StoreError::Unavailable(_))),
                "{bad:?} should be refused"
            );
        }
    }
}
