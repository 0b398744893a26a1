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
//! (the message names the cap), 503 `switch_unavailable`; and on the two
//! creating POSTs, which take an `Idempotency-Key` ([`crate::idempotency`]),
//! 409 `idempotency_key_in_progress` and 422 `idempotency_key_reused`.

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
    ApiError, ApiPath, ApiQuery, ApiRouter, AppState, DialplanCaller, ProtocolBody, Tenant,
};
use crate::idempotency::{self, Endpoint, FingerprintedJson, IdempotencyKey, IdempotencyKeyParam};
use crate::switch::SwitchError;

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
/// pool for the two parties. With an `Idempotency-Key`, a retry of the same
/// request gets the first answer again and never allocates a second number.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "masked-sessions",
    params(IdempotencyKeyParam),
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "The session, `open` (with `Idempotent-Replayed: true` when it is the kept answer of an earlier request with the same `Idempotency-Key`)", body = Session,
         headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))),
        (status = 400, description = "Malformed field (E.164 numbers, equal parties, TTL below 1), unknown field, or a malformed `Idempotency-Key` (`field` names it)", body = crate::http::ErrorEnvelope),
        (status = 409, description = "`pool_exhausted`: every number of the pool is held by a live session (kept for its `Idempotency-Key`: retry later with a new key); `idempotency_key_in_progress`: a request with this key is still running, retry in a moment", body = crate::http::ErrorEnvelope),
        (status = 422, description = "`ttl_above_maximum`: the message names the tenant's cap; `idempotency_key_reused`: the key was used for another request within 24 h", body = crate::http::ErrorEnvelope),
        (status = 503, description = "`store_unavailable`: not done (no session was allocated, or in the rare case of a reply lost after Redis applied it, one nobody knows of that expires at its TTL); the key is released, so retry with the same `Idempotency-Key`", body = crate::http::ErrorEnvelope),
    )
)]
async fn create_session(
    tenant: Tenant,
    axum::extract::State(state): axum::extract::State<AppState>,
    Extension(m): Extension<Arc<Masking>>,
    key: IdempotencyKey,
    body: FingerprintedJson<CreateSessionRequest>,
) -> Response {
    let FingerprintedJson { value, canonical } = body;
    let tenant_id = tenant.id().to_owned();
    let work = async move {
        match m.create(&tenant_id, value).await {
            Ok(s) => (StatusCode::CREATED, Json(Session::from(s))).into_response(),
            Err(e) => api_error(e).into_response(),
        }
    };
    idempotency::run(
        state.store.clone(),
        tenant.id(),
        Endpoint::MaskedSessions,
        key,
        &canonical,
        work,
    )
    .await
}

/// The tenant's sessions, newest first, optionally of one state.
#[utoipa::path(
    get,
    path = "/v1/sessions",
    tag = "masked-sessions",
    params(ListQuery),
    responses((status = 200, description = "One page", body = SessionList),
              (status = 400, description = "`limit` out of 1–200, unknown `state`, or a cursor this API did not return", body = crate::http::ErrorEnvelope))
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
    params(("ref" = String, Path, description = "The session ref (`ses_…`)", pattern = r"^ses_[A-Za-z0-9]{1,64}$")),
    responses(
        (status = 200, description = "The session", body = Session),
        (status = 400, description = "Malformed session ref", body = crate::http::ErrorEnvelope),
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
    params(("ref" = String, Path, description = "The session ref (`ses_…`)", pattern = r"^ses_[A-Za-z0-9]{1,64}$")),
    responses(
        (status = 200, description = "The session, `completed`", body = Session),
        (status = 400, description = "Malformed session ref", body = crate::http::ErrorEnvelope),
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
/// and bridge. With an `Idempotency-Key`, a retry of the same request gets
/// the first answer again and never places a second call.
#[utoipa::path(
    post,
    path = "/v1/calls/originate",
    tag = "masked-sessions",
    params(IdempotencyKeyParam),
    request_body = OriginateRequest,
    responses(
        (status = 202, description = "Handed to FreeSWITCH; progress arrives as webhooks (with `Idempotent-Replayed: true` when it is the kept answer of an earlier request with the same `Idempotency-Key`)", body = OriginateAccepted,
         headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))),
        (status = 400, description = "Malformed session ref or body, unknown field, or a malformed `Idempotency-Key`", body = crate::http::ErrorEnvelope),
        (status = 404, description = "No such session for this tenant", body = crate::http::ErrorEnvelope),
        (status = 409, description = "`session_not_live`: completed or expired; `idempotency_key_in_progress`: a request with this key is still running, retry in a moment", body = crate::http::ErrorEnvelope),
        (status = 422, description = "`idempotency_key_reused`: the key was used for another request within 24 h", body = crate::http::ErrorEnvelope),
        (status = 503, description = "`draining`, `store_unavailable`, or `switch_unavailable` because no node is connected: not done, the key is released, retry with the same `Idempotency-Key`. `switch_unavailable` because the node did not answer in time or the connection dropped (the message says so): maybe done (the call may ring); the answer is kept for the key, so a retry with it replays this 503 and never places a second call", body = crate::http::ErrorEnvelope),
    )
)]
async fn originate(
    tenant: Tenant,
    axum::extract::State(state): axum::extract::State<AppState>,
    Extension(m): Extension<Arc<Masking>>,
    key: IdempotencyKey,
    body: FingerprintedJson<OriginateRequest>,
) -> Response {
    let FingerprintedJson { value, canonical } = body;
    let tenant_id = tenant.id().to_owned();
    let drain = state.drain.clone();
    let work = async move {
        if let Err(e) = drain.check() {
            return e.into_response();
        }
        match m.originate(&tenant_id, value).await {
            Ok(accepted) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
            Err(e) => {
                let sent = matches!(
                    e,
                    MaskingError::Switch(
                        SwitchError::Timeout { .. }
                            | SwitchError::ConnectionLost(_)
                            | SwitchError::Protocol { .. }
                    )
                );
                let response = api_error(e).into_response();
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
        Endpoint::MaskedOriginate,
        key,
        &canonical,
        work,
    )
    .await
}

/// What mod_curl sends (`dialplan/public/00_fsgate.xml`), and nothing else:
/// any other parameter is a 400 naming it.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RouteQuery {
    /// The dialled number's digits (with or without `+`): 7 to 15 digits,
    /// not starting with 0.
    #[param(pattern = r"^\+?[1-9][0-9]{6,14}$")]
    pub masked: String,
    /// The caller ID (digits, or `anonymous`): letters, digits and `_ . + -`.
    #[param(min_length = 1, max_length = 65, pattern = r"^[0-9A-Za-z_.+-]+$")]
    pub caller: String,
    /// The calling channel's UUID (the a-leg).
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
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
    security((), ("dialplan_token" = [])),
    responses(
        (status = 200, description = "A dial string to bridge to (the other party, presenting the masked number)", content_type = "text/plain", body = String),
        (status = 204, description = "A call-control number: park"),
        (status = 400, description = "A malformed `masked`, `caller` or `uuid`, or a parameter other than these and `token` (`field` names it)", body = crate::http::ErrorEnvelope),
        (status = 401, description = "Dialplan token missing or wrong", body = crate::http::ErrorEnvelope),
        (status = 403, description = "Source address not allowed (no token configured)", body = crate::http::ErrorEnvelope),
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
