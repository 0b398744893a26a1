//! What the masked-session API takes and gives: request bodies, query
//! parameters and response bodies, and the checks that turn untrusted input
//! into typed values ([`E164`], [`SessionRef`], [`Party`], a TTL in range).
//!
//! This file owns the shapes tenants see (field names, JSON forms, OpenAPI
//! schemas) and every "is this input well-formed" rule, each failure naming
//! the field. It must not touch the store, the clock or the switch, and it
//! decides nothing about session state: that is `service`.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

use super::error::MaskingError;
use crate::store::{CompletionReason, SessionRecord, SessionState};

/// Largest serialised `metadata` accepted, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Largest page a list returns.
pub const MAX_LIST_LIMIT: usize = 200;
/// Page size when `limit` is omitted.
pub const DEFAULT_LIST_LIMIT: usize = 50;
/// Random characters after `ses_` (base62, about 143 bits).
pub const REF_RANDOM_LEN: usize = 24;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// --- typed values -------------------------------------------------------------

/// A phone number in E.164 form: `+`, a non-zero digit, then 6 to 14 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

impl E164 {
    /// Checks `text`; the error names `field`.
    pub fn parse(field: &'static str, text: &str) -> Result<E164, MaskingError> {
        // The same rule the configuration's numbers follow.
        if crate::config::validate::is_e164(text) {
            Ok(E164(text.to_owned()))
        } else {
            Err(MaskingError::invalid(
                field,
                "must be an E.164 number: '+', then 7 to 15 digits, not starting with 0 \
                 (e.g. +15557770001)",
            ))
        }
    }

    /// The number, with its `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+` (the form numbers are compared in).
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

/// A session ref: `ses_` and 1 to 64 ASCII letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionRef(String);

impl SessionRef {
    /// A fresh, unguessable ref (`ses_` + 24 base62 characters from the
    /// thread's cryptographically secure generator).
    pub fn generate() -> SessionRef {
        let mut rng = rand::thread_rng();
        let mut s = String::with_capacity(4 + REF_RANDOM_LEN);
        s.push_str("ses_");
        for _ in 0..REF_RANDOM_LEN {
            s.push(BASE62[rng.gen_range(0..BASE62.len())] as char);
        }
        SessionRef(s)
    }

    /// Checks `text`; the error names `field`.
    pub fn parse(field: &'static str, text: &str) -> Result<SessionRef, MaskingError> {
        let rest = text.strip_prefix("ses_").unwrap_or("");
        if (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(SessionRef(text.to_owned()))
        } else {
            Err(MaskingError::invalid(
                field,
                "must be a session ref: 'ses_' followed by letters and digits",
            ))
        }
    }

    /// The ref.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One of the two parties of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    /// `party_a`.
    #[default]
    A,
    /// `party_b`.
    B,
}

impl Party {
    /// The other party.
    pub fn other(self) -> Party {
        match self {
            Party::A => Party::B,
            Party::B => Party::A,
        }
    }

    /// This party's number in a session.
    pub fn number_in(self, s: &SessionRecord) -> &str {
        match self {
            Party::A => &s.party_a,
            Party::B => &s.party_b,
        }
    }
}

// --- create -------------------------------------------------------------------

/// `POST /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// First real number (E.164, e.g. `+15557770001`).
    #[schema(example = "+15557770001", pattern = r"^\+[1-9][0-9]{6,14}$")]
    pub party_a: String,
    /// Second real number (E.164), different from `party_a`.
    #[schema(example = "+15557770002", pattern = r"^\+[1-9][0-9]{6,14}$")]
    pub party_b: String,
    /// Lifetime in minutes, 1 to the tenant's maximum; the tenant's default
    /// when omitted. A value above the maximum is refused, never cut.
    #[serde(default, deserialize_with = "integral")]
    #[schema(example = 60, minimum = 1, maximum = 4294967295_i64)]
    pub ttl_minutes: Option<i64>,
    /// Free-form JSON object (at most 4 KiB), returned as given. It never
    /// reaches FreeSWITCH.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// An optional integer that also accepts an integral JSON number written
/// with a fraction (`60.0`): JSON Schema counts it as an integer.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Some(f as i64)),
        Some(f) if f.fract() == 0.0 => Ok(Some(if f > 0.0 { i64::MAX } else { i64::MIN })),
        _ => Err(serde::de::Error::custom(format!(
            "invalid type: {n}, expected an integer"
        ))),
    }
}

