//! What this instance last saw of the session holding each masked number,
//! so that the dialplan's route lookup can answer and tie the call in one
//! store round trip instead of reading the session first.
//!
//! A snapshot is only ever a guess. It is served only while its TTL has not
//! passed, and only the parts of a session that never change after its
//! creation are used from it (ref, parties, masked number, expiry,
//! metadata: what the dial string and the `session.active` envelope are made
//! of). The store step that ties the call is the judge: when it finds the
//! session completed or gone, the lookup forgets the snapshot and reads
//! the number's holder afresh (see `lookup.rs`), so a stale snapshot costs
//! one more round trip and never a wrong answer.
//!
//! Bounded: one entry per masked number, at most [`CAPACITY`]; a full map
//! first drops what has expired, then everything. It must not decide who
//! may call whom (`lookup.rs` does).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::store::SessionRecord;

/// Most snapshots kept (about 300 bytes each, plus metadata).
pub const CAPACITY: usize = 65_536;

/// Session snapshots by `(tenant, masked number)`.
#[derive(Debug, Default)]
pub struct Snapshots {
    map: Mutex<HashMap<(String, String), Arc<SessionRecord>>>,
}

impl Snapshots {
    /// The snapshot for the number, if it is still within its TTL at `now`.
    pub fn get(
        &self,
        tenant: &str,
        number: &str,
        now: DateTime<Utc>,
    ) -> Option<Arc<SessionRecord>> {
        let mut map = self.lock();
        let key = (tenant.to_owned(), number.to_owned());
        match map.get(&key) {
            Some(s) if now < s.expires_at => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers `session` as the holder of its masked number.
    pub fn put(&self, session: &SessionRecord, now: DateTime<Utc>) -> Arc<SessionRecord> {
        let snapshot = Arc::new(session.clone());
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.retain(|_, s| now < s.expires_at);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(
            (session.tenant.clone(), session.masked_number.clone()),
            snapshot.clone(),
        );
        snapshot
    }

    /// Forgets the number's snapshot (its session completed, or was found
    /// gone).
    pub fn forget(&self, tenant: &str, number: &str) {
        self.lock().remove(&(tenant.to_owned(), number.to_owned()));
    }

    /// How many snapshots are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<SessionRecord>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SessionState;

    fn session(number: &str, expires_in_s: i64) -> SessionRecord {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        SessionRecord {
            tenant: "acme".into(),
            session_ref: format!("ses_{number}"),
            state: SessionState::Open,
            masked_number: number.into(),
            party_a: "+15557770001".into(),
            party_b: "+15557770002".into(),
            ttl_minutes: 5,
            created_at: t0,
            expires_at: t0 + chrono::Duration::seconds(expires_in_s),
            completed_at: None,
            completion_reason: None,
            metadata: None,
            active_calls: vec![],
        }
    }

    #[test]
    fn served_only_within_the_ttl_and_until_forgotten() {
        let s = Snapshots::default();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        s.put(&session("+1", 60), t0);
        assert!(s.get("acme", "+1", t0).is_some());
        assert!(s.get("zeta", "+1", t0).is_none(), "per tenant");
        assert!(s
            .get("acme", "+1", t0 + chrono::Duration::seconds(60))
            .is_none());
        assert!(s.is_empty(), "an expired snapshot is dropped when met");
        s.put(&session("+1", 60), t0);
        s.forget("acme", "+1");
        assert!(s.get("acme", "+1", t0).is_none());
    }

    #[test]
    fn a_full_map_drops_expired_snapshots_first_then_everything() {
        let s = Snapshots::default();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for i in 0..CAPACITY {
            s.put(&session(&format!("+{i}"), if i == 0 { 1 } else { 60 }), t0);
        }
        let later = t0 + chrono::Duration::seconds(2);
        s.put(&session("+new", 60), later);
        assert_eq!(s.len(), CAPACITY, "the expired one made room");
        s.put(&session("+newer", 60), later);
        assert_eq!(s.len(), 1, "nothing had expired: cleared");
        assert!(s.get("acme", "+newer", later).is_some());
    }
}
