//! The rules of a command request: `command_uid` and `cause`, and what makes
//! two requests "the same" for idempotency.
//!
//! This file owns [`Command`] (a request that passed the rules), the
//! idempotency key's shape, the request hash that tells a replay from a
//! conflicting reuse of a key, and the operation id derived from the key. It
//! must not read the store or send anything.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::esl::HangupCause;

use super::model::{CommandKind, CommandRequest, HangupRequest};

/// Why a command request is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidCommand {
    /// The request field.
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidCommand {
    InvalidCommand {
        field,
        message: message.into(),
    }
}

/// Longest `command_uid`.
pub const MAX_COMMAND_UID: usize = 128;
/// Longest `cause`.
pub const MAX_CAUSE: usize = 64;

/// A command that passed the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Answer the call.
    Answer,
    /// Hang it up with this cause.
    Hangup(HangupCause),
    /// Send it back to the dialplan.
    Disconnect,
}

impl Command {
    /// Which command.
    pub fn kind(self) -> CommandKind {
        match self {
            Command::Answer => CommandKind::Answer,
            Command::Hangup(_) => CommandKind::Hangup,
            Command::Disconnect => CommandKind::Disconnect,
        }
    }

    /// The hash of what the request asks (command and effective parameters),
    /// so that `{}` and `{"cause":"NORMAL_CLEARING"}` are the same hangup.
    pub fn request_hash(self) -> String {
        let text = match self {
            Command::Answer => "answer".to_owned(),
            Command::Hangup(cause) => format!("hangup cause={}", cause.name()),
            Command::Disconnect => "disconnect".to_owned(),
        };
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

/// A validated request: the command and its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInput {
    /// What to do.
    pub command: Command,
    /// The caller's key, or a generated UUID.
    pub command_uid: String,
    /// True when the caller gave the key.
    pub uid_given: bool,
}

/// `^[a-zA-Z0-9._-]+$`, at most 128 characters; a UUID when omitted.
pub fn command_uid(given: Option<&str>) -> Result<(String, bool), InvalidCommand> {
    const FIELD: &str = "command_uid";
    let Some(uid) = given else {
        return Ok((Uuid::new_v4().to_string(), false));
    };
    if uid.is_empty() {
        return Err(invalid(
            FIELD,
            "must not be empty (omit it to get a generated one)",
        ));
    }
    if uid.chars().count() > MAX_COMMAND_UID {
        return Err(invalid(
            FIELD,
            format!("must be at most {MAX_COMMAND_UID} characters"),
        ));
    }
    if let Some(c) = uid
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(
            FIELD,
            format!("contains {c:?}; must match ^[a-zA-Z0-9._-]+$"),
        ));
    }
    Ok((uid.to_owned(), true))
}

/// `^[A-Z_]+$`, at most 64 characters, and a cause name FreeSWITCH knows;
/// `NORMAL_CLEARING` when omitted.
pub fn cause(given: Option<&str>) -> Result<HangupCause, InvalidCommand> {
    const FIELD: &str = "cause";
    let Some(name) = given else {
        return Ok(HangupCause::NORMAL_CLEARING);
    };
    if name.chars().count() > MAX_CAUSE {
        return Err(invalid(
            FIELD,
            format!("must be at most {MAX_CAUSE} characters"),
        ));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        return Err(invalid(
            FIELD,
            "must match ^[A-Z_]+$ (a Q.850 cause name such as USER_BUSY)",
        ));
    }
    HangupCause::from_name(name).ok_or_else(|| {
        invalid(
            FIELD,
            format!("{name} is not one of FreeSWITCH's hangup cause names (e.g. NORMAL_CLEARING, USER_BUSY, CALL_REJECTED)"),
        )
    })
}

/// Checks an `answer` or `disconnect` body.
pub fn plain(kind: CommandKind, req: &CommandRequest) -> Result<CommandInput, InvalidCommand> {
    let (command_uid, uid_given) = command_uid(req.command_uid.as_deref())?;
    let command = match kind {
        CommandKind::Answer => Command::Answer,
        CommandKind::Disconnect => Command::Disconnect,
        CommandKind::Hangup => Command::Hangup(HangupCause::NORMAL_CLEARING),
    };
    Ok(CommandInput {
        command,
        command_uid,
        uid_given,
    })
}

/// Checks a `hangup` body.
pub fn hangup(req: &HangupRequest) -> Result<CommandInput, InvalidCommand> {
    let (command_uid, uid_given) = command_uid(req.command_uid.as_deref())?;
    Ok(CommandInput {
        command: Command::Hangup(cause(req.cause.as_deref())?),
        command_uid,
        uid_given,
    })
}

/// The operation id of `(tenant, command_uid)`: derived, so that a repeated
/// key finds its operation with one read, before anything else is checked.
pub fn operation_id(tenant: &str, command_uid: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"fsgate operation\0");
    h.update((tenant.len() as u64).to_be_bytes());
    h.update(tenant.as_bytes());
    h.update(command_uid.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_uid_rules() {
        assert_eq!(
            command_uid(Some("ans-1.a_B")).unwrap(),
            ("ans-1.a_B".into(), true)
        );
        let (generated, given) = command_uid(None).unwrap();
        assert!(!given && Uuid::parse_str(&generated).is_ok());
        assert!(command_uid(Some(&"a".repeat(128))).is_ok());
        for bad in ["", "a b", "a/b", "a\nb", "é", "a,b", "${x}"] {
            assert_eq!(
                command_uid(Some(bad)).unwrap_err().field,
                "command_uid",
                "{bad:?}"
            );
        }
        assert_eq!(
            command_uid(Some(&"a".repeat(129))).unwrap_err().field,
            "command_uid"
        );
    }

    #[test]
    fn cause_rules() {
        assert_eq!(cause(None).unwrap(), HangupCause::NORMAL_CLEARING);
        assert_eq!(cause(Some("USER_BUSY")).unwrap(), HangupCause::USER_BUSY);
        for bad in [
            "user_busy",
            "",
            "USER BUSY",
            "17",
            "NOT_A_CAUSE",
            "USER_BUSY\n",
        ] {
            assert_eq!(cause(Some(bad)).unwrap_err().field, "cause", "{bad:?}");
        }
        assert!(cause(Some(&"A".repeat(65)))
            .unwrap_err()
            .message
            .contains("64"));
    }

    #[test]
    fn hashes_compare_effective_requests() {
        let default = hangup(&HangupRequest::default()).unwrap().command;
        let explicit = hangup(&HangupRequest {
            command_uid: None,
            cause: Some("NORMAL_CLEARING".into()),
        })
        .unwrap()
        .command;
        assert_eq!(default.request_hash(), explicit.request_hash());
        assert_ne!(
            default.request_hash(),
            Command::Hangup(HangupCause::USER_BUSY).request_hash()
        );
        assert_ne!(
            Command::Answer.request_hash(),
            Command::Disconnect.request_hash()
        );
    }

    #[test]
    fn operation_ids_are_per_tenant_and_key() {
        let a = operation_id("acme", "k1");
        assert_eq!(a, operation_id("acme", "k1"));
        assert_ne!(a, operation_id("acme", "k2"));
        assert_ne!(a, operation_id("other", "k1"));
        assert_ne!(operation_id("a", "b\0c"), operation_id("a\0b", "c"));
        assert!(Uuid::parse_str(&a).is_ok());
    }
}
