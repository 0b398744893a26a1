//! Standard Webhooks signatures: signing what we send, verifying what a
//! tenant receives.
//!
//! This file owns the secret format (`whsec_` + base64 of the key bytes), the
//! three headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and
//! the signed content `"{id}.{timestamp}.{body}"` with HMAC-SHA256. [`verify`]
//! is what a tenant's receiver does; it is here for the docs, the tests and as
//! a reference implementation. It must not build envelopes, read clocks (time
//! comes in as an argument) or do any I/O.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the message id (the envelope id).
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the signing time, in Unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying one or more space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The prefix of a secret in the configuration.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a timestamp may be from the receiver's clock by default
/// (Standard Webhooks recommends five minutes).
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

/// Why a secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The part after `whsec_` is not base64.
    #[error("webhook secret is not base64 after `whsec_`")]
    NotBase64,
    /// The key is empty.
    #[error("webhook secret has no key bytes")]
    Empty,
}

/// A tenant's signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
    /// HMAC keyed with `key`, cloned for every signature.
    mac: HmacSha256,
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for WebhookSecret {}

impl WebhookSecret {
    /// Reads `whsec_<base64>`. The prefix may be omitted (as the Standard
    /// Webhooks libraries allow); the key is the base64-decoded bytes.
    pub fn parse(text: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        WebhookSecret::from_bytes(&key)
    }

    /// A secret from raw key bytes.
    pub fn from_bytes(key: &[u8]) -> Result<WebhookSecret, SecretError> {
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        // HMAC takes keys of any length; the error case is only the trait's.
        let mac = HmacSha256::new_from_slice(key).map_err(|_| SecretError::Empty)?;
        Ok(WebhookSecret {
            key: key.to_vec(),
            mac,
        })
    }

    /// The configuration form, `whsec_` + base64.
    pub fn to_config_string(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret(<{} bytes>)", self.key.len())
    }
}

/// The three headers of one signed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp` (Unix seconds).
    pub timestamp: i64,
    /// `webhook-signature` (`v1,<base64>`).
    pub signature: String,
}

impl SignedHeaders {
    /// `(name, value)` pairs, ready for any HTTP client.
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_ID, self.id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }
}

fn raw_signature(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = secret.mac.clone();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = raw_signature(secret, id, timestamp, body)
        .finalize()
        .into_bytes();
    format!("v1,{}", BASE64.encode(tag))
}

/// The headers for one attempt, signed at `timestamp` (Unix seconds).
pub fn signed_headers(
    secret: &WebhookSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> SignedHeaders {
    SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature: sign(secret, id, timestamp, body),
    }
}

/// Why a webhook failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-timestamp` is not an integer.
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance (a replay, or a
    /// wrong clock).
    #[error("webhook-timestamp is {0} s away from now, beyond the tolerance")]
    OutsideTolerance(i64),
    /// No `v1` signature in the header matches.
    #[error("no matching v1 signature")]
    NoMatch,
}

/// Checks a received webhook, as a tenant's receiver does: the timestamp is
/// within `tolerance_secs` of `now_unix`, and one of the space-separated
/// `v1,<base64>` entries of `signature_header` is the HMAC of
/// `"{id}.{timestamp}.{body}"` (compared in constant time). `body` must be
/// the raw bytes received, not re-serialised JSON.
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now_unix.saturating_sub(ts);
    if skew.saturating_abs() > tolerance_secs {
        return Err(VerifyError::OutsideTolerance(skew));
    }
    let expected = raw_signature(secret, id, ts, body);
    for entry in signature_header.split(' ') {
        let Some((version, encoded)) = entry.split_once(',') else {
            continue;
        };
        if version != "v1" {
            continue;
        }
        let Ok(tag) = BASE64.decode(encoded) else {
            continue;
        };
        if expected.clone().verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published Standard Webhooks test vector (from the specification's
    /// reference libraries).
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: i64 = 1614265330;
    const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
    const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_standard_webhooks_vector() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(
            sign(&secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY.as_bytes()),
            VECTOR_SIG
        );
        assert_eq!(
            verify(
                &secret,
                VECTOR_ID,
                "1614265330",
                VECTOR_SIG,
                VECTOR_BODY.as_bytes(),
                VECTOR_TS + 10,
                DEFAULT_TOLERANCE_SECS
            ),
            Ok(())
        );
        // The prefix is optional, and the config form round-trips.
        let bare = WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(bare, secret);
        assert_eq!(secret.to_config_string(), VECTOR_SECRET);
    }

    #[test]
    fn verify_rejects_tampering_and_stale_timestamps() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let body = VECTOR_BODY.as_bytes();
        let check = |id: &str, ts: &str, sig: &str, body: &[u8], now: i64| {
            verify(&secret, id, ts, sig, body, now, DEFAULT_TOLERANCE_SECS)
        };
        assert_eq!(
            check(
                VECTOR_ID,
                "1614265330",
                VECTOR_SIG,
                b"{\"test\": 1}",
                VECTOR_TS
            ),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check("msg_other", "1614265330", VECTOR_SIG, body, VECTOR_TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check(VECTOR_ID, "1614265331", VECTOR_SIG, body, VECTOR_TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check(VECTOR_ID, "1614265330", VECTOR_SIG, body, VECTOR_TS + 301),
            Err(VerifyError::OutsideTolerance(301))
        );
        assert_eq!(
            check(VECTOR_ID, "1614265330", VECTOR_SIG, body, VECTOR_TS - 301),
            Err(VerifyError::OutsideTolerance(-301))
        );
        assert_eq!(
            check(VECTOR_ID, "soon", VECTOR_SIG, body, VECTOR_TS),
            Err(VerifyError::BadTimestamp)
        );
        let other = WebhookSecret::from_bytes(b"another key").unwrap();
        assert_eq!(
            verify(
                &other,
                VECTOR_ID,
                "1614265330",
                VECTOR_SIG,
                body,
                VECTOR_TS,
                60
            ),
            Err(VerifyError::NoMatch)
        );
        // Several signatures (key rotation): any v1 match passes; other versions are skipped.
        let several = format!("v2,AAAA v1,bm90IGl0 junk {VECTOR_SIG}");
        assert_eq!(
            check(VECTOR_ID, "1614265330", &several, body, VECTOR_TS),
            Ok(())
        );
    }

    #[test]
    fn bad_secrets_are_refused_and_never_printed() {
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SecretError::NotBase64)
        );
        assert_eq!(WebhookSecret::parse("whsec_"), Err(SecretError::Empty));
        assert_eq!(WebhookSecret::from_bytes(b""), Err(SecretError::Empty));
        let s = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("MfKQ"), "{shown}");
    }

    #[test]
    fn headers_carry_id_timestamp_and_signature() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let h = signed_headers(&secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY.as_bytes());
        assert_eq!(
            h.pairs(),
            [
                ("webhook-id", VECTOR_ID.to_owned()),
                ("webhook-timestamp", "1614265330".to_owned()),
                ("webhook-signature", VECTOR_SIG.to_owned()),
            ]
        );
    }
}
