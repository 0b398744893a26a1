//! The call table on Redis: records, live lists, bindings and sequences.
//!
//! Owns how a call is kept: one hash per call under `{call:<uuid>}` with one
//! field per set field of the record (JSON values; `extra` entries as
//! `x:<key>`; the webhook sequence as `_seq`; the first creation time, in ms,
//! as `_created_ms`), merged by `put_call.lua`, and
//! a binding hash beside it. Live lists (`{t:<tenant>}:calls:live` and
//! `{node:<node>}:live`, ZSETs by creation time) live in other slots: on
//! one server (or a Sentinel's primary) the merge script updates them in
//! the same step, so a call event costs one round trip; on a cluster they
//! are updated after the merge with single-key commands, idempotently. Every
//! read checks the records it lists (dropping stale entries); a lost update
//! heals on the call's next write. It must not merge in Rust:
//! the rule runs in the script.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use ::redis::{Script, Value};
use futures_util::future::join_all;
use serde_json::{Map, Value as Json};

use super::sessions::{empty_page, finish_page, parse_score};
use super::value::{array, corrupt, fields, string};
use super::RedisStore;
use crate::store::cursor::{self, duration_ms, ms};
use crate::store::{CallBinding, CallRecord, CallState, Page, StoreError};

static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("put_call.lua")));
static SEQ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("next_sequence.lua")));
static BIND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("put_binding.lua")));

