//! PLACEHOLDER — the lead replaces this file with the real daemon.
//!
//! `crate::daemon::run` is what `fsgate serve` calls once the configuration
//! has loaded and validated: it owns starting the store, the FreeSWITCH node
//! supervisors, the domain services and the HTTP server, and draining on
//! SIGTERM/SIGINT. This stand-in exists only so that the platform branch
//! (configuration, CLI, HTTP layer) builds on its own; it starts nothing.

use std::process::ExitCode;

use crate::config::Config;
use crate::telemetry::LogFormat;

/// Runs the daemon until a shutdown signal. PLACEHOLDER: logs that the
/// daemon is not assembled in this build and fails.
pub async fn run(config: Config, log: LogFormat) -> ExitCode {
    let _ = log;
    tracing::error!(
        listen = %config.http.listen,
        "the daemon is not assembled in this build (src/daemon.rs is a placeholder)"
    );
    ExitCode::FAILURE
}
