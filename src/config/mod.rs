//! Configuration: the file's shape ([`model`]), loading with environment
//! overrides, and validation that explains every problem at once.

pub mod model;

pub use model::*;
