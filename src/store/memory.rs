//! `MemoryStore`: the embedded store of a single daemon (`memory://`).
//!
//! Owns all shared state in one process, behind one `std::sync::Mutex`: every
//! method takes the lock once, does its whole change, and lets go, so each is
//! atomic; the lock is never held across an await. Keys that live for a
//! `Duration` (ended calls, bindings, operations) expire by
//! `tokio::time::Instant` (so tests with paused tokio time work): every call
//! first evicts what a min-heap of deadlines says is due, so expired entries
//! are really gone and memory stays bounded. It must not read the wall clock:
//! record times and due times come in as arguments. Nothing survives a
//! restart; use Redis for that and for several instances.

mod calls;
mod ops;
mod sessions;
mod webhooks;

// Idempotency-Key records (appended; their own file and lock).
mod idempotency;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::{Begun, IdempotencyAttempt, IdempotencyScope, StoredResponse};

use super::{
    CallBinding, CallRecord, ClaimedWebhook, CompletionReason, CreateSessionError, Emission,
    LoggedEvent, NewSession, OperationRecord, OperationStatus, Page, Registered, SessionRecord,
    SessionState, Store, StoreError, Transition, WebhookJob, WebhookOutcome,
};

/// The embedded, single-process store.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Idempotency-Key records, under their own lock (`memory/idempotency.rs`).
    idempotency: idempotency::Table,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

/// A key with a deadline, as queued for eviction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Expiring {
    Call(String),
    Binding(String),
    Operation(String, String),
    OperationKey(String, String),
}

#[derive(Default)]
struct Inner {
    tenants: HashMap<String, sessions::Tenant>,
    calls: calls::CallTable,
    ops: HashMap<String, ops::TenantOps>,
    outboxes: HashMap<String, webhooks::Outbox>,
    deadlines: BinaryHeap<Reverse<(Instant, Expiring)>>,
}

impl Inner {
    /// Queues `key` for eviction at `at` (a stale entry is harmless: eviction
    /// checks the key's current deadline).
    fn expire_at(&mut self, at: Instant, key: Expiring) {
        self.deadlines.push(Reverse((at, key)));
    }

    /// Queues `emit` when `t` is a change: in the same critical section as
    /// the change itself (the transactional outbox).
    fn emit_on_change<T>(
        &mut self,
        t: Option<Transition<T>>,
        emit: Option<Emission>,
    ) -> Option<Transition<T>> {
        if let (Some(Transition { changed: true, .. }), Some(e)) = (&t, emit) {
            self.outboxes
                .entry(e.job.tenant.clone())
                .or_default()
                .enqueue(e.job, e.deliver, e.now, e.retention);
        }
        t
    }

    /// Binds call `uuid` until `until`.
    fn bind(&mut self, uuid: &str, binding: CallBinding, until: Instant) {
        self.calls.bind(uuid, binding, until);
        self.expire_at(until, Expiring::Binding(uuid.to_owned()));
    }

    /// Removes every entry whose deadline has passed.
    fn evict(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = self.deadlines.pop() else {
                break;
            };
            match key {
                Expiring::Call(uuid) => self.calls.evict_call(&uuid, now),
                Expiring::Binding(uuid) => self.calls.evict_binding(&uuid, now),
                Expiring::Operation(tenant, id) => {
                    if let Some(t) = self.ops.get_mut(&tenant) {
                        t.evict_operation(&id, now);
                    }
                }
                Expiring::OperationKey(tenant, uid) => {
                    if let Some(t) = self.ops.get_mut(&tenant) {
                        t.evict_key(&uid, now);
                    }
                }
            }
        }
    }
}

