//! Idempotency-Key records on Redis.
//!
//! Owns how a record is kept: one hash under the tenant's hash tag
//! (`idem:<endpoint>:<key>`, see [`super::keys::Keys::idempotency`]) with
//! `fp`, `owner`, `state` and, once done, `response` (JSON), expiring after
//! the in-progress lease and, once done, after the key's TTL. All three steps
//! are one script (`idempotency.lua`), so a begin is a create-if-absent and a
//! finish or release touches only the caller's own in-progress record. It
//! must not decide which responses are kept (the HTTP layer does).

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::{Script, Value};

use super::value::{array, corrupt, fields, int, json, string, to_json};
use super::RedisStore;
use crate::store::cursor::duration_ms;
use crate::store::{
    Begun, IdempotencyAttempt, IdempotencyRecord, IdempotencyScope, StoreError, StoredResponse,
};

/// A TTL in milliseconds for `PEXPIRE` (at least 1: Redis refuses 0).
fn ttl_ms(d: Duration) -> i64 {
    duration_ms(d).max(1)
}

static STEP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("idempotency.lua")));

/// A record from its hash.
fn decode(hash: &Value) -> Result<IdempotencyRecord, StoreError> {
    let f = fields(hash)?;
    let get = |k: &str| {
        f.get(k)
            .ok_or_else(|| corrupt(format!("idempotency record without {k}")))
    };
    let response = match get("state")?.as_str() {
        "in_progress" => None,
        "done" => Some(json::<StoredResponse>(
            get("response")?,
            "idempotency response",
        )?),
        other => return Err(corrupt(format!("idempotency state {other:?}"))),
    };
    Ok(IdempotencyRecord {
        fingerprint: get("fp")?.clone(),
        owner: get("owner")?.clone(),
        response,
    })
}

impl RedisStore {
    fn idempotency_key(&self, scope: &IdempotencyScope) -> String {
        self.keys
            .idempotency(&scope.tenant, &scope.endpoint, &scope.key)
    }

    pub(super) async fn begin_idempotent_impl(
        &self,
        scope: &IdempotencyScope,
        attempt: &IdempotencyAttempt,
        lease: Duration,
    ) -> Result<Begun, StoreError> {
        let mut inv = STEP.prepare_invoke();
        inv.key(self.idempotency_key(scope))
            .arg("begin")
            .arg(&attempt.fingerprint)
            .arg(&attempt.owner)
            .arg(ttl_ms(lease));
        let reply = self.invoke(&inv).await?;
        let items = array(&reply)?;
        match (
            items.first().map(string).transpose()?.as_deref(),
            items.get(1),
        ) {
            (Some("started"), _) => Ok(Begun::Started),
            (Some("existing"), Some(h)) => Ok(Begun::Existing(decode(h)?)),
            _ => Err(corrupt("unexpected idempotency begin reply")),
        }
    }

    pub(super) async fn finish_idempotent_impl(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut inv = STEP.prepare_invoke();
        inv.key(self.idempotency_key(scope))
            .arg("finish")
            .arg(owner)
            .arg(to_json(&response))
            .arg(ttl_ms(ttl));
        Ok(int(&self.invoke(&inv).await?)? == 1)
    }

    pub(super) async fn release_idempotent_impl(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let mut inv = STEP.prepare_invoke();
        inv.key(self.idempotency_key(scope))
            .arg("release")
            .arg(owner);
        Ok(int(&self.invoke(&inv).await?)? == 1)
    }
}
