//! The HTTP face of masked sessions: thin axum handlers and their OpenAPI
//! documentation, for `/v1/sessions…`, `/v1/calls/originate` and the
//! dialplan's `/v1/dialplan/route`.
//!
//! Each handler authenticates (the platform's [`Tenant`] or
//! [`DialplanCaller`] extractor), parses with the platform's extractors (bad
//! JSON, unknown fields and bad query strings answer 400 naming the field),
//! calls one [`Masking`] method and maps its [`MaskingError`] onto the shared
//! error envelope. The route lookup answers in the protocol of
//! `dialplan/public/00_fsgate.xml`: 200 `text/plain` dial string, 204, or 404
//! `text/plain` cause name. Nothing here holds a rule: those are the
//! domain's.
//!
//! Error codes of this API (besides the platform's `unauthorized`,
//! `bad_request`, `unknown_field`, `invalid_json`, `store_unavailable`,
//! `draining`): 404 `not_found` (also another tenant's ref), 409
//! `pool_exhausted` (every pool number is held by a live session: complete
//! one or retry later), 409 `session_not_live`, 422 `ttl_above_maximum`
//! (the message names the cap), 503 `switch_unavailable`.

use std::sync::Arc;

use axum::extract::Extension;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::MaskingError;
use super::lookup::RouteAnswer;
use super::model::{
    CreateSessionRequest, ListQuery, OriginateAccepted, OriginateRequest, Session, SessionList,
};
use super::service::Masking;
use crate::http::{
    ApiError, ApiJson, ApiPath, ApiQuery, ApiRouter, AppState, DialplanCaller, ProtocolBody, Tenant,
};

/// The masked-session routes, serving `masking`. Pass to
/// [`crate::http::router`] with the other domains' routes.
pub fn routes(masking: Arc<Masking>) -> ApiRouter {
    let api = ApiRouter::new()
        .api(__path_create_session, create_session)
        .api(__path_list_sessions, list_sessions)
        .api(__path_get_session, get_session)
        .api(__path_complete_session, complete_session)
        .api(__path_originate, originate)
        .api(__path_route_lookup, route_lookup);
    let (router, doc) = api.into_parts();
    ApiRouter::from(router.layer(Extension(masking))).doc(doc)
}

/// The shared envelope for a domain error; server-side failures are logged
/// here with their detail and answered without it.
pub fn api_error(e: MaskingError) -> ApiError {
    match e {
        MaskingError::Store(s) => ApiError::from(s),
        MaskingError::DialString(_) | MaskingError::UnknownTenant(_) => {
            tracing::error!(error = %e, "masked session request failed");
            ApiError::internal()
        }
        e => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let err = ApiError::new(status, e.code(), e.to_string());
            match e.field() {
                Some(f) => err.with_field(f),
                None => err,
            }
        }
    }
}

/// Create a masked-number session: allocates a free number of the tenant's
/// pool for the two parties.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "masked-sessions",
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "The session, `open`", body = Session),
        (status = 400, description = "Malformed field (E.164 numbers, equal parties, TTL below 1), unknown field", body = crate::http::ErrorEnvelope),
        (status = 409, description = "`pool_exhausted`: every number of the pool is held by a live session", body = crate::http::ErrorEnvelope),
        (status = 422, description = "`ttl_above_maximum`: the message names the tenant's cap", body = crate::http::ErrorEnvelope),
    )
)]
async fn create_session(
    tenant: Tenant,
    Extension(m): Extension<Arc<Masking>>,
    ApiJson(request): ApiJson<CreateSessionRequest>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let s = m.create(tenant.id(), request).await.map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// The tenant's sessions, newest first, optionally of one state.
#[utoipa::path(
    get,
    path = "/v1/sessions",
    tag = "masked-sessions",
    params(ListQuery),
    responses((status = 200, description = "One page", body = SessionList))
)]
async fn list_sessions(
    tenant: Tenant,
    Extension(m): Extension<Arc<Masking>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let page = m.list(tenant.id(), query).await.map_err(api_error)?;
    Ok(Json(SessionList {
        sessions: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One session: state, masked number, both parties, timestamps, completion
/// reason.
#[utoipa::path(
    get,
    path = "/v1/sessions/{ref}",
    tag = "masked-sessions",
    params(("ref" = String, Path, description = "The session ref (`ses_…`)")),
    responses(
        (status = 200, description = "The session", body = Session),
        (status = 404, description = "No such session for this tenant", body = crate::http::ErrorEnvelope),
    )
)]
async fn get_session(
    tenant: Tenant,
    Extension(m): Extension<Arc<Masking>>,
    ApiPath(session_ref): ApiPath<String>,
) -> Result<Json<Session>, ApiError> {
    let s = m.get(tenant.id(), &session_ref).await.map_err(api_error)?;
    Ok(Json(s.into()))
}

/// Complete a session now and release its number (idempotent: a completed
/// session is returned unchanged). Calls in progress are left to finish.
#[utoipa::path(
    post,
    path = "/v1/sessions/{ref}/complete",
    tag = "masked-sessions",
    params(("ref" = String, Path, description = "The session ref (`ses_…`)")),
    responses(
        (status = 200, description = "The session, `completed`", body = Session),
        (status = 404, description = "No such session for this tenant", body = crate::http::ErrorEnvelope),
    )
)]
async fn complete_session(
    tenant: Tenant,
    Extension(m): Extension<Arc<Masking>>,
    ApiPath(session_ref): ApiPath<String>,
) -> Result<Json<Session>, ApiError> {
    let s = m
        .complete(tenant.id(), &session_ref)
        .await
        .map_err(api_error)?;
    Ok(Json(s.into()))
}

