//! `command.result` webhooks: the [`ResultSink`] the daemon uses.
//!
//! This file owns the mapping of a finished operation to the webhooks
//! module's [`CommandResultData`] and its [`Emission`] through the [`Outbox`]
//! (queued by the store with the result; delivery, signing and retries are
//! the outbox's). It
//! must not decide when an operation is finished ([`super::results`] does).

use std::sync::Arc;

use crate::store::{Emission, OperationRecord};
use crate::tenants::Tenants;
use crate::webhooks::envelope::CommandResultData;
use crate::webhooks::outbox::Outbox;

use super::results::{ResultSink, SinkError};

/// Emits `command.result` to the operation's tenant.
#[derive(Clone)]
pub struct OutboxResults {
    outbox: Outbox,
    tenants: Arc<Tenants>,
}

impl OutboxResults {
    /// A sink writing to `outbox` for the configured `tenants`.
    pub fn new(outbox: Outbox, tenants: Arc<Tenants>) -> OutboxResults {
        OutboxResults { outbox, tenants }
    }
}

impl ResultSink for OutboxResults {
    fn emission(&self, op: &OperationRecord) -> Result<Option<Emission>, SinkError> {
        let tenant = self
            .tenants
            .by_id(&op.tenant)
            .ok_or_else(|| SinkError(format!("tenant {:?} is not configured", op.tenant)))?;
        let data = CommandResultData::from_operation(op)
            .ok_or_else(|| SinkError(format!("operation {} has no result yet", op.id)))?;
        let at = op.completed_at.unwrap_or(op.created_at);
        self.outbox
            .emission_for(tenant.config(), at, &data)
            .map(Some)
            .map_err(|e| SinkError(e.to_string()))
    }

    fn finished(&self, _op: &OperationRecord, emission: Option<&Emission>) {
        if let Some(e) = emission {
            self.outbox.queued(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;
    use crate::store::{OperationStatus, Store};
    use chrono::Utc;
    use std::time::Duration;

    #[tokio::test]
    async fn emits_the_typed_envelope() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let outbox = Outbox::new(store.clone(), clock, Duration::from_secs(3600));
        let tenant: crate::config::TenantConfig =
            serde_json::from_value(serde_json::json!({"id": "acme"})).unwrap();
        let tenants = Arc::new(Tenants::new([tenant]));
        let sink = OutboxResults::new(outbox, tenants);
        let now = Utc::now();
        let mut op = OperationRecord {
            id: "op1".into(),
            tenant: "acme".into(),
            command_uid: "ans-1".into(),
            command: "answer".into(),
            call_id: "c1".into(),
            request_hash: "h".into(),
            status: OperationStatus::InProgress,
            detail: None,
            timeout_ms: 2000,
            created_at: now,
            deadline: now,
            completed_at: None,
        };
        assert!(sink.emission(&op).is_err(), "in progress");
        op.status = OperationStatus::Succeeded;
        op.detail = Some("+OK".into());
        op.completed_at = Some(now);
        let e = sink.emission(&op).unwrap().expect("an envelope");
        store
            .enqueue_webhook(e.job, e.deliver, e.now, e.retention)
            .await
            .unwrap();
        let events = store.events_after("acme", None, 10).await.unwrap();
        let body: serde_json::Value = serde_json::from_str(&events.items[0].payload).unwrap();
        assert_eq!(body["type"], "command.result");
        assert_eq!(body["data"]["operation_id"], "op1");
        assert_eq!(body["data"]["command_uid"], "ans-1");
        assert_eq!(body["data"]["status"], "succeeded");
        assert_eq!(body["data"]["detail"], "+OK");
        op.tenant = "ghost".into();
        assert!(sink.emission(&op).is_err());
    }
}
