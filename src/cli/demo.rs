//! `fsgate demo`: run the simulator, the daemon, the in-memory store and a
//! webhook receiver in one process and walk through the product, printing
//! every API exchange and webhook.
//!
//! Owns only the flags and the exit code; everything else is
//! [`crate::demo`]. It must not bind fixed ports or need any configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::demo::{self, DemoOptions};

/// Arguments of `fsgate demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Run this dialplan directory in the simulator instead of the built-in
    /// copy of the shipped `dialplan/`.
    #[arg(long)]
    pub dialplan: Option<PathBuf>,
}

/// Runs the demo; 0 when every step succeeded, 1 on the first failure.
pub async fn run(args: DemoArgs) -> ExitCode {
    let options = DemoOptions {
        echo: true,
        dialplan: args.dialplan,
    };
    match demo::run(options).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("\nfsgate demo: FAILED: {}", failure.error);
            ExitCode::FAILURE
        }
    }
}
