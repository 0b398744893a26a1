//! The `Idempotency-Key` header of the REST API's creating POSTs
//! (`POST /v1/sessions`, `POST /v1/calls/originate`, `POST /api/v1/sessions`),
//! with the semantics of Stripe's keys and of
//! draft-ietf-httpapi-idempotency-key-header.
//!
//! A request may carry `Idempotency-Key: <1–255 printable ASCII, no spaces>`
//! (anything else is a 400 naming the header). Keys are scoped per tenant and
//! per endpoint. The first request with a key runs and its response (status,
//! body, `Content-Type`) is kept for [`TTL`] (24 h); a request with the same
//! key and the same request (the fingerprint: SHA-256 of method, path and the
//! canonical JSON body) gets that response again with
//! `Idempotent-Replayed: true` and runs nothing. The same key with another
//! request is a 422 `idempotency_key_reused`; a request while the first is
//! still running is a 409 `idempotency_key_in_progress` (retry later).
//!
//! Which outcomes are kept: 2xx and 4xx (a 4xx is final for its key), and a
//! 5xx the handler marked [`MaybeDone`] (the command may have reached
//! FreeSWITCH: replaying that answer is what keeps a retry from placing a
//! second call). Any other 5xx — the store unavailable, draining, no
//! FreeSWITCH node, a bug — did nothing, so the record is released and a
//! retry with the same key runs. A request runs in a task of its own, so a
//! client that hangs up does not cut it short between doing and recording.
//!
//! Owns the header, the fingerprint, the replay and the keep-or-release
//! rule; the records themselves are the store's ([`crate::store::Store`]'s
//! `*_idempotent` steps). Handlers stay thin: they wrap their work in [`run`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::http::{ApiError, ApiJson};
use crate::store::{
    Begun, IdempotencyAttempt, IdempotencyScope, Store, StoreError, StoredResponse,
};

/// The request header.
pub const HEADER: &str = "Idempotency-Key";
/// The response header of a replayed response (`true`).
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";
/// How long a finished key's response is kept.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a key stays `in_progress` without being finished or released
/// (a daemon that died mid-request): longer than any request takes (store
/// round trips of at most 5 s each and a FreeSWITCH reply of at most 10 s).
pub const LEASE: Duration = Duration::from_secs(60);
/// Longest key.
pub const MAX_KEY_LEN: usize = 255;
/// Largest response body kept (this API's bodies are a few KiB).
const MAX_STORED_BODY: usize = 1024 * 1024;

/// The endpoints that take the header; each is its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/sessions`.
    MaskedSessions,
    /// `POST /v1/calls/originate`.
    MaskedOriginate,
    /// `POST /api/v1/sessions`.
    CallSessions,
}

impl Endpoint {
    /// The store's name of the key space (no `:`).
    pub fn id(self) -> &'static str {
        match self {
            Endpoint::MaskedSessions => "v1.sessions",
            Endpoint::MaskedOriginate => "v1.calls.originate",
            Endpoint::CallSessions => "api.v1.sessions",
        }
    }

    /// Method and path, as fingerprinted.
    pub fn route(self) -> (&'static str, &'static str) {
        match self {
            Endpoint::MaskedSessions => ("POST", "/v1/sessions"),
            Endpoint::MaskedOriginate => ("POST", "/v1/calls/originate"),
            Endpoint::CallSessions => ("POST", "/api/v1/sessions"),
        }
    }
}

/// A response extension: this 5xx may have done what was asked (the command
/// was sent and no answer came), so its key keeps it and replays it instead
/// of letting a retry run a second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeDone;

/// Marks `response` [`MaybeDone`].
pub fn maybe_done(mut response: Response) -> Response {
    response.extensions_mut().insert(MaybeDone);
    response
}

// --- the header ------------------------------------------------------------------

/// The header as an OpenAPI parameter (`params(IdempotencyKeyParam)`).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyParam {
    /// Optional. 1–255 printable ASCII characters without spaces (a UUID
    /// will do). A retry with the same key and the same request within 24 h
    /// gets the first answer (same status and body, `Idempotent-Replayed:
    /// true`) and does nothing again; the same key with another request is a
    /// 422 `idempotency_key_reused`; while the first request runs, 409
    /// `idempotency_key_in_progress`. 2xx and 4xx answers are kept for the
    /// key; a 5xx that did nothing is not (a retry with the key runs).
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = r"^[!-~]{1,255}$"
    )]
    pub idempotency_key: Option<String>,
}

/// The request's `Idempotency-Key`, checked; `None` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdempotencyKey(pub Option<String>);

