//! Masked-number sessions of one tenant in the memory store: the pool, the
//! free list, the number index, the expiry index and the records.
//!
//! Owns the session rules that must be atomic (allocation, the open/active
//! step, completion returning the number); it runs under the store's lock and
//! must not lock, await or read a clock itself.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};

use crate::store::cursor::ms;
use crate::store::{
    CompletionReason, CreateSessionError, NewSession, Page, SessionRecord, SessionState, Transition,
};

/// One tenant's sessions.
#[derive(Default)]
pub(super) struct Tenant {
    /// The configured numbers.
    pool: HashSet<String>,
    /// The list they were last synced from.
    synced: Option<Vec<String>>,
    /// Numbers of the pool no live session holds, least recently freed first.
    free: VecDeque<String>,
    /// number → ref of the live session holding it.
    holders: HashMap<String, String>,
    pub(super) sessions: HashMap<String, SessionRecord>,
    /// `(created ms, ref)` of every session, and per state.
    all: BTreeSet<(i64, String)>,
    by_state: HashMap<SessionState, BTreeSet<(i64, String)>>,
    /// `(expires ms, ref)` of live sessions.
    expiry: BTreeSet<(i64, String)>,
    /// number → when the last session holding it completed: a session
    /// created on it later in store order starts no earlier.
    released_at: HashMap<String, DateTime<Utc>>,
}

impl Tenant {
    /// True when it changed the pool (see `Store::sync_pool`).
    pub(super) fn sync_pool(&mut self, numbers: &[String]) -> bool {
        if self.synced.as_deref() == Some(numbers) {
            return false;
        }
        self.synced = Some(numbers.to_vec());
        self.pool = numbers.iter().cloned().collect();
        let pool = &self.pool;
        self.free.retain(|n| pool.contains(n));
        let mut listed: HashSet<String> = self.free.iter().cloned().collect();
        for n in numbers {
            if !self.holders.contains_key(n) && listed.insert(n.clone()) {
                self.free.push_back(n.clone());
            }
        }
        true
    }

    pub(super) fn create(&mut self, new: NewSession) -> Result<SessionRecord, CreateSessionError> {
        if self.sessions.contains_key(&new.session_ref) {
            return Err(CreateSessionError::DuplicateRef);
        }
        let number = self
            .free
            .pop_front()
            .ok_or(CreateSessionError::PoolExhausted)?;
        // The times were read before this step; never before the number's
        // release (same TTL).
        let (created_at, expires_at) = match self.released_at.get(&number) {
            Some(&released) if released > new.created_at => {
                (released, new.expires_at + (released - new.created_at))
            }
            _ => (new.created_at, new.expires_at),
        };
        let record = SessionRecord {
            tenant: new.tenant,
            session_ref: new.session_ref,
            state: SessionState::Open,
            masked_number: number,
            party_a: new.party_a,
            party_b: new.party_b,
            ttl_minutes: new.ttl_minutes,
            created_at,
            expires_at,
            completed_at: None,
            completion_reason: None,
            metadata: new.metadata,
            active_calls: Vec::new(),
        };
        let key = (ms(record.created_at), record.session_ref.clone());
        self.all.insert(key.clone());
        self.by_state
            .entry(SessionState::Open)
            .or_default()
            .insert(key);
        self.expiry
            .insert((ms(record.expires_at), record.session_ref.clone()));
        self.holders
            .insert(record.masked_number.clone(), record.session_ref.clone());
        self.sessions
            .insert(record.session_ref.clone(), record.clone());
        Ok(record)
    }

    pub(super) fn list(
        &self,
        state: Option<SessionState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Page<SessionRecord> {
        let empty = BTreeSet::new();
        let index = match state {
            None => &self.all,
            Some(s) => self.by_state.get(&s).unwrap_or(&empty),
        };
        let (keys, next_cursor) = super::page_keys(index, cursor, limit, true);
        Page {
            items: keys
                .iter()
                .filter_map(|(_, r)| self.sessions.get(r).cloned())
                .collect(),
            next_cursor,
        }
    }

    pub(super) fn by_number(&self, number: &str) -> Option<SessionRecord> {
        let r = self.holders.get(number)?;
        self.sessions
            .get(r)
            .filter(|s| s.state != SessionState::Completed)
            .cloned()
    }

    /// Moves a session between state indexes.
    fn set_state(&mut self, session_ref: &str, to: SessionState) {
        let Some(s) = self.sessions.get_mut(session_ref) else {
            return;
        };
        let key = (ms(s.created_at), s.session_ref.clone());
        if let Some(set) = self.by_state.get_mut(&s.state) {
            set.remove(&key);
        }
        s.state = to;
        self.by_state.entry(to).or_default().insert(key);
    }

    pub(super) fn call_started(
        &mut self,
        session_ref: &str,
        call_uuid: &str,
    ) -> Option<Transition<SessionRecord>> {
        let s = self.sessions.get_mut(session_ref)?;
        if s.state == SessionState::Completed {
            return Some(unchanged(s));
        }
        if !s.active_calls.iter().any(|c| c == call_uuid) {
            s.active_calls.push(call_uuid.to_owned());
        }
        let changed = s.state == SessionState::Open;
        if changed {
            self.set_state(session_ref, SessionState::Active);
        }
        self.transition(session_ref, changed)
    }

    pub(super) fn call_ended(
        &mut self,
        session_ref: &str,
        call_uuid: &str,
    ) -> Option<Transition<SessionRecord>> {
        let s = self.sessions.get_mut(session_ref)?;
        if s.state == SessionState::Completed {
            return Some(unchanged(s));
        }
        s.active_calls.retain(|c| c != call_uuid);
        let changed = s.state == SessionState::Active && s.active_calls.is_empty();
        if changed {
            self.set_state(session_ref, SessionState::Open);
        }
        self.transition(session_ref, changed)
    }

    pub(super) fn complete(
        &mut self,
        session_ref: &str,
        reason: CompletionReason,
        at: DateTime<Utc>,
    ) -> Option<Transition<SessionRecord>> {
        let s = self.sessions.get_mut(session_ref)?;
        if s.state == SessionState::Completed {
            return Some(unchanged(s));
        }
        s.completed_at = Some(at);
        s.completion_reason = Some(reason);
        s.active_calls.clear();
        let (number, expires) = (s.masked_number.clone(), ms(s.expires_at));
        self.set_state(session_ref, SessionState::Completed);
        self.expiry.remove(&(expires, session_ref.to_owned()));
        if self.holders.get(&number).is_some_and(|r| r == session_ref) {
            self.holders.remove(&number);
            if self.pool.contains(&number) {
                self.released_at.insert(number.clone(), at);
                self.free.push_back(number);
            }
        }
        self.transition(session_ref, true)
    }

    pub(super) fn due(&self, now: DateTime<Utc>, limit: usize) -> Vec<String> {
        let now = ms(now);
        self.expiry
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn transition(&self, session_ref: &str, changed: bool) -> Option<Transition<SessionRecord>> {
        self.sessions.get(session_ref).map(|s| Transition {
            record: s.clone(),
            changed,
        })
    }
}

fn unchanged(s: &SessionRecord) -> Transition<SessionRecord> {
    Transition {
        record: s.clone(),
        changed: false,
    }
}
