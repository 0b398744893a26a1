//! Masked-number sessions on Redis: pool sync, allocation, the open/active
//! steps, completion, listing and the expiry index.
//!
//! Owns how a session is kept: a hash (`base` = the creation JSON, `number`,
//! `state`, and once completed `completed_at` and `reason` as JSON) plus a
//! list of active call UUIDs; the pool as a SET, the free numbers as a SET
//! (SPOP: O(1) allocation), `holders` (number → ref of the live session),
//! sessions by creation time (all and per state) and live sessions by
//! expiry, all under the tenant's hash tag. Every change is one script; it
//! must not hold domain rules beyond the documented state steps.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::{Script, Value};
use chrono::{DateTime, Utc};

use super::calls::encode;
use super::value::{array, fields, json, string, strings, to_json};
use super::webhooks::emitting_script;
use super::RedisStore;
use crate::store::cursor::{self, duration_ms, ms};
use crate::store::{
    CallBinding, CompletionReason, CreateSessionError, Emission, NewSession, Page, SessionRecord,
    SessionState, StoreError, Transition,
};

static CREATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("create_session.lua")));
static STEP: LazyLock<Script> = LazyLock::new(|| emitting_script(include_str!("session_step.lua")));
static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| emitting_script(include_str!("complete_session.lua")));
static SYNC_POOL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("sync_pool.lua")));
static LIST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("list_sessions.lua")));
static GET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("get_session.lua")));
static BY_NUMBER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("session_by_number.lua")));

fn state_name(s: SessionState) -> &'static str {
    match s {
        SessionState::Open => "open",
        SessionState::Active => "active",
        SessionState::Completed => "completed",
    }
}

/// A session from its hash and its list of active calls.
fn decode(hash: &Value, calls: &Value) -> Result<SessionRecord, StoreError> {
    let f = fields(hash)?;
    let get = |k: &str| {
        f.get(k)
            .ok_or_else(|| super::value::corrupt(format!("session without {k}")))
    };
    let base: NewSession = json(get("base")?, "session base")?;
    let state = match get("state")?.as_str() {
        "open" => SessionState::Open,
        "active" => SessionState::Active,
        "completed" => SessionState::Completed,
        other => return Err(super::value::corrupt(format!("session state {other:?}"))),
    };
    let completed_at = f
        .get("completed_at")
        .map(|t| json::<DateTime<Utc>>(t, "completed_at"))
        .transpose()?;
    let completion_reason = f
        .get("reason")
        .map(|t| json::<CompletionReason>(t, "completion reason"))
        .transpose()?;
    // Moved forward by create_session.lua when the number was released
    // after the given creation time.
    let (created_at, expires_at) = match (f.get("created_ms"), f.get("expires_ms")) {
        (Some(c), Some(e)) => (from_ms(c)?, from_ms(e)?),
        _ => (base.created_at, base.expires_at),
    };
    Ok(SessionRecord {
        tenant: base.tenant,
        session_ref: base.session_ref,
        state,
        masked_number: get("number")?.clone(),
        party_a: base.party_a,
        party_b: base.party_b,
        ttl_minutes: base.ttl_minutes,
        created_at,
        expires_at,
        completed_at,
        completion_reason,
        metadata: base.metadata,
        active_calls: strings(calls)?,
    })
}

/// A time the scripts wrote in milliseconds.
fn from_ms(text: &str) -> Result<DateTime<Utc>, StoreError> {
    text.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| super::value::corrupt(format!("a time of {text:?} ms")))
}

/// `at` in milliseconds, rounded up: the release time a later session on
/// the number may not start before.
fn ms_ceil(at: DateTime<Utc>) -> i64 {
    let floor = ms(at);
    if at.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        floor
    } else {
        floor + 1
    }
}

/// `{'none'} | {'changed'|'same', hash, calls}` as a transition.
fn transition(reply: &Value) -> Result<Option<Transition<SessionRecord>>, StoreError> {
    let items = array(reply)?;
    let code = items.first().map(string).transpose()?;
    match (code.as_deref(), items.get(1), items.get(2)) {
        (Some("none"), _, _) => Ok(None),
        (Some(c @ ("changed" | "same")), Some(hash), Some(calls)) => Ok(Some(Transition {
            record: decode(hash, calls)?,
            changed: c == "changed",
        })),
        _ => Err(super::value::corrupt("unexpected session script reply")),
    }
}