/// Checks a key: 1–255 printable ASCII characters, no spaces.
pub fn check_key(key: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(
            Some(HEADER),
            format!(
                "the {HEADER} header {why}: send 1 to {MAX_KEY_LEN} printable ASCII \
                 characters without spaces (e.g. a UUID)"
            ),
        )
    };
    if key.is_empty() {
        return Err(bad("is empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(bad(&format!("is {} characters long", key.len())));
    }
    if let Some(c) = key.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(bad(&format!("contains {c:?}")));
    }
    Ok(())
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(IdempotencyKey(None));
        };
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                Some(HEADER),
                format!("the {HEADER} header appears more than once; send one"),
            ));
        }
        let text = value.to_str().map_err(|_| {
            ApiError::bad_request(
                Some(HEADER),
                format!("the {HEADER} header is not printable ASCII"),
            )
        })?;
        check_key(text)?;
        Ok(IdempotencyKey(Some(text.to_owned())))
    }
}

// --- the body and the fingerprint ---------------------------------------------------

/// A JSON body parsed exactly as [`ApiJson`] parses it, with its canonical
/// form kept for the fingerprint.
#[derive(Debug)]
pub struct FingerprintedJson<T> {
    /// The parsed body.
    pub value: T,
    /// The body as canonical JSON (object keys sorted, no whitespace).
    pub canonical: String,
}

impl<T, S> FromRequest<S> for FingerprintedJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // The platform's checks (media type, size, syntax); then the typed
        // parse of the same bytes, so errors name fields as ApiJson does.
        let ApiJson(raw) = ApiJson::<Box<RawValue>>::from_request(req, state).await?;
        let value = crate::http::error::parse_json::<T>(raw.get().as_bytes())?;
        let parsed: Value = serde_json::from_str(raw.get()).map_err(|e| {
            ApiError::bad_request(None, format!("malformed JSON: {e}")).with_code("invalid_json")
        })?;
        Ok(FingerprintedJson {
            value,
            canonical: canonical_json(&parsed),
        })
    }
}

/// `v` as canonical JSON: object keys sorted (by their UTF-8 bytes), no
/// insignificant whitespace; numbers and strings as serde_json writes them.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The request fingerprint: SHA-256 (hex) of `method \n path \n body`.
pub fn fingerprint(endpoint: Endpoint, canonical_body: &str) -> String {
    let (method, path) = endpoint.route();
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(canonical_body.as_bytes());
    hex::encode(h.finalize())
}

// --- running a request under its key -------------------------------------------------

/// Runs `work` (the handler's whole job, answering its response) under the
/// request's key: without a key it just runs; with one, it runs at most once
/// per `(tenant, endpoint, key)` and its answer is kept or released as the
/// module documentation says.
pub async fn run<W>(
    store: Arc<dyn Store>,
    tenant: &str,
    endpoint: Endpoint,
    key: IdempotencyKey,
    canonical_body: &str,
    work: W,
) -> Response
where
    W: Future<Output = Response> + Send + 'static,
{
    let Some(key) = key.0 else {
        return work.await;
    };
    let scope = IdempotencyScope {
        tenant: tenant.to_owned(),
        endpoint: endpoint.id().to_owned(),
        key,
    };
    let attempt = IdempotencyAttempt {
        fingerprint: fingerprint(endpoint, canonical_body),
        owner: uuid::Uuid::new_v4().to_string(),
    };
    match store.begin_idempotent(&scope, &attempt, LEASE).await {
        // Nothing ran, nothing is recorded: a retry with the key runs.
        Err(e) => return ApiError::from(e).into_response(),
        Ok(Begun::Existing(existing)) => {
            if existing.fingerprint != attempt.fingerprint {
                return ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    format!(
                        "this {HEADER} was already used for another request to this \
                         endpoint within 24 h; use a new key for a new request"
                    ),
                )
                .with_field(HEADER)
                .into_response();
            }
            return match existing.response {
                Some(stored) => replay(stored),
                None => in_progress(),
            };
        }
        Ok(Begun::Started) => {}
    }
    // The work and its recording run to the end even if the client hangs up.
    let (task_store, task_scope, owner) = (store.clone(), scope.clone(), attempt.owner.clone());
    let task = tokio::spawn(
        async move {
            let response = work.await;
            settle(&*task_store, &task_scope, &attempt.owner, response).await
        }
        .instrument(tracing::Span::current()),
    );
    match task.await {
        Ok(response) => response,
        Err(e) => {
            // A bug (a panic): nothing to keep; let a retry run.
            tracing::error!(error = %e, "an idempotent request's task failed");
            if let Err(e) = store.release_idempotent(&scope, &owner).await {
                warn_unrecorded(&scope, &e, "could not release an idempotency key");
            }
            ApiError::internal().into_response()
        }
    }
}

