//! Call control (seed 002): answer, hang up and disconnect a live call, each
//! a deferred operation with exactly one `command.result`.
//!
//! This module owns the command bodies and their rules ([`model`],
//! [`validate`]), idempotency and dispatch to the node holding the call
//! ([`service`]), the single result of each operation ([`results`]), the
//! CHANNEL_ANSWER confirmation of `answer` ([`handler`]) and the timeouts
//! ([`timeouts`]), `command.result` through the outbox ([`webhook`]), and the endpoints
//! ([`routes`]). It acts only on calls the call table holds for the
//! tenant; it never formats ESL text (the switch does) and emits only
//! `command.result` (lifecycle webhooks are the lifecycle handler's).

pub mod handler;
pub mod model;
pub mod results;
pub mod routes;
pub mod service;
pub mod timeouts;
pub mod validate;
pub mod webhook;

pub use handler::AnswerConfirmation;
pub use model::{Accepted, CommandKind, CommandRequest, HangupRequest, Operation, OperationState};
pub use results::{CollectingSink, ResultSink, Results, SinkError};
pub use service::{ControlError, ControlService, ControlSettings};
pub use webhook::OutboxResults;
