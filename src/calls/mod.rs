//! Call sessions (seed 001): a tenant's live calls, one call by id, and
//! click-to-call; and the lifecycle webhooks every tenant call produces.
//!
//! A call session is one call on FreeSWITCH; its id is the UUID of the call's
//! first leg (bridged B-legs are tracked but are not sessions), and its state
//! is the call table's record (filled from channel events by the pipeline).
//! This module owns the create request and its rules ([`model`],
//! [`validate`]), the typed `originate` a click-to-call becomes ([`dial`]),
//! the service that records a call before sending it and reads calls back for
//! their tenant only ([`service`]), its endpoints ([`routes`]), and the `call.*` webhooks
//! ([`lifecycle`]). Call-control commands are [`crate::control`]'s.

pub mod dial;
pub mod lifecycle;
pub mod model;
pub mod routes;
pub mod service;
pub mod validate;

pub use model::{
    AdditionalHeader, CallSession, CallSessionPage, CreateCallRequest, HeaderDirection,
};
pub use service::{CallError, CallService, CallSettings};
pub use validate::{InvalidCall, ValidCall};
