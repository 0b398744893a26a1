//! The records behind the REST API's `Idempotency-Key` header: what the
//! store keeps per `(tenant, endpoint, key)` and the three atomic steps on
//! them ([`super::Store::begin_idempotent`], `finish_idempotent`,
//! `release_idempotent`).
//!
//! A record is created `in_progress` by the first request with a key (held
//! for a short lease, so that a daemon dying mid-request does not block the
//! key for a day), then either holds that request's response (kept for the
//! key's TTL, 24 h) or is released so that a retry runs again. Every step
//! names the attempt that owns the record ([`IdempotencyAttempt::owner`]): a
//! late finish or release of an attempt whose lease ran out and whose key
//! was taken by another attempt changes nothing.
//!
//! This file owns the plain data only; which responses are kept, the
//! fingerprint and the HTTP side are `crate::idempotency`'s.

use serde::{Deserialize, Serialize};

/// Where an idempotency record lives: one tenant's key on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyScope {
    /// The authenticated tenant.
    pub tenant: String,
    /// A short stable name of the endpoint (e.g. `v1.sessions`): a key is
    /// scoped per endpoint, so one key on two endpoints is two records.
    pub endpoint: String,
    /// The client's `Idempotency-Key` (1–255 printable ASCII, no spaces).
    pub key: String,
}

/// Who starts a record, and for what request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyAttempt {
    /// The request's fingerprint (SHA-256 hex of method, path and canonical
    /// body): the same key with another fingerprint is a misuse.
    pub fingerprint: String,
    /// A random id of this attempt; only it may finish or release the
    /// record it created.
    pub owner: String,
}

/// A response as it is replayed: status, the headers that matter, body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers replayed with it (`content-type`, …), names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (the API's bodies are JSON text).
    pub body: String,
}

/// An idempotency record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The fingerprint of the request that created it.
    pub fingerprint: String,
    /// The attempt that created it.
    pub owner: String,
    /// The first response, once that attempt finished; `None` while it is
    /// in progress.
    pub response: Option<StoredResponse>,
}

/// What [`super::Store::begin_idempotent`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// No record existed: this attempt created one, `in_progress`, and must
    /// finish or release it.
    Started,
    /// A record exists (in progress or done); nothing was changed.
    Existing(IdempotencyRecord),
}
