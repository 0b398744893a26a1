//! The HTTP layer: one axum router for the REST API, the dialplan lookup and
//! the operations endpoints, with the cross-cutting parts every route shares.
//!
//! This module owns assembly ([`router`]: the operations routes plus the
//! domain modules' routers, the unknown-route 404, the body limits of
//! [`body`], the OpenAPI document), serving with graceful shutdown
//! ([`serve`], [`serve_with`]; the connection timeouts and cap are
//! [`listener`]'s), and two middlewares: `observe` (a request span with
//! method, route template, status and tenant; the request counter and
//! latency histogram; one log line per request) and `envelope` (any error response that is not already JSON,
//! such as axum's 405 or a stray plain-text rejection, is rewritten into the
//! error envelope). Domain rules live in the domain modules; handlers there
//! are thin and use [`auth`], [`error`] and [`state`] from here. Nothing here
//! logs credentials or bodies.

pub mod auth;
pub mod body;
mod cap;
mod conn;
pub mod error;
pub mod https;
pub mod listener;
pub mod openapi;
pub mod ops;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::handler::Handler;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Extension;
use tracing::Instrument;
use utoipa::openapi::path::HttpMethod;

pub use auth::{DialplanCaller, MetricsReader, Tenant};
pub use error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, ErrorEnvelope};
pub use https::Https;
pub use listener::Limits;
pub use state::{AppState, DrainSignal, NodeStatus};

use crate::telemetry::names;

/// Error code of the 404 for a path no route matches (handlers' own 404s
/// use `not_found`).
pub const ROUTE_NOT_FOUND: &str = "route_not_found";

/// A response extension marking an error response whose body is protocol,
/// not an error message (the dialplan lookup's `404` + Q.850 cause name,
/// which FreeSWITCH hangs up with): `envelope` leaves such a response as it
/// is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolBody;

/// Routes together with their OpenAPI documentation.
///
/// [`ApiRouter::api`] registers a handler at the method and path its
/// `#[utoipa::path]` attribute declares and adds that attribute's operation
/// (and the schemas it references) to the document, so a route and its
/// documentation cannot drift apart. A plain `axum::Router` converts with
/// `.into()`; its routes must then be documented in [`openapi::ApiDoc`].
pub struct ApiRouter {
    router: axum::Router<AppState>,
    doc: utoipa::openapi::OpenApi,
}

impl Default for ApiRouter {
    fn default() -> Self {
        ApiRouter::new()
    }
}

impl ApiRouter {
    /// No routes.
    pub fn new() -> ApiRouter {
        ApiRouter {
            router: axum::Router::new(),
            doc: utoipa::openapi::OpenApi::default(),
        }
    }

    /// Routes `handler` at the path and method(s) of `doc`, the unit struct
    /// `#[utoipa::path]` generates next to it (`__path_<handler>`), and adds
    /// its documentation.
    ///
    /// ```text
    /// ApiRouter::new().api(__path_create_session, create_session)
    /// ```
    pub fn api<P, H, T>(mut self, doc: P, handler: H) -> ApiRouter
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences,
        H: Handler<T, AppState>,
        T: 'static,
    {
        let _ = doc;
        let path = P::path();
        let methods = P::methods();
        let filter = methods
            .iter()
            .map(method_filter)
            .reduce(MethodFilter::or)
            .unwrap_or(MethodFilter::GET);
        self.router = self.router.route(&path, axum::routing::on(filter, handler));
        self.doc
            .paths
            .add_path_operation(&path, methods, P::operation());
        let mut schemas = Vec::new();
        P::schemas(&mut schemas);
        let components = self.doc.components.get_or_insert_with(Default::default);
        components.schemas.extend(schemas);
        self
    }

    /// Adds documentation that is not attached to a route registered here
    /// (e.g. a module's `#[derive(OpenApi)]` for routes of a plain router).
    pub fn doc(mut self, doc: utoipa::openapi::OpenApi) -> ApiRouter {
        self.doc.merge(doc);
        self
    }

    /// Both sets of routes and documentation.
    pub fn merge(mut self, other: impl Into<ApiRouter>) -> ApiRouter {
        let other = other.into();
        self.router = self.router.merge(other.router);
        self.doc.merge(other.doc);
        self
    }

    /// The routes and the documentation collected so far.
    pub fn into_parts(self) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
        (self.router, self.doc)
    }
}

