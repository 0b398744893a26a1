//! The answer confirmation: the call's own CHANNEL_ANSWER finishes its
//! pending `answer` operations.
//!
//! This file owns [`AnswerConfirmation`], a pipeline handler (so it runs
//! once per event across all daemon instances): on CHANNEL_ANSWER every
//! in-progress `answer` of that call succeeds; when the call is torn down
//! first (CHANNEL_HANGUP_COMPLETE) they fail, naming the hangup cause, instead
//! of waiting for the timeout. It must not emit lifecycle webhooks
//! (`call.answered` is the lifecycle handler's) nor send anything.

use async_trait::async_trait;

use crate::pipeline::{CallEvent, CallEventHandler, CallEventKind};
use crate::store::{OperationStatus, StoreError};

use super::model::CommandKind;
use super::results::Results;

/// Finishes pending answers from call events.
#[derive(Clone)]
pub struct AnswerConfirmation {
    results: Results,
}

impl AnswerConfirmation {
    /// A handler finishing through `results`.
    pub fn new(results: Results) -> AnswerConfirmation {
        AnswerConfirmation { results }
    }
}

#[async_trait]
impl CallEventHandler for AnswerConfirmation {
    async fn on_call_event(&self, event: &CallEvent<'_>) -> Result<(), StoreError> {
        let (status, detail) = match event.kind {
            CallEventKind::Answered => (OperationStatus::Succeeded, "+OK".to_owned()),
            CallEventKind::HangupComplete => (
                OperationStatus::Failed,
                format!(
                    "the call ended before it was answered ({})",
                    event.call.hangup_cause.as_deref().unwrap_or("hangup")
                ),
            ),
            _ => return Ok(()),
        };
        let Some(tenant) = event.call.tenant.as_deref() else {
            return Ok(());
        };
        let pending = self
            .results
            .store()
            .pending_operations_for_call(tenant, &event.call.uuid, Some(CommandKind::Answer.name()))
            .await?;
        for op in pending {
            self.results
                .finish(tenant, &op.id, status, detail.clone())
                .await?;
        }
        Ok(())
    }
}