/// A create request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidCreate {
    /// First party.
    pub party_a: E164,
    /// Second party.
    pub party_b: E164,
    /// Lifetime, within the tenant's bounds.
    pub ttl_minutes: u32,
    /// Metadata (an object), if given.
    pub metadata: Option<serde_json::Value>,
}

impl CreateSessionRequest {
    /// Checks the request against the tenant's TTL bounds.
    pub fn validate(
        self,
        default_ttl_minutes: u32,
        max_ttl_minutes: u32,
    ) -> Result<ValidCreate, MaskingError> {
        let party_a = E164::parse("party_a", &self.party_a)?;
        let party_b = E164::parse("party_b", &self.party_b)?;
        if party_a.digits() == party_b.digits() {
            return Err(MaskingError::invalid(
                "party_b",
                "must differ from party_a: a session pairs two different numbers",
            ));
        }
        let ttl_minutes = match self.ttl_minutes {
            None => default_ttl_minutes.min(max_ttl_minutes),
            Some(t) if t < 1 => {
                return Err(MaskingError::invalid(
                    "ttl_minutes",
                    "must be at least 1 (minutes); omit it for the tenant's default",
                ))
            }
            Some(t) if t > i64::from(max_ttl_minutes) => {
                return Err(MaskingError::TtlAboveMaximum {
                    requested: t,
                    max: max_ttl_minutes,
                })
            }
            Some(t) => u32::try_from(t).unwrap_or(max_ttl_minutes),
        };
        let metadata = match self.metadata {
            None | Some(serde_json::Value::Null) => None,
            Some(v @ serde_json::Value::Object(_)) => {
                let size = serde_json::to_vec(&v)
                    .map(|b| b.len())
                    .unwrap_or(usize::MAX);
                if size > MAX_METADATA_BYTES {
                    return Err(MaskingError::invalid(
                        "metadata",
                        "is larger than 4096 bytes once serialised",
                    ));
                }
                Some(v)
            }
            Some(_) => return Err(MaskingError::invalid("metadata", "must be a JSON object")),
        };
        Ok(ValidCreate {
            party_a,
            party_b,
            ttl_minutes,
            metadata,
        })
    }
}

// --- responses ----------------------------------------------------------------

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStateView {
    /// Live, no call in progress.
    Open,
    /// Live, a call on the masked number in progress.
    Active,
    /// Over (TTL expired or closed); its number went back to the pool.
    Completed,
}

impl From<SessionState> for SessionStateView {
    fn from(s: SessionState) -> Self {
        match s {
            SessionState::Open => SessionStateView::Open,
            SessionState::Active => SessionStateView::Active,
            SessionState::Completed => SessionStateView::Completed,
        }
    }
}

impl From<SessionStateView> for SessionState {
    fn from(s: SessionStateView) -> Self {
        match s {
            SessionStateView::Open => SessionState::Open,
            SessionStateView::Active => SessionState::Active,
            SessionStateView::Completed => SessionState::Completed,
        }
    }
}

/// Why a session completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompletionReasonView {
    /// The TTL expired.
    Ttl,
    /// The tenant completed it (`POST /v1/sessions/{ref}/complete`).
    Closed,
}

impl From<CompletionReason> for CompletionReasonView {
    fn from(r: CompletionReason) -> Self {
        match r {
            CompletionReason::Ttl => CompletionReasonView::Ttl,
            CompletionReason::Closed => CompletionReasonView::Closed,
        }
    }
}

fn millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn millis_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => millis(t, s),
        None => s.serialize_none(),
    }
}

/// A masked-number session, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// `ses_` + random.
    #[serde(rename = "ref")]
    #[schema(example = "ses_2YqkXw8bT1mR4nVzQe7LsA0c")]
    pub session_ref: String,
    /// `open`, `active` or `completed`.
    pub state: SessionStateView,
    /// The number both parties dial and see.
    #[schema(example = "+15550100001")]
    pub masked_number: String,
    /// First real number.
    #[schema(example = "+15557770001")]
    pub party_a: String,
    /// Second real number.
    #[schema(example = "+15557770002")]
    pub party_b: String,
    /// Lifetime in minutes.
    #[schema(example = 60)]
    pub ttl_minutes: u32,
    /// Created (RFC 3339, UTC).
    #[serde(serialize_with = "millis")]
    pub created_at: DateTime<Utc>,
    /// When the TTL ends.
    #[serde(serialize_with = "millis")]
    pub expires_at: DateTime<Utc>,
    /// When it completed; null while live.
    #[serde(serialize_with = "millis_opt")]
    pub completed_at: Option<DateTime<Utc>>,
    /// `ttl` or `closed`; null while live.
    pub completion_reason: Option<CompletionReasonView>,
    /// The tenant's metadata, as given.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// UUIDs (first legs) of the calls on the masked number in progress.
    pub active_calls: Vec<String>,
}

