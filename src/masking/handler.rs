//! The masked-session reaction to call events: a call of a session that
//! hangs up (CHANNEL_HANGUP_COMPLETE, or a hangup inferred by
//! reconciliation) leaves the session's active calls, and the session goes
//! back to `open` when it was the last; the first leg of a session originate
//! settles that originate's operation (bridged: succeeded; ended before:
//! failed with the cause).
//!
//! This file owns only that mapping from [`CallEvent`]s to domain steps. The
//! pipeline calls it once per event across all instances; every step is
//! idempotent so a retried event changes nothing twice. It must not emit
//! `call.*` webhooks (the call-lifecycle handler does, with the session ref
//! taken from the call record) nor start calls.

use std::sync::Arc;

use async_trait::async_trait;

use super::service::Masking;
use crate::pipeline::calltable::is_b_leg;
use crate::pipeline::{CallEvent, CallEventHandler, CallEventKind};
use crate::store::{OperationStatus, StoreError};

/// The [`CallEventHandler`] of masked sessions.
#[derive(Debug, Clone)]
pub struct SessionCallHandler {
    masking: Arc<Masking>,
}

impl SessionCallHandler {
    /// The handler over the domain.
    pub fn new(masking: Arc<Masking>) -> SessionCallHandler {
        SessionCallHandler { masking }
    }
}

#[async_trait]
impl CallEventHandler for SessionCallHandler {
    async fn on_call_event(&self, event: &CallEvent<'_>) -> Result<(), StoreError> {
        let call = event.call;
        let (Some(tenant), Some(session_ref)) = (&call.tenant, &call.session_ref) else {
            return Ok(());
        };
        if is_b_leg(call) {
            return Ok(()); // a session's calls are counted by their first leg
        }
        match event.kind {
            CallEventKind::Bridged => {
                self.masking
                    .settle_originates(tenant, &call.uuid, OperationStatus::Succeeded, "bridged")
                    .await
            }
            CallEventKind::HangupComplete => {
                self.masking
                    .call_ended(tenant, session_ref, &call.uuid)
                    .await?;
                let cause = call.hangup_cause.as_deref().unwrap_or("NORMAL_CLEARING");
                self.masking
                    .settle_originates(tenant, &call.uuid, OperationStatus::Failed, cause)
                    .await
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::service::tests::{create_req, fixture, start};
    use crate::store::{CallDirection, CallRecord, CallState, SessionState};

    fn call(uuid: &str, tenant: Option<&str>, session: Option<&str>) -> CallRecord {
        CallRecord {
            uuid: uuid.into(),
            tenant: tenant.map(Into::into),
            node: "fs1".into(),
            direction: CallDirection::Inbound,
            state: CallState::Ended,
            caller: None,
            caller_display_name: None,
            callee: None,
            other_leg: None,
            created_at: start(),
            answered_at: None,
            ended_at: Some(start()),
            hangup_cause: Some("NORMAL_CLEARING".into()),
            q850: Some(16),
            sip_code: None,
            duration_s: None,
            billsec: None,
            user_data: None,
            session_ref: session.map(Into::into),
            reconciled: false,
            extra: Default::default(),
        }
    }

    #[tokio::test]
    async fn the_last_call_ending_reopens_the_session_once() {
        let f = fixture().await;
        let s = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        f.masking
            .route(
                &s.masked_number,
                "15557770001",
                "0a1b2c3d-0000-4000-8000-000000000001",
            )
            .await
            .unwrap();
        let h = SessionCallHandler::new(Arc::new(f.masking));
        let a = call(
            "0a1b2c3d-0000-4000-8000-000000000001",
            Some("acme"),
            Some(&s.session_ref),
        );
        let b_leg = call("b-leg", Some("acme"), Some(&s.session_ref));
        let stranger = call("other", None, None);
        for c in [&b_leg, &stranger] {
            h.on_call_event(&CallEvent {
                node: "fs1",
                kind: CallEventKind::HangupComplete,
                event: None,
                call: c,
            })
            .await
            .unwrap();
        }
        assert_eq!(
            f.store
                .get_session("acme", &s.session_ref)
                .await
                .unwrap()
                .unwrap()
                .state,
            SessionState::Active,
            "the b-leg is not the session's call"
        );
        for _ in 0..2 {
            h.on_call_event(&CallEvent {
                node: "fs1",
                kind: CallEventKind::HangupComplete,
                event: None,
                call: &a,
            })
            .await
            .unwrap();
        }
        assert_eq!(
            f.events.states(),
            [
                (s.session_ref.clone(), SessionState::Active),
                (s.session_ref.clone(), SessionState::Open)
            ]
        );
    }
}
