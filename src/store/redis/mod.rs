//! `RedisStore`: the shared store of several daemon instances, on one Redis
//! server (`redis://`, `rediss://`), a Redis Cluster
//! (`redis+cluster://h1:p1,h2:p2`) or the primary Redis Sentinel names
//! (`redis+sentinel://s1:p1,s2:p2/master`).
//!
//! Owns the mapping of every [`Store`] method onto Redis: each change that
//! touches several keys is one Lua script (`*.lua` beside this file) over
//! keys of one hash tag (see [`keys`]); the call table's live lists, which
//! live in other slots than the call records, are kept by idempotent
//! single-key commands and checked on read. Connections reconnect by
//! themselves; connection errors are `StoreError::Unavailable`. It must not
//! read a clock (times come in as arguments; TTLs use the `Duration`s given)
//! nor hold domain rules beyond what the trait documents.

mod calls;
mod conn;
mod keys;
mod ops;
mod sentinel;
mod sentinel_url;
mod sessions;
mod value;
mod webhooks;

// Idempotency-Key records (appended).
mod idempotency;

use std::time::Duration;

use ::redis::{Cmd, ScriptInvocation, Value};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use self::conn::{classify, Conn};
use self::keys::Keys;
use super::{Begun, IdempotencyAttempt, IdempotencyScope, StoreOptions, StoredResponse};
use super::{
    CallBinding, CallRecord, ClaimedWebhook, CompletionReason, CreateSessionError, Emission,
    LoggedEvent, NewSession, OperationRecord, OperationStatus, Page, Registered, SessionRecord,
    SessionState, Store, StoreError, Transition, WebhookJob, WebhookOutcome,
};

/// The sentinels a `redis+sentinel://` URL lists (`rest` is what follows
/// the scheme), or what is wrong with it: the one parser of that form, which
/// `config::validate` checks the configuration with too. The error never
/// echoes a password.
pub fn sentinel_url_hosts(rest: &str) -> Result<Vec<(String, u16)>, String> {
    sentinel_url::parse(false, rest).map(|target| target.sentinels)
}

/// The default prefix of every key.
pub const DEFAULT_PREFIX: &str = "fsgate";