/// Keeps or releases the record for `response`, and returns it.
async fn settle(
    store: &dyn Store,
    scope: &IdempotencyScope,
    owner: &str,
    response: Response,
) -> Response {
    let status = response.status();
    let keep = !status.is_server_error() || response.extensions().get::<MaybeDone>().is_some();
    if !keep {
        if let Err(e) = store.release_idempotent(scope, owner).await {
            // The record stays in progress until its lease ends: retries get
            // 409 until then, and run after.
            warn_unrecorded(scope, &e, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_STORED_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "could not read a response to keep it");
            let _ = store.release_idempotent(scope, owner).await;
            return ApiError::internal().into_response();
        }
    };
    let headers = [header::CONTENT_TYPE, header::LOCATION]
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect();
    let stored = StoredResponse {
        status: status.as_u16(),
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    match store.finish_idempotent(scope, owner, stored, TTL).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            tenant = %scope.tenant,
            endpoint = %scope.endpoint,
            "an idempotency key's lease ran out before its request finished; its answer is not kept"
        ),
        Err(e) => warn_unrecorded(scope, &e, "could not keep an idempotent response"),
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

fn warn_unrecorded(scope: &IdempotencyScope, e: &StoreError, what: &str) {
    tracing::warn!(
        tenant = %scope.tenant,
        endpoint = %scope.endpoint,
        error = %e,
        "{what}; the key stays in progress until its lease ends"
    );
}

/// The kept response again, marked replayed.
fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in &stored.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(n, v);
        }
    }
    headers.insert(
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    );
    response
}

/// 409: the first request with this key is still running.
fn in_progress() -> Response {
    let mut response = ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_in_progress",
        format!(
            "a request with this {HEADER} is still being processed; retry in a moment \
             to get its answer"
        ),
    )
    .with_field(HEADER)
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey(Some(k.to_owned()))
    }

    /// Runs `answer` under `k`, counting how often it really ran.
    async fn run_counted(
        store: &Arc<dyn Store>,
        runs: &Arc<AtomicUsize>,
        k: &str,
        answer: fn() -> Response,
    ) -> Response {
        let runs = runs.clone();
        run(
            store.clone(),
            "acme",
            Endpoint::CallSessions,
            key(k),
            "{}",
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                answer()
            },
        )
        .await
    }

    fn replayed(r: &Response) -> bool {
        r.headers().get("idempotent-replayed").is_some()
    }

    #[tokio::test]
    async fn a_5xx_that_did_nothing_is_released_one_that_maybe_did_is_kept() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let runs = Arc::new(AtomicUsize::new(0));
        // Not done: released, the retry runs.
        let r = run_counted(&store, &runs, "a", || ApiError::draining().into_response()).await;
        assert_eq!(
            (r.status(), replayed(&r)),
            (StatusCode::SERVICE_UNAVAILABLE, false)
        );
        let r = run_counted(&store, &runs, "a", || StatusCode::CREATED.into_response()).await;
        assert_eq!((r.status(), replayed(&r)), (StatusCode::CREATED, false));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let r = run_counted(&store, &runs, "a", || panic!("must not run again")).await;
        assert_eq!((r.status(), replayed(&r)), (StatusCode::CREATED, true));
        // Maybe done: kept and replayed, never run again.
        let maybe = || {
            maybe_done(
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_delivered", "may ring")
                    .into_response(),
            )
        };
        let r = run_counted(&store, &runs, "b", maybe).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let r = run_counted(&store, &runs, "b", || panic!("must not run again")).await;
        assert_eq!(
            (r.status(), replayed(&r)),
            (StatusCode::SERVICE_UNAVAILABLE, true)
        );
        assert!(
            r.headers().get(header::RETRY_AFTER).is_none(),
            "retrying the key cannot help"
        );
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("not_delivered"));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // A panic is a 500 and releases the key.
        let r = run_counted(&store, &runs, "c", || panic!("a bug")).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let r = run_counted(&store, &runs, "c", || StatusCode::CREATED.into_response()).await;
        assert_eq!((r.status(), replayed(&r)), (StatusCode::CREATED, false));
        // Without a key, nothing is recorded.
        let none = run(
            store.clone(),
            "acme",
            Endpoint::CallSessions,
            IdempotencyKey(None),
            "{}",
            async { StatusCode::CREATED.into_response() },
        )
        .await;
        assert!(!replayed(&none));
    }

    #[test]
    fn keys_are_printable_ascii_without_spaces() {
        for ok in [
            "a",
            "8e03978e-40d5-43e8-bc93-6894a57f9324",
            &"k".repeat(255),
            "\"q\"",
            "~!@#",
        ] {
            assert!(check_key(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a b", "tab\there", "é", &"k".repeat(256), "nul\0"] {
            let e = check_key(bad).unwrap_err();
            assert_eq!(
                (e.status(), e.field()),
                (StatusCode::BAD_REQUEST, Some(HEADER))
            );
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"é\n"}}"#).unwrap();
        let b: Value = serde_json::from_str(
            "{ \"a\" : { \"x\":\"\\u00e9\\n\", \"y\":[1,{\"c\":3,\"d\":2}]}, \"b\":1 }",
        )
        .unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"é\n","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
        let c: Value = serde_json::from_str(r#"{"b":2,"a":{}}"#).unwrap();
        assert_ne!(
            fingerprint(Endpoint::MaskedSessions, &canonical_json(&a)),
            fingerprint(Endpoint::MaskedSessions, &canonical_json(&c))
        );
        assert_ne!(
            fingerprint(Endpoint::MaskedSessions, "{}"),
            fingerprint(Endpoint::CallSessions, "{}")
        );
    }
}
