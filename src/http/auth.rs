//! Who is calling: the [`Tenant`] extractor for the REST API, the
//! [`DialplanCaller`] extractor for FreeSWITCH's `/v1/dialplan/route` lookup
//! and the [`MetricsReader`] extractor for `/metrics`.
//!
//! Every tenant endpoint accepts the three credential styles of the seeds:
//! `X-API-Key: <key>`, `Authorization: Bearer <key>`, and `X-App-ID: <tenant>`
//! with `X-API-Key: <key>` (the App ID must then be the key's tenant). Anything
//! missing or wrong is 401 in the error envelope. This module owns those rules,
//! the dialplan token / source-address rule and the metrics token / loopback
//! rule. It never logs, stores or echoes a presented key or token, and it
//! decides nothing about what a tenant may see (domain modules scope every lookup by [`Tenant::id`]).

use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::AppState;
use crate::config::validate::parse_cidr;
use crate::tenants::TenantSettings;

/// Header carrying an API key (styles 1 and 3).
pub const API_KEY_HEADER: &str = "x-api-key";
/// Header naming the tenant (style 3).
pub const APP_ID_HEADER: &str = "x-app-id";
/// Header carrying the dialplan token (mod_curl).
pub const DIALPLAN_TOKEN_HEADER: &str = "x-dialplan-token";

/// The authenticated tenant of a request.
#[derive(Debug, Clone)]
pub struct Tenant(pub Arc<TenantSettings>);

impl Tenant {
    /// The tenant's id; scope every lookup with it.
    pub fn id(&self) -> &str {
        self.0.id()
    }
}

impl Deref for Tenant {
    type Target = TenantSettings;
    fn deref(&self) -> &TenantSettings {
        &self.0
    }
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Tenant, ApiError> {
        let result = authenticate(&parts.headers, state);
        match &result {
            Ok(t) => {
                tracing::Span::current().record("tenant", tracing::field::display(t.id()));
            }
            Err(e) => tracing::debug!(reason = e.message(), "authentication refused"),
        }
        result
    }
}

fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Tenant, ApiError> {
    let api_key = header_text(headers, API_KEY_HEADER)?;
    let bearer = bearer_token(headers)?;
    let key = match (api_key, bearer) {
        (Some(k), Some(b)) if k != b => {
            return Err(ApiError::unauthorized(
                "X-API-Key and Authorization: Bearer carry different keys; send one",
            ))
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => {
            return Err(ApiError::unauthorized(
                "missing credentials: send X-API-Key: <key>, Authorization: Bearer <key>, \
                 or X-App-ID: <tenant> with X-API-Key: <key>",
            ))
        }
    };
    if key.is_empty() {
        return Err(ApiError::unauthorized("the API key is empty"));
    }
    let Some(tenant) = state.tenants.by_api_key(key) else {
        return Err(ApiError::unauthorized("invalid API key"));
    };
    if let Some(app_id) = header_text(headers, APP_ID_HEADER)? {
        if app_id != tenant.id() {
            return Err(ApiError::unauthorized(
                "X-App-ID does not match the API key's application",
            ));
        }
    }
    Ok(Tenant(tenant.clone()))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::unauthorized(format!(
            "the {name} header appears more than once"
        )));
    }
    value
        .to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| ApiError::unauthorized(format!("the {name} header is not visible ASCII")))
}

fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = header_text(headers, header::AUTHORIZATION.as_str())? else {
        return Ok(None);
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(
            "unsupported Authorization scheme; use Authorization: Bearer <key>",
        ));
    }
    Ok(Some(token.trim()))
}

/// A caller allowed to ask `/v1/dialplan/route` (it reveals real numbers).
///
/// With `http.dialplan_token` configured, the token must come in the
/// `X-Dialplan-Token` header or the `token` query parameter (mod_curl can send
/// either); without it, the source must be loopback or in
/// `http.dialplan_allow`. Otherwise 401 (token missing or wrong) or 403
/// (source not allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialplanCaller {
    /// The peer address, when the server recorded it.
    pub peer: Option<SocketAddr>,
    /// How the caller was admitted.
    pub admitted_by: DialplanAdmission,
}

/// How a dialplan caller was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialplanAdmission {
    /// It presented the configured token.
    Token,
    /// Its source address is loopback or allow-listed.
    Address,
}

