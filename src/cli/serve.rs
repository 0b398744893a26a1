//! `fsgate serve --config FILE`: load and validate the configuration, then run
//! the daemon.
//!
//! Owns only the refusal to start: a configuration with problems is reported
//! exactly as `fsgate check-config` reports it, and the daemon does not start.
//! Everything after that is [`crate::daemon::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config;
use crate::telemetry::LogFormat;

/// Arguments of `fsgate serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The configuration file (TOML); FSGATE__SECTION__KEY variables override
    /// its keys.
    #[arg(long, short = 'c', env = "FSGATE_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}

/// Runs the daemon; exit 1 when the configuration has problems.
pub async fn run(args: ServeArgs, log: LogFormat) -> ExitCode {
    match config::load(&args.config) {
        Ok(config) => {
            tracing::info!(file = %args.config.display(), "configuration loaded");
            crate::daemon::run(config, log).await
        }
        Err(errors) => {
            eprint!("{}", super::check_config::report(&args.config, &errors));
            eprintln!(
                "fsgate serve: not starting; fix the configuration (fsgate check-config FILE)"
            );
            ExitCode::FAILURE
        }
    }
}