/// How long the sequence counter of a call never written is kept.
const ORPHAN_SEQUENCE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The non-null fields of a record (or binding) as `(field, JSON)` pairs.
pub(super) fn encode<T: serde::Serialize>(v: &T) -> Vec<(String, String)> {
    let Ok(Json::Object(map)) = serde_json::to_value(v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in map {
        match (k.as_str(), v) {
            (_, Json::Null) => {}
            ("extra", Json::Object(extra)) => {
                out.extend(
                    extra
                        .into_iter()
                        .map(|(ek, ev)| (format!("x:{ek}"), ev.to_string())),
                );
            }
            (_, v) => out.push((k, v.to_string())),
        }
    }
    out
}

/// A hash of JSON fields as a `T`; `None` when `required` is missing.
fn decode_fields<T: serde::de::DeserializeOwned>(
    f: HashMap<String, String>,
    required: &str,
    with_extra: bool,
) -> Result<Option<T>, StoreError> {
    if !f.contains_key(required) {
        return Ok(None);
    }
    let mut map = Map::new();
    let mut extra = Map::new();
    for (k, v) in f {
        if k.starts_with('_') {
            continue;
        }
        let v: Json = serde_json::from_str(&v).map_err(|e| corrupt(format!("field {k}: {e}")))?;
        match k.strip_prefix("x:") {
            Some(ek) => {
                extra.insert(ek.to_owned(), v);
            }
            None => {
                map.insert(k, v);
            }
        }
    }
    if with_extra {
        map.insert("extra".into(), Json::Object(extra));
    }
    serde_json::from_value(Json::Object(map))
        .map(Some)
        .map_err(|e| corrupt(format!("record: {e}")))
}

fn decode_call(v: &Value) -> Result<Option<CallRecord>, StoreError> {
    decode_fields(fields(v)?, "uuid", true)
}

impl RedisStore {
    pub(super) async fn put_call_impl(
        &self,
        call: CallRecord,
        retention: Duration,
    ) -> Result<CallRecord, StoreError> {
        let mut inv = PUT.prepare_invoke();
        inv.key(self.keys.call(&call.uuid, "call"))
            .key(self.keys.call(&call.uuid, "binding"))
            .arg(duration_ms(retention).max(1))
            .arg(ms(call.created_at));
        // One server: the script indexes the merged call too (one round
        // trip). A cluster keeps the lists in their own slots: indexed after.
        let index_here = !self.is_cluster();
        if index_here {
            let (tenant_head, tenant_tail) = self.keys.tenant_live_around();
            let (node_head, node_tail) = self.keys.node_live_around();
            inv.arg(tenant_head)
                .arg(tenant_tail)
                .arg(node_head)
                .arg(node_tail);
        } else {
            inv.arg("").arg("").arg("").arg("");
        }
        for (f, v) in encode(&call) {
            inv.arg(f).arg(v);
        }
        let merged = decode_call(&self.invoke(&inv).await?)?
            .ok_or_else(|| corrupt("put_call returned no record"))?;
        if !index_here {
            self.index_call(&merged).await?;
        }
        Ok(merged)
    }

    /// Puts a call on (or takes it off) its tenant's and node's live lists.
    async fn index_call(&self, c: &CallRecord) -> Result<(), StoreError> {
        let live = c.state != CallState::Ended;
        let score = ms(c.created_at);
        let mut lists = vec![self.keys.node_live(&c.node)];
        if let Some(t) = &c.tenant {
            lists.push(self.keys.tenant(t, "calls:live"));
        }
        let cmds = lists.into_iter().map(|list| {
            let mut cmd = if live {
                ::redis::cmd("ZADD")
            } else {
                ::redis::cmd("ZREM")
            };
            cmd.arg(list);
            if live {
                cmd.arg(score);
            }
            cmd.arg(&c.uuid);
            cmd
        });
        for r in join_all(cmds.map(|cmd| async move { self.query(&cmd).await })).await {
            r?;
        }
        Ok(())
    }

    pub(super) async fn get_call_impl(&self, uuid: &str) -> Result<Option<CallRecord>, StoreError> {
        let reply = self
            .query(::redis::cmd("HGETALL").arg(self.keys.call(uuid, "call")))
            .await?;
        decode_call(&reply)
    }

    /// The records of listed UUIDs that still belong on `list`; drops the
    /// others from it.
    async fn checked(
        &self,
        list: &str,
        uuids: Vec<String>,
        keep: impl Fn(&CallRecord) -> bool,
    ) -> Result<Vec<Option<CallRecord>>, StoreError> {
        let records = join_all(uuids.iter().map(|u| self.get_call_impl(u))).await;
        let mut out = Vec::with_capacity(uuids.len());
        for (uuid, rec) in uuids.iter().zip(records) {
            let rec = rec?.filter(|c| c.state != CallState::Ended && keep(c));
            if rec.is_none() {
                self.query(::redis::cmd("ZREM").arg(list).arg(uuid)).await?;
            }
            out.push(rec);
        }
        Ok(out)
    }

    pub(super) async fn list_live_calls_impl(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<CallRecord>, StoreError> {
        let mut after = match cursor {
            None => None,
            Some(c) => match cursor::decode(c) {
                Some(k) => Some(k),
                None => return Ok(empty_page()),
            },
        };
        let list = self.keys.tenant(tenant, "calls:live");
        let (mut items, mut keys) = (Vec::new(), Vec::new());
        // Fetch until the page (plus one, to know whether more follow) is
        // full of records that really are live calls of the tenant.
        loop {
            let want = limit + 1 - items.len();
            let candidates = self.live_candidates(&list, after.as_ref(), want).await?;
            let exhausted = candidates.len() < want;
            let Some(last) = candidates.last().cloned() else {
                break;
            };
            let uuids = candidates.iter().map(|(_, u)| u.clone()).collect();
            let records = self
                .checked(&list, uuids, |c| c.tenant.as_deref() == Some(tenant))
                .await?;
            for (key, rec) in candidates.into_iter().zip(records) {
                if let Some(rec) = rec {
                    items.push(rec);
                    keys.push(key);
                }
            }
            after = Some(last);
            if exhausted || items.len() > limit {
                break;
            }
        }
        Ok(finish_page(items, keys, limit))
    }

    /// Up to `want` `(score, uuid)` entries of a live list after a cursor,
    /// oldest first.
    async fn live_candidates(
        &self,
        list: &str,
        after: Option<&(i64, String)>,
        want: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let (min, ties) = match after {
            None => ("-inf".to_string(), 0),
            Some((s, _)) => {
                let ties = self
                    .query(::redis::cmd("ZCOUNT").arg(list).arg(s).arg(s))
                    .await?;
                (s.to_string(), super::value::int(&ties)?)
            }
        };
        let reply = self
            .query(
                ::redis::cmd("ZRANGEBYSCORE")
                    .arg(list)
                    .arg(min)
                    .arg("+inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(want as i64 + ties),
            )
            .await?;
        let flat = array(&reply)?;
        let mut out = Vec::new();
        for pair in flat.chunks(2) {
            let [u, s] = pair else {
                return Err(corrupt("odd ZRANGEBYSCORE reply"));
            };
            let key = (parse_score(s)?, string(u)?);
            if after.is_none_or(|a| key > *a) && out.len() < want {
                out.push(key);
            }
        }
        Ok(out)
    }

    pub(super) async fn live_calls_on_node_impl(
        &self,
        node: &str,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let list = self.keys.node_live(node);
        let reply = self
            .query(::redis::cmd("ZRANGE").arg(&list).arg(0).arg(-1))
            .await?;
        let uuids = super::value::strings(&reply)?;
        let records = self.checked(&list, uuids, |c| c.node == node).await?;
        Ok(records.into_iter().flatten().collect())
    }

    pub(super) async fn put_call_binding_impl(
        &self,
        uuid: &str,
        binding: CallBinding,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut inv = BIND.prepare_invoke();
        inv.key(self.keys.call(uuid, "binding"))
            .arg(duration_ms(ttl).max(1));
        for (f, v) in encode(&binding) {
            inv.arg(f).arg(v);
        }
        self.invoke(&inv).await.map(|_| ())
    }

    pub(super) async fn get_call_binding_impl(
        &self,
        uuid: &str,
    ) -> Result<Option<CallBinding>, StoreError> {
        let reply = self
            .query(::redis::cmd("HGETALL").arg(self.keys.call(uuid, "binding")))
            .await?;
        decode_fields(fields(&reply)?, "tenant", false)
    }

    pub(super) async fn next_call_sequence_impl(&self, uuid: &str) -> Result<u64, StoreError> {
        let mut inv = SEQ.prepare_invoke();
        inv.key(self.keys.call(uuid, "call"))
            .arg(duration_ms(ORPHAN_SEQUENCE_TTL));
        let n = super::value::int(&self.invoke(&inv).await?)?;
        u64::try_from(n).map_err(|_| corrupt("negative call sequence"))
    }
}
