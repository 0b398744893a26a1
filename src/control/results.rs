//! Each operation gets exactly one result, and that result is announced once.
//!
//! This file owns [`Results::finish`], the only way call control ends an
//! operation: the store sets the result atomically (`finish_operation`
//! reports whether *this* caller set it, across all daemon instances) and
//! queues the `command.result` the [`ResultSink`] built for it in the same
//! step (the transactional outbox); only that caller tells the sink. Dispatch, the CHANNEL_ANSWER handler and the
//! timeout task may race to finish the same operation; exactly one wins. It
//! must not decide *which* result an operation gets.

use std::sync::{Arc, Mutex};

use crate::clock::SharedClock;
use crate::store::{Emission, OperationRecord, OperationStatus, Store, StoreError};

/// Why a result could not be announced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the command result could not be announced: {0}")]
pub struct SinkError(pub String);

/// Where finished operations are announced (the `command.result` webhook).
pub trait ResultSink: Send + Sync + 'static {
    /// The webhook announcing `op`, as it will be stored once finished, for
    /// the store to queue in the same step as the result; `None` when
    /// nothing is to be queued there.
    fn emission(&self, op: &OperationRecord) -> Result<Option<Emission>, SinkError>;

    /// `op` got its result (and the emission, if any, was queued with it).
    /// Called once per operation.
    fn finished(&self, op: &OperationRecord, emission: Option<&Emission>);
}

/// A sink that keeps what it is given, for tests and tools.
#[derive(Debug, Default)]
pub struct CollectingSink {
    seen: Mutex<Vec<OperationRecord>>,
}

impl CollectingSink {
    /// Every announced operation, in order.
    pub fn results(&self) -> Vec<OperationRecord> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ResultSink for CollectingSink {
    fn emission(&self, _op: &OperationRecord) -> Result<Option<Emission>, SinkError> {
        Ok(None)
    }

    fn finished(&self, op: &OperationRecord, _emission: Option<&Emission>) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(op.clone());
    }
}

/// Finishes operations and announces each result once. Cheap to clone.
#[derive(Clone)]
pub struct Results {
    store: Arc<dyn Store>,
    clock: SharedClock,
    sink: Arc<dyn ResultSink>,
}

impl Results {
    /// Results written to `store` and announced to `sink`.
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, sink: Arc<dyn ResultSink>) -> Results {
        Results { store, clock, sink }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Sets the result of an in-progress operation. Returns the finished
    /// operation when this call set it (and announced it), `None` when it
    /// already had a result or does not exist.
    pub async fn finish(
        &self,
        tenant: &str,
        id: &str,
        status: OperationStatus,
        detail: impl Into<String>,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let now = self.clock.now();
        let Some(mut next) = self.store.get_operation(tenant, id).await? else {
            return Ok(None);
        };
        if next.status != OperationStatus::InProgress {
            return Ok(None);
        }
        let detail = detail.into();
        next.status = status;
        next.detail = Some(detail.clone());
        next.completed_at = Some(now);
        let emission = match self.sink.emission(&next) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(operation = %id, tenant, error = %e, "no command.result can be built");
                None
            }
        };
        let Some(t) = self
            .store
            .finish_operation(tenant, id, status, Some(detail), now, emission.clone())
            .await?
        else {
            return Ok(None);
        };
        if !t.changed {
            return Ok(None);
        }
        let op = t.record;
        metrics::counter!(
            "fsgate_commands_total",
            "command" => op.command.clone(),
            "status" => format!("{:?}", op.status).to_lowercase()
        )
        .increment(1);
        self.sink.finished(&op, emission.as_ref());
        Ok(Some(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;
    use crate::store::Registered;
    use chrono::Utc;

    pub(crate) fn op(id: &str) -> OperationRecord {
        let now = Utc::now();
        OperationRecord {
            id: id.into(),
            tenant: "acme".into(),
            command_uid: id.into(),
            command: "hangup".into(),
            call_id: "c1".into(),
            request_hash: "h".into(),
            status: OperationStatus::InProgress,
            detail: None,
            timeout_ms: 2000,
            created_at: now,
            deadline: now + chrono::Duration::seconds(2),
            completed_at: None,
        }
    }

    #[tokio::test]
    async fn racing_finishers_announce_once() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let sink = Arc::new(CollectingSink::default());
        let results = Results::new(
            store.clone(),
            Arc::new(ManualClock::new(Utc::now())),
            sink.clone(),
        );
        let Registered::Created(_) = store
            .register_operation(op("o1"), std::time::Duration::from_secs(60))
            .await
            .unwrap()
        else {
            panic!("created");
        };
        let (a, b) = tokio::join!(
            results.finish("acme", "o1", OperationStatus::Succeeded, "+OK"),
            results.finish("acme", "o1", OperationStatus::Timeout, "late"),
        );
        assert_eq!(a.unwrap().is_some() as u8 + b.unwrap().is_some() as u8, 1);
        assert_eq!(sink.results().len(), 1);
        assert!(results
            .finish("acme", "missing", OperationStatus::Failed, "x")
            .await
            .unwrap()
            .is_none());
    }
}
