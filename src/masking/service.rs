//! The rules of masked-number sessions: create, read, list, complete, and
//! the call-driven `open` ⇄ `active` steps, each with its webhook queued in
//! the same store step, when (and only when) that step made the change.
//!
//! This file owns [`Masking`], the domain object every entry point (REST
//! routes, the dialplan lookup, originate, the expiry task, the call-event
//! handler) goes through, and the rules they share: TTL bounds, refs, what
//! "live" means (`open`/`active` and not past `expires_at`), which webhook a
//! transition emits. Atomicity is the store's (allocation, transitions); time
//! is the injected clock's. It must not speak HTTP or format ESL text.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::MaskingError;
use super::events::SessionEvents;
use super::model::{CreateSessionRequest, ListQuery, SessionRef};
use super::snapshots::Snapshots;
use crate::clock::SharedClock;
use crate::store::{
    CallBinding, CompletionReason, CreateSessionError, NewSession, OperationStatus, Page,
    SessionRecord, SessionState, Store, StoreError, Transition,
};
use crate::switch::Switch;
use crate::tenants::{TenantSettings, Tenants};

/// Tunables with sensible defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskingOptions {
    /// How long a call's tie to its session (the call binding) is kept; it
    /// must outlive the longest call.
    pub binding_ttl: Duration,
    /// Deadline announced for an originate operation.
    pub originate_timeout: Duration,
    /// Most sessions completed per tenant per expiry pass.
    pub expiry_batch: usize,
}

impl Default for MaskingOptions {
    fn default() -> Self {
        MaskingOptions {
            binding_ttl: Duration::from_secs(24 * 3600),
            originate_timeout: Duration::from_secs(120),
            expiry_batch: 256,
        }
    }
}

/// The masked-number session domain. Cheap to share (`Arc`).
pub struct Masking {
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: SharedClock,
    pub(super) tenants: Arc<Tenants>,
    pub(super) switch: Switch,
    pub(super) events: Arc<dyn SessionEvents>,
    pub(super) options: MaskingOptions,
    /// Expiry sweeps run by [`super::spawn_expiry`] so far.
    pub(super) sweeps: tokio::sync::watch::Sender<u64>,
    /// The sessions this instance last saw holding each number.
    pub(super) snapshots: Snapshots,
}

