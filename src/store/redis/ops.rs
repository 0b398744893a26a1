//! Call-control operations on Redis.
//!
//! Owns how an operation is kept: a hash under the tenant's tag (`rec` = the
//! record as registered; `status`, `detail`, `completed_at` as JSON once it
//! has a result; `call_id` and `command` in plain text for the scripts) with
//! the registration's TTL, the idempotency key `opkey:<uid>` → id (SET NX
//! semantics inside the script, same TTL), and for in-progress operations a
//! per-call ZSET and a deadline ZSET. It must not decide results: callers do.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::{Script, Value};
use chrono::{DateTime, Utc};

use super::value::{array, corrupt, fields, json, string, to_json};
use super::webhooks::emitting_script;
use super::RedisStore;
use crate::store::cursor::{duration_ms, ms};
use crate::store::{
    Emission, OperationRecord, OperationStatus, Registered, StoreError, Transition,
};

static REGISTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("register_operation.lua")));
static FINISH: LazyLock<Script> =
    LazyLock::new(|| emitting_script(include_str!("finish_operation.lua")));
static PENDING: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("pending_operations.lua")));
static DUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("due_operations.lua")));

/// An operation from its hash; `None` when the hash is empty.
fn decode(v: &Value) -> Result<Option<OperationRecord>, StoreError> {
    let f = fields(v)?;
    let Some(rec) = f.get("rec") else {
        return Ok(None);
    };
    let mut op: OperationRecord = json(rec, "operation")?;
    if let Some(s) = f.get("status") {
        op.status = json(s, "operation status")?;
    }
    if let Some(d) = f.get("detail") {
        op.detail = json(d, "operation detail")?;
    }
    if let Some(at) = f.get("completed_at") {
        op.completed_at = json(at, "operation completed_at")?;
    }
    Ok(Some(op))
}

fn decode_all(v: &Value) -> Result<Vec<OperationRecord>, StoreError> {
    let mut out = Vec::new();
    for h in array(v)? {
        out.extend(decode(h)?);
    }
    Ok(out)
}

impl RedisStore {
    fn op_prefix(&self, tenant: &str) -> String {
        self.keys.tenant(tenant, "op:")
    }

    fn ops_call_prefix(&self, tenant: &str) -> String {
        self.keys.tenant(tenant, "opscall:")
    }

    pub(super) async fn register_operation_impl(
        &self,
        op: OperationRecord,
        ttl: Duration,
    ) -> Result<Registered, StoreError> {
        let t = &op.tenant;
        let mut inv = REGISTER.prepare_invoke();
        inv.key(self.keys.tenant(t, &format!("opkey:{}", op.command_uid)))
            .key(format!("{}{}", self.op_prefix(t), op.id))
            .key(format!("{}{}", self.ops_call_prefix(t), op.call_id))
            .key(self.keys.tenant(t, "ops:deadline"))
            .arg(&op.id)
            .arg(to_json(&op))
            .arg(duration_ms(ttl).max(1))
            .arg(if op.status == OperationStatus::InProgress {
                "1"
            } else {
                "0"
            })
            .arg(ms(op.created_at))
            .arg(ms(op.deadline))
            .arg(self.op_prefix(t))
            .arg(&op.call_id)
            .arg(&op.command)
            .arg(to_json(&op.status));
        let reply = self.invoke(&inv).await?;
        let items = array(&reply)?;
        match (
            items.first().map(string).transpose()?.as_deref(),
            items.get(1),
        ) {
            (Some("created"), _) => Ok(Registered::Created(op)),
            (Some("existing"), Some(h)) => decode(h)?
                .map(Registered::Existing)
                .ok_or_else(|| corrupt("existing operation without record")),
            _ => Err(corrupt("unexpected register_operation reply")),
        }
    }

    pub(super) async fn get_operation_impl(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let reply = self
            .query(::redis::cmd("HGETALL").arg(format!("{}{id}", self.op_prefix(tenant))))
            .await?;
        decode(&reply)
    }

    pub(super) async fn finish_operation_impl(
        &self,
        tenant: &str,
        id: &str,
        status: OperationStatus,
        detail: Option<String>,
        at: DateTime<Utc>,
        emit: Option<Emission>,
    ) -> Result<Option<Transition<OperationRecord>>, StoreError> {
        if status == OperationStatus::InProgress {
            // Not a result: report the record unchanged.
            return Ok(self
                .get_operation_impl(tenant, id)
                .await?
                .map(|record| Transition {
                    record,
                    changed: false,
                }));
        }
        let mut inv = FINISH.prepare_invoke();
        inv.key(format!("{}{id}", self.op_prefix(tenant)))
            .key(self.keys.tenant(tenant, "ops:deadline"))
            .arg(id)
            .arg(to_json(&status))
            .arg(to_json(&detail))
            .arg(to_json(&at))
            .arg(self.ops_call_prefix(tenant));
        self.add_emission(&mut inv, tenant, emit.as_ref());
        let reply = self.invoke(&inv).await?;
        let items = array(&reply)?;
        let code = items.first().map(string).transpose()?;
        match (code.as_deref(), items.get(1)) {
            (Some("none"), _) => Ok(None),
            (Some(c @ ("changed" | "same")), Some(h)) => Ok(Some(Transition {
                record: decode(h)?.ok_or_else(|| corrupt("operation without record"))?,
                changed: c == "changed",
            })),
            _ => Err(corrupt("unexpected finish_operation reply")),
        }
    }

    pub(super) async fn pending_operations_impl(
        &self,
        tenant: &str,
        call_id: &str,
        command: Option<&str>,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let mut inv = PENDING.prepare_invoke();
        inv.key(format!("{}{call_id}", self.ops_call_prefix(tenant)))
            .arg(self.op_prefix(tenant))
            .arg(command.unwrap_or(""));
        decode_all(&self.invoke(&inv).await?)
    }

    pub(super) async fn due_operations_impl(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut inv = DUE.prepare_invoke();
        inv.key(self.keys.tenant(tenant, "ops:deadline"))
            .arg(self.op_prefix(tenant))
            .arg(ms(now))
            .arg(limit);
        decode_all(&self.invoke(&inv).await?)
    }
}
