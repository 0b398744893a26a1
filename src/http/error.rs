//! The one error envelope of the REST API, and the extractors that make sure
//! bad input ends in it.
//!
//! Every failure answers
//! `{"error":{"code":"<stable_machine_code>","message":"<human>","field":<name|null>}}`.
//! This module owns [`ApiError`] (status + code + message + field), its
//! response, the mapping from store errors, and [`ApiJson`] / [`ApiQuery`] /
//! [`ApiPath`], which turn malformed JSON, wrong types, missing and unknown
//! fields, bad query strings and oversized bodies into that envelope naming the
//! offending field. It knows nothing about any domain: domain modules build
//! their errors with the constructors and, when a client must tell two
//! failures apart, a specific code ([`ApiError::with_code`]).

use std::borrow::Cow;
use std::fmt;

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorBody,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `unauthorized`, `invalid_json`,
    /// `unknown_field`, `not_found`, `store_unavailable`, `draining`.
    #[schema(example = "unknown_field")]
    pub code: String,
    /// Explanation for a human; may change between versions.
    #[schema(example = "unknown field `calee`, expected one of `caller`, `callee`, ...")]
    pub message: String,
    /// The offending request field (a JSON path such as `legs[0].number`, or a
    /// query or path parameter), when there is one.
    #[schema(example = "calee")]
    pub field: Option<String>,
}

