//! `fsgate check-config FILE`: load and validate a configuration exactly as
//! `fsgate serve` would, and explain every problem.
//!
//! Owns the printing of configuration problems (also used by `serve`, so both
//! say the same thing) and the short summary of a valid file. It decides
//! nothing about validity (that is [`crate::config`]) and never prints
//! secrets.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{self, Config, ConfigErrors};

/// Arguments of `fsgate check-config`.
#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// The configuration file (TOML).
    pub file: PathBuf,
    /// Check the file alone, ignoring FSGATE__* environment overrides.
    #[arg(long)]
    pub ignore_env: bool,
}

/// Prints every problem, or a summary; exit 1 on problems, 0 otherwise.
pub fn run(args: CheckConfigArgs) -> ExitCode {
    let loaded = if args.ignore_env {
        config::load_with_env(&args.file, Vec::new())
    } else {
        config::load(&args.file)
    };
    match loaded {
        Ok(config) => {
            print!("{}", summary(&args.file, &config));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{}", report(&args.file, &errors));
            ExitCode::FAILURE
        }
    }
}

/// The problem report `check-config` and `serve` print.
pub fn report(file: &Path, errors: &ConfigErrors) -> String {
    let n = errors.problems.len();
    let mut out = format!(
        "{}: {n} problem{}:\n",
        file.display(),
        if n == 1 { "" } else { "s" }
    );
    for p in &errors.problems {
        out.push_str(&format!("  {}: {}\n", p.path, p.message));
    }
    out
}

/// A few lines describing a valid configuration.
pub fn summary(file: &Path, c: &Config) -> String {
    let nodes: Vec<&str> = c.freeswitch.iter().map(|n| n.name.as_str()).collect();
    let mut out = format!("{}: OK\n", file.display());
    out.push_str(&format!("  http: {}", c.http.listen));
    out.push_str(match &c.http.dialplan_token {
        Some(_) => ", dialplan lookup needs the token\n",
        None => ", dialplan lookup from loopback/allow-list only\n",
    });
    out.push_str(&format!(
        "  store: {}\n",
        config::model::redact_url(&c.store.url)
    ));
    out.push_str(&format!(
        "  freeswitch: {} node{} ({})\n",
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        nodes.join(", ")
    ));
    out.push_str(&format!("  tenants: {}\n", c.tenants.len()));
    for t in &c.tenants {
        out.push_str(&format!(
            "    {}: {} key{}, {} masked, {} control number{}, TTL {}/{} min, webhooks {}\n",
            t.id,
            t.api_keys_sha256.len(),
            if t.api_keys_sha256.len() == 1 {
                ""
            } else {
                "s"
            },
            t.masked_numbers.len(),
            t.control_numbers.len(),
            if t.control_numbers.len() == 1 {
                ""
            } else {
                "s"
            },
            t.default_ttl_minutes,
            t.max_ttl_minutes,
            t.webhook_url.as_deref().unwrap_or("off (event log only)")
        ));
    }
    out
}