impl From<SessionRecord> for Session {
    fn from(r: SessionRecord) -> Self {
        Session {
            session_ref: r.session_ref,
            state: r.state.into(),
            masked_number: r.masked_number,
            party_a: r.party_a,
            party_b: r.party_b,
            ttl_minutes: r.ttl_minutes,
            created_at: r.created_at,
            expires_at: r.expires_at,
            completed_at: r.completed_at,
            completion_reason: r.completion_reason.map(Into::into),
            metadata: r.metadata,
            active_calls: r.active_calls,
        }
    }
}

// --- list ---------------------------------------------------------------------

/// `GET /v1/sessions` query.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only sessions in this state.
    pub state: Option<SessionStateView>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(max_length = 128, pattern = r"^(-?[0-9]+:ses_[A-Za-z0-9]{1,64})?$")]
    pub cursor: Option<String>,
}

/// A list query that passed the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidList {
    /// State filter.
    pub state: Option<SessionState>,
    /// Page size.
    pub limit: usize,
    /// Where to continue.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// Checks limit and cursor.
    pub fn validate(self) -> Result<ValidList, MaskingError> {
        let limit = match self.limit {
            None => DEFAULT_LIST_LIMIT,
            Some(l) if (1..=MAX_LIST_LIMIT as i64).contains(&l) => l as usize,
            Some(_) => return Err(MaskingError::invalid("limit", "must be between 1 and 200")),
        };
        let cursor = match self.cursor {
            None => None,
            Some(c) if c.is_empty() => None,
            Some(c) => {
                let ok = c.len() <= 128
                    && c.split_once(':').is_some_and(|(score, r)| {
                        score
                            .trim_start_matches('-')
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                            && !score.trim_start_matches('-').is_empty()
                            && SessionRef::parse("cursor", r).is_ok()
                    });
                if !ok {
                    return Err(MaskingError::invalid(
                        "cursor",
                        "is not a cursor this API returned (use next_cursor as given)",
                    ));
                }
                Some(c)
            }
        };
        Ok(ValidList {
            state: self.state.map(Into::into),
            limit,
            cursor,
        })
    }
}

/// One page of a tenant's sessions, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    /// The sessions.
    pub sessions: Vec<Session>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

// --- originate ----------------------------------------------------------------

/// `POST /v1/calls/originate`.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OriginateRequest {
    /// The session ref.
    #[schema(
        example = "ses_2YqkXw8bT1mR4nVzQe7LsA0c",
        pattern = r"^ses_[A-Za-z0-9]{1,64}$"
    )]
    pub session: String,
    /// Which party rings first (`a` by default); the other is rung once it
    /// answers. Both see the masked number.
    #[serde(default)]
    pub first: Party,
}

