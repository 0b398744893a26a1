//! Helpers shared by integration tests that need real backing services.
#![allow(dead_code)]

pub mod certs;
pub mod compose;
pub mod receiver;
pub mod redis;
pub mod redis_tls;
pub mod sentinel;
pub mod stack;
#[macro_use]
pub mod store_runner;