/// The Redis (or Redis Cluster) store.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    keys: Keys,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Opens a store on a `redis://`, `rediss://`, `redis+cluster://` or
    /// `redis+sentinel://` URL, with the rest of `[store]` (TLS files,
    /// replica acknowledgements); a bare URL will do. The connection is made
    /// lazily and remade after an outage (or a failover), so this only fails
    /// on a malformed URL or an unusable TLS file.
    pub async fn connect(options: impl Into<StoreOptions>) -> Result<RedisStore, StoreError> {
        RedisStore::connect_with_prefix(options, DEFAULT_PREFIX).await
    }

    /// Like [`RedisStore::connect`], with every key under `prefix` instead
    /// of `fsgate` (to share one Redis between deployments, or tests).
    pub async fn connect_with_prefix(
        options: impl Into<StoreOptions>,
        prefix: &str,
    ) -> Result<RedisStore, StoreError> {
        Ok(RedisStore {
            conn: conn::connect(&options.into())?,
            keys: Keys::new(prefix),
        })
    }

    /// Runs a script (EVALSHA, loading it on NOSCRIPT).
    async fn invoke(&self, inv: &ScriptInvocation<'_>) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        inv.invoke_async(&mut conn).await.map_err(classify)
    }

    /// True on a Redis Cluster, where one script touches one slot only.
    fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// Runs one command.
    async fn query(&self, cmd: &Cmd) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(classify)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.query(&::redis::cmd("PING")).await.map(|_| ())
    }

    async fn sync_pool(&self, tenant: &str, numbers: &[String]) -> Result<bool, StoreError> {
        self.sync_pool_impl(tenant, numbers).await
    }

    async fn create_session(&self, new: NewSession) -> Result<SessionRecord, CreateSessionError> {
        self.create_session_impl(new).await
    }

    async fn get_session(
        &self,
        tenant: &str,
        session_ref: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.get_session_impl(tenant, session_ref).await
    }

    async fn list_sessions(
        &self,
        tenant: &str,
        state: Option<SessionState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<SessionRecord>, StoreError> {
        self.list_sessions_impl(tenant, state, cursor, limit).await
    }

    async fn session_by_number(
        &self,
        tenant: &str,
        masked_number: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.session_by_number_impl(tenant, masked_number).await
    }

    async fn session_call_started(
        &self,
        tenant: &str,
        session_ref: &str,
        call_uuid: &str,
        bind: Option<(CallBinding, Duration)>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        self.session_step_impl(tenant, session_ref, "start", call_uuid, bind, emit)
            .await
    }

    async fn session_call_ended(
        &self,
        tenant: &str,
        session_ref: &str,
        call_uuid: &str,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        self.session_step_impl(tenant, session_ref, "end", call_uuid, None, emit)
            .await
    }

    async fn complete_session(
        &self,
        tenant: &str,
        session_ref: &str,
        reason: CompletionReason,
        at: DateTime<Utc>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        self.complete_session_impl(tenant, session_ref, reason, at, emit)
            .await
    }

    async fn due_sessions(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.due_sessions_impl(tenant, now, limit).await
    }

    async fn put_call(
        &self,
        call: CallRecord,
        retention: Duration,
    ) -> Result<CallRecord, StoreError> {
        self.put_call_impl(call, retention).await
    }

    async fn get_call(&self, uuid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.get_call_impl(uuid).await
    }

    async fn list_live_calls(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<CallRecord>, StoreError> {
        self.list_live_calls_impl(tenant, cursor, limit).await
    }

    async fn live_calls_on_node(&self, node: &str) -> Result<Vec<CallRecord>, StoreError> {
        self.live_calls_on_node_impl(node).await
    }

    async fn put_call_binding(
        &self,
        uuid: &str,
        binding: CallBinding,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put_call_binding_impl(uuid, binding, ttl).await
    }

    async fn get_call_binding(&self, uuid: &str) -> Result<Option<CallBinding>, StoreError> {
        self.get_call_binding_impl(uuid).await
    }

    async fn next_call_sequence(&self, uuid: &str) -> Result<u64, StoreError> {
        self.next_call_sequence_impl(uuid).await
    }

    async fn register_operation(
        &self,
        op: OperationRecord,
        ttl: Duration,
    ) -> Result<Registered, StoreError> {
        self.register_operation_impl(op, ttl).await
    }

    async fn get_operation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<OperationRecord>, StoreError> {
        self.get_operation_impl(tenant, id).await
    }

    async fn finish_operation(
        &self,
        tenant: &str,
        id: &str,
        status: OperationStatus,
        detail: Option<String>,
        at: DateTime<Utc>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<OperationRecord>>, StoreError> {
        self.finish_operation_impl(tenant, id, status, detail, at, emit)
            .await
    }

    async fn pending_operations_for_call(
        &self,
        tenant: &str,
        call_id: &str,
        command: Option<&str>,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        self.pending_operations_impl(tenant, call_id, command).await
    }

    async fn due_operations(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        self.due_operations_impl(tenant, now, limit).await
    }

    async fn enqueue_webhook(
        &self,
        job: WebhookJob,
        deliver: bool,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        self.enqueue_webhook_impl(job, deliver, now, retention)
            .await
    }

    async fn claim_webhooks(
        &self,
        tenant: &str,
        consumer: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedWebhook>, StoreError> {
        self.claim_webhooks_impl(tenant, consumer, max, lease, now)
            .await
    }

    async fn settle_webhook(
        &self,
        tenant: &str,
        claim: &ClaimedWebhook,
        outcome: WebhookOutcome,
    ) -> Result<(), StoreError> {
        self.settle_webhook_impl(tenant, claim, outcome).await
    }

    async fn dead_webhooks(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        self.dead_webhooks_impl(tenant, limit).await
    }

    async fn events_after(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<LoggedEvent>, StoreError> {
        self.events_after_impl(tenant, after, limit).await
    }

    // --- Idempotency-Key records (redis/idempotency.rs) ---------------------------

    async fn begin_idempotent(
        &self,
        scope: &IdempotencyScope,
        attempt: &IdempotencyAttempt,
        lease: Duration,
    ) -> Result<Begun, StoreError> {
        self.begin_idempotent_impl(scope, attempt, lease).await
    }

    async fn finish_idempotent(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.finish_idempotent_impl(scope, owner, response, ttl)
            .await
    }

    async fn release_idempotent(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
    ) -> Result<bool, StoreError> {
        self.release_idempotent_impl(scope, owner).await
    }
}
