//! `fsgate sim`: run the FreeSWITCH simulator as a process of its own.
//!
//! Parses the flags into a [`SimConfig`], starts the simulator, prints where
//! it listens, and runs until SIGINT/SIGTERM. All behaviour lives in
//! [`crate::sim`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::sim::{self, Acl, Behaviours, SimConfig};

/// Arguments of `fsgate sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Event Socket listen address.
    #[arg(long, default_value = "127.0.0.1:8021")]
    pub listen: SocketAddr,
    /// Event Socket password.
    #[arg(
        long,
        default_value = "ClueCon",
        env = "FSGATE_SIM_PASSWORD",
        hide_env_values = true
    )]
    pub password: String,
    /// Control HTTP API address (place calls, far-end behaviours, faults).
    #[arg(long, default_value = "127.0.0.1:8022")]
    pub control: SocketAddr,
    /// Directory of XML dialplan files for inbound calls.
    #[arg(long, default_value = "dialplan/")]
    pub dialplan: PathBuf,
    /// HEARTBEAT interval in seconds.
    #[arg(long, default_value_t = 20)]
    pub heartbeat_secs: u64,
    /// How long far ends ring before answering, when no behaviour matches.
    #[arg(long, default_value_t = 0)]
    pub answer_delay_ms: u64,
    /// Far-end behaviour, repeatable: `PATTERN=answer:MS`, `PATTERN=reject:CAUSE`
    /// or `PATTERN=no-answer`, PATTERN a regex on the dialled endpoint.
    #[arg(long = "behaviour", value_name = "PATTERN=WHAT")]
    pub behaviours: Vec<String>,
    /// A global variable, as FreeSWITCH's vars.xml sets it (repeatable), e.g.
    /// `fsgate_url=http://127.0.0.1:8080` for the shipped dialplan.
    #[arg(long = "global", value_name = "NAME=VALUE")]
    pub globals: Vec<String>,
    /// Accept Event Socket clients only from these addresses (repeatable);
    /// others get FreeSWITCH's ACL rejection. Default: everyone.
    #[arg(long = "allow", value_name = "IP")]
    pub allow: Vec<IpAddr>,
}

/// Runs the simulator until a signal; returns the exit code.
pub async fn run(args: SimArgs) -> ExitCode {
    let config = match config_from(args) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("fsgate sim: {message}");
            return ExitCode::from(2);
        }
    };
    let handle = match sim::start(config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("fsgate sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "fsgate sim: Event Socket on {} (password from --password)",
        handle.esl_addr()
    );
    if let Some(control) = handle.control_addr() {
        println!("fsgate sim: control API on http://{control} (POST /calls {{\"from\",\"to\"}})");
    }
    super::shutdown_signal().await;
    println!("fsgate sim: stopping");
    handle.shutdown().await;
    ExitCode::SUCCESS
}

fn config_from(args: SimArgs) -> Result<SimConfig, String> {
    if !args.dialplan.is_dir() {
        return Err(format!(
            "dialplan directory {} not found: pass --dialplan DIR (a directory of FreeSWITCH XML dialplan files)",
            args.dialplan.display()
        ));
    }
    let behaviours = args
        .behaviours
        .iter()
        .map(|b| Behaviours::parse_cli(b).map_err(|e| format!("--behaviour {b:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let globals = args
        .globals
        .iter()
        .map(|g| {
            g.split_once('=')
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("--global {g:?}: expected NAME=VALUE"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SimConfig {
        listen: args.listen,
        password: args.password,
        control: Some(args.control),
        dialplan_dir: Some(args.dialplan),
        heartbeat_interval: Duration::from_secs(args.heartbeat_secs.max(1)),
        acl: if args.allow.is_empty() {
            Acl::AllowAll
        } else {
            Acl::Allow(args.allow)
        },
        answer_delay: Duration::from_millis(args.answer_delay_ms),
        behaviours,
        globals,
        ..SimConfig::default()
    })
}
