//! `fsgate healthcheck [--url URL]`: GET a health endpoint and exit 0 on a
//! 2xx answer, 1 otherwise — for container HEALTHCHECKs in images without curl.
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
}

/// One GET; 0 on 2xx, 1 on anything else (with the reason on stderr).
pub async fn run(args: HealthcheckArgs) -> ExitCode {
    let client = match reqwest::Client::builder()
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
            eprintln!("fsgate healthcheck: {}: {e}", args.url);
            ExitCode::FAILURE
        }
    }
}
