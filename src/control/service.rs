//! Call-control commands as a service: accept, de-duplicate, dispatch to the
//! node holding the call, and give every operation its result.
//!
//! This file owns the order of a command: validate the body; find an
//! operation already registered under the key (a replay, or a conflicting
//! reuse: 409); check that the call is a live call of this tenant (404,
//! before anything is sent); register the operation (exactly one of racing
//! requests wins, the others get the winner's operation); answer `202`; and
//! dispatch in the background. Hangup and disconnect finish right after
//! dispatch; answer finishes when CHANNEL_ANSWER confirms it
//! ([`super::handler`]), at once when the call already was answered, or at
//! its deadline ([`super::timeouts`]). A command that could not be delivered
//! fails with the reason. It must not format ESL text nor know HTTP.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::config::ControlConfig;
use crate::esl::api::Destination;
use crate::esl::dialstring::{CommandError, Token};
use crate::pipeline::calltable::is_b_leg;
use crate::store::{
    CallRecord, CallState, OperationRecord, OperationStatus, Registered, StoreError,
};
use crate::switch::{Outcome, Switch, SwitchError};

use super::model::{Accepted, CommandKind, CommandRequest, HangupRequest, Operation};
use super::results::Results;
use super::validate::{self, Command, CommandInput, InvalidCommand};

/// Why a command request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The body breaks a rule (400).
    #[error(transparent)]
    Invalid(#[from] InvalidCommand),
    /// Not a live call (or operation) of this tenant (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The `command_uid` was used for another command, call or body (409).
    #[error("command_uid {uid:?} was already used for {used_for}; use a new command_uid for a different request")]
    Conflict {
        /// The key.
        uid: String,
        /// What it was used for.
        used_for: String,
    },
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What call control is configured with.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    /// How long a command may take before its result is `timeout`
    /// (`control.answer_timeout_ms`, announced as `timeout_ms`).
    pub timeout: Duration,
    /// How long a `command_uid` stays bound (`control.idempotency_hours`).
    pub idempotency: Duration,
    /// Where `disconnect` sends a call (XML dialplan).
    pub disconnect: Destination,
}

impl ControlSettings {
    /// From the `[control]` section; fails when the extension or context is
    /// not a single dialplan word.
    pub fn from_config(c: &ControlConfig) -> Result<ControlSettings, CommandError> {
        Ok(ControlSettings {
            timeout: Duration::from_millis(c.answer_timeout_ms),
            idempotency: Duration::from_secs(c.idempotency_hours * 3600),
            disconnect: Destination {
                extension: Token::for_field(
                    "control.disconnect_extension",
                    &c.disconnect_extension,
                )?,
                dialplan: Some(Token::new("XML")?),
                context: Some(Token::for_field(
                    "control.disconnect_context",
                    &c.disconnect_context,
                )?),
            },
        })
    }
}

/// The call-control service. Cheap to clone.
#[derive(Clone)]
pub struct ControlService {
    switch: Switch,
    results: Results,
    settings: Arc<ControlSettings>,
    /// Dispatches running (accepted, not yet sent and answered).
    dispatching: Arc<tokio::sync::watch::Sender<usize>>,
}

/// One dispatch counted as running until dropped (also when it panics).
struct Dispatching(Arc<tokio::sync::watch::Sender<usize>>);

impl Dispatching {
    fn start(counter: &Arc<tokio::sync::watch::Sender<usize>>) -> Dispatching {
        counter.send_modify(|n| *n += 1);
        Dispatching(counter.clone())
    }
}

