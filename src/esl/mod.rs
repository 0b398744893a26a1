//! The FreeSWITCH Event Socket protocol, and nothing else.
//!
//! This module owns the wire: framing ([`frame`], [`codec`]), the events
//! FreeSWITCH sends ([`event`]), the commands we send ([`command`], [`api`],
//! [`dialstring`]), one authenticated connection with reply correlation
//! ([`connection`]) and the per-node supervisor that keeps it alive ([`node`]).
//! It must not know about tenants, sessions or calls: those live above, in
//! `switch` and the domain modules, which never format ESL text themselves.
//!
//! The protocol facts it relies on are in `docs/esl-protocol.md`, distilled from
//! FreeSWITCH's source and checked against the real recordings in
//! `tests/fixtures/captures/`; where the two disagreed, the recordings win.

pub mod api;
pub mod cause;
pub mod codec;
pub mod command;
pub mod connection;
pub mod dialstring;
pub mod event;
pub mod frame;
mod json;
pub mod node;
mod queue;
pub mod request;
mod scan;
pub mod urlenc;

pub use cause::HangupCause;
pub use codec::{EslCodec, Message};
pub use event::{Event, EventFormat};
pub use frame::{ContentType, Frame};