/// `now + d`, or far in the future when that overflows.
fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The state, with expired entries evicted, and the instant used.
    fn lock(&self) -> (MutexGuard<'_, Inner>, Instant) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        guard.evict(now);
        (guard, now)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn sync_pool(&self, tenant: &str, numbers: &[String]) -> Result<bool, StoreError> {
        let (mut g, _) = self.lock();
        Ok(g.tenants
            .entry(tenant.to_owned())
            .or_default()
            .sync_pool(numbers))
    }

    async fn create_session(&self, new: NewSession) -> Result<SessionRecord, CreateSessionError> {
        let (mut g, _) = self.lock();
        g.tenants.entry(new.tenant.clone()).or_default().create(new)
    }

    async fn get_session(
        &self,
        tenant: &str,
        session_ref: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.tenants
            .get(tenant)
            .and_then(|t| t.sessions.get(session_ref))
            .cloned())
    }

    async fn list_sessions(
        &self,
        tenant: &str,
        state: Option<SessionState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<SessionRecord>, StoreError> {
        let (g, _) = self.lock();
        Ok(match g.tenants.get(tenant) {
            Some(t) => t.list(state, cursor, limit),
            None => Page {
                items: Vec::new(),
                next_cursor: None,
            },
        })
    }

    async fn session_by_number(
        &self,
        tenant: &str,
        masked_number: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.tenants
            .get(tenant)
            .and_then(|t| t.by_number(masked_number)))
    }

    async fn session_call_started(
        &self,
        tenant: &str,
        session_ref: &str,
        call_uuid: &str,
        bind: Option<(CallBinding, Duration)>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        let (mut g, now) = self.lock();
        let t = g
            .tenants
            .get_mut(tenant)
            .and_then(|t| t.call_started(session_ref, call_uuid));
        let live = t
            .as_ref()
            .is_some_and(|t| t.record.state != SessionState::Completed);
        if let (true, Some((binding, ttl))) = (live, bind) {
            g.bind(call_uuid, binding, deadline(now, ttl));
        }
        Ok(g.emit_on_change(t, emit))
    }

    async fn session_call_ended(
        &self,
        tenant: &str,
        session_ref: &str,
        call_uuid: &str,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        let (mut g, _) = self.lock();
        let t = g
            .tenants
            .get_mut(tenant)
            .and_then(|t| t.call_ended(session_ref, call_uuid));
        Ok(g.emit_on_change(t, emit))
    }

    async fn complete_session(
        &self,
        tenant: &str,
        session_ref: &str,
        reason: CompletionReason,
        at: DateTime<Utc>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        let (mut g, _) = self.lock();
        let t = g
            .tenants
            .get_mut(tenant)
            .and_then(|t| t.complete(session_ref, reason, at));
        Ok(g.emit_on_change(t, emit))
    }

    async fn due_sessions(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.tenants
            .get(tenant)
            .map(|t| t.due(now, limit))
            .unwrap_or_default())
    }

    async fn put_call(
        &self,
        call: CallRecord,
        retention: Duration,
    ) -> Result<CallRecord, StoreError> {
        let (mut g, now) = self.lock();
        let (merged, expires) = g.calls.put(call, now, retention);
        if let Some(at) = expires {
            g.expire_at(at, Expiring::Call(merged.uuid.clone()));
        }
        Ok(merged)
    }

    async fn get_call(&self, uuid: &str) -> Result<Option<CallRecord>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.calls.get(uuid))
    }

    async fn list_live_calls(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<CallRecord>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.calls.live_of_tenant(tenant, cursor, limit))
    }

    async fn live_calls_on_node(&self, node: &str) -> Result<Vec<CallRecord>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.calls.live_on_node(node))
    }

    async fn put_call_binding(
        &self,
        uuid: &str,
        binding: CallBinding,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (mut g, now) = self.lock();
        g.bind(uuid, binding, deadline(now, ttl));
        Ok(())
    }

    async fn get_call_binding(&self, uuid: &str) -> Result<Option<CallBinding>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.calls.binding(uuid))
    }

    async fn next_call_sequence(&self, uuid: &str) -> Result<u64, StoreError> {
        let (mut g, now) = self.lock();
        let (seq, expires) = g.calls.next_sequence(uuid, now);
        if let Some(at) = expires {
            g.expire_at(at, Expiring::Call(uuid.to_owned()));
        }
        Ok(seq)
    }

    async fn register_operation(
        &self,
        op: OperationRecord,
        ttl: Duration,
    ) -> Result<Registered, StoreError> {
        let (mut g, now) = self.lock();
        let until = deadline(now, ttl);
        let (tenant, id, uid) = (op.tenant.clone(), op.id.clone(), op.command_uid.clone());
        let registered = g.ops.entry(tenant.clone()).or_default().register(op, until);
        if matches!(registered, Registered::Created(_)) {
            g.expire_at(until, Expiring::Operation(tenant.clone(), id));
            g.expire_at(until, Expiring::OperationKey(tenant, uid));
        }
        Ok(registered)
    }

    async fn get_operation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.ops.get(tenant).and_then(|t| t.get(id)))
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
        let (mut g, _) = self.lock();
        let t = g
            .ops
            .get_mut(tenant)
            .and_then(|t| t.finish(id, status, detail, at));
        Ok(g.emit_on_change(t, emit))
    }

    async fn pending_operations_for_call(
        &self,
        tenant: &str,
        call_id: &str,
        command: Option<&str>,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.ops
            .get(tenant)
            .map(|t| t.pending_for_call(call_id, command))
            .unwrap_or_default())
    }

    async fn due_operations(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.ops
            .get(tenant)
            .map(|t| t.due(now, limit))
            .unwrap_or_default())
    }

    async fn enqueue_webhook(
        &self,
        job: WebhookJob,
        deliver: bool,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let (mut g, _) = self.lock();
        Ok(g.outboxes
            .entry(job.tenant.clone())
            .or_default()
            .enqueue_once(job, deliver, now, retention))
    }

    async fn claim_webhooks(
        &self,
        tenant: &str,
        consumer: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedWebhook>, StoreError> {
        let (mut g, _) = self.lock();
        Ok(match g.outboxes.get_mut(tenant) {
            Some(o) => o.claim(consumer, max, lease, now),
            None => Vec::new(),
        })
    }

    async fn settle_webhook(
        &self,
        tenant: &str,
        claim: &ClaimedWebhook,
        outcome: WebhookOutcome,
    ) -> Result<(), StoreError> {
        let (mut g, _) = self.lock();
        if let Some(o) = g.outboxes.get_mut(tenant) {
            o.settle(claim, outcome);
        }
        Ok(())
    }

    async fn dead_webhooks(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        let (g, _) = self.lock();
        Ok(g.outboxes
            .get(tenant)
            .map(|o| o.dead(limit))
            .unwrap_or_default())
    }

    async fn events_after(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<LoggedEvent>, StoreError> {
        let (g, _) = self.lock();
        Ok(match g.outboxes.get(tenant) {
            Some(o) => o.events_after(after, limit),
            None => Page {
                items: Vec::new(),
                next_cursor: None,
            },
        })
    }

    // --- Idempotency-Key records (memory/idempotency.rs) ---------------------------

    async fn begin_idempotent(
        &self,
        scope: &IdempotencyScope,
        attempt: &IdempotencyAttempt,
        lease: Duration,
    ) -> Result<Begun, StoreError> {
        Ok(self.idempotency.begin(scope, attempt, lease))
    }

    async fn finish_idempotent(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.idempotency.finish(scope, owner, response, ttl))
    }

    async fn release_idempotent(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.idempotency.release(scope, owner))
    }
}

