//! Call sessions (seed 001): a tenant's live calls, one call by id, and
//! click-to-call.
//!
//! A call session is one call on FreeSWITCH; its id is the UUID of the call's
//! first leg, and its state is the call table's record (filled from channel
//! events by the pipeline). This module owns the create request and its rules
//! ([`model`], [`validate`]), the typed `originate` a click-to-call becomes
//! ([`dial`]), and the service that records a call before sending it and
//! reads calls back for their tenant only ([`service`]). Webhooks of a call's
//! life (answered, hangup) are the lifecycle handler's, not this module's;
//! call-control commands are [`crate::control`]'s.

pub mod dial;
pub mod model;
pub mod service;
pub mod validate;

pub use model::{
    AdditionalHeader, CallSession, CallSessionPage, CreateCallRequest, HeaderDirection,
};
pub use service::{CallError, CallService, CallSettings};
pub use validate::{InvalidCall, ValidCall};
