//! TTL expiry: a background task that completes every tenant's sessions
//! whose `expires_at` has passed (reason `ttl`), about every 250 ms, with
//! the injected clock, and, for tenants with `hangup_on_expiry`, cuts the
//! calls still up on them.
//!
//! This file owns the sweep ([`Masking::expire_due`]) and its task
//! ([`spawn_expiry`]). The store's expiry index survives restarts (Redis),
//! so overdue sessions are completed by the first sweep after a start; with
//! several instances sweeping, `complete_session` reports `changed` to
//! exactly one of them, and only that one emits `session.completed` and
//! hangs up. It must not decide anything about live sessions: a session is
//! only ever completed here, never reopened.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::service::{Masking, Step};
use crate::esl::HangupCause;
use crate::store::{CompletionReason, StoreError};
use crate::tenants::TenantSettings;

/// How often the daemon sweeps: well within the promised second.
pub const EXPIRY_INTERVAL: Duration = Duration::from_millis(250);

/// The cause calls are cut with when their session expires.
pub const EXPIRY_CAUSE: HangupCause = HangupCause::ALLOTTED_TIMEOUT;

/// Most batches one tenant gets per sweep (a bound, should the index hold
/// refs that cannot be completed).
const MAX_ROUNDS: usize = 16;

/// Starts the sweep, every `every` (use [`EXPIRY_INTERVAL`]). A failed sweep
/// is logged and the next one tries again. Abort the handle to stop it.
pub fn spawn_expiry(masking: Arc<Masking>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match masking.expire_due().await {
                Ok(_) => masking.sweeps.send_modify(|n| *n += 1),
                Err(error) => tracing::warn!(%error, "the session expiry sweep failed; retrying"),
            }
        }
    })
}

impl Masking {
    /// Resolves once [`spawn_expiry`]'s loop has completed a whole sweep
    /// that began after this call: every session due by the clock's time at
    /// the call has been completed. The signal tests wait on instead of
    /// sleeping through the interval.
    pub async fn swept(&self) {
        let mut sweeps = self.sweeps.subscribe();
        // The sweep under way now may have read the clock before the call.
        let seen = *sweeps.borrow_and_update();
        let _ = sweeps.wait_for(|n| *n >= seen + 2).await;
    }

    /// One sweep: completes every due session of every tenant. Returns how
    /// many this call completed (others may have been completed by another
    /// instance meanwhile).
    pub async fn expire_due(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let batch = self.options.expiry_batch.max(1);
        let mut completed = 0;
        for tenant in self.tenants.iter() {
            for _ in 0..MAX_ROUNDS {
                let due = self.store.due_sessions(tenant.id(), now, batch).await?;
                for session_ref in &due {
                    if self.expire(tenant, session_ref, now).await? {
                        completed += 1;
                    }
                }
                if due.len() < batch {
                    break;
                }
            }
        }
        Ok(completed)
    }

    async fn expire(
        &self,
        tenant: &TenantSettings,
        session_ref: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Calls to cut must be read before completing clears them; no call
        // joins an expired session (lookup and originate check the TTL).
        let Some(current) = self.store.get_session(tenant.id(), session_ref).await? else {
            return Ok(false);
        };
        let calls = if tenant.hangup_on_expiry() {
            current.active_calls.clone()
        } else {
            Vec::new()
        };
        let step = Step::Complete(CompletionReason::Ttl, now);
        let Some(t) = self.transition(tenant.id(), &current, step, None).await? else {
            return Ok(false);
        };
        if !t.changed {
            return Ok(false);
        }
        metrics::counter!("fsgate_sessions_expired_total", "tenant" => tenant.id().to_owned())
            .increment(1);
        join_all(calls.iter().map(|uuid| self.cut(uuid))).await;
        Ok(true)
    }

