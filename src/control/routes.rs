//! The call-control endpoints: `POST /api/v1/sessions/{uuid}/commands/answer
//! | hangup | disconnect` and `GET /api/v1/operations/{id}`.
//!
//! Thin handlers: authenticate the tenant, parse the body with the
//! platform's extractor (an empty body is `{}`; an unknown field is a 400
//! naming it), call the [`ControlService`], answer `202` with the deferred
//! operation, and map errors to the envelope. It must hold no rules.

use axum::http::StatusCode;
use axum::Extension;

use crate::http::{ApiError, ApiJson, ApiPath, ApiRouter, ErrorEnvelope, Tenant};

use super::model::{Accepted, CommandKind, CommandRequest, HangupRequest, Operation};
use super::service::{ControlError, ControlService};

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        match e {
            ControlError::Invalid(e) => ApiError::bad_request(Some(e.field), e.message),
            ControlError::NotFound(what) => ApiError::not_found(what),
            ControlError::Conflict { .. } => {
                ApiError::conflict(e.to_string()).with_field("command_uid")
            }
            ControlError::Store(e) => e.into(),
        }
    }
}

type Reply = Result<(StatusCode, ApiJson<Accepted>), ApiError>;

fn accepted(a: Accepted) -> (StatusCode, ApiJson<Accepted>) {
    (StatusCode::ACCEPTED, ApiJson(a))
}

/// Answers an incoming call (`uuid_answer`). The `command.result` webhook
/// follows when the call's CHANNEL_ANSWER confirms it, or `timeout` after
/// `timeout_ms`; `call.answered` fires on the answer.
#[utoipa::path(post, path = "/api/v1/sessions/{uuid}/commands/answer", tag = "call-control",
    params(("uuid" = String, Path, description = "The call session id")),
    request_body = CommandRequest,
    responses((status = 202, description = "Accepted; the result follows as `command.result`", body = Accepted),
              (status = 400, description = "Bad `command_uid`", body = ErrorEnvelope),
              (status = 404, description = "Not a live call of this tenant", body = ErrorEnvelope),
              (status = 409, description = "`command_uid` already used for a different request", body = ErrorEnvelope)))]
pub async fn answer(
    tenant: Tenant,
    Extension(control): Extension<ControlService>,
    ApiPath(uuid): ApiPath<String>,
    ApiJson(req): ApiJson<CommandRequest>,
) -> Reply {
    let a = control
        .plain(tenant.id(), &uuid, CommandKind::Answer, &req)
        .await?;
    Ok(accepted(a))
}

/// Hangs the call up (`uuid_kill <uuid> <CAUSE>`). `command.result` fires
/// right after dispatch; `call.hangup` when the channel is torn down.
#[utoipa::path(post, path = "/api/v1/sessions/{uuid}/commands/hangup", tag = "call-control",
    params(("uuid" = String, Path, description = "The call session id")),
    request_body = HangupRequest,
    responses((status = 202, description = "Accepted; the result follows as `command.result`", body = Accepted),
              (status = 400, description = "Bad `command_uid` or `cause`", body = ErrorEnvelope),
              (status = 404, description = "Not a live call of this tenant", body = ErrorEnvelope),
              (status = 409, description = "`command_uid` already used for a different request", body = ErrorEnvelope)))]
pub async fn hangup(
    tenant: Tenant,
    Extension(control): Extension<ControlService>,
    ApiPath(uuid): ApiPath<String>,
    ApiJson(req): ApiJson<HangupRequest>,
) -> Reply {
    Ok(accepted(control.hangup(tenant.id(), &uuid, &req).await?))
}

/// Returns the call to the dialplan (`uuid_transfer` to the configured
/// extension and context; the shipped `fsgate` context hangs up).
/// `command.result` fires right after dispatch.
#[utoipa::path(post, path = "/api/v1/sessions/{uuid}/commands/disconnect", tag = "call-control",
    params(("uuid" = String, Path, description = "The call session id")),
    request_body = CommandRequest,
    responses((status = 202, description = "Accepted; the result follows as `command.result`", body = Accepted),
              (status = 400, description = "Bad `command_uid`", body = ErrorEnvelope),
              (status = 404, description = "Not a live call of this tenant", body = ErrorEnvelope),
              (status = 409, description = "`command_uid` already used for a different request", body = ErrorEnvelope)))]
pub async fn disconnect(
    tenant: Tenant,
    Extension(control): Extension<ControlService>,
    ApiPath(uuid): ApiPath<String>,
    ApiJson(req): ApiJson<CommandRequest>,
) -> Reply {
    let a = control
        .plain(tenant.id(), &uuid, CommandKind::Disconnect, &req)
        .await?;
    Ok(accepted(a))
}

/// An operation's current state (the same content as its `command.result`
/// once finished).
#[utoipa::path(get, path = "/api/v1/operations/{id}", tag = "call-control",
    params(("id" = String, Path, description = "The operation id of the 202")),
    responses((status = 200, description = "The operation", body = Operation),
              (status = 404, description = "No such operation for this tenant", body = ErrorEnvelope)))]
pub async fn get_operation(
    tenant: Tenant,
    Extension(control): Extension<ControlService>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<Operation>, ApiError> {
    Ok(ApiJson(control.operation(tenant.id(), &id).await?))
}

/// The call-control routes, serving `control`.
pub fn routes(control: ControlService) -> ApiRouter {
    let (router, doc) = ApiRouter::new()
        .api(__path_answer, answer)
        .api(__path_hangup, hangup)
        .api(__path_disconnect, disconnect)
        .api(__path_get_operation, get_operation)
        .into_parts();
    ApiRouter::from(router.layer(Extension(control))).doc(optional_bodies(doc))
}

/// A command's body may be left out (it is then `{}`).
fn optional_bodies(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for item in doc.paths.paths.values_mut() {
        if let Some(body) = item.post.as_mut().and_then(|op| op.request_body.as_mut()) {
            body.required = Some(utoipa::openapi::Required::False);
            body.description = Some("Optional: no body is `{}`".to_owned());
        }
    }
    doc
}