/// Call both parties of a live session: ring `first` showing the masked
/// number; when it answers, ring the other party showing the masked number
/// and bridge.
#[utoipa::path(
    post,
    path = "/v1/calls/originate",
    tag = "masked-sessions",
    request_body = OriginateRequest,
    responses(
        (status = 202, description = "Handed to FreeSWITCH; progress arrives as webhooks", body = OriginateAccepted),
        (status = 404, description = "No such session for this tenant", body = crate::http::ErrorEnvelope),
        (status = 409, description = "`session_not_live`: completed or expired", body = crate::http::ErrorEnvelope),
        (status = 503, description = "`draining` or `switch_unavailable`", body = crate::http::ErrorEnvelope),
    )
)]
async fn originate(
    tenant: Tenant,
    axum::extract::State(state): axum::extract::State<AppState>,
    Extension(m): Extension<Arc<Masking>>,
    ApiJson(request): ApiJson<OriginateRequest>,
) -> Result<(StatusCode, Json<OriginateAccepted>), ApiError> {
    state.drain.check()?;
    let accepted = m.originate(tenant.id(), request).await.map_err(api_error)?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// What mod_curl sends (`dialplan/public/00_fsgate.xml`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RouteQuery {
    /// The dialled number's digits (with or without `+`).
    pub masked: String,
    /// The caller ID (digits, or `anonymous`).
    pub caller: String,
    /// The calling channel's UUID (the a-leg).
    pub uuid: String,
    /// The dialplan token (also accepted as the `X-Dialplan-Token` header).
    pub token: Option<String>,
}

/// The dialplan's route lookup (for FreeSWITCH, not tenants): where a call
/// to a masked number goes.
#[utoipa::path(
    get,
    path = "/v1/dialplan/route",
    tag = "dialplan",
    params(RouteQuery),
    security(("dialplan_token" = [])),
    responses(
        (status = 200, description = "A dial string to bridge to (the other party, presenting the masked number)", content_type = "text/plain", body = String),
        (status = 204, description = "A call-control number: park"),
        (status = 404, description = "Refused: the Q.850 cause to hang up with (`UNALLOCATED_NUMBER`, `CALL_REJECTED`)", content_type = "text/plain", body = String),
    )
)]
async fn route_lookup(
    _caller: DialplanCaller,
    Extension(m): Extension<Arc<Masking>>,
    ApiQuery(q): ApiQuery<RouteQuery>,
) -> Result<Response, ApiError> {
    let answer = m
        .route(&q.masked, &q.caller, &q.uuid)
        .await
        .map_err(api_error)?;
    Ok(route_response(answer))
}

/// The lookup protocol's response for an answer.
pub fn route_response(answer: RouteAnswer) -> Response {
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match answer {
        RouteAnswer::Bridge(dial) => (StatusCode::OK, text, dial).into_response(),
        RouteAnswer::Park => StatusCode::NO_CONTENT.into_response(),
        RouteAnswer::Refuse(cause) => {
            let mut r = (StatusCode::NOT_FOUND, text, cause.name()).into_response();
            r.extensions_mut().insert(ProtocolBody);
            r
        }
    }
}