/// A failed request, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// Any status, code and message.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }

    /// 400 `bad_request`: the request is malformed; `field` names the culprit.
    pub fn bad_request(field: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message).with_field_opt(field)
    }

    /// 401 `unauthorized`: no or wrong credentials.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`: credentials or source are known but not allowed here.
    /// (Another tenant's resources answer [`ApiError::not_found`], never this.)
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`: `what` (e.g. "session ses_123") does not exist for
    /// this tenant.
    pub fn not_found(what: impl fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422 `unprocessable`: well-formed, but a field's value is not acceptable
    /// (a TTL above the tenant's maximum, an unknown cause name).
    pub fn unprocessable(field: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
            .with_field_opt(field)
    }

    /// 503 `store_unavailable`: the state store cannot be reached; retry.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    }

    /// 503 `draining`: this instance is shutting down and takes no new calls;
    /// retry (another instance will take it).
    pub fn draining() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this instance is shutting down and accepts no new calls; retry",
        )
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: Option<usize>) -> ApiError {
        let message = match limit {
            Some(n) => format!("the request body is larger than {n} bytes"),
            None => "the request body is too large".to_string(),
        };
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 500 `internal`: a bug or corrupt data; details go to the log, not the
    /// client.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the daemon's log",
        )
    }

    /// The same error with a more specific stable code (e.g.
    /// `pool_exhausted`, `ttl_above_maximum`).
    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> ApiError {
        self.code = code.into();
        self
    }

    /// The same error naming a field.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    fn with_field_opt(mut self, field: Option<&str>) -> ApiError {
        self.field = field.map(str::to_string);
        self
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// Stable code.
    pub fn code(&self) -> &str {
        &self.code
    }
    /// Human message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Offending field.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The envelope this error renders as.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code.to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, axum::Json(self.envelope())).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fsgate\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "state store unavailable");
                ApiError::unavailable("the state store is unavailable; retry shortly")
            }
            StoreError::Corrupt(detail) => {
                tracing::error!(error = %detail, "corrupt data in the state store");
                ApiError::internal()
            }
        }
    }
}

// --- JSON bodies -------------------------------------------------------------------

/// A JSON request body whose every failure is an [`ApiError`] naming the
/// field: 400 `invalid_json` (syntax), `invalid_type`, `missing_field`,
/// `unknown_field` (models use `deny_unknown_fields`), `invalid_value`;
/// 413 `payload_too_large`; 415 `unsupported_media_type`. An empty body reads
/// as `{}` (the seeds' commands have only optional fields). Also a JSON
/// response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            if !is_json_content_type(ct) {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "the request body must be JSON (Content-Type: application/json)",
                ));
            }
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn is_json_content_type(value: &HeaderValue) -> bool {
    let Ok(s) = value.to_str() else {
        return false;
    };
    let mime = s
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn bytes_rejection(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(None)
    } else {
        ApiError::bad_request(
            None,
            format!("cannot read the request body: {}", r.body_text()),
        )
    }
}

/// Parses a JSON document into `T`, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // Every request body of this API is an object; serde would otherwise
    // read a struct from an array (`[null, null]`).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(
            ApiError::bad_request(None, "the request body must be a JSON object")
                .with_code("invalid_type"),
        );
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = match result {
        Ok(v) => v,
        Err(e) => return Err(json_error(e)),
    };
    de.end().map_err(|e| {
        ApiError::bad_request(None, format!("malformed JSON: {e}")).with_code("invalid_json")
    })?;
    Ok(value)
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.inner();
    let message = inner.to_string();
    // serde_json appends " at line L column C"; keep the message short.
    let message = match message.rfind(" at line ") {
        Some(i) if inner.line() > 0 => message[..i].to_string(),
        _ => message,
    };
    let parent = if path == "." { None } else { Some(path) };
    match inner.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ApiError::bad_request(None, format!("malformed JSON: {message}"))
                .with_code("invalid_json")
        }
        serde_json::error::Category::Io => {
            ApiError::bad_request(None, format!("cannot read the request body: {message}"))
        }
        serde_json::error::Category::Data => {
            let (code, field) = if let Some(name) = between(&message, "unknown field `", "`") {
                ("unknown_field", Some(join(parent.as_deref(), name)))
            } else if let Some(name) = between(&message, "missing field `", "`") {
                ("missing_field", Some(join(parent.as_deref(), name)))
            } else if message.starts_with("invalid type") {
                ("invalid_type", parent)
            } else {
                ("invalid_value", parent)
            };
            let message = match &field {
                Some(f) if code != "unknown_field" && code != "missing_field" => {
                    format!("{f}: {message}")
                }
                _ => message,
            };
            ApiError::bad_request(field.as_deref(), message).with_code(code)
        }
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

fn join(parent: Option<&str>, name: &str) -> String {
    match parent {
        // serde_path_to_error puts the unknown key itself at the end of the
        // path; do not name it twice.
        Some(p) if p == name || p.ends_with(&format!(".{name}")) => p.to_string(),
        Some(p) => format!("{p}.{name}"),
        None => name.to_string(),
    }
}

// --- query strings and path parameters -------------------------------------------

/// A query string deserialized into `T`; failures are 400 in the envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        match axum::extract::Query::<T>::try_from_uri(&parts.uri) {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(query_rejection(r, query)),
        }
    }
}

fn query_rejection(r: QueryRejection, _query: &str) -> ApiError {
    let text = r.body_text();
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text)
        .to_string();
    let field = between(&detail, "unknown field `", "`")
        .or_else(|| between(&detail, "missing field `", "`"))
        .or_else(|| {
            detail
                .split_once(':')
                .map(|(f, _)| f)
                .filter(|f| !f.contains(' '))
        })
        .map(str::to_string);
    ApiError::bad_request(field.as_deref(), format!("invalid query string: {detail}"))
        .with_code("invalid_query")
}

/// Path parameters deserialized into `T`; failures are 400 in the envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(path_rejection(r)),
        }
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    match r {
        PathRejection::FailedToDeserializePathParams(e) => {
            let field = match e.kind() {
                axum::extract::path::ErrorKind::ParseErrorAtKey { key, .. }
                | axum::extract::path::ErrorKind::InvalidUtf8InPathParam { key } => {
                    Some(key.clone())
                }
                _ => None,
            };
            ApiError::bad_request(
                field.as_deref(),
                format!("invalid path parameter: {}", e.body_text()),
            )
            .with_code("invalid_path")
        }
        other => {
            tracing::error!(error = %other.body_text(), "path extraction misconfigured");
            ApiError::internal()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        caller: String,
        #[serde(default)]
        ttl_minutes: Option<u32>,
        #[serde(default)]
        legs: Vec<Leg>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Leg {
        number: String,
    }

    fn err(json: &str) -> ApiError {
        parse_json::<Body>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn malformed_json() {
        let e = err("{\"caller\": ");
        assert_eq!((e.code(), e.field()), ("invalid_json", None));
        let e = err("{\"caller\": \"x\"} trailing");
        assert_eq!(e.code(), "invalid_json");
    }

    #[test]
    fn unknown_missing_and_wrong_type_name_the_field() {
        let e = err(r#"{"caller":"x","calee":"y"}"#);
        assert_eq!((e.code(), e.field()), ("unknown_field", Some("calee")));
        let e = err(r#"{"ttl_minutes": 5}"#);
        assert_eq!((e.code(), e.field()), ("missing_field", Some("caller")));
        let e = err(r#"{"caller":"x","ttl_minutes":"soon"}"#);
        assert_eq!((e.code(), e.field()), ("invalid_type", Some("ttl_minutes")));
        let e = err(r#"{"caller":"x","legs":[{"number":1}]}"#);
        assert_eq!(
            (e.code(), e.field()),
            ("invalid_type", Some("legs[0].number"))
        );
        let e = err(r#"{"caller":"x","legs":[{"numbr":"1"}]}"#);
        assert_eq!(
            (e.code(), e.field()),
            ("unknown_field", Some("legs[0].numbr"))
        );
        let e = err(r#"{"caller":"x","ttl_minutes":-1}"#);
        assert_eq!(
            (e.code(), e.field()),
            ("invalid_value", Some("ttl_minutes"))
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn empty_body_reads_as_empty_object() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Cmd {
            #[allow(dead_code)]
            command_uid: Option<String>,
        }
        assert!(parse_json::<Cmd>(b"").is_ok());
        assert!(parse_json::<Cmd>(b" \n").is_ok());
    }

    #[test]
    fn store_errors_map_to_statuses() {
        let e: ApiError = StoreError::Unavailable("down".into()).into();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        );
        assert!(!e.message().contains("down"));
        let e: ApiError = StoreError::Corrupt("x".into()).into();
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn envelope_shape() {
        let v = serde_json::to_value(ApiError::bad_request(Some("f"), "m").envelope()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"code":"bad_request","message":"m","field":"f"}})
        );
        let v = serde_json::to_value(ApiError::conflict("c").envelope()).unwrap();
        assert_eq!(v["error"]["field"], serde_json::Value::Null);
    }
}
