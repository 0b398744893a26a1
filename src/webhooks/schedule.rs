//! When to try a webhook again, and when to give up: pure functions.
//!
//! This file owns the retry policy: which answers are worth retrying
//! ([`classify`]), the backoff schedule with jitter that spans about 24 hours
//! ([`RetrySchedule`]), and the resulting [`WebhookOutcome`] for the store
//! ([`RetrySchedule::outcome`]). It must not do I/O, read clocks or draw
//! random numbers itself: time and the jitter draw come in as arguments, so
//! every decision is reproducible in a unit test.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::WebhookOutcome;
pub use crate::tls::TlsProblem;

/// What one delivery attempt came to, as seen by the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver answered with this HTTP status.
    Status {
        /// The status code.
        code: u16,
        /// `Retry-After` in seconds, when the receiver sent one.
        retry_after: Option<Duration>,
    },
    /// No answer within the per-request timeout.
    Timeout,
    /// The connection could not be made (refused, DNS, reset before a status).
    Connect,
    /// Any other transport failure after connecting.
    Transport,
    /// The TLS handshake with an https receiver failed: its certificate is
    /// not trusted, not for its host, expired, or TLS could not be agreed.
    /// Retried (an operator may fix the certificate or `webhooks.ca_file`).
    Tls(TlsProblem),
}

/// What to do about an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// Worth trying again later (timeouts, connection failures, 408, 429,
    /// 5xx, and the odd 1xx/3xx; redirects are not followed).
    Retry,
    /// A 4xx other than 408 and 429: the receiver refuses this message and
    /// will keep refusing it. Dead-lettered at once.
    Permanent,
}

/// Sorts an attempt's result.
pub fn classify(result: AttemptResult) -> Verdict {
    match result {
        AttemptResult::Status { code, .. } => match code {
            200..=299 => Verdict::Delivered,
            408 | 429 => Verdict::Retry,
            400..=499 => Verdict::Permanent,
            _ => Verdict::Retry,
        },
        AttemptResult::Timeout
        | AttemptResult::Connect
        | AttemptResult::Transport
        | AttemptResult::Tls(_) => Verdict::Retry,
    }
}

/// The longest `Retry-After` honoured; a receiver cannot park a message longer.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// The delays between attempts, and the jitter applied to each.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
}

impl Default for RetrySchedule {
    /// The first attempt is immediate; after each failure the next one waits
    /// 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h and 8 h (±10 %).
    /// Eleven attempts over about 23 h 43 min; a failure of the last one
    /// dead-letters the message.
    fn default() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 60 * MIN;
        RetrySchedule {
            delays: [
                5,
                30,
                2 * MIN,
                10 * MIN,
                30 * MIN,
                HOUR,
                2 * HOUR,
                4 * HOUR,
                8 * HOUR,
                8 * HOUR,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
            jitter: 0.1,
        }
    }
}

impl RetrySchedule {
    /// A custom schedule: `delays[i]` is the wait after the `i+1`-th failed
    /// attempt; `jitter` is the ± fraction applied to each (clamped to 0..=1).
    /// An empty list means one attempt only.
    pub fn new(delays: Vec<Duration>, jitter: f64) -> RetrySchedule {
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        RetrySchedule { delays, jitter }
    }

    /// Attempts made before giving up (the first one included).
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1)
    }

    /// The sum of the nominal delays: how long a message can be retried.
    pub fn total(&self) -> Duration {
        self.delays.iter().sum()
    }

    /// The wait after `failed` failed attempts (1 = the first one failed),
    /// with jitter from `draw` in `[0, 1)`: `0.5` gives the nominal delay.
    /// `None` when no attempt is left.
    pub fn delay_after(&self, failed: u32, draw: f64) -> Option<Duration> {
        let index = usize::try_from(failed.checked_sub(1)?).ok()?;
        let nominal = *self.delays.get(index)?;
        let draw = if draw.is_finite() {
            draw.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let factor = 1.0 + self.jitter * (2.0 * draw - 1.0);
        Some(nominal.mul_f64(factor.max(0.0)))
    }

    /// The store outcome of an attempt.
    ///
    /// `previous_attempts` is the job's count before this attempt
    /// ([`crate::store::WebhookJob::attempt`]); `now` is when the attempt
    /// ended; `draw` in `[0, 1)` picks the jitter. A `Retry-After` (capped at
    /// [`MAX_RETRY_AFTER`]) can only lengthen the wait.
    pub fn outcome(
        &self,
        result: AttemptResult,
        previous_attempts: u32,
        now: DateTime<Utc>,
        draw: f64,
    ) -> WebhookOutcome {
        match classify(result) {
            Verdict::Delivered => WebhookOutcome::Delivered,
            Verdict::Permanent => WebhookOutcome::Dead,
            Verdict::Retry => {
                let failed = previous_attempts.saturating_add(1);
                let Some(mut wait) = self.delay_after(failed, draw) else {
                    return WebhookOutcome::Dead;
                };
                if let AttemptResult::Status {
                    retry_after: Some(asked),
                    ..
                } = result
                {
                    wait = wait.max(asked.min(MAX_RETRY_AFTER));
                }
                match chrono::Duration::from_std(wait) {
                    Ok(wait) => WebhookOutcome::RetryAt(now + wait),
                    Err(_) => WebhookOutcome::Dead,
                }
            }
        }
    }
}

