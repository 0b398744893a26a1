//! The call-session endpoints: `GET /api/v1/sessions`,
//! `POST /api/v1/sessions`, `GET /api/v1/sessions/{id}`.
//!
//! Thin handlers: authenticate the tenant, parse with the platform's
//! extractors (a bad or unknown field is a 400 naming it), call the
//! [`CallService`], and map its errors to the error envelope. Each route is
//! documented by its `#[utoipa::path]` and registered with
//! [`ApiRouter::api`]. `POST /api/v1/sessions` runs under its
//! `Idempotency-Key` ([`crate::idempotency`]), marking a `not_delivered`
//! that may have reached FreeSWITCH as [`idempotency::MaybeDone`]. It must
//! hold no rules of its own.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, ApiRouter, AppState, Tenant};
use crate::idempotency::{self, Endpoint, FingerprintedJson, IdempotencyKey, IdempotencyKeyParam};

use super::model::{CallSession, CallSessionPage, CreateCallRequest};
use super::service::{CallError, CallService, MAX_PAGE};
use super::validate::InvalidCall;

impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        match e {
            CallError::Invalid(InvalidCall::Field { field, message }) => {
                ApiError::bad_request(Some(field), message)
            }
            CallError::Invalid(InvalidCall::Unsupported { field, message }) => {
                ApiError::unprocessable(Some(field), message).with_code("unsupported")
            }
            CallError::NotFound(id) => ApiError::not_found(format!("call session {id}")),
            CallError::NoNode => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "switch_unavailable",
                e.to_string(),
            ),
            CallError::Undelivered { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_delivered",
                e.to_string(),
            ),
            CallError::Config(_) => ApiError::internal(),
            CallError::Store(e) => e.into(),
        }
    }
}

/// Query of `GET /api/v1/sessions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
}

/// The tenant's live call sessions, oldest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "call-sessions", params(ListQuery),
    responses((status = 200, description = "The tenant's live calls", body = CallSessionPage),
              (status = 400, description = "`limit` out of 1–200, a `cursor` this API did not return, or a malformed query (`field` names the parameter)", body = crate::http::ErrorEnvelope)))]
pub async fn list_sessions(
    tenant: Tenant,
    Extension(calls): Extension<CallService>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<CallSessionPage>, ApiError> {
    if q.limit.is_some_and(|l| l == 0 || l > MAX_PAGE) {
        return Err(ApiError::bad_request(
            Some("limit"),
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    if cursor.is_some_and(|c| !crate::store::cursors::is_page_cursor(c)) {
        return Err(ApiError::bad_request(
            Some("cursor"),
            "cursor is not a cursor this API returned (pass next_cursor as given, or leave it out)",
        ));
    }
    Ok(ApiJson(calls.list(tenant.id(), cursor, q.limit).await?))
}

/// Click-to-call: rings `caller` (through `trunk`, presenting
/// `caller_display_name`), then `callee` once the caller answered, and
/// bridges them. The session's id is known at once; its progress shows in
/// `GET /api/v1/sessions/{id}` and in the `call.*` webhooks. With an
/// `Idempotency-Key`, a retry of the same request gets the first answer
/// again and never places a second call.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "call-sessions", params(IdempotencyKeyParam), request_body = CreateCallRequest,
    responses(
        (status = 201, description = "The call is being placed (with `Idempotent-Replayed: true` when it is the kept answer of an earlier request with the same `Idempotency-Key`)", body = CallSession,
         headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))),
        (status = 400, description = "A field breaks its limits or allowed characters, a `trunk` that is not the tenant's, or a malformed `Idempotency-Key` (`field` names it)", body = crate::http::ErrorEnvelope),
        (status = 409, description = "`idempotency_key_in_progress`: a request with this key is still running; retry in a moment", body = crate::http::ErrorEnvelope),
        (status = 422, description = "`send_sdp: false`: FreeSWITCH cannot send an INVITE without SDP on a leg it originates; `idempotency_key_reused`: the key was used for another request within 24 h", body = crate::http::ErrorEnvelope),
        (status = 503, description = "`draining`, `store_unavailable`, `switch_unavailable` (no node connected), or `not_delivered` because the node was not connected: not done (nothing reached FreeSWITCH; the reserved id is ended), the key is released, retry with the same `Idempotency-Key`. `not_delivered` with \"it may still ring\" (no answer in time, connection lost): maybe done; the answer is kept for the key, so a retry with it replays this 503 and never places a second call; `GET /api/v1/sessions/{id}` tells how the call went", body = crate::http::ErrorEnvelope)))]
pub async fn create_session(
    tenant: Tenant,
    State(state): State<AppState>,
    Extension(calls): Extension<CallService>,
    key: IdempotencyKey,
    body: FingerprintedJson<CreateCallRequest>,
) -> Response {
    let FingerprintedJson { value, canonical } = body;
    let settings = tenant.0.clone();
    let drain = state.drain.clone();
    let work = async move {
        if let Err(e) = drain.check() {
            return e.into_response();
        }
        match calls.create(settings.config(), &value).await {
            Ok(session) => (StatusCode::CREATED, ApiJson(session)).into_response(),
            Err(e) => {
                let sent = matches!(
                    e,
                    CallError::Undelivered {
                        maybe_sent: true,
                        ..
                    }
                );
                let response = ApiError::from(e).into_response();
                if sent {
                    idempotency::maybe_done(response)
                } else {
                    response
                }
            }
        }
    };
    idempotency::run(
        state.store.clone(),
        tenant.id(),
        Endpoint::CallSessions,
        key,
        &canonical,
        work,
    )
    .await
}

/// One call session of the tenant: live, or ended within the retention
/// period (then with its hangup cause, Q.850 code and duration).
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "call-sessions",
    params(("id" = String, Path, description = "The call session id (its first leg's UUID)")),
    responses((status = 200, description = "The call", body = CallSession),
              (status = 404, description = "No such call for this tenant", body = crate::http::ErrorEnvelope)))]
pub async fn get_session(
    tenant: Tenant,
    Extension(calls): Extension<CallService>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<CallSession>, ApiError> {
    Ok(ApiJson(calls.get(tenant.id(), &id).await?))
}

/// The call-session routes, serving `calls`.
pub fn routes(calls: CallService) -> ApiRouter {
    let (router, doc) = ApiRouter::new()
        .api(__path_list_sessions, list_sessions)
        .api(__path_create_session, create_session)
        .api(__path_get_session, get_session)
        .into_parts();
    ApiRouter::from(router.layer(Extension(calls))).doc(doc)
}