impl From<axum::Router<AppState>> for ApiRouter {
    fn from(router: axum::Router<AppState>) -> ApiRouter {
        ApiRouter {
            router,
            doc: utoipa::openapi::OpenApi::default(),
        }
    }
}

fn method_filter(m: &HttpMethod) -> MethodFilter {
    match m {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

/// The complete OpenAPI document of the operations routes plus `extra`.
pub fn openapi<R: Into<ApiRouter>>(extra: Vec<R>) -> utoipa::openapi::OpenApi {
    let (_, doc) = assemble(extra).into_parts();
    openapi::document(doc)
}

fn assemble<R: Into<ApiRouter>>(extra: Vec<R>) -> ApiRouter {
    extra.into_iter().fold(ops::routes(), |api, r| api.merge(r))
}

/// The whole HTTP API: the operations routes plus the domain modules'
/// routers (`extra`), with the unknown-route 404, the body limits
/// (`http.max_body_bytes` → 413, early for a declared `Content-Length`;
/// `http.body_timeout_ms` → 408), the error envelope on every failure, request
/// spans and metrics, and `/openapi.json` covering all of it.
pub fn router<R: Into<ApiRouter>>(state: AppState, extra: Vec<R>) -> axum::Router {
    let (routes, doc) = assemble(extra).into_parts();
    let doc = ops::OpenApiDocument(Arc::new(openapi::document(doc)));
    let body_limits = body::BodyLimits::from_config(&state.config.http);
    routes
        .fallback(route_not_found)
        .layer(DefaultBodyLimit::max(state.config.http.max_body_bytes))
        .layer(Extension(doc))
        .layer(middleware::from_fn_with_state(body_limits, body::guard))
        .layer(middleware::from_fn(observe))
        .layer(middleware::from_fn(envelope))
        .with_state(state)
}

/// Serves `router` on `listener` with the default [`Limits`] (those of an
/// empty `[http]` section) until `shutdown` resolves; see [`serve_with`].
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with(listener, router, Limits::default(), shutdown).await
}

/// Serves `router` on `listener` within `limits` (header, send and idle
/// timeouts, the connection cap and its reserve) until `shutdown` resolves, then stops
/// accepting and waits for requests in flight. Handlers see the peer address
/// (`ConnectInfo<SocketAddr>`), which the dialplan lookup needs.
pub async fn serve_with<F>(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    listener::serve(listener, router, limits, shutdown).await
}

async fn route_not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ROUTE_NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

/// Request span, metrics and one log line per request.
async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = metric_method(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!(
        "http",
        method = %method,
        route = %route,
        status = tracing::field::Empty,
        tenant = tracing::field::Empty,
    );
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    span.record("status", status);
    metrics::counter!(
        names::HTTP_REQUESTS,
        "method" => method,
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(
        names::HTTP_DURATION,
        "method" => method,
        "route" => route.clone()
    )
    .record(elapsed.as_secs_f64());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") && status < 500 {
            tracing::debug!(latency_ms, "request");
        } else if status >= 500 {
            tracing::warn!(latency_ms, "request");
        } else {
            tracing::info!(latency_ms, "request");
        }
    });
    response
}

/// Keeps the method label's values bounded.
fn metric_method(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Rewrites any error response that is not JSON into the error envelope,
/// keeping its status and headers (e.g. `Allow` on 405); responses marked
/// [`ProtocolBody`] pass unchanged.
async fn envelope(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<ProtocolBody>().is_some()
    {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            // axum's method router adds `Allow` after the layers have run,
            // so it is usually not here yet; name it when it is.
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|a| !a.is_empty());
            let message = match allow {
                Some(allow) => format!("{method} is not allowed on {path}; allowed: {allow}"),
                None => format!(
                    "{method} is not allowed on {path}; the Allow header lists the methods it accepts"
                ),
            };
            ("method_not_allowed", message)
        }
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            text.unwrap_or_else(|| "the request body is too large".into()),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            text.unwrap_or_else(|| "unsupported media type".into()),
        ),
        s if s.is_server_error() => (
            "internal",
            s.canonical_reason().unwrap_or("server error").to_string(),
        ),
        s => (
            "bad_request",
            text.unwrap_or_else(|| s.canonical_reason().unwrap_or("bad request").to_string()),
        ),
    };
    let mut rewritten = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}
