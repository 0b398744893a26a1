//! Idempotency-Key records in the memory store.
//!
//! Owns the records of every tenant, under a lock of their own (no step
//! here touches other state, so they need not wait for the main lock).
//! Records expire as the rest of the memory store's keys do: by
//! `tokio::time::Instant` (so tests with paused tokio time work), with a
//! min-heap of deadlines that every call first evicts from, so expired
//! records are really gone and memory stays bounded. It must not read the
//! wall clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::deadline;
use crate::store::{
    Begun, IdempotencyAttempt, IdempotencyRecord, IdempotencyScope, StoredResponse,
};

/// Every tenant's idempotency records.
#[derive(Default)]
pub(super) struct Table {
    inner: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    records: HashMap<IdempotencyScope, (IdempotencyRecord, Instant)>,
    deadlines: BinaryHeap<Reverse<(Instant, IdempotencyScope)>>,
}

impl Records {
    fn evict(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, scope))) = self.deadlines.pop() else {
                break;
            };
            // A stale deadline (the record was refreshed or replaced) is
            // harmless: only a record whose own deadline passed goes.
            if self
                .records
                .get(&scope)
                .is_some_and(|(_, until)| *until <= now)
            {
                self.records.remove(&scope);
            }
        }
    }

    fn put(&mut self, scope: &IdempotencyScope, record: IdempotencyRecord, until: Instant) {
        self.records.insert(scope.clone(), (record, until));
        self.deadlines.push(Reverse((until, scope.clone())));
    }

    /// The in-progress record of `owner` under `scope`, if it is that.
    fn owned_in_progress(&self, scope: &IdempotencyScope, owner: &str) -> bool {
        self.records
            .get(scope)
            .is_some_and(|(r, _)| r.owner == owner && r.response.is_none())
    }
}

impl Table {
    fn lock(&self) -> (MutexGuard<'_, Records>, Instant) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        guard.evict(now);
        (guard, now)
    }

    pub(super) fn begin(
        &self,
        scope: &IdempotencyScope,
        attempt: &IdempotencyAttempt,
        lease: Duration,
    ) -> Begun {
        let (mut g, now) = self.lock();
        if let Some((existing, _)) = g.records.get(scope) {
            return Begun::Existing(existing.clone());
        }
        let record = IdempotencyRecord {
            fingerprint: attempt.fingerprint.clone(),
            owner: attempt.owner.clone(),
            response: None,
        };
        g.put(scope, record, deadline(now, lease));
        Begun::Started
    }

    pub(super) fn finish(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
        response: StoredResponse,
        ttl: Duration,
    ) -> bool {
        let (mut g, now) = self.lock();
        if !g.owned_in_progress(scope, owner) {
            return false;
        }
        let Some((mut record, _)) = g.records.remove(scope) else {
            return false;
        };
        record.response = Some(response);
        g.put(scope, record, deadline(now, ttl));
        true
    }

    pub(super) fn release(&self, scope: &IdempotencyScope, owner: &str) -> bool {
        let (mut g, _) = self.lock();
        if !g.owned_in_progress(scope, owner) {
            return false;
        }
        g.records.remove(scope).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let (g, _) = self.lock();
        (g.records.len(), g.deadlines.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(key: &str) -> IdempotencyScope {
        IdempotencyScope {
            tenant: "acme".into(),
            endpoint: "v1.sessions".into(),
            key: key.into(),
        }
    }

    fn attempt(owner: &str) -> IdempotencyAttempt {
        IdempotencyAttempt {
            fingerprint: "fp".into(),
            owner: owner.into(),
        }
    }

    fn response() -> StoredResponse {
        StoredResponse {
            status: 201,
            headers: vec![],
            body: "{}".into(),
        }
    }

    /// Leases and TTLs run on tokio's clock (paused and moved by hand here),
    /// and expired records leave no trace.
    #[tokio::test(start_paused = true)]
    async fn leases_and_ttls_expire_on_tokio_time() {
        let t = Table::default();
        let lease = Duration::from_secs(60);
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(t.begin(&scope("a"), &attempt("1"), lease), Begun::Started);
        assert_eq!(t.begin(&scope("b"), &attempt("2"), lease), Begun::Started);
        assert!(t.finish(&scope("b"), "2", response(), day));
        tokio::time::advance(Duration::from_secs(61)).await;
        // `a` was never finished: its lease ran out, a new attempt starts.
        assert_eq!(t.begin(&scope("a"), &attempt("3"), lease), Begun::Started);
        assert!(
            !t.finish(&scope("a"), "1", response(), day),
            "not 1's any more"
        );
        // `b` is done and kept for a day.
        assert!(matches!(
            t.begin(&scope("b"), &attempt("4"), lease),
            Begun::Existing(IdempotencyRecord {
                response: Some(_),
                ..
            })
        ));
        tokio::time::advance(day).await;
        assert_eq!(t.len(), (0, 0), "everything expired and was evicted");
        assert_eq!(t.begin(&scope("b"), &attempt("5"), lease), Begun::Started);
    }
}
