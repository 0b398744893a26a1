//! Why a masked-session request failed, as one typed error.
//!
//! This file owns [`MaskingError`] and, for each variant, the HTTP status,
//! the stable machine code and the offending field that the API shows, so
//! that every handler maps failures the same way. It must not build HTTP
//! responses itself (the routes turn these into the shared error envelope)
//! nor decide when a failure happens.

use std::fmt;

use crate::esl::dialstring::CommandError;
use crate::store::{CreateSessionError, StoreError};
use crate::switch::SwitchError;

/// A masked-session operation that did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MaskingError {
    /// A field is malformed (400 `bad_request`).
    #[error("{field} {message}")]
    Invalid {
        /// The request field.
        field: &'static str,
        /// What is wrong, completing "`<field>` …".
        message: String,
    },
    /// `ttl_minutes` is above the tenant's cap (422 `ttl_above_maximum`).
    #[error(
        "ttl_minutes {requested} is above this tenant's maximum of {max} minutes; \
         ask for {max} or less (or ask us to raise the cap)"
    )]
    TtlAboveMaximum {
        /// What was asked.
        requested: i64,
        /// The tenant's `max_ttl_minutes`.
        max: u32,
    },
    /// Every number of the tenant's pool is held by a live session
    /// (409 `pool_exhausted`).
    #[error(
        "every masked number of this tenant's pool is held by a live session; \
         complete a session or retry later"
    )]
    PoolExhausted,
    /// No such session for this tenant (404 `not_found`; also another
    /// tenant's ref).
    #[error("session {0} not found")]
    NotFound(String),
    /// The session is completed or its TTL has passed (409 `session_not_live`).
    #[error("session {0} is not live (completed or expired): it cannot place calls")]
    NotLive(String),
    /// The state store failed (503 `store_unavailable`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No FreeSWITCH node took the command (503 `switch_unavailable`).
    #[error("the call could not be placed: {0}")]
    Switch(#[from] SwitchError),
    /// The tenant's configuration cannot produce a valid dial string
    /// (500 `internal`; details in the log).
    #[error("the tenant's dial_string template does not give a valid dial string: {0}")]
    DialString(#[from] CommandError),
    /// The tenant the request authenticated as is not configured (500).
    #[error("tenant {0} is not configured")]
    UnknownTenant(String),
}

impl From<CreateSessionError> for MaskingError {
    fn from(e: CreateSessionError) -> Self {
        match e {
            CreateSessionError::PoolExhausted => MaskingError::PoolExhausted,
            // Only reaches here after the retries with fresh refs failed.
            CreateSessionError::DuplicateRef => MaskingError::Store(StoreError::Corrupt(
                "session ref collided repeatedly".into(),
            )),
            CreateSessionError::Store(s) => MaskingError::Store(s),
        }
    }
}

impl MaskingError {
    /// A malformed field.
    pub fn invalid(field: &'static str, message: impl fmt::Display) -> MaskingError {
        MaskingError::Invalid {
            field,
            message: message.to_string(),
        }
    }

    /// The HTTP status the API answers.
    pub fn status(&self) -> u16 {
        match self {
            MaskingError::Invalid { .. } => 400,
            MaskingError::TtlAboveMaximum { .. } => 422,
            MaskingError::PoolExhausted | MaskingError::NotLive(_) => 409,
            MaskingError::NotFound(_) => 404,
            MaskingError::Store(_) | MaskingError::Switch(_) => 503,
            MaskingError::DialString(_) | MaskingError::UnknownTenant(_) => 500,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            MaskingError::Invalid { .. } => "bad_request",
            MaskingError::TtlAboveMaximum { .. } => "ttl_above_maximum",
            MaskingError::PoolExhausted => "pool_exhausted",
            MaskingError::NotFound(_) => "not_found",
            MaskingError::NotLive(_) => "session_not_live",
            MaskingError::Store(_) => "store_unavailable",
            MaskingError::Switch(_) => "switch_unavailable",
            MaskingError::DialString(_) | MaskingError::UnknownTenant(_) => "internal",
        }
    }

    /// The request field at fault, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            MaskingError::Invalid { field, .. } => Some(field),
            MaskingError::TtlAboveMaximum { .. } => Some("ttl_minutes"),
            _ => None,
        }
    }
}
