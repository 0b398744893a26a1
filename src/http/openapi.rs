//! The OpenAPI document: its frame ([`ApiDoc`]), how route documentation is
//! collected ([`super::ApiRouter`]), and [`audit`], which proves that the
//! router and the document describe the same API.
//!
//! This module owns the document-wide parts: title and version, the error
//! envelope schema, the security schemes of the seeds (`X-API-Key`,
//! `Authorization: Bearer`, `X-App-ID` + `X-API-Key`, the dialplan token and
//! the metrics token), the default that every operation needs tenant credentials unless
//! it says otherwise (`security(())` for none), and a `default` error
//! response on every operation. It documents no route itself: each route is
//! documented by `#[utoipa::path]` on its handler.
//!
//! # Adding a route
//!
//! Put `#[utoipa::path(post, path = "/v1/things", tag = "...", request_body = NewThing,
//! responses((status = 201, body = Thing)))]` on the handler, derive `ToSchema`
//! on its bodies, and register it with
//! `ApiRouter::new().api(__path_create_thing, create_thing)`: path, method,
//! route and documentation then come from that one attribute. (A plain
//! `axum::Router` can be passed too; its handlers must then be listed in
//! [`ApiDoc`]'s `paths(...)`. `tests/http_platform.rs` runs [`audit`] and
//! fails on any route the document misses.)

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref};
use utoipa::OpenApi;

use super::error::{ErrorBody, ErrorEnvelope};

/// The document's frame. Routes documented here rather than through
/// [`super::ApiRouter::api`] go in `paths(...)`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "fsgate",
        description = "Masked-number sessions, call sessions, call control and signed webhooks \
                       over FreeSWITCH. Tenant endpoints accept `X-API-Key: <key>`, \
                       `Authorization: Bearer <key>`, or `X-App-ID` + `X-API-Key`; every error \
                       answers `{\"error\":{\"code\",\"message\",\"field\"}}`."
    ),
    components(schemas(ErrorEnvelope, ErrorBody)),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "masked-sessions", description = "Masked-number sessions (seed 000)"),
        (name = "call-sessions", description = "Live calls and click-to-call (seed 001)"),
        (name = "call-control", description = "Answer, hang up, disconnect (seed 002)"),
        (name = "dialplan", description = "FreeSWITCH's mod_curl route lookup"),
        (name = "webhooks", description = "Replay of the signed webhook envelopes")
    )
)]
pub struct ApiDoc;

/// Security scheme names used in `security(...)` attributes.
pub mod schemes {
    /// `X-API-Key: <key>`.
    pub const API_KEY: &str = "api_key";
    /// `Authorization: Bearer <key>`.
    pub const BEARER: &str = "bearer";
    /// `X-App-ID: <tenant>` (always with [`API_KEY`]).
    pub const APP_ID: &str = "app_id";
    /// `X-Dialplan-Token: <token>` (or `?token=`), for `/v1/dialplan/route`.
    pub const DIALPLAN_TOKEN: &str = "dialplan_token";
    /// `Authorization: Bearer <http.metrics_token>`, for `/metrics`.
    pub const METRICS_TOKEN: &str = "metrics_token";
}

/// The complete document: [`ApiDoc`] plus the routes' documentation, with
/// the security schemes, the tenant-credentials default and a `default`
/// error response on every operation.
pub fn document(routes: Document) -> Document {
    let mut doc = ApiDoc::openapi();
    doc.merge(routes);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        schemes::API_KEY,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-API-Key",
            "The tenant's API key (alone, or with X-App-ID)",
        ))),
    );
    components.add_security_scheme(
        schemes::BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The tenant's API key as a bearer token"))
                .build(),
        ),
    );
    components.add_security_scheme(
        schemes::APP_ID,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-App-ID",
            "The tenant id; must be the API key's tenant",
        ))),
    );
    components.add_security_scheme(
        schemes::DIALPLAN_TOKEN,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-Dialplan-Token",
            "http.dialplan_token (also accepted as the `token` query parameter)",
        ))),
    );
    components.add_security_scheme(
        schemes::METRICS_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "http.metrics_token as a bearer token (without one configured, \
                     /metrics answers loopback clients only)",
                ))
                .build(),
        ),
    );
    doc.security = Some(vec![
        SecurityRequirement::new(schemes::API_KEY, Vec::<String>::new()),
        SecurityRequirement::new(schemes::BEARER, Vec::<String>::new()),
        SecurityRequirement::new(schemes::APP_ID, Vec::<String>::new())
            .add(schemes::API_KEY, Vec::<String>::new()),
    ]);
    let error = ResponseBuilder::new()
        .description("Any failure: the error envelope")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        )
        .build();
    let unauthorized = ResponseBuilder::new()
        .description("Missing or invalid tenant credentials")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        )
        .build();
    for item in doc.paths.paths.values_mut() {
        for (_, op) in operations_mut(item) {
            if op.security.is_none() {
                op.responses
                    .responses
                    .entry("401".to_string())
                    .or_insert_with(|| unauthorized.clone().into());
            }
            op.responses
                .responses
                .entry("default".to_string())
                .or_insert_with(|| error.clone().into());
        }
    }
    doc
}

