//! Each operation gets exactly one result, and that result is announced once.
//!
//! This file owns [`Results::finish`], the only way call control ends an
//! operation: the store sets the result atomically (`finish_operation`
//! reports whether *this* caller set it, across all daemon instances), and
//! only that caller hands the finished operation to the [`ResultSink`] (the
//! `command.result` webhook). Dispatch, the CHANNEL_ANSWER handler and the
//! timeout task may race to finish the same operation; exactly one wins. It
//! must not decide *which* result an operation gets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::store::{OperationRecord, OperationStatus, Store, StoreError};

/// Why a result could not be announced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the command result could not be announced: {0}")]
pub struct SinkError(pub String);

/// Where finished operations are announced (the `command.result` webhook).
#[async_trait]
pub trait ResultSink: Send + Sync + 'static {
    /// Announces one finished operation. Called once per operation.
    async fn command_result(&self, op: &OperationRecord) -> Result<(), SinkError>;
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

#[async_trait]
impl ResultSink for CollectingSink {
    async fn command_result(&self, op: &OperationRecord) -> Result<(), SinkError> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(op.clone());
        Ok(())
    }
}

/// Finishes operations and announces each result once. Cheap to clone.
#[derive(Clone)]
pub struct Results {
    store: Arc<dyn Store>,
    clock: SharedClock,
    sink: Arc<dyn ResultSink>,
}

/// Attempts to announce a result before giving up (with 50, 200 ms pauses).
const ANNOUNCE_ATTEMPTS: u32 = 3;

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
        let Some(t) = self
            .store
            .finish_operation(tenant, id, status, Some(detail.into()), now)
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
        self.announce(&op).await;
        Ok(Some(op))
    }

    async fn announce(&self, op: &OperationRecord) {
        let mut pause = Duration::from_millis(50);
        for attempt in 1..=ANNOUNCE_ATTEMPTS {
            match self.sink.command_result(op).await {
                Ok(()) => return,
                Err(e) if attempt < ANNOUNCE_ATTEMPTS => {
                    tracing::warn!(operation = %op.id, error = %e, "announcing a command result failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                }
                Err(e) => {
                    tracing::error!(operation = %op.id, tenant = %op.tenant, error = %e,
                        "command result not announced; GET /api/v1/operations/{{id}} still shows it");
                }
            }
        }
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
            .register_operation(op("o1"), Duration::from_secs(60))
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
