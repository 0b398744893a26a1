//! Call sessions: live calls as a REST resource (seed 001), and the call
//! lifecycle webhooks every tenant call produces.

pub mod lifecycle;
