//! The `fsgate` command line: one subcommand per job, each in its own file.
//!
//! This module owns argument parsing (clap), logging set-up and exit codes.
//! Subcommands call into the library; none of them holds product logic.

use clap::{Parser, Subcommand, ValueEnum};

pub mod events;
pub mod sim;

/// fsgate: a daemon beside FreeSWITCH that turns it into a programmable voice
/// platform (masked-number sessions, call sessions, call control, webhooks).
#[derive(Debug, Parser)]
#[command(name = "fsgate", version, about, long_about = None)]
pub struct Cli {
    /// Log format for diagnostics on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tail a FreeSWITCH node's events: one line per event, for operators.
    Events(events::EventsArgs),
    /// Run the FreeSWITCH simulator (real Event Socket protocol, no PBX needed).
    Sim(sim::SimArgs),
}

/// Parses the command line, runs the subcommand, and returns the exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `events` prints its own notices; library logs would repeat them.
    let default_level = match cli.command {
        Command::Events(_) => "off",
        _ => "info",
    };
    init_logging(cli.log_format, default_level);
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
            Command::Events(args) => events::run(args).await,
            Command::Sim(args) => sim::run(args).await,
        }
    })
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("FSGATE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
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
