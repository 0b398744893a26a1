//! Call-control operations of one tenant in the memory store: records keyed
//! by id, the idempotency keys, and the per-call and deadline indexes of
//! in-progress operations.
//!
//! Owns registration (first key wins) and the single result of each
//! operation. Runs under the store's lock; must not lock, await or read a
//! clock.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::store::cursor::ms;
use crate::store::{OperationRecord, OperationStatus, Registered, Transition};

#[derive(Default)]
pub(super) struct TenantOps {
    ops: HashMap<String, (OperationRecord, Instant)>,
    /// command_uid → (operation id, expiry).
    keys: HashMap<String, (String, Instant)>,
    /// call id → `(created ms, id)` of its in-progress operations.
    by_call: HashMap<String, BTreeSet<(i64, String)>>,
    /// `(deadline ms, id)` of in-progress operations.
    deadlines: BTreeSet<(i64, String)>,
}

impl TenantOps {
    pub(super) fn register(&mut self, op: OperationRecord, until: Instant) -> Registered {
        if let Some(existing) = self
            .keys
            .get(&op.command_uid)
            .and_then(|(id, _)| self.ops.get(id))
        {
            return Registered::Existing(existing.0.clone());
        }
        if op.status == OperationStatus::InProgress {
            self.index(&op, true);
        }
        self.keys
            .insert(op.command_uid.clone(), (op.id.clone(), until));
        self.ops.insert(op.id.clone(), (op.clone(), until));
        Registered::Created(op)
    }

    fn index(&mut self, op: &OperationRecord, add: bool) {
        let by_call = (ms(op.created_at), op.id.clone());
        let by_deadline = (ms(op.deadline), op.id.clone());
        if add {
            self.by_call
                .entry(op.call_id.clone())
                .or_default()
                .insert(by_call);
            self.deadlines.insert(by_deadline);
        } else {
            if let Some(set) = self.by_call.get_mut(&op.call_id) {
                set.remove(&by_call);
                if set.is_empty() {
                    self.by_call.remove(&op.call_id);
                }
            }
            self.deadlines.remove(&by_deadline);
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<OperationRecord> {
        self.ops.get(id).map(|(op, _)| op.clone())
    }

    pub(super) fn finish(
        &mut self,
        id: &str,
        status: OperationStatus,
        detail: Option<String>,
        at: DateTime<Utc>,
    ) -> Option<Transition<OperationRecord>> {
        let (op, _) = self.ops.get(id)?;
        if op.status != OperationStatus::InProgress || status == OperationStatus::InProgress {
            return Some(Transition {
                record: op.clone(),
                changed: false,
            });
        }
        let before = op.clone();
        self.index(&before, false);
        let (op, _) = self.ops.get_mut(id)?;
        op.status = status;
        op.detail = detail;
        op.completed_at = Some(at);
        Some(Transition {
            record: op.clone(),
            changed: true,
        })
    }

    pub(super) fn pending_for_call(
        &self,
        call_id: &str,
        command: Option<&str>,
    ) -> Vec<OperationRecord> {
        let Some(ids) = self.by_call.get(call_id) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|(_, id)| self.get(id))
            .filter(|op| command.is_none_or(|c| op.command == c))
            .collect()
    }

    pub(super) fn due(&self, now: DateTime<Utc>, limit: usize) -> Vec<OperationRecord> {
        let now = ms(now);
        self.deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, id)| self.get(id))
            .take(limit)
            .collect()
    }

    pub(super) fn evict_operation(&mut self, id: &str, now: Instant) {
        if self.ops.get(id).is_some_and(|(_, at)| *at <= now) {
            if let Some((op, _)) = self.ops.remove(id) {
                self.index(&op, false);
            }
        }
    }

    pub(super) fn evict_key(&mut self, uid: &str, now: Instant) {
        if self.keys.get(uid).is_some_and(|(_, at)| *at <= now) {
            self.keys.remove(uid);
        }
    }
}