impl Drop for Dispatching {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl ControlService {
    /// A service sending through `switch` and finishing through `results`.
    pub fn new(switch: Switch, results: Results, settings: ControlSettings) -> ControlService {
        ControlService {
            switch,
            results,
            settings: Arc::new(settings),
            dispatching: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// Resolves once no accepted command is still being sent: every command
    /// accepted before the call has reached FreeSWITCH and been answered (or
    /// failed). The signal tests wait on ("nothing else was sent") instead
    /// of sleeping.
    pub async fn dispatches_idle(&self) {
        let mut rx = self.dispatching.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// `answer` or `disconnect`.
    pub async fn plain(
        &self,
        tenant: &str,
        call_id: &str,
        kind: CommandKind,
        req: &CommandRequest,
    ) -> Result<Accepted, ControlError> {
        self.submit(tenant, call_id, validate::plain(kind, req)?)
            .await
    }

    /// `hangup`.
    pub async fn hangup(
        &self,
        tenant: &str,
        call_id: &str,
        req: &HangupRequest,
    ) -> Result<Accepted, ControlError> {
        self.submit(tenant, call_id, validate::hangup(req)?).await
    }

    /// One operation of the tenant.
    pub async fn operation(&self, tenant: &str, id: &str) -> Result<Operation, ControlError> {
        self.results
            .store()
            .get_operation(tenant, id)
            .await?
            .map(|op| Operation::from(&op))
            .ok_or_else(|| ControlError::NotFound(format!("operation {id}")))
    }

    /// Accepts a validated command on `call_id`.
    pub async fn submit(
        &self,
        tenant: &str,
        call_id: &str,
        input: CommandInput,
    ) -> Result<Accepted, ControlError> {
        let store = self.results.store();
        let id = validate::operation_id(tenant, &input.command_uid);
        let hash = input.command.request_hash();
        // Both reads at once: a replay needs only the first, a new command
        // both (one store round trip less on the way to the ESL line).
        let (existing, call) = tokio::join!(
            store.get_operation(tenant, &id),
            self.live_call(tenant, call_id)
        );
        if let Some(op) = existing? {
            return replay(&op, input.command, call_id, &hash);
        }
        let call = call?;
        let now = self.results.clock().now();
        let timeout = self.settings.timeout;
        let op = OperationRecord {
            id,
            tenant: tenant.to_owned(),
            command_uid: input.command_uid,
            command: input.command.kind().name().to_owned(),
            call_id: call.uuid.clone(),
            request_hash: hash.clone(),
            status: OperationStatus::InProgress,
            detail: None,
            timeout_ms: timeout.as_millis() as u64,
            created_at: now,
            deadline: chrono::Duration::from_std(timeout)
                .ok()
                .and_then(|t| now.checked_add_signed(t))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
            completed_at: None,
        };
        match store
            .register_operation(op, self.settings.idempotency)
            .await?
        {
            Registered::Existing(op) => replay(&op, input.command, call_id, &hash),
            Registered::Created(op) => {
                let accepted = Accepted::from(&op);
                let this = self.clone();
                // Counted before the task exists, so that `dispatches_idle`
                // never misses one.
                let counted = Dispatching::start(&self.dispatching);
                tokio::spawn(async move {
                    let _counted = counted;
                    this.dispatch(op, call, input.command).await;
                });
                Ok(accepted)
            }
        }
    }

    /// The tenant's live call session `call_id` (a first leg), or 404.
    async fn live_call(&self, tenant: &str, call_id: &str) -> Result<CallRecord, ControlError> {
        let not_found = || ControlError::NotFound(format!("live call {call_id}"));
        if Uuid::parse_str(call_id).is_err() {
            return Err(not_found());
        }
        self.results
            .store()
            .get_call(call_id)
            .await?
            .filter(|c| {
                c.tenant.as_deref() == Some(tenant) && c.state != CallState::Ended && !is_b_leg(c)
            })
            .ok_or_else(not_found)
    }

    /// Sends the command to the node holding the call and records what came
    /// of it. Never fails: every outcome becomes the operation's result (or,
    /// for an answer, waits for its confirmation).
    async fn dispatch(&self, op: OperationRecord, call: CallRecord, command: Command) {
        let Ok(uuid) = Uuid::parse_str(&call.uuid) else {
            return self
                .finish(&op, OperationStatus::Failed, "not a FreeSWITCH UUID".into())
                .await;
        };
        let node = call.node.as_str();
        let sent = match command {
            Command::Answer => self.switch.answer(node, uuid).await,
            Command::Hangup(cause) => self.switch.hangup(node, uuid, cause).await,
            Command::Disconnect => {
                self.switch
                    .transfer(node, uuid, &self.settings.disconnect)
                    .await
            }
        };
        match sent {
            Ok(Outcome::Ok(text)) if command == Command::Answer => {
                // `+OK` also answers "already answered" (and, for an outbound
                // leg, "nothing to do"): no CHANNEL_ANSWER will follow then.
                match self.results.store().get_call(&call.uuid).await {
                    Ok(Some(c)) if c.state == CallState::Answered => {
                        self.finish(&op, OperationStatus::Succeeded, text).await
                    }
                    Ok(_) => {} // CHANNEL_ANSWER or the deadline decides
                    Err(e) => tracing::warn!(operation = %op.id, error = %e,
                        "could not read the call after answering; CHANNEL_ANSWER or the deadline decides"),
                }
            }
            Ok(Outcome::Ok(text)) => self.finish(&op, OperationStatus::Succeeded, text).await,
            Ok(Outcome::Refused(text)) => self.finish(&op, OperationStatus::Failed, text).await,
            Err(e) => {
                let detail = undelivered(&e);
                self.finish(&op, OperationStatus::Failed, detail).await
            }
        }
    }

    async fn finish(&self, op: &OperationRecord, status: OperationStatus, detail: String) {
        if let Err(e) = self
            .results
            .finish(&op.tenant, &op.id, status, detail)
            .await
        {
            // The deadline task gives it a result once the store is back.
            tracing::warn!(operation = %op.id, error = %e, "could not record a command result");
        }
    }
}

/// The result detail of a command that did not get an answer.
fn undelivered(e: &SwitchError) -> String {
    match e {
        SwitchError::Timeout { .. } | SwitchError::ConnectionLost(_) => {
            format!("could not be delivered (FreeSWITCH may still have run it): {e}")
        }
        _ => format!("could not be delivered: {e}"),
    }
}

/// A key seen before: the same request gets the same operation; anything
/// else is a conflict.
fn replay(
    op: &OperationRecord,
    command: Command,
    call_id: &str,
    hash: &str,
) -> Result<Accepted, ControlError> {
    let same =
        op.command == command.kind().name() && op.call_id == call_id && op.request_hash == hash;
    if same {
        return Ok(Accepted::from(op));
    }
    let used_for = if op.command != command.kind().name() {
        format!("a {} command", op.command)
    } else if op.call_id != call_id {
        format!("a {} command on call {}", op.command, op.call_id)
    } else {
        format!("a {} command with a different body", op.command)
    };
    Err(ControlError::Conflict {
        uid: op.command_uid.clone(),
        used_for,
    })
}
