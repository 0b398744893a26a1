//! The shapes of the call-control API (seed 002): the three commands' request
//! bodies, the `202` deferred-operation envelope, and an operation as
//! `GET /api/v1/operations/{id}` shows it.
//!
//! This file owns the wire names only. What a valid body is lives in
//! [`super::validate`]; what a command does in [`super::service`]. It must
//! not read the store or talk to the switch.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::esl::HangupCause;
use crate::store::{OperationRecord, OperationStatus};

use super::validate::MAX_CAUSE;

/// The three commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// `uuid_answer`.
    Answer,
    /// `uuid_kill <uuid> <CAUSE>`.
    Hangup,
    /// `uuid_transfer` back to the dialplan.
    Disconnect,
}

impl CommandKind {
    /// The name stored with the operation and sent in `command.result`.
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::Answer => "answer",
            CommandKind::Hangup => "hangup",
            CommandKind::Disconnect => "disconnect",
        }
    }
}

/// Body of `answer` and `disconnect`: only the optional idempotency key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// Idempotency key (≤ 128, `^[a-zA-Z0-9._-]+$`); a UUID is generated
    /// when omitted. The same key from the same tenant within 24 h returns
    /// the same operation and never runs the command twice.
    #[schema(
        example = "ans-1",
        min_length = 1,
        max_length = 128,
        pattern = r"^[a-zA-Z0-9._-]+$"
    )]
    pub command_uid: Option<String>,
}

/// Body of `hangup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HangupRequest {
    /// Idempotency key, as for every command.
    #[schema(
        example = "hup-1",
        min_length = 1,
        max_length = 128,
        pattern = r"^[a-zA-Z0-9._-]+$"
    )]
    pub command_uid: Option<String>,
    /// Q.850 cause name FreeSWITCH knows (≤ 64, `^[A-Z_]+$`); default
    /// `NORMAL_CLEARING`.
    #[schema(schema_with = cause_schema)]
    pub cause: Option<String>,
}

/// `cause`: one of the names in FreeSWITCH's cause chart (each ≤ 64 and
/// `^[A-Z_]+$`); any other name is a 400.
fn cause_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .description(Some(
            "Q.850 cause name FreeSWITCH knows (≤ 64, `^[A-Z_]+$`); default `NORMAL_CLEARING`.",
        ))
        .enum_values(Some(
            HangupCause::all()
                .map(|c| serde_json::Value::from(c.name()))
                .chain([serde_json::Value::Null]),
        ))
        .max_length(Some(MAX_CAUSE))
        .pattern(Some("^[A-Z_]+$"))
        .examples([serde_json::json!("USER_BUSY")])
        .build()
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// Accepted, no result yet.
    InProgress,
    /// Done.
    Succeeded,
    /// FreeSWITCH refused, or the command could not be delivered.
    Failed,
    /// No confirmation in time.
    Timeout,
}

impl From<OperationStatus> for OperationState {
    fn from(s: OperationStatus) -> OperationState {
        match s {
            OperationStatus::InProgress => OperationState::InProgress,
            OperationStatus::Succeeded => OperationState::Succeeded,
            OperationStatus::Failed => OperationState::Failed,
            OperationStatus::Timeout => OperationState::Timeout,
        }
    }
}

/// The `202 Accepted` answer of every command: the result follows in a
/// `command.result` webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The operation (the same one for a repeated `command_uid`).
    #[schema(example = "a1b2c3d4-e5f6-7890-abcd-ef1234567890")]
    pub operation_id: String,
    /// `in_progress` for a new command; a repeated `command_uid` shows the
    /// operation's current status.
    pub status: OperationState,
    /// How long the command may take before its result is `timeout`.
    #[schema(example = 2000)]
    pub timeout_ms: u64,
}

impl From<&OperationRecord> for Accepted {
    fn from(op: &OperationRecord) -> Accepted {
        Accepted {
            operation_id: op.id.clone(),
            status: op.status.into(),
            timeout_ms: op.timeout_ms,
        }
    }
}

/// An operation, as `GET /api/v1/operations/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    /// Operation id.
    pub operation_id: String,
    /// The idempotency key.
    pub command_uid: String,
    /// `answer`, `hangup` or `disconnect`.
    pub command: String,
    /// The call it acts on.
    pub call_id: String,
    /// Where it is.
    pub status: OperationState,
    /// FreeSWITCH's words, or why it could not be sent or confirmed.
    pub detail: Option<String>,
    /// The timeout announced.
    pub timeout_ms: u64,
    /// Accepted.
    pub created_at: DateTime<Utc>,
    /// Result time.
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<&OperationRecord> for Operation {
    fn from(op: &OperationRecord) -> Operation {
        Operation {
            operation_id: op.id.clone(),
            command_uid: op.command_uid.clone(),
            command: op.command.clone(),
            call_id: op.call_id.clone(),
            status: op.status.into(),
            detail: op.detail.clone(),
            timeout_ms: op.timeout_ms,
            created_at: op.created_at,
            completed_at: op.completed_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_has_the_seed_shape() {
        let a = Accepted {
            operation_id: "op".into(),
            status: OperationState::InProgress,
            timeout_ms: 2000,
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"operation_id": "op", "status": "in_progress", "timeout_ms": 2000})
        );
        assert!(
            serde_json::from_value::<HangupRequest>(serde_json::json!({"casue": "X"})).is_err()
        );
        assert!(
            serde_json::from_value::<CommandRequest>(serde_json::json!({"cause": "X"})).is_err()
        );
    }
}
