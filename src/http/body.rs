//! What a request body may be: at most `http.max_body_bytes`, fully received
//! within `http.body_timeout_ms` of its headers.
//!
//! This module owns the `guard` middleware of [`super::router`]. A declared
//! `Content-Length` above the limit is answered 413 (naming the limit) before
//! any body byte is read; a body that grows past the limit while it arrives
//! (chunked) is answered 413 too, and one still arriving at the deadline 408
//! `request_timeout`. Each of these answers closes the connection
//! (`Connection: close`): what is left of the body cannot be told from a next
//! request. Otherwise the body is read here, whole, so that handlers never
//! wait on a slow client; the API's bodies are small JSON, so holding one in
//! memory costs little. It knows nothing about what a body means.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::error::ApiError;
use crate::config::HttpConfig;

/// Error code of the 408 for a body that did not arrive in time.
pub const REQUEST_TIMEOUT: &str = "request_timeout";

/// The body limits, from `[http]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest body, in bytes.
    pub max_bytes: usize,
    /// Time for the whole body to arrive once the headers have.
    pub timeout: Duration,
}

impl BodyLimits {
    /// The limits `http` configures.
    pub fn from_config(http: &HttpConfig) -> BodyLimits {
        BodyLimits {
            max_bytes: http.max_body_bytes,
            timeout: Duration::from_millis(http.body_timeout_ms),
        }
    }
}

/// Refuses bodies over the limit or too slow, and reads the others whole.
pub async fn guard(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(declared) = declared {
        if declared > limits.max_bytes as u64 {
            return closing(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the request body would be {declared} bytes; at most {} bytes are accepted",
                    limits.max_bytes
                ),
            ));
        }
    }
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limits.timeout, read_whole(body, limits.max_bytes)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(Unread::TooLarge)) => closing(ApiError::payload_too_large(Some(limits.max_bytes))),
        Ok(Err(Unread::Broken)) => closing(ApiError::bad_request(
            None,
            "the request body could not be read (the connection broke or the chunked \
             encoding is malformed)",
        )),
        Err(_) => {
            tracing::debug!(timeout = ?limits.timeout, "request body too slow");
            closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms",
                    limits.timeout.as_millis()
                ),
            ))
        }
    }
}

enum Unread {
    TooLarge,
    Broken,
}

async fn read_whole(body: Body, max: usize) -> Result<Bytes, Unread> {
    let mut stream = body.into_data_stream();
    let mut whole = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Unread::Broken)?;
        if whole.len() + chunk.len() > max {
            return Err(Unread::TooLarge);
        }
        whole.extend_from_slice(&chunk);
    }
    Ok(whole.freeze())
}

/// The error's response, closing the connection after it.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
