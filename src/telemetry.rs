//! Logs and metrics set-up for the whole process.
//!
//! This module owns the two process-wide singletons: the `tracing` subscriber
//! (human or JSON lines on stderr, filtered by `FSGATE_LOG`) and the `metrics`
//! recorder (Prometheus, with the histogram buckets every module shares). Other
//! modules only emit through the `tracing` and `metrics` macros; they never
//! install a subscriber or a recorder, and nothing here knows what the metrics
//! mean beyond their names and buckets.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Installs the global `tracing` subscriber on stderr. `FSGATE_LOG` (an
/// `EnvFilter` directive such as `info,fsgate::esl=debug`) overrides
/// `default_level`. Later calls do nothing.
pub fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("FSGATE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Metric names the HTTP layer emits.
pub mod names {
    /// Counter: HTTP requests, by `method`, `route` (the route template, or
    /// `unmatched`) and `status`.
    pub const HTTP_REQUESTS: &str = "fsgate_http_requests_total";
    /// Histogram: HTTP request latency in seconds, by `method` and `route`.
    pub const HTTP_DURATION: &str = "fsgate_http_request_duration_seconds";
}

/// Buckets for every `*_seconds` histogram: 0.5 ms to 30 s, dense where the
/// targets are (route lookup ≤ 2 ms, command to ESL ≤ 1 ms).
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed as the global `metrics`
/// recorder on first call; later calls (several daemons in one test process)
/// return the same handle. If another recorder was installed first, the
/// handle still renders, but only what is recorded through it.
pub fn metrics() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_string()),
                    LATENCY_BUCKETS_SECONDS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
            }
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        names::HTTP_REQUESTS,
        "HTTP requests by method, route template and status"
    );
    metrics::describe_histogram!(
        names::HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by method and route template"
    );
    crate::http::https::describe_metrics();
    crate::webhooks::worker::describe_metrics();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_recorder_is_installed_once_and_renders_histograms_with_buckets() {
        let a = super::metrics();
        let b = super::metrics();
        metrics::histogram!("fsgate_test_latency_seconds").record(0.003);
        let text = b.render();
        assert!(
            text.contains("fsgate_test_latency_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert_eq!(a.render().is_empty(), text.is_empty());
    }
}
