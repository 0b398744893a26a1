//! fsgate: a daemon beside FreeSWITCH that turns it into a programmable voice platform.
pub mod calls;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod esl;
pub mod http;
pub mod masking;
pub mod pipeline;
pub mod sim;
pub mod store;
pub mod switch;
pub mod telemetry;
pub mod tenants;
pub mod webhooks;
