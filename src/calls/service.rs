//! Call sessions as a service: create a click-to-call, read one call, list a
//! tenant's live calls.
//!
//! This file owns the order of a create: validate, build the originate,
//! choose the node and both leg UUIDs, record the call (a ringing record and
//! the bindings of both legs) and only then send, so that the call is tracked
//! from its very first event; and, when FreeSWITCH's `originate` job reports
//! that the first leg could not even be created (no channel event will ever
//! say so), ending the record with FreeSWITCH's cause. Reads are scoped to the
//! tenant: another tenant's call is "not found". It must not format ESL text
//! (see [`super::dial`]) nor know HTTP (see [`super::routes`]).

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::config::TenantConfig;
use crate::esl::HangupCause;
use crate::pipeline::calltable::is_b_leg;
use crate::store::{CallBinding, CallDirection, CallRecord, CallState, Store, StoreError};
use crate::switch::{Outcome, PlacedJob, Switch, SwitchError};

use super::dial::{self, DialError, Legs};
use super::model::{extra, CallSession, CallSessionPage, CreateCallRequest};
use super::validate::{check_tenant_trunk, validate, InvalidCall, ValidCall};

/// Why a call-session request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The request breaks a rule (400) or asks what FreeSWITCH cannot do (422).
    #[error(transparent)]
    Invalid(#[from] InvalidCall),
    /// No such call for this tenant (404).
    #[error("call session {0} not found")]
    NotFound(String),
    /// Nothing was sent: no FreeSWITCH node is connected (503).
    #[error("no FreeSWITCH node is connected; the call was not placed")]
    NoNode,
    /// The originate could not be delivered, or its delivery not confirmed (503).
    #[error("the call {id} could not be placed: {reason}")]
    Undelivered {
        /// The call session id that was reserved.
        id: String,
        /// What went wrong.
        reason: String,
        /// The originate may have reached FreeSWITCH (no answer in time, the
        /// connection dropped): the call may still ring.
        maybe_sent: bool,
    },
    /// The tenant's configuration cannot build a dial string (500).
    #[error("{0}")]
    Config(String),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Timings of the call-session service.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// How long ended calls stay readable (`calls.retention_minutes`).
    pub retention: Duration,
    /// How long a click-to-call's leg bindings are kept.
    pub binding_ttl: Duration,
    /// How long to wait for the `originate` job's answer (the caller rings
    /// at most 60 s, FreeSWITCH's default).
    pub originate_wait: Duration,
    /// After a failed originate, how long channel events get to end the call
    /// before the service ends it itself.
    pub failure_grace: Duration,
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            retention: Duration::from_secs(10 * 60),
            binding_ttl: Duration::from_secs(24 * 3600),
            originate_wait: Duration::from_secs(75),
            failure_grace: Duration::from_secs(2),
        }
    }
}

impl CallSettings {
    /// From the `[calls]` section (`retention_minutes`); the other timings
    /// keep their defaults.
    pub fn from_config(c: &crate::config::CallsConfig) -> CallSettings {
        CallSettings {
            retention: Duration::from_secs(c.retention_minutes * 60),
            ..CallSettings::default()
        }
    }
}

/// Largest page of `list`.
pub const MAX_PAGE: usize = 200;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: usize = 50;

/// The call-session service. Cheap to clone.
#[derive(Clone)]
pub struct CallService {
    store: Arc<dyn Store>,
    switch: Switch,
    clock: SharedClock,
    settings: Arc<CallSettings>,
}

impl CallService {
    /// A service over the shared parts.
    pub fn new(
        store: Arc<dyn Store>,
        switch: Switch,
        clock: SharedClock,
        settings: CallSettings,
    ) -> CallService {
        CallService {
            store,
            switch,
            clock,
            settings: Arc::new(settings),
        }
    }

    /// Click-to-call: rings `caller`, then `callee`, and bridges them.
    /// Returns the call session (its id is the caller leg's UUID) as soon as
    /// FreeSWITCH accepted the job.
    pub async fn create(
        &self,
        tenant: &TenantConfig,
        req: &CreateCallRequest,
    ) -> Result<CallSession, CallError> {
        let call = validate(req)?;
        check_tenant_trunk(&call, &tenant.trunk)?;
        let legs = Legs::random();
        let originate = dial::originate(&call, tenant, legs).map_err(|e| match e {
            DialError::Field(e) => CallError::Invalid(InvalidCall::Field {
                field: field_of(&e),
                message: e.to_string(),
            }),
            DialError::Template { .. } => {
                tracing::error!(tenant = %tenant.id, error = %e, "click-to-call: bad tenant configuration");
                CallError::Config(e.to_string())
            }
        })?;
        let node = self
            .switch
            .pick_node()
            .map_err(|_| CallError::NoNode)?
            .name()
            .to_string();
        let stored = self.record(tenant, &call, legs, &node).await?;
        match self
            .switch
            .originate_on(&node, &originate, legs.caller)
            .await
        {
            Ok(placed) => {
                self.watch(tenant.id.clone(), placed);
                Ok(CallSession::from(&stored))
            }
            Err(error) => Err(self.undelivered(stored, error).await),
        }
    }