/// The call was handed to FreeSWITCH; its progress arrives as webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OriginateAccepted {
    /// UUID of the first leg (the call's id in `call.*` webhooks).
    pub call_id: String,
    /// The operation tracking the originate.
    pub operation_id: String,
    /// Always `in_progress`.
    #[schema(example = "in_progress")]
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(a: &str, b: &str, ttl: Option<i64>) -> CreateSessionRequest {
        CreateSessionRequest {
            party_a: a.into(),
            party_b: b.into(),
            ttl_minutes: ttl,
            metadata: None,
        }
    }

    #[test]
    fn e164_rules() {
        for ok in ["+1234567", "+15557770001", "+123456789012345"] {
            assert!(E164::parse("n", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "+",
            "15557770001",
            "+0123456789",
            "+123456",
            "+1234567890123456",
            "+1555777000a",
            "+1555 777 0001",
            "+15557770001\r\n",
            "+1555${x}",
            "+1555,7770001",
            "+١٢٣٤٥٦٧",
        ] {
            let err = E164::parse("party_a", bad).unwrap_err();
            assert_eq!(err.field(), Some("party_a"), "{bad:?}");
        }
        let n = E164::parse("n", "+15557770001").unwrap();
        assert_eq!(n.digits(), "15557770001");
    }

    #[test]
    fn refs_are_random_and_parse() {
        let a = SessionRef::generate();
        let b = SessionRef::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 4 + REF_RANDOM_LEN);
        assert!(SessionRef::parse("session", a.as_str()).is_ok());
        for bad in [
            "", "ses_", "ses_a-b", "SES_abc", "ses_a{b}", "ses_ab\n", "x",
        ] {
            assert!(SessionRef::parse("session", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ttl_bounds() {
        let v = req("+15557770001", "+15557770002", None)
            .validate(60, 240)
            .unwrap();
        assert_eq!(v.ttl_minutes, 60);
        let v = req("+15557770001", "+15557770002", Some(240))
            .validate(60, 240)
            .unwrap();
        assert_eq!(v.ttl_minutes, 240);
        for bad in [0, -5] {
            let e = req("+15557770001", "+15557770002", Some(bad))
                .validate(60, 240)
                .unwrap_err();
            assert_eq!(e.field(), Some("ttl_minutes"));
            assert_eq!(e.code(), "bad_request");
        }
        let e = req("+15557770001", "+15557770002", Some(241))
            .validate(60, 240)
            .unwrap_err();
        assert_eq!(e.code(), "ttl_above_maximum");
        assert!(e.to_string().contains("240"), "{e}");
        let e = req("+15557770001", "+15557770002", Some(i64::MAX))
            .validate(60, 240)
            .unwrap_err();
        assert_eq!(e.code(), "ttl_above_maximum");
    }

    #[test]
    fn parties_must_differ() {
        let e = req("+15557770001", "+15557770001", None)
            .validate(60, 240)
            .unwrap_err();
        assert_eq!(e.field(), Some("party_b"));
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        let mut r = req("+15557770001", "+15557770002", None);
        r.metadata = Some(serde_json::json!({"order": "A-1, \"quoted\" ${x}"}));
        assert!(r.clone().validate(60, 240).is_ok());
        r.metadata = Some(serde_json::json!([1, 2]));
        assert_eq!(
            r.clone().validate(60, 240).unwrap_err().field(),
            Some("metadata")
        );
        r.metadata = Some(serde_json::json!({"x": "y".repeat(5000)}));
        assert_eq!(
            r.clone().validate(60, 240).unwrap_err().field(),
            Some("metadata")
        );
        r.metadata = Some(serde_json::Value::Null);
        assert_eq!(r.validate(60, 240).unwrap().metadata, None);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_str::<CreateSessionRequest>(
            r#"{"party_a":"+15557770001","party_b":"+15557770002","ttl":5}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = serde_json::from_str::<OriginateRequest>(r#"{"session":"ses_a","frist":"b"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let o: OriginateRequest = serde_json::from_str(r#"{"session":"ses_a"}"#).unwrap();
        assert_eq!(o.first, Party::A);
        assert!(
            serde_json::from_str::<OriginateRequest>(r#"{"session":"ses_a","first":"c"}"#).is_err()
        );
    }

    #[test]
    fn list_query_checks() {
        let q = ListQuery::default().validate().unwrap();
        assert_eq!((q.limit, q.cursor, q.state), (50, None, None));
        for bad in [0, 201, -1] {
            let q = ListQuery {
                limit: Some(bad),
                ..Default::default()
            };
            assert_eq!(q.validate().unwrap_err().field(), Some("limit"));
        }
        let q = ListQuery {
            cursor: Some("1795283575999:ses_abc".into()),
            state: Some(SessionStateView::Open),
            ..Default::default()
        };
        let v = q.validate().unwrap();
        assert_eq!(v.state, Some(SessionState::Open));
        for bad in ["junk", "1:ses_", ":ses_a", "1:ses_a}", "x1:ses_a"] {
            let q = ListQuery {
                cursor: Some(bad.into()),
                ..Default::default()
            };
            assert_eq!(q.validate().unwrap_err().field(), Some("cursor"), "{bad}");
        }
    }

    #[test]
    fn session_json_shape() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let s = Session::from(SessionRecord {
            tenant: "acme".into(),
            session_ref: "ses_x".into(),
            state: SessionState::Completed,
            masked_number: "+15550100001".into(),
            party_a: "+15557770001".into(),
            party_b: "+15557770002".into(),
            ttl_minutes: 5,
            created_at: at,
            expires_at: at + chrono::Duration::minutes(5),
            completed_at: Some(at),
            completion_reason: Some(CompletionReason::Closed),
            metadata: None,
            active_calls: vec![],
        });
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["ref"], "ses_x");
        assert_eq!(v["state"], "completed");
        assert_eq!(v["completion_reason"], "closed");
        assert_eq!(v["created_at"], "2026-11-21T10:00:00.000Z");
        assert_eq!(v["expires_at"], "2026-11-21T10:05:00.000Z");
        assert!(v["metadata"].is_null());
    }
}
