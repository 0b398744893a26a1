//! `fsgate healthcheck [--url URL] [--ca-file PEM]`: GET a health endpoint
//! (http, or https checked against the system's roots plus `--ca-file`) and
//! exit 0 on a 2xx answer, 1 otherwise — for container HEALTHCHECKs in images
//! without curl.
//!
//! Owns one request with a short timeout and its exit code; it must not
//! retry (the container runtime does) or print anything on success.

use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `fsgate healthcheck`.
#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// The URL to GET.
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// A PEM CA bundle to trust for an https URL (the daemon's private CA).
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// One GET; 0 on 2xx, 1 on anything else (with the reason on stderr).
pub async fn run(args: HealthcheckArgs) -> ExitCode {
    let tls = match crate::tls::client_config(args.ca_file.as_deref()) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("fsgate healthcheck: --ca-file: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = match reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fsgate healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&args.url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("fsgate healthcheck: {} answered {}", args.url, r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            match crate::tls::tls_failure(&e) {
                Some(tls) => eprintln!("fsgate healthcheck: {}: TLS: {tls}", args.url),
                None => eprintln!("fsgate healthcheck: {}: {e}", args.url),
            }
            ExitCode::FAILURE
        }
    }
}
