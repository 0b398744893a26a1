//! The port through which session state changes leave the domain as
//! `session.active`, `session.open` and `session.completed` webhooks.
//!
//! This file owns [`SessionEvents`] (what the service calls once a store
//! transition reports `changed`), its implementation over the webhook
//! [`crate::webhooks::Outbox`] once that lands, and [`RecordedEvents`] for
//! tests. It must not decide *whether* to emit (the service does, from
//! `Transition::changed`), nor sign, queue or deliver anything itself.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::TenantConfig;
use crate::store::{CompletionReason, SessionRecord, SessionState, StoreError};

/// Where session webhooks go.
#[async_trait]
pub trait SessionEvents: Send + Sync + 'static {
    /// `session` just entered its current state at `at` (because of call
    /// `call_id`, when a call caused it). Queue the matching webhook.
    async fn session_changed(
        &self,
        tenant: &TenantConfig,
        at: DateTime<Utc>,
        session: &SessionRecord,
        call_id: Option<&str>,
    ) -> Result<(), StoreError>;
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

    /// `(ref, state)` of everything recorded so far, in order.
    pub fn states(&self) -> Vec<(String, SessionState)> {
        self.all()
            .into_iter()
            .map(|e| (e.session_ref, e.state))
            .collect()
    }
}

#[async_trait]
impl SessionEvents for RecordedEvents {
    async fn session_changed(
        &self,
        tenant: &TenantConfig,
        at: DateTime<Utc>,
        session: &SessionRecord,
        call_id: Option<&str>,
    ) -> Result<(), StoreError> {
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
        Ok(())
    }
}
