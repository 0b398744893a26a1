//! Configuration: the file's shape ([`model`]), loading with environment
//! overrides ([`load`]), and validation that explains every problem at once
//! ([`validate`]), then the certificate, key and CA files it names
//! ([`files`]).

pub mod files;
pub mod load;
pub mod model;
pub mod validate;

pub use load::{load, load_str, load_with_env, ConfigErrors, ConfigProblem, ENV_PREFIX};
pub use model::*;
pub use validate::validate;