impl std::fmt::Debug for Masking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masking")
            .field("tenants", &self.tenants.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// True while a session can route and place calls at `now`.
pub fn is_live(s: &SessionRecord, now: DateTime<Utc>) -> bool {
    s.state != SessionState::Completed && now < s.expires_at
}

impl Masking {
    /// The domain over its ports.
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        tenants: Arc<Tenants>,
        switch: Switch,
        events: Arc<dyn SessionEvents>,
    ) -> Masking {
        Masking {
            store,
            clock,
            tenants,
            switch,
            events,
            options: MaskingOptions::default(),
            sweeps: tokio::sync::watch::Sender::new(0),
            snapshots: Snapshots::default(),
        }
    }

    /// The same with other tunables.
    pub fn with_options(mut self, options: MaskingOptions) -> Masking {
        self.options = options;
        self
    }

    /// The store (for the route handlers' own reads).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The tenant `id`, which the caller authenticated as.
    pub fn tenant(&self, id: &str) -> Result<&Arc<TenantSettings>, MaskingError> {
        self.tenants
            .by_id(id)
            .ok_or_else(|| MaskingError::UnknownTenant(id.to_owned()))
    }

    /// Makes every tenant's pool in the store its configured numbers (at
    /// start-up; idempotent).
    pub async fn sync_pools(&self) -> Result<(), StoreError> {
        for t in self.tenants.iter() {
            self.store.sync_pool(t.id(), t.masked_numbers()).await?;
        }
        Ok(())
    }

    /// `POST /v1/sessions`: checks the request, allocates a number and stores
    /// the session, `open`.
    pub async fn create(
        &self,
        tenant: &str,
        request: CreateSessionRequest,
    ) -> Result<SessionRecord, MaskingError> {
        let t = self.tenant(tenant)?;
        let valid = request.validate(t.default_ttl_minutes(), t.max_ttl_minutes())?;
        let created_at = self.clock.now();
        let expires_at = created_at + chrono::Duration::minutes(i64::from(valid.ttl_minutes));
        let mut attempts = 0;
        loop {
            let new = NewSession {
                tenant: tenant.to_owned(),
                session_ref: SessionRef::generate().as_str().to_owned(),
                party_a: valid.party_a.as_str().to_owned(),
                party_b: valid.party_b.as_str().to_owned(),
                ttl_minutes: valid.ttl_minutes,
                metadata: valid.metadata.clone(),
                created_at,
                expires_at,
            };
            match self.store.create_session(new).await {
                Ok(record) => {
                    metrics::counter!("fsgate_sessions_created_total", "tenant" => tenant.to_owned())
                        .increment(1);
                    self.snapshots.put(&record, created_at);
                    return Ok(record);
                }
                Err(CreateSessionError::DuplicateRef) if attempts < 3 => attempts += 1,
                Err(CreateSessionError::PoolExhausted) => {
                    metrics::counter!("fsgate_sessions_pool_exhausted_total", "tenant" => tenant.to_owned())
                        .increment(1);
                    return Err(MaskingError::PoolExhausted);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `GET /v1/sessions/{ref}`: another tenant's ref is not found.
    pub async fn get(
        &self,
        tenant: &str,
        session_ref: &str,
    ) -> Result<SessionRecord, MaskingError> {
        let r = SessionRef::parse("ref", session_ref)?;
        self.store
            .get_session(tenant, r.as_str())
            .await?
            .ok_or_else(|| MaskingError::NotFound(r.as_str().to_owned()))
    }

    /// `GET /v1/sessions`: newest first.
    pub async fn list(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Page<SessionRecord>, MaskingError> {
        let q = query.validate()?;
        Ok(self
            .store
            .list_sessions(tenant, q.state, q.cursor.as_deref(), q.limit)
            .await?)
    }

    /// `POST /v1/sessions/{ref}/complete`: completes a live session now
    /// (reason `closed`, or `ttl` if its TTL had already passed) and returns
    /// its number to the pool. Idempotent: a completed session is returned as
    /// it is. Calls in progress are left to finish.
    pub async fn complete(
        &self,
        tenant: &str,
        session_ref: &str,
    ) -> Result<SessionRecord, MaskingError> {
        let current = self.get(tenant, session_ref).await?;
        if current.state == SessionState::Completed {
            return Ok(current);
        }
        let now = self.clock.now();
        let reason = if now >= current.expires_at {
            CompletionReason::Ttl
        } else {
            CompletionReason::Closed
        };
        let t = self
            .transition(tenant, &current, Step::Complete(reason, now), None)
            .await?
            .ok_or_else(|| MaskingError::NotFound(current.session_ref.clone()))?;
        Ok(t.record)
    }

    /// Ties call `uuid` to a live session and binds the call to it, in one
    /// store step: the session becomes (or stays) `active`. `session` is the
    /// session as last read (a snapshot will do: only its ref and the parts
    /// that never change are used). `None` when the session is gone or
    /// completed meanwhile (the call must then be refused).
    pub(super) async fn call_started(
        &self,
        tenant: &str,
        session: &SessionRecord,
        uuid: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(t) = self
            .transition(tenant, session, Step::CallStarted, Some(uuid))
            .await?
        else {
            return Ok(None);
        };
        if t.record.state == SessionState::Completed {
            return Ok(None);
        }
        Ok(Some(t.record))
    }

    /// Call `uuid` of a session ended: the session goes back to `open` when
    /// it was the last. Completed sessions stay completed.
    pub(super) async fn call_ended(
        &self,
        tenant: &str,
        session_ref: &str,
        uuid: &str,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        let Some(current) = self.store.get_session(tenant, session_ref).await? else {
            return Ok(None);
        };
        self.transition(tenant, &current, Step::CallEnded, Some(uuid))
            .await
    }

    /// Makes `step` on session `current` with the webhook of the state it
    /// leads to queued in the same store step (only if the step changes the
    /// state: the transactional outbox), then tells the events port.
    pub(super) async fn transition(
        &self,
        tenant: &str,
        current: &SessionRecord,
        step: Step,
        call_id: Option<&str>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        let config = self.tenants.by_id(tenant).map(|t| t.config());
        let mut next = current.clone();
        let at = match step {
            Step::Complete(reason, at) => {
                next.state = SessionState::Completed;
                next.completion_reason = Some(reason);
                next.completed_at = Some(at);
                next.active_calls.clear();
                at
            }
            Step::CallStarted => {
                next.state = SessionState::Active;
                self.clock.now()
            }
            Step::CallEnded => {
                next.state = SessionState::Open;
                self.clock.now()
            }
        };
        let emission = match config {
            Some(c) => self.events.session_emission(c, at, &next, call_id)?,
            None => {
                tracing::error!(tenant, "a session of an unconfigured tenant");
                None
            }
        };
        let (r, uuid) = (current.session_ref.as_str(), call_id.unwrap_or_default());
        let store = &self.store;
        let t = match step {
            Step::Complete(reason, at) => {
                self.snapshots.forget(tenant, &current.masked_number);
                store
                    .complete_session(tenant, r, reason, at, emission.clone())
                    .await?
            }
            Step::CallStarted => {
                let binding = CallBinding {
                    tenant: tenant.to_owned(),
                    session_ref: Some(r.to_owned()),
                    user_data: None,
                };
                let bind = Some((binding, self.options.binding_ttl));
                store
                    .session_call_started(tenant, r, uuid, bind, emission.clone())
                    .await?
            }
            Step::CallEnded => {
                store
                    .session_call_ended(tenant, r, uuid, emission.clone())
                    .await?
            }
        };
        if let (Some(t), Some(c)) = (&t, config) {
            if t.changed {
                self.events
                    .session_changed(c, at, &t.record, call_id, emission.as_ref());
            }
        }
        Ok(t)
    }

    /// Finishes originate operation `id` of `tenant` with its `command.result`
    /// queued in the same store step; true when this call finished it.
    pub(super) async fn finish_originate(
        &self,
        tenant: &str,
        id: &str,
        status: OperationStatus,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let Some(current) = self.store.get_operation(tenant, id).await? else {
            return Ok(false);
        };
        let now = self.clock.now();
        let mut next = current;
        next.status = status;
        next.detail = Some(detail.to_owned());
        next.completed_at = Some(now);
        let emission = match self.tenants.by_id(tenant) {
            Some(t) => self.events.originate_emission(t.config(), &next)?,
            None => None,
        };
        let t = self
            .store
            .finish_operation(
                tenant,
                id,
                status,
                Some(detail.to_owned()),
                now,
                emission.clone(),
            )
            .await?;
        match t.filter(|t| t.changed) {
            Some(t) => {
                self.events.originate_finished(&t.record, emission.as_ref());
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// A session step (see [`Masking::transition`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    /// Complete for this reason at this time.
    Complete(CompletionReason, DateTime<Utc>),
    /// A call on the masked number started.
    CallStarted,
    /// A call on the masked number ended.
    CallEnded,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::TenantConfig;
    use crate::masking::events::RecordedEvents;
    use crate::store::memory::MemoryStore;

    pub(crate) fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    pub(crate) fn tenant(id: &str, pool: &[&str]) -> TenantConfig {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "masked_numbers": pool,
            "control_numbers": if id == "acme" { vec!["+15550109000"] } else { vec![] },
            "default_ttl_minutes": 60,
            "max_ttl_minutes": 240,
        }))
        .unwrap()
    }

    pub(crate) struct Fixture {
        pub masking: Masking,
        pub clock: ManualClock,
        pub events: Arc<RecordedEvents>,
        pub store: Arc<dyn Store>,
    }

    pub(crate) async fn fixture_with(tenants: Vec<TenantConfig>) -> Fixture {
        let clock = ManualClock::new(start());
        let events = Arc::new(RecordedEvents::new());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let masking = Masking::new(
            store.clone(),
            Arc::new(clock.clone()),
            Arc::new(Tenants::new(tenants)),
            Switch::new(Vec::new()),
            events.clone(),
        );
        masking.sync_pools().await.unwrap();
        Fixture {
            masking,
            clock,
            events,
            store,
        }
    }

    pub(crate) async fn fixture() -> Fixture {
        fixture_with(vec![
            tenant("acme", &["+15550100001", "+15550100002"]),
            tenant("beta", &["+15550200001"]),
        ])
        .await
    }

    pub(crate) fn create_req(a: &str, b: &str) -> CreateSessionRequest {
        CreateSessionRequest {
            party_a: a.into(),
            party_b: b.into(),
            ttl_minutes: None,
            metadata: None,
        }
    }

    #[tokio::test]
    async fn create_uses_the_default_ttl_and_allocates_distinct_numbers() {
        let f = fixture().await;
        let s1 = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        assert_eq!(s1.state, SessionState::Open);
        assert_eq!(s1.ttl_minutes, 60);
        assert_eq!(s1.created_at, start());
        assert_eq!(s1.expires_at, start() + chrono::Duration::minutes(60));
        assert!(s1.session_ref.starts_with("ses_"));
        let mut r = create_req("+15557770003", "+15557770004");
        r.ttl_minutes = Some(5);
        let s2 = f.masking.create("acme", r).await.unwrap();
        assert_eq!(s2.ttl_minutes, 5);
        assert_ne!(s1.masked_number, s2.masked_number);
        let e = f
            .masking
            .create("acme", create_req("+15557770005", "+15557770006"))
            .await
            .unwrap_err();
        assert_eq!(e, MaskingError::PoolExhausted);
        assert_eq!((e.status(), e.code()), (409, "pool_exhausted"));
        assert!(f.events.all().is_empty(), "creation emits nothing");
    }

    #[tokio::test]
    async fn tenants_never_see_each_other() {
        let f = fixture().await;
        let s = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        let e = f.masking.get("beta", &s.session_ref).await.unwrap_err();
        assert_eq!((e.status(), e.code()), (404, "not_found"));
        let e = f
            .masking
            .complete("beta", &s.session_ref)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 404);
        assert!(f
            .masking
            .list("beta", ListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty());
        assert_eq!(
            f.masking.get("acme", &s.session_ref).await.unwrap().state,
            SessionState::Open
        );
        assert_eq!(
            f.masking
                .get("acme", "ses_${x}")
                .await
                .unwrap_err()
                .status(),
            400
        );
    }

    #[tokio::test]
    async fn complete_is_idempotent_and_frees_the_number() {
        let f = fixture_with(vec![tenant("acme", &["+15550100001"])]).await;
        let s = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        f.clock.advance(chrono::Duration::minutes(1));
        let done = f.masking.complete("acme", &s.session_ref).await.unwrap();
        assert_eq!(done.state, SessionState::Completed);
        assert_eq!(done.completion_reason, Some(CompletionReason::Closed));
        assert_eq!(
            done.completed_at,
            Some(start() + chrono::Duration::minutes(1))
        );
        f.clock.advance(chrono::Duration::minutes(1));
        let again = f.masking.complete("acme", &s.session_ref).await.unwrap();
        assert_eq!(again, done, "completing twice changes nothing");
        let ev = f.events.all();
        assert_eq!(ev.len(), 1, "one session.completed");
        assert_eq!(ev[0].state, SessionState::Completed);
        assert_eq!(ev[0].reason, Some(CompletionReason::Closed));
        // The number is reused by the next session.
        let next = f
            .masking
            .create("acme", create_req("+15557770003", "+15557770004"))
            .await
            .unwrap();
        assert_eq!(next.masked_number, s.masked_number);
        assert_ne!(next.session_ref, s.session_ref);
    }

    #[tokio::test]
    async fn completing_after_the_ttl_passed_says_ttl() {
        let f = fixture().await;
        let mut r = create_req("+15557770001", "+15557770002");
        r.ttl_minutes = Some(1);
        let s = f.masking.create("acme", r).await.unwrap();
        f.clock.advance(chrono::Duration::seconds(61));
        let done = f.masking.complete("acme", &s.session_ref).await.unwrap();
        assert_eq!(done.completion_reason, Some(CompletionReason::Ttl));
    }

    #[tokio::test]
    async fn list_filters_and_pages() {
        let f = fixture_with(vec![tenant(
            "acme",
            &["+15550100001", "+15550100002", "+15550100003"],
        )])
        .await;
        let mut refs = Vec::new();
        for i in 0..3 {
            f.clock.advance(chrono::Duration::seconds(1));
            let s = f
                .masking
                .create(
                    "acme",
                    create_req(&format!("+1555777000{i}"), "+15557779999"),
                )
                .await
                .unwrap();
            refs.push(s.session_ref);
        }
        f.masking.complete("acme", &refs[0]).await.unwrap();
        let page = f
            .masking
            .list(
                "acme",
                ListQuery {
                    limit: Some(2),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let got: Vec<_> = page.items.iter().map(|s| s.session_ref.clone()).collect();
        assert_eq!(got, [refs[2].clone(), refs[1].clone()], "newest first");
        let rest = f
            .masking
            .list(
                "acme",
                ListQuery {
                    limit: Some(2),
                    cursor: page.next_cursor.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.items[0].session_ref, refs[0]);
        assert!(rest.next_cursor.is_none());
        let completed = f
            .masking
            .list(
                "acme",
                ListQuery {
                    state: Some(super::super::model::SessionStateView::Completed),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(completed.items.len(), 1);
    }

    #[tokio::test]
    async fn calls_move_a_session_between_open_and_active_once() {
        let f = fixture().await;
        let s = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        let r = &s.session_ref;
        let a = f.masking.call_started("acme", &s, "u1").await.unwrap();
        assert_eq!(a.unwrap().state, SessionState::Active);
        f.masking.call_started("acme", &s, "u2").await.unwrap();
        f.masking.call_ended("acme", r, "u1").await.unwrap();
        assert_eq!(
            f.masking.get("acme", r).await.unwrap().state,
            SessionState::Active
        );
        f.masking.call_ended("acme", r, "u2").await.unwrap();
        f.masking.call_ended("acme", r, "u2").await.unwrap();
        assert_eq!(
            f.events.states(),
            [
                (r.clone(), SessionState::Active),
                (r.clone(), SessionState::Open)
            ]
        );
        let ev = f.events.all();
        assert_eq!(ev[0].call_id.as_deref(), Some("u1"));
        assert_eq!(ev[1].call_id.as_deref(), Some("u2"));
        // Nothing reopens a completed session.
        f.masking.complete("acme", r).await.unwrap();
        assert!(f
            .masking
            .call_started("acme", &s, "u3")
            .await
            .unwrap()
            .is_none());
        f.masking.call_ended("acme", r, "u3").await.unwrap();
        assert_eq!(
            f.masking.get("acme", r).await.unwrap().state,
            SessionState::Completed
        );
        assert_eq!(f.events.all().len(), 3);
    }
}