fn operations_mut(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::OPTIONS, item.options.as_mut()),
        (Method::HEAD, item.head.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
        (Method::TRACE, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// Every `(method, path)` operation of a document.
pub fn operations(doc: &Document) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let mut item = item.clone();
        for (method, _) in operations_mut(&mut item) {
            out.insert((method.to_string(), path.clone()));
        }
    }
    out
}

/// Methods [`audit`] probes on every route of the router.
const PROBED: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Checks that `router` (as built by [`super::router`]) and `doc` describe
/// the same API; returns one line per discrepancy.
///
/// * Every route path of the router (read from the router itself) is probed
///   with GET, POST, PUT, PATCH and DELETE, without credentials or body: each
///   method that is routed (answers anything but 405 or the unknown-route
///   404) must be an operation of the document.
/// * Every operation of the document must be routed.
///
/// Probes carry no credentials, so tenant handlers answer 401 before doing
/// anything; path parameters are filled with `audit-probe`.
pub async fn audit(router: &axum::Router, doc: &Document) -> Vec<String> {
    let mut problems = Vec::new();
    let documented = operations(doc);
    let paths = match router_paths(router) {
        Some(p) if !p.is_empty() => p,
        _ => {
            return vec![
                "cannot list the router's paths (axum's Debug output changed?); \
                 update http::openapi::router_paths"
                    .to_string(),
            ]
        }
    };
    for path in &paths {
        for method in PROBED {
            if routed(router, &method, path).await
                && !documented.contains(&(method.to_string(), path.clone()))
            {
                problems.push(format!(
                    "{method} {path} is routed but not in the OpenAPI document"
                ));
            }
        }
    }
    for (method, path) in &documented {
        let Ok(m) = method.parse::<Method>() else {
            continue;
        };
        if !routed(router, &m, path).await {
            problems.push(format!("{method} {path} is documented but not routed"));
        }
    }
    problems
}

/// The route paths of a router, read from its `Debug` output (axum offers no
/// other way). `None` when that output is not understood.
pub fn router_paths(router: &axum::Router) -> Option<BTreeSet<String>> {
    let text = format!("{router:?}");
    let start = text.find("path_router:")?;
    let end = text[start..]
        .find("fallback_router:")
        .map_or(text.len(), |i| start + i);
    let section = &text[start..end];
    let paths_at = section.find("paths: {")? + "paths: {".len();
    let mut out = BTreeSet::new();
    let mut rest = &section[paths_at..];
    while let Some(i) = rest.find(": \"/") {
        let from = i + 3;
        let len = rest[from..].find('"')?;
        out.insert(rest[from..from + len].to_string());
        rest = &rest[from + len..];
    }
    Some(out)
}

async fn routed(router: &axum::Router, method: &Method, path: &str) -> bool {
    let uri = fill_params(path);
    let Ok(request) = Request::builder()
        .method(method.clone())
        .uri(&uri)
        .body(Body::empty())
    else {
        return false;
    };
    let Ok(response) = router.clone().oneshot(request).await;
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return false;
    }
    if status == StatusCode::NOT_FOUND {
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        let code = serde_json::from_slice::<ErrorEnvelope>(&body)
            .map(|e| e.error.code)
            .unwrap_or_default();
        return code != super::ROUTE_NOT_FOUND;
    }
    true
}

fn fill_params(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for ch in path.chars() {
        match ch {
            '{' => {
                in_param = true;
                out.push_str("audit-probe");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_filled() {
        assert_eq!(
            fill_params("/api/v1/sessions/{uuid}/commands/answer"),
            "/api/v1/sessions/audit-probe/commands/answer"
        );
    }

    #[test]
    fn the_frame_declares_the_seed_credentials() {
        let doc = document(Document::default());
        let json = serde_json::to_value(&doc).unwrap();
        let schemes = &json["components"]["securitySchemes"];
        assert_eq!(schemes["api_key"]["name"], "X-API-Key");
        assert_eq!(schemes["app_id"]["name"], "X-App-ID");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["metrics_token"]["scheme"], "bearer");
        assert_eq!(json["security"].as_array().unwrap().len(), 3);
    }
}