impl RedisStore {
    pub(super) async fn sync_pool_impl(
        &self,
        tenant: &str,
        numbers: &[String],
    ) -> Result<bool, StoreError> {
        let mut inv = SYNC_POOL.prepare_invoke();
        inv.key(self.keys.tenant(tenant, "pool"))
            .key(self.keys.tenant(tenant, "free"))
            .key(self.keys.tenant(tenant, "holders"))
            .key(self.keys.tenant(tenant, "pool:fp"))
            .arg(pool_fingerprint(numbers));
        for n in numbers {
            inv.arg(n);
        }
        Ok(matches!(self.invoke(&inv).await?, Value::Int(1)))
    }

    pub(super) async fn create_session_impl(
        &self,
        new: NewSession,
    ) -> Result<SessionRecord, CreateSessionError> {
        let mut inv = CREATE.prepare_invoke();
        inv.key(&self.keys.session_keys(&new.tenant, &new.session_ref)[..])
            .arg(&new.session_ref)
            .arg(to_json(&new))
            .arg(ms(new.created_at))
            .arg(ms(new.expires_at));
        let reply = self.invoke(&inv).await?;
        let items = array(&reply)?;
        let code = items.first().map(string).transpose()?;
        // What the script wrote: the given times, or both moved forward.
        let (created_at, expires_at) = match (items.get(2), items.get(3)) {
            (Some(c), Some(e)) if string(c)? != ms(new.created_at).to_string() => {
                (from_ms(&string(c)?)?, from_ms(&string(e)?)?)
            }
            _ => (new.created_at, new.expires_at),
        };
        match (code.as_deref(), items.get(1)) {
            (Some("dup"), _) => Err(CreateSessionError::DuplicateRef),
            (Some("exhausted"), _) => Err(CreateSessionError::PoolExhausted),
            (Some("ok"), Some(number)) => Ok(SessionRecord {
                masked_number: string(number)?,
                tenant: new.tenant,
                session_ref: new.session_ref,
                state: SessionState::Open,
                party_a: new.party_a,
                party_b: new.party_b,
                ttl_minutes: new.ttl_minutes,
                created_at,
                expires_at,
                completed_at: None,
                completion_reason: None,
                metadata: new.metadata,
                active_calls: Vec::new(),
            }),
            _ => Err(super::value::corrupt("unexpected create_session reply").into()),
        }
    }

    pub(super) async fn get_session_impl(
        &self,
        tenant: &str,
        session_ref: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let [ses, calls, ..] = self.keys.session_keys(tenant, session_ref);
        let mut inv = GET.prepare_invoke();
        inv.key(ses).key(calls);
        let reply = self.invoke(&inv).await?;
        let reply = array(&reply)?;
        match (reply.first(), reply.get(1)) {
            (Some(hash), Some(calls)) => {
                if fields(hash)?.is_empty() {
                    Ok(None)
                } else {
                    decode(hash, calls).map(Some)
                }
            }
            _ => Err(super::value::corrupt("unexpected session reply")),
        }
    }