/// A page of `(score, id)` keys after `cursor`, ascending or descending.
/// A cursor that is not one of ours gives an empty last page.
fn page_keys(
    index: &std::collections::BTreeSet<(i64, String)>,
    cursor: Option<&str>,
    limit: usize,
    descending: bool,
) -> (Vec<(i64, String)>, Option<String>) {
    use std::ops::Bound::{Excluded, Unbounded};
    let after = match cursor {
        None => None,
        Some(c) => match super::cursor::decode(c) {
            Some(key) => Some(key),
            None => return (Vec::new(), None),
        },
    };
    let mut keys: Vec<(i64, String)> = match (after, descending) {
        (None, false) => index.iter().take(limit + 1).cloned().collect(),
        (None, true) => index.iter().rev().take(limit + 1).cloned().collect(),
        (Some(k), false) => index
            .range((Excluded(k), Unbounded))
            .take(limit + 1)
            .cloned()
            .collect(),
        (Some(k), true) => index
            .range((Unbounded, Excluded(k)))
            .rev()
            .take(limit + 1)
            .cloned()
            .collect(),
    };
    let more = keys.len() > limit;
    keys.truncate(limit);
    let next = match keys.last() {
        Some((score, id)) if more => Some(super::cursor::encode(*score, id)),
        _ => None,
    };
    (keys, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> CallBinding {
        CallBinding {
            tenant: "acme".into(),
            session_ref: None,
            user_data: None,
        }
    }

    /// Expired entries really go away (with tokio's clock paused and moved
    /// by hand), and refreshing a key does not let its old deadline evict it.
    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_evicted() {
        let s = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        for seq in 0..1000 {
            s.put_call_binding(&format!("u{seq}"), binding(), ttl)
                .await
                .unwrap();
            s.next_call_sequence(&format!("u{seq}")).await.unwrap();
        }
        s.put_call_binding("kept", binding(), ttl).await.unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        s.put_call_binding("kept", binding(), ttl).await.unwrap();
        tokio::time::advance(Duration::from_secs(31)).await;
        s.ping().await.unwrap();
        {
            let (g, _) = s.lock();
            assert_eq!(g.calls.binding("kept"), Some(binding()));
            assert_eq!(g.calls.binding("u1"), None);
        }
        tokio::time::advance(Duration::from_secs(24 * 3600)).await;
        let (g, _) = s.lock();
        assert!(
            g.calls.is_empty(),
            "sequence counters of unknown calls expire"
        );
        assert_eq!(g.calls.binding("kept"), None);
        assert!(g.deadlines.is_empty());
    }
}
