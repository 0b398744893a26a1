//! Sessions reconciled with the switch: a session stays `active` only while
//! its calls live somewhere.
//!
//! The call table's reconciliation ends calls the table knows. A session can
//! also hold a call the table never saw: the dialplan lookup ties the call's
//! uuid to the session before its first event, so a call that starts and
//! ends while the Event Socket is down, or a lookup whose uuid never becomes
//! a channel, would keep the session `active` for good. Every
//! [`SESSION_RECONCILE_INTERVAL`], each `active` session's calls are checked:
//! one the call table has ended is ended on the session too (a lost effect);
//! one the table does not know and no node knows either is ended once it has
//! been missing for [`MISSING_GRACE`] (then `session.open` follows, queued
//! with the change). Nothing is judged while a node is not connected: a call
//! could be there. Each instance keeps its own "missing since" notes; ending
//! a call on a session is idempotent, so instances may overlap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::service::Masking;
use crate::store::{CallState, SessionState, StoreError};

/// How often active sessions are checked.
pub const SESSION_RECONCILE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a call must be unknown everywhere before it is ended.
pub const MISSING_GRACE: Duration = Duration::from_secs(30);

/// Sessions checked per page.
const PAGE: usize = 200;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionReport {
    /// Calls ended on their session.
    pub ended: usize,
    /// Calls unknown everywhere, not yet for long enough.
    pub missing: usize,
}

/// Keeps the "missing since" notes between passes.
pub struct SessionReconciler {
    masking: Arc<Masking>,
    missing_since: Mutex<HashMap<(String, String), DateTime<Utc>>>,
}

impl SessionReconciler {
    /// A reconciler over the domain.
    pub fn new(masking: Arc<Masking>) -> SessionReconciler {
        SessionReconciler {
            masking,
            missing_since: Mutex::new(HashMap::new()),
        }
    }

    /// Runs [`SessionReconciler::pass`] every `every`.
    pub fn spawn(self, every: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.pass().await {
                    Ok(r) if r.ended > 0 => {
                        tracing::info!(
                            ended = r.ended,
                            "ended calls no node knows on their sessions"
                        )
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "session reconciliation failed"),
                }
            }
        })
    }

    /// One pass over every tenant's active sessions.
    pub async fn pass(&self) -> Result<SessionReport, StoreError> {
        let m = &self.masking;
        let mut report = SessionReport::default();
        let all_connected = m
            .switch
            .node_states()
            .iter()
            .all(|(_, s)| matches!(s, crate::esl::node::NodeState::Connected { .. }));
        let now = m.clock.now();
        let grace = chrono::Duration::from_std(MISSING_GRACE).unwrap_or_default();
        let mut still_missing = HashMap::new();
        for tenant in m.tenants.iter() {
            let mut cursor: Option<String> = None;
            loop {
                let page = m
                    .store
                    .list_sessions(
                        tenant.id(),
                        Some(SessionState::Active),
                        cursor.as_deref(),
                        PAGE,
                    )
                    .await?;
                for s in &page.items {
                    for uuid in &s.active_calls {
                        let key = (s.session_ref.clone(), uuid.clone());
                        let end = match m.store.get_call(uuid).await? {
                            Some(c) => c.state == CallState::Ended,
                            None if !all_connected => false,
                            None if self.known_to_a_node(uuid).await => false,
                            None => {
                                let since = self.first_missing(&key, now);
                                still_missing.insert(key.clone(), since);
                                now - since >= grace
                            }
                        };
                        if end {
                            still_missing.remove(&key);
                            m.call_ended(tenant.id(), &s.session_ref, uuid).await?;
                            report.ended += 1;
                        }
                    }
                }
                match page.next_cursor {
                    Some(c) if !page.items.is_empty() => cursor = Some(c),
                    _ => break,
                }
            }
        }
        report.missing = still_missing.len();
        *self.missing_since.lock().unwrap_or_else(|e| e.into_inner()) = still_missing;
        Ok(report)
    }

    fn first_missing(&self, key: &(String, String), now: DateTime<Utc>) -> DateTime<Utc> {
        self.missing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
            .unwrap_or(now)
    }

    /// Whether any node has a channel `uuid` (an error counts as yes: when
    /// in doubt, keep the call).
    async fn known_to_a_node(&self, uuid: &str) -> bool {
        let Ok(id) = Uuid::parse_str(uuid) else {
            return false;
        };
        for (node, _) in self.masking.switch.node_states() {
            match self.masking.switch.exists(&node, id).await {
                Ok(false) => {}
                Ok(true) | Err(_) => return true,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::service::tests::{create_req, fixture};
    use crate::store::{CallDirection, CallRecord};

    /// A call tied to the session that no node and no call-table row knows
    /// (it began and ended while the Event Socket was down) is ended after
    /// the grace, not before; the session is `open` again, announced.
    #[tokio::test]
    async fn a_call_nobody_knows_ends_after_the_grace() {
        let f = fixture().await;
        let s = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        let r = s.session_ref.clone();
        let ghost = uuid::Uuid::new_v4().to_string();
        f.masking.call_started("acme", &s, &ghost).await.unwrap();
        let (clock, events, store) = (f.clock.clone(), f.events.clone(), f.store.clone());
        let rec = SessionReconciler::new(Arc::new(f.masking));

        let first = rec.pass().await.unwrap();
        assert_eq!(
            first,
            SessionReport {
                ended: 0,
                missing: 1
            }
        );
        clock.advance(chrono::Duration::seconds(29));
        assert_eq!(rec.pass().await.unwrap().ended, 0, "still within the grace");
        let state = store.get_session("acme", &r).await.unwrap().unwrap().state;
        assert_eq!(state, SessionState::Active);

        clock.advance(chrono::Duration::seconds(2));
        assert_eq!(
            rec.pass().await.unwrap(),
            SessionReport {
                ended: 1,
                missing: 0
            }
        );
        let s = store.get_session("acme", &r).await.unwrap().unwrap();
        assert_eq!(s.state, SessionState::Open);
        assert!(s.active_calls.is_empty());
        assert_eq!(
            events.states().last(),
            Some(&(r.clone(), SessionState::Open))
        );
    }

    /// A call the table has ended but whose end never reached the session
    /// (a lost effect) is ended at once; a live one is left alone.
    #[tokio::test]
    async fn ended_calls_are_ended_and_live_ones_kept() {
        let f = fixture().await;
        let s = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        let r = s.session_ref.clone();
        let (ended, live) = ("c-ended", "c-live");
        for c in [ended, live] {
            f.masking.call_started("acme", &s, c).await.unwrap();
        }
        let now = crate::clock::Clock::now(&f.clock);
        for (uuid, state) in [(ended, CallState::Ended), (live, CallState::Answered)] {
            let mut call = CallRecord::new(uuid, "fs1", CallDirection::Inbound, now);
            call.tenant = Some("acme".into());
            call.state = state;
            f.store
                .put_call(call, Duration::from_secs(600))
                .await
                .unwrap();
        }
        let store = f.store.clone();
        let rec = SessionReconciler::new(Arc::new(f.masking));
        assert_eq!(
            rec.pass().await.unwrap(),
            SessionReport {
                ended: 1,
                missing: 0
            }
        );
        let s = store.get_session("acme", &r).await.unwrap().unwrap();
        assert_eq!(s.state, SessionState::Active);
        assert_eq!(s.active_calls, vec![live.to_owned()]);
    }
}
