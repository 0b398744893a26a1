//! `command.result` webhooks: the [`ResultSink`] the daemon uses.
//!
//! This file owns the mapping of a finished operation to the webhooks
//! module's [`CommandResultData`] and its emission through the [`Outbox`]
//! (one store write; delivery, signing and retries are the outbox's). It
//! must not decide when an operation is finished ([`super::results`] does).

use std::sync::Arc;

use async_trait::async_trait;

use crate::store::OperationRecord;
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

#[async_trait]
impl ResultSink for OutboxResults {
    async fn command_result(&self, op: &OperationRecord) -> Result<(), SinkError> {
        let tenant = self
            .tenants
            .by_id(&op.tenant)
            .ok_or_else(|| SinkError(format!("tenant {:?} is not configured", op.tenant)))?;
        let data = CommandResultData::from_operation(op)
            .ok_or_else(|| SinkError(format!("operation {} has no result yet", op.id)))?;
        let at = op.completed_at.unwrap_or(op.created_at);
        self.outbox
            .emit_data(tenant.config(), at, &data)
            .await
            .map(|_| ())
            .map_err(|e| SinkError(e.to_string()))
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
        assert!(sink.command_result(&op).await.is_err(), "in progress");
        op.status = OperationStatus::Succeeded;
        op.detail = Some("+OK".into());
        op.completed_at = Some(now);
        sink.command_result(&op).await.unwrap();
        let events = store.events_after("acme", None, 10).await.unwrap();
        let body: serde_json::Value = serde_json::from_str(&events.items[0].payload).unwrap();
        assert_eq!(body["type"], "command.result");
        assert_eq!(body["data"]["operation_id"], "op1");
        assert_eq!(body["data"]["command_uid"], "ans-1");
        assert_eq!(body["data"]["status"], "succeeded");
        assert_eq!(body["data"]["detail"], "+OK");
        op.tenant = "ghost".into();
        assert!(sink.command_result(&op).await.is_err());
    }
}
