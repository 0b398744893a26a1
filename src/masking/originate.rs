//! `POST /v1/calls/originate` for a live session: ring the first party
//! showing the masked number, and once it answers ring the other party
//! showing the masked number and bridge them, in one
//! `bgapi originate {…}<first> &bridge({…}<second>)`.
//!
//! This file owns that flow's order: check the session is live, build and
//! check the whole command, choose the first leg's UUID and record it (call
//! binding, originate operation, the session's active call) before anything
//! is sent, then hand it to the switch, undoing the records if no node took
//! it; and how the originate's operation ends (`settle_originates`, called
//! by `handler` from the first leg's events), announced as `command.result`.
//! It must not format ESL text (the typed builders and `dial` do), nor read
//! call events itself.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::dial;
use super::error::MaskingError;
use super::model::{OriginateAccepted, OriginateRequest, SessionRef};
use super::service::{is_live, Masking};
use crate::esl::api::{ApiCommand, Originate, OriginateTarget};
use crate::store::{OperationRecord, OperationStatus, StoreError};
use crate::switch::SwitchError;

/// The `command` of the operation an originate registers.
pub const ORIGINATE_COMMAND: &str = "originate";

impl Masking {
    /// Places the session's call. The caller checks draining first.
    pub async fn originate(
        &self,
        tenant: &str,
        request: OriginateRequest,
    ) -> Result<OriginateAccepted, MaskingError> {
        let session_ref = SessionRef::parse("session", &request.session)?;
        let t = self.tenant(tenant)?;
        let session = self
            .store
            .get_session(tenant, session_ref.as_str())
            .await?
            .ok_or_else(|| MaskingError::NotFound(session_ref.as_str().to_owned()))?;
        let now = self.clock.now();
        if !is_live(&session, now) {
            return Err(MaskingError::NotLive(session.session_ref));
        }

        let uuid = Uuid::new_v4();
        let call_id = uuid.to_string();
        let first = request.first.number_in(&session);
        let second = request.first.other().number_in(&session);
        let first_leg = dial::originate_to(
            t,
            &session,
            first,
            &[
                ("origination_uuid", &call_id),
                ("ignore_early_media", "true"),
            ],
        )?;
        let second_leg = dial::originate_to(t, &session, second, &[])?;
        let originate = Originate::new(first_leg, OriginateTarget::Bridge(second_leg));
        ApiCommand::originate(&originate)?; // the whole line builds: nothing can fail later
        if !self.switch.any_connected() {
            // Refuse before recording anything (a node may still drop between
            // here and the send; then the records are undone below).
            return Err(MaskingError::Switch(SwitchError::NoNodeConnected));
        }

        let operation_id = Uuid::new_v4().to_string();
        let timeout = self.options.originate_timeout;
        let op = OperationRecord {
            id: operation_id.clone(),
            tenant: tenant.to_owned(),
            command_uid: operation_id.clone(),
            command: ORIGINATE_COMMAND.to_owned(),
            call_id: call_id.clone(),
            request_hash: hex::encode(Sha256::digest(
                format!("{}|{:?}", session.session_ref, request.first).as_bytes(),
            )),
            status: OperationStatus::InProgress,
            detail: None,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            created_at: now,
            deadline: now + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX),
            completed_at: None,
        };
        self.store
            .register_operation(op, self.options.binding_ttl)
            .await?;
        if self
            .call_started(tenant, &session, &call_id)
            .await?
            .is_none()
        {
            self.fail_operation(tenant, &operation_id, "the session completed")
                .await;
            return Err(MaskingError::NotLive(session.session_ref));
        }

        match self.switch.originate(&originate, uuid).await {
            Ok(placed) => {
                tracing::info!(tenant, session = %session.session_ref, call_id, node = %placed.node, "masked originate sent");
                metrics::counter!("fsgate_session_originates_total", "result" => "sent")
                    .increment(1);
                Ok(OriginateAccepted {
                    call_id,
                    operation_id,
                    status: "in_progress".to_owned(),
                })
            }
            Err(error) => {
                metrics::counter!("fsgate_session_originates_total", "result" => "not_sent")
                    .increment(1);
                self.fail_operation(tenant, &operation_id, &error.to_string())
                    .await;
                if let Err(e) = self
                    .call_ended(tenant, &session.session_ref, &call_id)
                    .await
                {
                    tracing::warn!(tenant, call_id, %e, "could not release the unsent call from its session");
                }
                Err(MaskingError::Switch(error))
            }
        }
    }

    async fn fail_operation(&self, tenant: &str, id: &str, detail: &str) {
        if let Err(e) = self
            .finish_operation(tenant, id, OperationStatus::Failed, detail)
            .await
        {
            tracing::warn!(tenant, operation = id, %e, "could not record the originate's failure");
        }
    }

    /// Sets an originate operation's result; only the caller that set it
    /// (across instances) has its `command.result` queued, with the result.
    async fn finish_operation(
        &self,
        tenant: &str,
        id: &str,
        status: OperationStatus,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.finish_originate(tenant, id, status, detail)
            .await
            .map(|_| ())
    }

    /// Settles the in-progress originate operations of call `uuid` (its
    /// first leg bridged: succeeded; it ended first: failed).
    pub(super) async fn settle_originates(
        &self,
        tenant: &str,
        uuid: &str,
        status: OperationStatus,
        detail: &str,
    ) -> Result<(), StoreError> {
        let pending = self
            .store
            .pending_operations_for_call(tenant, uuid, Some(ORIGINATE_COMMAND))
            .await?;
        for op in pending {
            self.finish_operation(tenant, &op.id, status, detail)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::model::Party;
    use crate::masking::service::tests::{create_req, fixture};
    use crate::store::SessionState;

    #[tokio::test]
    async fn refused_for_sessions_that_are_not_live_or_not_ours() {
        let f = fixture().await;
        let s = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        let req = |r: &str| OriginateRequest {
            session: r.to_owned(),
            first: Party::A,
        };
        let e = f
            .masking
            .originate("beta", req(&s.session_ref))
            .await
            .unwrap_err();
        assert_eq!(e.status(), 404);
        let e = f
            .masking
            .originate("acme", req("ses_{x}"))
            .await
            .unwrap_err();
        assert_eq!((e.status(), e.field()), (400, Some("session")));
        f.masking.complete("acme", &s.session_ref).await.unwrap();
        let e = f
            .masking
            .originate("acme", req(&s.session_ref))
            .await
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (409, "session_not_live"));
    }

    #[tokio::test]
    async fn no_node_means_nothing_is_recorded() {
        let f = fixture().await;
        let s = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        let e = f
            .masking
            .originate(
                "acme",
                OriginateRequest {
                    session: s.session_ref.clone(),
                    first: Party::B,
                },
            )
            .await
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (503, "switch_unavailable"));
        let now = f.masking.get("acme", &s.session_ref).await.unwrap();
        assert_eq!(now.state, SessionState::Open);
        assert!(now.active_calls.is_empty());
        assert!(f.events.all().is_empty());
    }
}