/// Reads a `Retry-After` header given in seconds (the HTTP-date form is
/// ignored: the schedule applies).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> AttemptResult {
        AttemptResult::Status {
            code,
            retry_after: None,
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn classification() {
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(classify(status(code)), Verdict::Delivered, "{code}");
        }
        for code in [500, 502, 503, 504, 599, 429, 408, 301, 302, 100] {
            assert_eq!(classify(status(code)), Verdict::Retry, "{code}");
        }
        for code in [400, 401, 403, 404, 405, 410, 413, 422, 499] {
            assert_eq!(classify(status(code)), Verdict::Permanent, "{code}");
        }
        for r in [
            AttemptResult::Timeout,
            AttemptResult::Connect,
            AttemptResult::Transport,
        ] {
            assert_eq!(classify(r), Verdict::Retry);
        }
    }

    #[test]
    fn default_schedule_reaches_about_a_day() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 11);
        let total = s.total().as_secs();
        assert!((23 * 3600..=25 * 3600).contains(&total), "total {total} s");
        // Nominal at the middle draw, and increasing.
        let nominal: Vec<u64> = (1..=10)
            .map(|n| s.delay_after(n, 0.5).map(|d| d.as_secs()).unwrap_or(0))
            .collect();
        assert_eq!(
            nominal,
            [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800]
        );
        assert_eq!(s.delay_after(0, 0.5), None);
        assert_eq!(s.delay_after(11, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let s = RetrySchedule::default();
        for n in 1..=10 {
            let nominal = s.delay_after(n, 0.5).unwrap_or_default().as_secs_f64();
            let lo = s.delay_after(n, 0.0).unwrap_or_default().as_secs_f64();
            let hi = s
                .delay_after(n, 0.999_999)
                .unwrap_or_default()
                .as_secs_f64();
            assert!((lo - nominal * 0.9).abs() < 1e-6, "{n}: {lo}");
            assert!(
                hi <= nominal * 1.1 + 1e-6 && hi > nominal * 1.09,
                "{n}: {hi}"
            );
        }
        // Out-of-range draws are clamped, not trusted.
        assert_eq!(s.delay_after(1, f64::NAN), s.delay_after(1, 0.5));
        assert_eq!(s.delay_after(1, 7.0), s.delay_after(1, 1.0));
    }

    #[test]
    fn outcomes_follow_the_schedule_then_dead_letter() {
        let s = RetrySchedule::default();
        let now = t0();
        assert_eq!(
            s.outcome(status(204), 0, now, 0.5),
            WebhookOutcome::Delivered
        );
        assert_eq!(s.outcome(status(404), 0, now, 0.5), WebhookOutcome::Dead);
        assert_eq!(
            s.outcome(status(500), 0, now, 0.5),
            WebhookOutcome::RetryAt(now + chrono::Duration::seconds(5))
        );
        assert_eq!(
            s.outcome(AttemptResult::Timeout, 2, now, 0.5),
            WebhookOutcome::RetryAt(now + chrono::Duration::minutes(2))
        );
        assert_eq!(
            s.outcome(AttemptResult::Connect, 9, now, 0.5),
            WebhookOutcome::RetryAt(now + chrono::Duration::hours(8))
        );
        // The 11th attempt was the last.
        assert_eq!(
            s.outcome(AttemptResult::Connect, 10, now, 0.5),
            WebhookOutcome::Dead
        );
        assert_eq!(
            s.outcome(status(200), 10, now, 0.5),
            WebhookOutcome::Delivered
        );
    }

    #[test]
    fn retry_after_only_lengthens_and_is_capped() {
        let s = RetrySchedule::default();
        let now = t0();
        let with = |secs| AttemptResult::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            s.outcome(with(1), 0, now, 0.5),
            WebhookOutcome::RetryAt(now + chrono::Duration::seconds(5))
        );
        assert_eq!(
            s.outcome(with(90), 0, now, 0.5),
            WebhookOutcome::RetryAt(now + chrono::Duration::seconds(90))
        );
        assert_eq!(
            s.outcome(with(86_400), 0, now, 0.5),
            WebhookOutcome::RetryAt(now + chrono::Duration::hours(1))
        );
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn custom_schedules_for_tests() {
        let s = RetrySchedule::new(vec![Duration::from_millis(10); 3], 0.0);
        assert_eq!(s.max_attempts(), 4);
        assert_eq!(s.delay_after(3, 0.9), Some(Duration::from_millis(10)));
        let once = RetrySchedule::new(Vec::new(), 0.5);
        assert_eq!(once.max_attempts(), 1);
        assert_eq!(
            once.outcome(AttemptResult::Timeout, 0, t0(), 0.5),
            WebhookOutcome::Dead
        );
        assert_eq!(RetrySchedule::new(vec![], f64::NAN).jitter, 0.0);
        assert_eq!(RetrySchedule::new(vec![], 3.0).jitter, 1.0);
    }
}