impl FromRequestParts<AppState> for DialplanCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<DialplanCaller, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let result = admit_dialplan(parts, state, peer);
        if let Err(e) = &result {
            tracing::info!(peer = ?peer, reason = e.message(), "dialplan lookup refused");
        }
        result
    }
}

fn admit_dialplan(
    parts: &Parts,
    state: &AppState,
    peer: Option<SocketAddr>,
) -> Result<DialplanCaller, ApiError> {
    let http = &state.config.http;
    if let Some(expected) = &http.dialplan_token {
        let from_header = header_text(&parts.headers, DIALPLAN_TOKEN_HEADER)?.map(str::to_string);
        let presented = match from_header {
            Some(t) => Some(t),
            None => query_token(parts),
        };
        let Some(presented) = presented else {
            return Err(ApiError::unauthorized(
                "missing dialplan token (X-Dialplan-Token header or token query parameter)",
            ));
        };
        if !secret_eq(&presented, expected) {
            return Err(ApiError::unauthorized("wrong dialplan token"));
        }
        return Ok(DialplanCaller {
            peer,
            admitted_by: DialplanAdmission::Token,
        });
    }
    let allowed = peer.is_some_and(|p| {
        let ip = p.ip().to_canonical();
        ip.is_loopback()
            || http
                .dialplan_allow
                .iter()
                .filter_map(|entry| parse_cidr(entry))
                .any(|(net, len)| cidr_contains(net, len, ip))
    });
    if allowed {
        Ok(DialplanCaller {
            peer,
            admitted_by: DialplanAdmission::Address,
        })
    } else {
        Err(ApiError::forbidden(
            "without http.dialplan_token only loopback and http.dialplan_allow \
             addresses may ask for routes",
        ))
    }
}

/// A caller allowed to read `/metrics` (it lists tenant ids and volumes).
///
/// With `http.metrics_token` configured, the request must carry
/// `Authorization: Bearer <token>` (401 otherwise, from any address);
/// without it, only loopback clients may read (403 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<MetricsReader, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let result = admit_metrics(&parts.headers, state, peer);
        if let Err(e) = &result {
            tracing::debug!(peer = ?peer, reason = e.message(), "metrics refused");
        }
        result
    }
}

fn admit_metrics(
    headers: &HeaderMap,
    state: &AppState,
    peer: Option<SocketAddr>,
) -> Result<MetricsReader, ApiError> {
    if let Some(expected) = &state.config.http.metrics_token {
        let Some(presented) = bearer_token(headers)? else {
            return Err(ApiError::unauthorized(
                "missing metrics token: send Authorization: Bearer <http.metrics_token>",
            ));
        };
        return if secret_eq(presented, expected) {
            Ok(MetricsReader)
        } else {
            Err(ApiError::unauthorized("wrong metrics token"))
        };
    }
    if peer.is_some_and(|p| p.ip().to_canonical().is_loopback()) {
        Ok(MetricsReader)
    } else {
        Err(ApiError::forbidden(
            "without http.metrics_token only loopback clients may read /metrics",
        ))
    }
}

fn query_token(parts: &Parts) -> Option<String> {
    let axum::extract::Query(pairs) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// Compares secrets in time independent of where they differ (and of length:
/// both sides are hashed first).
fn secret_eq(presented: &str, expected: &str) -> bool {
    let a: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let b: [u8; 32] = Sha256::digest(expected.as_bytes()).into();
    a.ct_eq(&b).into()
}

/// Whether `ip` is inside `net/len`.
pub fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net.to_canonical(), ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let (n, l) = parse_cidr("10.1.0.0/16").unwrap();
        assert!(cidr_contains(n, l, "10.1.200.3".parse().unwrap()));
        assert!(!cidr_contains(n, l, "10.2.0.1".parse().unwrap()));
        let (n, l) = parse_cidr("0.0.0.0/0").unwrap();
        assert!(cidr_contains(n, l, "192.0.2.1".parse().unwrap()));
        let (n, l) = parse_cidr("192.0.2.7").unwrap();
        assert!(cidr_contains(n, l, "192.0.2.7".parse().unwrap()));
        assert!(!cidr_contains(n, l, "192.0.2.8".parse().unwrap()));
        let (n, l) = parse_cidr("fd00::/8").unwrap();
        assert!(cidr_contains(n, l, "fd12::1".parse().unwrap()));
        assert!(!cidr_contains(n, l, "10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn secrets_compare() {
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("", "abc"));
    }
}