    pub(super) async fn list_sessions_impl(
        &self,
        tenant: &str,
        state: Option<SessionState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<SessionRecord>, StoreError> {
        let after = match cursor {
            None => None,
            Some(c) => match cursor::decode(c) {
                Some(k) => Some(k),
                None => return Ok(empty_page()),
            },
        };
        let index = self.keys.sessions(tenant, state.map(state_name));
        let (score, _) = after.clone().unwrap_or((0, String::new()));
        let mut inv = LIST.prepare_invoke();
        inv.key(index)
            .arg(self.keys.tenant(tenant, "ses:"))
            .arg(self.keys.tenant(tenant, "sescalls:"))
            .arg(if after.is_some() { "1" } else { "0" })
            .arg(score)
            .arg(limit);
        let reply = self.invoke(&inv).await?;
        let mut items = Vec::new();
        let mut keys = Vec::new();
        for entry in array(&reply)? {
            let e = array(entry)?;
            let (Some(r), Some(s), Some(hash), Some(calls)) =
                (e.first(), e.get(1), e.get(2), e.get(3))
            else {
                return Err(super::value::corrupt("unexpected list_sessions entry"));
            };
            let (r, s) = (string(r)?, parse_score(s)?);
            if let Some((cs, cr)) = &after {
                if !(s < *cs || (s == *cs && r < *cr)) {
                    continue;
                }
            }
            if items.len() > limit {
                break;
            }
            items.push(decode(hash, calls)?);
            keys.push((s, r));
        }
        Ok(finish_page(items, keys, limit))
    }

    pub(super) async fn session_by_number_impl(
        &self,
        tenant: &str,
        number: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        // One round trip (the route lookup's hot path): holder, then its
        // session, under the tenant's tag.
        let mut inv = BY_NUMBER.prepare_invoke();
        inv.key(self.keys.tenant(tenant, "holders"))
            .arg(number)
            .arg(self.keys.tenant(tenant, "ses:"))
            .arg(self.keys.tenant(tenant, "sescalls:"));
        let reply = self.invoke(&inv).await?;
        let reply = array(&reply)?;
        let record = match (reply.first(), reply.get(1)) {
            (None, _) => return Ok(None),
            (Some(hash), Some(calls)) if !fields(hash)?.is_empty() => decode(hash, calls)?,
            (Some(_), Some(_)) => return Ok(None), // a stale holder entry
            _ => return Err(super::value::corrupt("unexpected session reply")),
        };
        Ok(
            Some(record)
                .filter(|s| s.state != SessionState::Completed && s.masked_number == number),
        )
    }

    pub(super) async fn session_step_impl(
        &self,
        tenant: &str,
        session_ref: &str,
        step: &str,
        call_uuid: &str,
        bind: Option<(CallBinding, Duration)>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        let mut inv = STEP.prepare_invoke();
        inv.key(&self.keys.session_keys(tenant, session_ref)[..])
            .arg(session_ref)
            .arg(step)
            .arg(call_uuid);
        self.add_emission(&mut inv, tenant, emit.as_ref());
        // One script writes the binding too where one server holds every
        // key; a cluster keeps it in the call's slot, written once the
        // session is known to be live (a second round trip).
        let (bind_here, bind_after) = match bind {
            Some(b) if !self.is_cluster() => (Some(b), None),
            other => (None, other),
        };
        if let Some((binding, ttl)) = &bind_here {
            inv.key(self.keys.call(call_uuid, "binding"))
                .arg(duration_ms(*ttl).max(1));
            for (f, v) in encode(binding) {
                inv.arg(f).arg(v);
            }
        }
        let t = transition(&self.invoke(&inv).await?)?;
        if let (Some((binding, ttl)), Some(live)) = (bind_after, &t) {
            if live.record.state != SessionState::Completed {
                self.put_call_binding_impl(call_uuid, binding, ttl).await?;
            }
        }
        Ok(t)
    }

    pub(super) async fn complete_session_impl(
        &self,
        tenant: &str,
        session_ref: &str,
        reason: CompletionReason,
        at: DateTime<Utc>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        let mut inv = COMPLETE.prepare_invoke();
        inv.key(&self.keys.session_keys(tenant, session_ref)[..])
            .arg(session_ref)
            .arg(to_json(&reason))
            .arg(to_json(&at));
        self.add_emission(&mut inv, tenant, emit.as_ref());
        inv.arg(ms_ceil(at)); // last (ARGV[#ARGV]): the number's release time
        transition(&self.invoke(&inv).await?)
    }

    pub(super) async fn due_sessions_impl(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let reply = self
            .query(
                ::redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.tenant(tenant, "expiry"))
                    .arg("-inf")
                    .arg(ms(now))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit),
            )
            .await?;
        strings(&reply)
    }
}

/// A ZSET score reply as integer milliseconds.
pub(super) fn parse_score(v: &Value) -> Result<i64, StoreError> {
    if let Value::Double(d) = v {
        return Ok(*d as i64);
    }
    let s = string(v)?;
    s.parse::<i64>()
        .or_else(|_| s.parse::<f64>().map(|f| f as i64))
        .map_err(|_| super::value::corrupt(format!("score {s:?}")))
}

pub(super) fn empty_page<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        next_cursor: None,
    }
}

/// Trims `limit + 1` candidates to a page with the cursor of its last item.
pub(super) fn finish_page<T>(
    mut items: Vec<T>,
    mut keys: Vec<(i64, String)>,
    limit: usize,
) -> Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    keys.truncate(limit);
    let next_cursor = match keys.last() {
        Some((s, id)) if more => Some(cursor::encode(*s, id)),
        _ => None,
    };
    Page { items, next_cursor }
}

/// What a pool was last synced to: SHA-256 of its numbers, in order.
fn pool_fingerprint(numbers: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for n in numbers {
        h.update(n.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}
