//! The operations surface: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//!
//! This module owns what those four endpoints answer: liveness (the process
//! answers), readiness (the store answers a ping, at least one FreeSWITCH
//! node is connected, and the instance is not draining; per-node detail
//! either way), the Prometheus text of the process's recorder, and the
//! OpenAPI document assembled by [`super::router`]. Only `/metrics` needs a
//! credential (it lists tenant ids and volumes: [`MetricsReader`]); none
//! reveals configuration or secrets.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::MetricsReader;
use super::error::ErrorEnvelope;
use super::state::AppState;
use super::ApiRouter;
use crate::esl::node::NodeState;

/// The operations routes, each with its documentation.
pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .api(__path_healthz, healthz)
        .api(__path_readyz, readyz)
        .api(__path_metrics, metrics)
        .api(__path_openapi_json, openapi_json)
}

/// How long `/readyz` waits for the store's ping.
const STORE_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process answers", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness, with the detail behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: String,
    /// The instance is shutting down (then never ready).
    pub draining: bool,
    /// The state store.
    pub store: StoreReadiness,
    /// Every configured FreeSWITCH node.
    pub nodes: Vec<NodeReadiness>,
}

/// Whether the store answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreReadiness {
    /// `ok`, `unavailable`, `timeout`, `error`, or `syncing` (reachable, but
    /// the masked-number pools are being put back: it lost its contents).
    #[schema(example = "ok")]
    pub status: String,
}

/// One FreeSWITCH node's connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeReadiness {
    /// The node's configured name.
    pub name: String,
    /// `connected`, `connecting`, `failed` or `stopped`.
    #[schema(example = "connected")]
    pub state: String,
    /// Seconds since it connected, when connected.
    pub connected_for_s: Option<u64>,
    /// The last connection error, when not connected.
    pub error: Option<String>,
}

/// Ready to serve: store reachable, at least one node connected, not draining.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready (or draining); the body says why", body = Readiness)
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let store = match tokio::time::timeout(STORE_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(crate::store::StoreError::Unavailable(detail))) => {
            tracing::warn!(error = %detail, "readiness: store unavailable");
            "unavailable"
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: store error");
            "error"
        }
        Err(_) => {
            tracing::warn!("readiness: store ping timed out");
            "timeout"
        }
    };
    // Reachable but without the pools (it came back empty): not ready
    // until the daemon has put them back.
    let pools_synced = state
        .pools_synced
        .load(std::sync::atomic::Ordering::Relaxed);
    let store = if store == "ok" && !pools_synced {
        "syncing"
    } else {
        store
    };
    let nodes: Vec<NodeReadiness> = state
        .nodes
        .nodes()
        .into_iter()
        .map(|(name, s)| node_readiness(name, s))
        .collect();
    let draining = state.drain.is_draining();
    let ready = store == "ok" && !draining && nodes.iter().any(|n| n.state == "connected");
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" }.into(),
        draining,
        store: StoreReadiness {
            status: store.into(),
        },
        nodes,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

fn node_readiness(name: String, state: NodeState) -> NodeReadiness {
    let (state, connected_for_s, error) = match state {
        NodeState::Connected { since } => ("connected", Some(since.elapsed().as_secs()), None),
        NodeState::Connecting { last_error } => ("connecting", None, last_error),
        NodeState::Failed { error } => ("failed", None, Some(error)),
        NodeState::Stopped => ("stopped", None, None),
    };
    NodeReadiness {
        name,
        state: state.into(),
        connected_for_s,
        error,
    }
}

/// Prometheus metrics of this process. With `http.metrics_token` set, only
/// with `Authorization: Bearer <token>`; without it, only from loopback.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format",
         content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "http.metrics_token is set and the request does not carry \
         it as `Authorization: Bearer <token>`", body = ErrorEnvelope),
        (status = 403, description = "No http.metrics_token is set and the client is not on \
         loopback", body = ErrorEnvelope)
    )
)]
pub async fn metrics(_reader: MetricsReader, State(state): State<AppState>) -> Response {
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The OpenAPI document served at `/openapi.json` (set by the router).
#[derive(Clone)]
pub struct OpenApiDocument(pub Arc<utoipa::openapi::OpenApi>);

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(Extension(doc): Extension<OpenApiDocument>) -> Response {
    Json(doc.0.as_ref()).into_response()
}
