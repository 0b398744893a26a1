//! The call table in the memory store: records with their webhook sequence,
//! the live lists per tenant and per node, and call bindings.
//!
//! Owns the indexes and retention of calls; the merge rule itself is
//! [`crate::store::merge`]. Runs under the store's lock; must not lock or
//! await.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::cursor::ms;
use crate::store::merge::{apply_binding, merge_call};
use crate::store::{CallBinding, CallRecord, CallState, Page};

/// How long a sequence counter of a call never written is kept.
const ORPHAN_SEQUENCE_TTL: Duration = Duration::from_secs(24 * 3600);

struct CallEntry {
    record: Option<CallRecord>,
    sequence: u64,
    expires: Option<Instant>,
}

#[derive(Default)]
pub(super) struct CallTable {
    calls: HashMap<String, CallEntry>,
    by_tenant: HashMap<String, BTreeSet<(i64, String)>>,
    by_node: HashMap<String, BTreeSet<(i64, String)>>,
    bindings: HashMap<String, (CallBinding, Instant)>,
}

fn is_live(c: &CallRecord) -> bool {
    c.state != CallState::Ended
}

impl CallTable {
    /// Merges a write; returns the record and, when it now expires, when.
    pub(super) fn put(
        &mut self,
        call: CallRecord,
        now: Instant,
        retention: Duration,
    ) -> (CallRecord, Option<Instant>) {
        let uuid = call.uuid.clone();
        let entry = self.calls.entry(uuid.clone()).or_insert(CallEntry {
            record: None,
            sequence: 0,
            expires: None,
        });
        let mut merged = match entry.record.take() {
            Some(stored) => merge_call(stored, call),
            None => call,
        };
        if let Some((binding, _)) = self.bindings.get(&uuid) {
            merged = apply_binding(merged, binding);
        }
        entry.record = Some(merged.clone());
        let key = (ms(merged.created_at), uuid);
        let live = is_live(&merged);
        entry.expires = if live {
            None
        } else {
            Some(super::deadline(now, retention))
        };
        let expires = entry.expires;
        if let Some(tenant) = &merged.tenant {
            index(&mut self.by_tenant, tenant, key.clone(), live);
        }
        index(&mut self.by_node, &merged.node, key, live);
        (merged, expires)
    }

    pub(super) fn get(&self, uuid: &str) -> Option<CallRecord> {
        self.calls.get(uuid).and_then(|e| e.record.clone())
    }

    pub(super) fn live_of_tenant(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Page<CallRecord> {
        let Some(index) = self.by_tenant.get(tenant) else {
            return Page {
                items: Vec::new(),
                next_cursor: None,
            };
        };
        let (keys, next_cursor) = super::page_keys(index, cursor, limit, false);
        Page {
            items: keys.iter().filter_map(|(_, u)| self.get(u)).collect(),
            next_cursor,
        }
    }

    pub(super) fn live_on_node(&self, node: &str) -> Vec<CallRecord> {
        self.by_node
            .get(node)
            .map(|index| index.iter().filter_map(|(_, u)| self.get(u)).collect())
            .unwrap_or_default()
    }

    pub(super) fn bind(&mut self, uuid: &str, binding: CallBinding, until: Instant) {
        self.bindings.insert(uuid.to_owned(), (binding, until));
    }

    pub(super) fn binding(&self, uuid: &str) -> Option<CallBinding> {
        self.bindings.get(uuid).map(|(b, _)| b.clone())
    }

    /// The next sequence number and, when the counter is new, its expiry.
    pub(super) fn next_sequence(&mut self, uuid: &str, now: Instant) -> (u64, Option<Instant>) {
        let mut fresh = None;
        let entry = self.calls.entry(uuid.to_owned()).or_insert_with(|| {
            let until = super::deadline(now, ORPHAN_SEQUENCE_TTL);
            fresh = Some(until);
            CallEntry {
                record: None,
                sequence: 0,
                expires: Some(until),
            }
        });
        entry.sequence += 1;
        (entry.sequence, fresh)
    }

    pub(super) fn evict_call(&mut self, uuid: &str, now: Instant) {
        let due = self
            .calls
            .get(uuid)
            .is_some_and(|e| e.expires.is_some_and(|at| at <= now));
        if !due {
            return;
        }
        if let Some(CallEntry {
            record: Some(c), ..
        }) = self.calls.remove(uuid)
        {
            let key = (ms(c.created_at), c.uuid.clone());
            if let Some(t) = &c.tenant {
                index(&mut self.by_tenant, t, key.clone(), false);
            }
            index(&mut self.by_node, &c.node, key, false);
        }
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.calls.is_empty()
            && self.bindings.is_empty()
            && self.by_tenant.is_empty()
            && self.by_node.is_empty()
    }

    pub(super) fn evict_binding(&mut self, uuid: &str, now: Instant) {
        if self.bindings.get(uuid).is_some_and(|(_, at)| *at <= now) {
            self.bindings.remove(uuid);
        }
    }
}

/// Adds `key` to (or removes it from) the list of `owner`, dropping empty lists.
fn index(
    lists: &mut HashMap<String, BTreeSet<(i64, String)>>,
    owner: &str,
    key: (i64, String),
    add: bool,
) {
    if add {
        lists.entry(owner.to_owned()).or_default().insert(key);
    } else if let Some(list) = lists.get_mut(owner) {
        list.remove(&key);
        if list.is_empty() {
            lists.remove(owner);
        }
    }
}