    /// Hangs up call `uuid` on the node that holds it (every connected node
    /// when the call table does not know it yet). Failures are logged: the
    /// session is completed either way.
    async fn cut(&self, uuid: &str) {
        let Ok(id) = Uuid::parse_str(uuid) else {
            return;
        };
        let nodes = match self.store.get_call(uuid).await {
            Ok(Some(call)) => vec![call.node],
            _ => self
                .switch
                .node_states()
                .into_iter()
                .map(|(name, _)| name)
                .collect(),
        };
        for node in nodes {
            match self.switch.hangup(&node, id, EXPIRY_CAUSE).await {
                Ok(outcome) if outcome.is_ok() => {
                    tracing::info!(uuid, node, "cut a call of an expired session");
                    return;
                }
                Ok(outcome) => {
                    tracing::debug!(uuid, node, reply = outcome.text(), "call not cut here")
                }
                Err(error) => tracing::warn!(uuid, node, %error, "could not cut the call"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::service::tests::{create_req, fixture, fixture_with, tenant};
    use crate::store::SessionState;

    #[tokio::test]
    async fn sessions_complete_at_their_ttl_and_free_their_number() {
        let f = fixture().await;
        let mut r = create_req("+15557770001", "+15557770002");
        r.ttl_minutes = Some(5);
        let short = f.masking.create("acme", r).await.unwrap();
        let long = f
            .masking
            .create("acme", create_req("+15557770003", "+15557770004"))
            .await
            .unwrap();
        f.clock
            .advance(chrono::Duration::minutes(5) - chrono::Duration::milliseconds(1));
        assert_eq!(f.masking.expire_due().await.unwrap(), 0);
        f.clock.advance(chrono::Duration::milliseconds(1));
        assert_eq!(f.masking.expire_due().await.unwrap(), 1);
        assert_eq!(f.masking.expire_due().await.unwrap(), 0, "once");
        let done = f.masking.get("acme", &short.session_ref).await.unwrap();
        assert_eq!(done.state, SessionState::Completed);
        assert_eq!(done.completion_reason, Some(CompletionReason::Ttl));
        assert_eq!(done.completed_at, Some(done.expires_at));
        assert_eq!(
            f.masking
                .get("acme", &long.session_ref)
                .await
                .unwrap()
                .state,
            SessionState::Open
        );
        let ev = f.events.all();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].state, ev[0].reason),
            (SessionState::Completed, Some(CompletionReason::Ttl))
        );
        let again = f
            .masking
            .create("acme", create_req("+15557770005", "+15557770006"))
            .await
            .unwrap();
        assert_eq!(again.masked_number, short.masked_number);
    }

    #[tokio::test]
    async fn expiry_mid_call_completes_and_nothing_reopens_it() {
        let f = fixture().await;
        let mut r = create_req("+15557770001", "+15557770002");
        r.ttl_minutes = Some(1);
        let s = f.masking.create("acme", r).await.unwrap();
        let u = "0a1b2c3d-0000-4000-8000-000000000001";
        f.masking
            .route(&s.masked_number, "15557770001", u)
            .await
            .unwrap();
        f.clock.advance(chrono::Duration::minutes(2));
        assert_eq!(f.masking.expire_due().await.unwrap(), 1);
        let done = f.masking.get("acme", &s.session_ref).await.unwrap();
        assert_eq!(done.state, SessionState::Completed);
        // The call hangs up later: the session stays completed, no webhook.
        f.masking
            .call_ended("acme", &s.session_ref, u)
            .await
            .unwrap();
        assert_eq!(
            f.masking.get("acme", &s.session_ref).await.unwrap().state,
            SessionState::Completed
        );
        assert_eq!(
            f.events.states(),
            [
                (s.session_ref.clone(), SessionState::Active),
                (s.session_ref.clone(), SessionState::Completed)
            ]
        );
    }

    #[tokio::test]
    async fn two_sweepers_complete_each_session_once() {
        let f = fixture_with(vec![tenant(
            "acme",
            &(0..50)
                .map(|i| format!("+155501{i:05}"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )])
        .await;
        for i in 0..50 {
            let mut r = create_req(&format!("+155577{i:05}"), "+15559999999");
            r.ttl_minutes = Some(1);
            f.masking.create("acme", r).await.unwrap();
        }
        f.clock.advance(chrono::Duration::minutes(1));
        let m = Arc::new(f.masking);
        let (a, b) = tokio::join!(m.expire_due(), m.expire_due());
        assert_eq!(a.unwrap() + b.unwrap(), 50);
        assert_eq!(f.events.all().len(), 50);
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_sweeps_every_interval() {
        let f = fixture().await;
        let mut r = create_req("+15557770001", "+15557770002");
        r.ttl_minutes = Some(1);
        let s = f.masking.create("acme", r).await.unwrap();
        let m = Arc::new(f.masking);
        let task = spawn_expiry(m.clone(), EXPIRY_INTERVAL);
        f.clock.advance(chrono::Duration::minutes(1));
        tokio::time::sleep(EXPIRY_INTERVAL * 2).await;
        assert_eq!(
            m.get("acme", &s.session_ref).await.unwrap().state,
            SessionState::Completed
        );
        task.abort();
    }
}
