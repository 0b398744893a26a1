//! The `fsgate` command line: one subcommand per job, each in its own file.
//!
//! This module owns argument parsing (clap), logging set-up and exit codes.
//! Subcommands call into the library; none of them holds product logic.

use clap::{Parser, Subcommand};

pub mod check_config;
pub mod demo;
pub mod events;
pub mod hash_key;
pub mod healthcheck;
pub mod serve;
pub mod sim;

pub use crate::telemetry::LogFormat;

/// fsgate: a daemon beside FreeSWITCH that turns it into a programmable voice
/// platform (masked-number sessions, call sessions, call control, webhooks).
#[derive(Debug, Parser)]
#[command(name = "fsgate", version, about, long_about = None)]
pub struct Cli {
    /// Log format for diagnostics on stderr (the level comes from FSGATE_LOG,
    /// e.g. `info,fsgate::esl=debug`).
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: REST API, dialplan lookup, FreeSWITCH connections, webhooks.
    ///
    /// The configuration is loaded and validated first, exactly as
    /// `check-config` does; with any problem the daemon does not start and
    /// every problem is printed (exit status 1). SIGTERM or SIGINT drains and
    /// stops it.
    Serve(serve::ServeArgs),
    /// Validate a configuration file (with FSGATE__* overrides) and explain every problem.
    ///
    /// Exit status 0 when the file is valid (a short summary is printed), 1
    /// when it is not (every problem is printed on stderr with its key path,
    /// e.g. `tenants[acme].masked_numbers[2]`).
    CheckConfig(check_config::CheckConfigArgs),
    /// Print the SHA-256 of an API key, for `api_keys_sha256` in the configuration.
    ///
    /// Example: `printf %s "$KEY" | fsgate hash-key -`
    HashKey(hash_key::HashKeyArgs),
    /// Tail a FreeSWITCH node's events: one line per event, for operators.
    Events(events::EventsArgs),
    /// Run the FreeSWITCH simulator (real Event Socket protocol, no PBX needed).
    Sim(sim::SimArgs),
    /// Walk through the product in one process: simulator, daemon, memory
    /// store and a webhook receiver; prints every API call and webhook.
    ///
    /// Exit status 0 when every step succeeded, 1 on the first failure.
    Demo(demo::DemoArgs),
    /// GET a health URL; exit 0 on 2xx (for container health checks).
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// Parses the command line, runs the subcommand, and returns the exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `events` prints its own notices; library logs would repeat them. The
    // offline tools print their own results.
    let default_level = match cli.command {
        Command::Events(_) => "off",
        Command::CheckConfig(_) | Command::HashKey(_) | Command::Healthcheck(_) => "warn",
        Command::Demo(_) => "error",
        _ => "info",
    };
    crate::telemetry::init_logging(cli.log_format, default_level);
    match cli.command {
        Command::CheckConfig(args) => return check_config::run(args),
        Command::HashKey(args) => return hash_key::run(args),
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fsgate: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args, cli.log_format).await,
            Command::Events(args) => events::run(args).await,
            Command::Sim(args) => sim::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Healthcheck(args) => healthcheck::run(args).await,
            Command::CheckConfig(args) => check_config::run(args),
            Command::HashKey(args) => hash_key::run(args),
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
