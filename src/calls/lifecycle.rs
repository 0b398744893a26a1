//! The call lifecycle webhooks: `call.initiated`, `call.answered`, `call.hangup`.
//!
//! A pipeline handler that turns the call table's changes into envelopes for
//! the call's tenant: `call.initiated` when an inbound call parks on one of
//! the tenant's call-control numbers (so the application learns the UUID it
//! will answer), `call.answered` on CHANNEL_ANSWER, `call.hangup` on
//! CHANNEL_HANGUP_COMPLETE (or a reconciled end), each with the call's next
//! sequence number (increasing, not always consecutive: an event handled by
//! two instances draws two), its session ref and user data. Each webhook's id
//! is derived from the call and the type, so it is queued once however many
//! instances handle the event. Only a call's first leg is
//! a call session: bridged B-legs produce no webhooks of their own. Calls
//! that belong to no tenant produce none. It writes to the outbox only; it
//! never waits on HTTP.

use std::sync::Arc;

use async_trait::async_trait;

use crate::pipeline::calltable::is_b_leg;
use crate::pipeline::{CallEvent, CallEventHandler, CallEventKind, NumberDirectory, NumberKind};
use crate::store::{CallDirection, Store, StoreError};
use crate::tenants::Tenants;
use crate::webhooks::envelope::{
    derived_event_id, CallAnsweredData, CallHangupData, CallInfo, CallInitiatedData, Envelope,
};
use crate::webhooks::outbox::{EmitError, Outbox};

/// Emits the call lifecycle webhooks.
pub struct Lifecycle {
    store: Arc<dyn Store>,
    outbox: Outbox,
    tenants: Arc<Tenants>,
}

impl Lifecycle {
    /// A handler over the tenants of the configuration.
    pub fn new(store: Arc<dyn Store>, outbox: Outbox, tenants: Arc<Tenants>) -> Lifecycle {
        Lifecycle {
            store,
            outbox,
            tenants,
        }
    }

    fn parked_on_control_number(&self, e: &CallEvent<'_>) -> bool {
        e.call.direction == CallDirection::Inbound
            && e.call
                .callee
                .as_deref()
                .and_then(|n| self.tenants.owner_of(n))
                .is_some_and(|o| {
                    o.kind == NumberKind::Control && Some(&o.tenant) == e.call.tenant.as_ref()
                })
    }
}

fn store_error(e: EmitError) -> StoreError {
    match e {
        EmitError::Store(e) => e,
        other => StoreError::Corrupt(other.to_string()),
    }
}

#[async_trait]
impl CallEventHandler for Lifecycle {
    async fn on_call_event(&self, e: &CallEvent<'_>) -> Result<(), StoreError> {
        let Some(tenant) = e
            .call
            .tenant
            .as_ref()
            .and_then(|t| self.tenants.by_id(t))
            .map(|t| t.config())
        else {
            return Ok(());
        };
        if is_b_leg(e.call) {
            return Ok(());
        }
        let wanted = match e.kind {
            CallEventKind::Parked => e.event.is_some() && self.parked_on_control_number(e),
            CallEventKind::Answered => e.event.is_some(),
            // A real hangup after reconciliation already ended the call (it
            // was alive after all, and `show channels` lagged) has had its
            // `call.hangup`: one per call.
            CallEventKind::HangupComplete => e.event.is_none() || !e.call.reconciled,
            _ => false,
        };
        if !wanted {
            return Ok(());
        }
        let sequence = self.store.next_call_sequence(&e.call.uuid).await?;
        let at = e
            .call
            .ended_at
            .filter(|_| e.kind == CallEventKind::HangupComplete);
        let occurred_at = at
            .or_else(|| {
                e.event
                    .and_then(|ev| ev.timestamp_us())
                    .and_then(|us| chrono::DateTime::from_timestamp_micros(us as i64))
            })
            .unwrap_or_else(chrono::Utc::now);
        let call = CallInfo::from_record(e.call, sequence);
        let envelope = match e.kind {
            CallEventKind::Parked => {
                let data = CallInitiatedData {
                    call,
                    caller_name: e.call.caller_display_name.clone(),
                };
                Envelope::new(&tenant.id, occurred_at, &data)
            }
            CallEventKind::Answered => {
                let data = CallAnsweredData {
                    call,
                    answered_at: e.call.answered_at,
                };
                Envelope::new(&tenant.id, occurred_at, &data)
            }
            _ => {
                let data = CallHangupData::from_record(e.call, sequence);
                Envelope::new(&tenant.id, occurred_at, &data)
            }
        }
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Every instance handles every event (and a retry may handle one
        // again): each instance derives the same id, the outbox queues it once.
        let key = format!("{}/{:?}", e.call.uuid, envelope.event_type);
        let id = derived_event_id(e.call.created_at, &key);
        let result = self.outbox.emit(tenant, &envelope.with_id(id)).await;
        result.map(|_| ()).map_err(store_error)
    }
}
