//! The call-session endpoints: `GET /api/v1/sessions`,
//! `POST /api/v1/sessions`, `GET /api/v1/sessions/{id}`.
//!
//! Thin handlers: authenticate the tenant, parse with the platform's
//! extractors (a bad or unknown field is a 400 naming it), call the
//! [`CallService`], and map its errors to the error envelope. Each route is
//! documented by its `#[utoipa::path]` and registered with
//! [`ApiRouter::api`]. It must hold no rules of its own.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, ApiRouter, AppState, Tenant};

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
              (status = 400, description = "`limit` out of 1–200, or a malformed query", body = crate::http::ErrorEnvelope)))]
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
    Ok(ApiJson(
        calls
            .list(tenant.id(), q.cursor.as_deref(), q.limit)
            .await?,
    ))
}

/// Click-to-call: rings `caller` (through `trunk`, presenting
/// `caller_display_name`), then `callee` once the caller answered, and
/// bridges them. The session's id is known at once; its progress shows in
/// `GET /api/v1/sessions/{id}` and in the `call.*` webhooks.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "call-sessions", request_body = CreateCallRequest,
    responses(
        (status = 201, description = "The call is being placed", body = CallSession),
        (status = 400, description = "A field breaks its limits or allowed characters (`field` names it)", body = crate::http::ErrorEnvelope),
        (status = 422, description = "`send_sdp: false`: FreeSWITCH cannot send an INVITE without SDP on a leg it originates", body = crate::http::ErrorEnvelope),
        (status = 503, description = "No FreeSWITCH node connected, or the originate could not be delivered", body = crate::http::ErrorEnvelope)))]
pub async fn create_session(
    tenant: Tenant,
    State(state): State<AppState>,
    Extension(calls): Extension<CallService>,
    ApiJson(req): ApiJson<CreateCallRequest>,
) -> Result<(StatusCode, ApiJson<CallSession>), ApiError> {
    state.drain.check()?;
    let session = calls.create(tenant.config(), &req).await?;
    Ok((StatusCode::CREATED, ApiJson(session)))
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