    /// Writes the ringing record and both legs' bindings.
    async fn record(
        &self,
        tenant: &TenantConfig,
        call: &ValidCall,
        legs: Legs,
        node: &str,
    ) -> Result<CallRecord, CallError> {
        let mut extra = serde_json::Map::new();
        let mut put = |key: &str, value: Option<&str>| {
            if let Some(v) = value {
                extra.insert(key.to_owned(), serde_json::Value::String(v.to_owned()));
            }
        };
        put(extra::CALLER, Some(&call.caller));
        put(extra::CALLEE, Some(&call.callee));
        put(extra::CALLEE_LEG, Some(&legs.callee.to_string()));
        put(extra::TRUNK, Some(dial::trunk_of(call, tenant)));
        put(extra::TARGET, call.target.as_deref());
        put(
            extra::TARGET_INSTANCE_ID,
            call.target_instance_id.as_deref(),
        );
        put(
            extra::TARGET_EXTENSION_NUMBER,
            call.target_extension_number.as_deref(),
        );
        let mut record = CallRecord::new(
            &legs.caller.to_string(),
            node,
            CallDirection::Outbound,
            self.clock.now(),
        );
        record.tenant = Some(tenant.id.clone());
        record.caller = Some(call.caller.clone());
        record.caller_display_name = call.caller_display_name.clone();
        record.callee = Some(call.callee.clone());
        record.user_data = call.user_data.clone();
        record.extra = extra;
        let binding = CallBinding {
            tenant: tenant.id.clone(),
            session_ref: None,
            user_data: call.user_data.clone(),
        };
        for leg in [legs.caller, legs.callee] {
            self.store
                .put_call_binding(&leg.to_string(), binding.clone(), self.settings.binding_ttl)
                .await?;
        }
        Ok(self.store.put_call(record, self.settings.retention).await?)
    }

    /// A send that failed: when nothing reached FreeSWITCH the reserved call
    /// is ended at once; when it may have (timeout, lost connection) it is
    /// left to its events and to reconciliation.
    async fn undelivered(&self, stored: CallRecord, error: SwitchError) -> CallError {
        let id = stored.uuid.clone();
        let nothing_sent = matches!(
            error,
            SwitchError::NotConnected(_)
                | SwitchError::NoNodeConnected
                | SwitchError::UnknownNode(_)
        );
        if nothing_sent {
            let cause = HangupCause::NORMAL_TEMPORARY_FAILURE;
            if let Err(e) = end_unseen(
                &*self.store,
                &*self.clock,
                stored,
                cause,
                self.settings.retention,
            )
            .await
            {
                tracing::warn!(call = %id, error = %e, "could not end an unsent click-to-call");
            }
        }
        tracing::warn!(call = %id, %error, "click-to-call not delivered");
        let reason = if nothing_sent {
            format!("{error}")
        } else {
            format!("{error}; it may still ring: GET /api/v1/sessions/{id} tells")
        };
        CallError::Undelivered {
            id,
            reason,
            maybe_sent: !nothing_sent,
        }
    }

    /// Waits for the originate job; if FreeSWITCH refused it and no channel
    /// event ended the call, ends it with FreeSWITCH's cause.
    fn watch(&self, tenant: String, placed: PlacedJob) {
        let store = self.store.clone();
        let clock = self.clock.clone();
        let settings = self.settings.clone();
        tokio::spawn(async move {
            let uuid = placed.placed.uuid.to_string();
            let outcome = placed.outcome(settings.originate_wait).await;
            let Ok(refused @ Outcome::Refused(_)) = outcome else {
                return;
            };
            tracing::info!(%tenant, call = %uuid, reply = %refused.text(), "click-to-call refused by FreeSWITCH");
            tokio::time::sleep(settings.failure_grace).await;
            let cause = refused
                .refusal_cause()
                .unwrap_or(HangupCause::NORMAL_TEMPORARY_FAILURE);
            let result = async {
                match store.get_call(&uuid).await? {
                    Some(call) if call.state != CallState::Ended => {
                        end_unseen(&*store, &*clock, call, cause, settings.retention).await
                    }
                    _ => Ok(()),
                }
            };
            if let Err(e) = result.await {
                tracing::warn!(call = %uuid, error = %e, "could not end a refused click-to-call");
            }
        });
    }

    /// One call of the tenant (its first leg), live or ended within the
    /// retention.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<CallSession, CallError> {
        let call = self
            .store
            .get_call(id)
            .await?
            .filter(|c| c.tenant.as_deref() == Some(tenant) && !is_b_leg(c))
            .ok_or_else(|| CallError::NotFound(id.to_owned()))?;
        Ok(CallSession::from(&call))
    }

    /// The tenant's live calls, oldest first; `limit` is capped at
    /// [`MAX_PAGE`].
    pub async fn list(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<CallSessionPage, CallError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let page = self.store.list_live_calls(tenant, cursor, limit).await?;
        Ok(CallSessionPage {
            // Bridged B-legs are tracked but are not sessions (a page may
            // hold fewer than `limit` items; follow the cursor).
            items: page
                .items
                .iter()
                .filter(|c| !is_b_leg(c))
                .map(CallSession::from)
                .collect(),
            next_cursor: page.next_cursor,
        })
    }
}

/// Ends a call no channel event will end, marked as reconciled (inferred).
async fn end_unseen(
    store: &dyn Store,
    clock: &dyn crate::clock::Clock,
    mut call: CallRecord,
    cause: HangupCause,
    retention: Duration,
) -> Result<(), StoreError> {
    call.state = CallState::Ended;
    call.ended_at = Some(clock.now());
    call.hangup_cause = Some(cause.name().to_owned());
    call.q850 = Some(cause.q850());
    call.duration_s = Some(0);
    call.billsec = Some(0);
    call.reconciled = true;
    store.put_call(call, retention).await.map(|_| ())
}

fn field_of(e: &crate::esl::dialstring::CommandError) -> &'static str {
    use crate::esl::dialstring::CommandError::*;
    match e {
        Empty { field }
        | TooLong { field, .. }
        | Forbidden { field, .. }
        | ForbiddenSequence { field, .. }
        | Invalid { field, .. } => field,
    }
}
