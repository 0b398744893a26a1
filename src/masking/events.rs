//! The port through which the masking domain's changes leave it as
//! webhooks: session state changes as `session.active`, `session.open` and
//! `session.completed`, and the end of a session originate as
//! `command.result` (command `originate`), like every other operation.
//!
//! This file owns [`SessionEvents`], its implementation over the webhook
//! [`Outbox`] (the daemon's), and [`RecordedEvents`] for tests. The domain
//! asks the port for the webhook of a change *before* making it, hands it to
//! the store transition (which queues it in the same atomic step, only if
//! the step changes the state: the transactional outbox), and tells the
//! port afterwards when it did. It must not decide *whether* to emit, nor
//! sign or deliver anything itself.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::config::TenantConfig;
use crate::store::{
    CompletionReason, Emission, OperationRecord, OperationStatus, SessionRecord, SessionState,
    StoreError,
};
use crate::webhooks::envelope::{CommandResultData, SessionData};
use crate::webhooks::outbox::EmitError;
use crate::webhooks::Outbox;

/// Where session webhooks go.
pub trait SessionEvents: Send + Sync + 'static {
    /// The webhook announcing that `session` enters the state it shows, at
    /// `at` (because of call `call_id`, when a call causes it), for the store
    /// to queue with the change; `None` when nothing is to be queued there.
    fn session_emission(
        &self,
        tenant: &TenantConfig,
        at: DateTime<Utc>,
        session: &SessionRecord,
        call_id: Option<&str>,
    ) -> Result<Option<Emission>, StoreError>;

    /// The change was made (and its emission queued with it).
    fn session_changed(
        &self,
        tenant: &TenantConfig,
        at: DateTime<Utc>,
        session: &SessionRecord,
        call_id: Option<&str>,
        emission: Option<&Emission>,
    );

    /// The `command.result` of a session originate's operation as it will be
    /// stored once finished.
    fn originate_emission(
        &self,
        tenant: &TenantConfig,
        operation: &OperationRecord,
    ) -> Result<Option<Emission>, StoreError>;

    /// The originate's operation got that result (and its emission).
    fn originate_finished(&self, operation: &OperationRecord, emission: Option<&Emission>);
}

/// One recorded session event.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Tenant id.
    pub tenant: String,
    /// Session ref.
    pub session_ref: String,
    /// The state entered.
    pub state: SessionState,
    /// Completion reason, for `completed`.
    pub reason: Option<CompletionReason>,
    /// The call that caused it.
    pub call_id: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Keeps every event in memory (tests, and runs without webhooks).
#[derive(Debug, Default)]
pub struct RecordedEvents {
    events: Mutex<Vec<RecordedEvent>>,
    results: Mutex<Vec<(String, OperationStatus)>>,
}

impl RecordedEvents {
    /// An empty recorder.
    pub fn new() -> RecordedEvents {
        RecordedEvents::default()
    }

    /// Everything recorded so far, in order.
    pub fn all(&self) -> Vec<RecordedEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `(operation id, status)` of every originate result, in order.
    pub fn results(&self) -> Vec<(String, OperationStatus)> {
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `(ref, state)` of everything recorded so far, in order.
    pub fn states(&self) -> Vec<(String, SessionState)> {
        self.all()
            .into_iter()
            .map(|e| (e.session_ref, e.state))
            .collect()
    }
}

impl SessionEvents for RecordedEvents {
    fn session_emission(
        &self,
        _tenant: &TenantConfig,
        _at: DateTime<Utc>,
        _session: &SessionRecord,
        _call_id: Option<&str>,
    ) -> Result<Option<Emission>, StoreError> {
        Ok(None)
    }

    fn session_changed(
        &self,
        tenant: &TenantConfig,
        at: DateTime<Utc>,
        session: &SessionRecord,
        call_id: Option<&str>,
        _emission: Option<&Emission>,
    ) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(RecordedEvent {
                tenant: tenant.id.clone(),
                session_ref: session.session_ref.clone(),
                state: session.state,
                reason: session.completion_reason,
                call_id: call_id.map(str::to_owned),
                at,
            });
    }

    fn originate_emission(
        &self,
        _tenant: &TenantConfig,
        _operation: &OperationRecord,
    ) -> Result<Option<Emission>, StoreError> {
        Ok(None)
    }

    fn originate_finished(&self, operation: &OperationRecord, _emission: Option<&Emission>) {
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((operation.id.clone(), operation.status));
    }
}

/// The daemon's port: `session.*` envelopes into the webhook outbox (queued
/// for the tenant's URL and logged for `GET /v1/events`).
impl SessionEvents for Outbox {
    fn session_emission(
        &self,
        tenant: &TenantConfig,
        at: DateTime<Utc>,
        session: &SessionRecord,
        call_id: Option<&str>,
    ) -> Result<Option<Emission>, StoreError> {
        let data = SessionData::from_record(session, call_id);
        self.emission_for(tenant, at, &data)
            .map(Some)
            .map_err(store_error)
    }

    fn session_changed(
        &self,
        _tenant: &TenantConfig,
        _at: DateTime<Utc>,
        _session: &SessionRecord,
        _call_id: Option<&str>,
        emission: Option<&Emission>,
    ) {
        if let Some(e) = emission {
            self.queued(e);
        }
    }

    fn originate_emission(
        &self,
        tenant: &TenantConfig,
        operation: &OperationRecord,
    ) -> Result<Option<Emission>, StoreError> {
        let Some(data) = CommandResultData::from_operation(operation) else {
            return Ok(None); // still in progress: nothing to announce
        };
        let at = operation.completed_at.unwrap_or(operation.created_at);
        self.emission_for(tenant, at, &data)
            .map(Some)
            .map_err(store_error)
    }

    fn originate_finished(&self, _operation: &OperationRecord, emission: Option<&Emission>) {
        if let Some(e) = emission {
            self.queued(e);
        }
    }
}

fn store_error(e: EmitError) -> StoreError {
    match e {
        EmitError::Store(e) => e,
        other => StoreError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::masking::service::tests::{start, tenant};
    use crate::store::memory::MemoryStore;
    use crate::store::Store;

    #[tokio::test]
    async fn the_outbox_logs_session_envelopes() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let outbox = Outbox::new(
            store.clone(),
            Arc::new(ManualClock::new(start())),
            Duration::from_secs(3600),
        );
        let session = SessionRecord {
            tenant: "acme".into(),
            session_ref: "ses_abc".into(),
            state: SessionState::Completed,
            masked_number: "+15550100001".into(),
            party_a: "+15557770001".into(),
            party_b: "+15557770002".into(),
            ttl_minutes: 5,
            created_at: start(),
            expires_at: start(),
            completed_at: Some(start()),
            completion_reason: Some(CompletionReason::Ttl),
            metadata: None,
            active_calls: vec![],
        };
        let e = outbox
            .session_emission(&tenant("acme", &[]), start(), &session, None)
            .unwrap()
            .expect("an envelope");
        assert!(store
            .enqueue_webhook(e.job, e.deliver, e.now, e.retention)
            .await
            .unwrap());
        let page = store.events_after("acme", None, 10).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&page.items[0].payload).unwrap();
        assert_eq!(v["type"], "session.completed");
        assert_eq!(v["tenant"], "acme");
        assert_eq!(v["data"]["ref"], "ses_abc");
        assert_eq!(v["data"]["reason"], "ttl");
        assert_eq!(v["data"]["masked_number"], "+15550100001");
    }
}
