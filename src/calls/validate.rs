//! The rules of a create request (seed 001): every field's limits, and an
//! allow-list of characters for every value that reaches a dial string.
//!
//! This file owns [`validate`]: a [`CreateCallRequest`] in, a
//! [`ValidCall`] out (or the first offending field). The allow-lists are
//! stricter than what the ESL layer would still escape: no commas, braces,
//! brackets, parentheses, quotes, backslashes, `$`, `%`, CR/LF or other
//! control characters anywhere, and spaces only inside a display name; so a
//! value can neither re-split a dial string nor smuggle a header. It must not
//! build dial strings (that is [`super::dial`]) nor touch the store.

use std::sync::LazyLock;

use regex::Regex;

use super::model::{AdditionalHeader, CreateCallRequest, HeaderDirection};
use crate::esl::dialstring::VarValue;

/// Why a create request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCall {
    /// A field breaks its limits or allow-list (400).
    #[error("{field}: {message}")]
    Field {
        /// The request field.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Well-formed, but FreeSWITCH cannot do it (422).
    #[error("{field}: {message}")]
    Unsupported {
        /// The request field.
        field: &'static str,
        /// Why.
        message: String,
    },
}

impl InvalidCall {
    /// The offending field.
    pub fn field(&self) -> &'static str {
        match self {
            InvalidCall::Field { field, .. } | InvalidCall::Unsupported { field, .. } => field,
        }
    }

    fn field_error(field: &'static str, message: impl Into<String>) -> InvalidCall {
        InvalidCall::Field {
            field,
            message: message.into(),
        }
    }
}

/// What `send_sdp: false` answers: FreeSWITCH cannot do it
/// (docs/esl-protocol.md §8.5).
pub const NO_SDP_UNSUPPORTED: &str = "an INVITE without SDP is not supported: FreeSWITCH \
     always sends its own SDP offer on a leg it originates (late offer exists only for \
     bridged calls in proxy media mode); send send_sdp: true";

/// A request that passed every rule. Optional text fields that were empty are
/// `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCall {
    /// Rung first.
    pub caller: String,
    /// Rung once the caller answered.
    pub callee: String,
    /// Presented on both INVITEs.
    pub caller_display_name: Option<String>,
    /// Gateway; `None` means the tenant's default.
    pub trunk: Option<String>,
    /// From user part.
    pub rewrite_from: Option<String>,
    /// P-Asserted-Identity user part.
    pub rewrite_pai: Option<String>,
    /// Remote-Party-ID user part.
    pub rewrite_rpi: Option<String>,
    /// Echoed on webhooks.
    pub user_data: Option<String>,
    /// Carried.
    pub target: Option<String>,
    /// Carried.
    pub target_instance_id: Option<String>,
    /// Carried.
    pub target_extension_number: Option<String>,
    /// The header and the INVITEs that get it.
    pub additional_header: Option<(AdditionalHeader, HeaderDirection)>,
}

fn check_len(field: &'static str, text: &str, min: usize, max: usize) -> Result<(), InvalidCall> {
    let n = text.chars().count();
    if n < min {
        let message = if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        };
        return Err(InvalidCall::field_error(field, message));
    }
    if n > max {
        return Err(InvalidCall::field_error(
            field,
            format!("must be at most {max} characters (got {n})"),
        ));
    }
    Ok(())
}

fn check_chars(
    field: &'static str,
    text: &str,
    allowed: impl Fn(char) -> bool,
    what: &str,
) -> Result<(), InvalidCall> {
    match text.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(InvalidCall::field_error(
            field,
            format!("contains the character {c:?}; allowed: {what}"),
        )),
        None => Ok(()),
    }
}

/// Longest SIP user name accepted as `caller` or `callee`.
pub const MAX_SIP_USER: usize = 64;

/// What `caller` and `callee` accept, for messages and documentation.
pub const PARTY_FORMS: &str = "an E.164 number ('+' then 7 to 15 digits, not starting with 0, \
     e.g. +15557770001), an extension of 2 to 6 digits (e.g. 1001), or a SIP user \
     of 1 to 64 letters, digits and . _ - starting with a letter (e.g. alice.smith)";

/// `caller` / `callee`: one of three forms, nothing else (no `*`, `#`, lone
/// punctuation, national numbers without `+`, or numbers too long for
/// E.164):
///
/// - E.164: `+` then 7–15 digits, the first not 0 (what the dialplan and the
///   masked numbers use too);
/// - an extension: 2–6 digits (a PBX user such as `1001`);
/// - a SIP user: 1–64 of `[A-Za-z0-9._-]`, starting with a letter, not
///   ending with `.` or `-`, without `..`.
fn check_party(field: &'static str, text: &str) -> Result<(), InvalidCall> {
    if text.is_empty() {
        return Err(InvalidCall::field_error(field, "must not be empty"));
    }
    let bad = |why: &str| InvalidCall::field_error(field, format!("{why}; expected {PARTY_FORMS}"));
    if let Some(digits) = text.strip_prefix('+') {
        if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
            return Err(bad(&format!("contains the character {c:?} after '+'")));
        }
        if !(7..=15).contains(&digits.len()) {
            return Err(bad(&format!(
                "has {} digits after '+' (E.164 allows 7 to 15)",
                digits.len()
            )));
        }
        if digits.starts_with('0') {
            return Err(bad("starts with 0 after '+' (no E.164 country code does)"));
        }
        return Ok(());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        if !(2..=6).contains(&text.len()) {
            return Err(bad(&format!(
                "is {} digits without '+' (a number needs '+' and its country code; \
                 an extension has 2 to 6 digits)",
                text.len()
            )));
        }
        return Ok(());
    }
    let n = text.chars().count();
    if n > MAX_SIP_USER {
        return Err(bad(&format!("is {n} characters long")));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        return Err(bad(&format!("contains the character {c:?}")));
    }
    if !text.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(bad("a SIP user must start with a letter"));
    }
    if text.ends_with(['.', '-']) || text.contains("..") {
        return Err(bad(
            "a SIP user must not end with '.' or '-' nor contain '..'",
        ));
    }
    Ok(())
}

/// A rewrite: 1–16, digits with an optional leading `+`.
fn check_rewrite(field: &'static str, text: &str) -> Result<(), InvalidCall> {
    check_len(field, text, 1, 16)?;
    let rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(InvalidCall::field_error(
            field,
            "must have digits after '+'",
        ));
    }
    check_chars(
        field,
        rest,
        |c| c.is_ascii_digit(),
        "digits with an optional leading '+'",
    )
}

const TAG_CHARS: &str = "._:/@+=~*#!&-";

/// `user_data` and the target fields: ≤ 128 of `[A-Za-z0-9._:/@+=~*#!&-]`;
/// empty means not given.
fn check_tag(field: &'static str, text: Option<&str>) -> Result<Option<String>, InvalidCall> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    check_len(field, text, 0, 128)?;
    check_chars(
        field,
        text,
        |c| c.is_ascii_alphanumeric() || TAG_CHARS.contains(c),
        "letters, digits and . _ : / @ + = ~ * # ! & -",
    )?;
    Ok(Some(text.to_owned()))
}

const NAME_PUNCTUATION: &str = " .-_&+@!?#*";

/// Letters and marks of any script (Unicode categories L and M: a
/// Devanagari virama, a combining accent) and decimal digits of any script
/// (Nd).
static NAME_LETTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{M}\p{Nd}]$").expect("a valid regex"));

/// ZERO WIDTH NON-JOINER and JOINER: format characters that Persian and
/// Indic names need to render as written.
const NAME_JOINERS: [char; 2] = ['\u{200C}', '\u{200D}'];

fn is_name_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || NAME_PUNCTUATION.contains(c);
    }
    let mut buf = [0u8; 4];
    NAME_LETTER.is_match(c.encode_utf8(&mut buf)) || NAME_JOINERS.contains(&c)
}

/// A display name: ≤ 1024 letters and marks (Unicode L and M, any script,
/// composed or decomposed), decimal digits, spaces, the joiners ZWNJ/ZWJ and
/// `. - _ & + @ ! ? # *`, not starting or ending with a space (FreeSWITCH
/// would trim it), and nothing a channel variable value may not carry
/// ([`VarValue`]: control characters, quotes, `$`, `:_:`, …); empty means
/// not given.
fn check_display_name(
    field: &'static str,
    text: Option<&str>,
) -> Result<Option<String>, InvalidCall> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    check_len(field, text, 0, 1024)?;
    check_chars(
        field,
        text,
        is_name_char,
        "letters and marks of any script, digits, spaces and . - _ & + @ ! ? # *",
    )?;
    if text.starts_with(' ') || text.ends_with(' ') {
        return Err(InvalidCall::field_error(
            field,
            "must not start or end with a space",
        ));
    }
    VarValue::for_field(field, text).map_err(|e| InvalidCall::field_error(field, e.to_string()))?;
    Ok(Some(text.to_owned()))
}

/// A trunk (gateway) name: 1–64 of `[A-Za-z0-9_.-]`, not starting with `-`.
fn check_trunk(field: &'static str, text: &str) -> Result<(), InvalidCall> {
    check_len(field, text, 1, 64)?;
    check_chars(
        field,
        text,
        |c| c.is_ascii_alphanumeric() || "_.-".contains(c),
        "letters, digits and _ . -",
    )?;
    if text.starts_with('-') {
        return Err(InvalidCall::field_error(field, "must not start with '-'"));
    }
    Ok(())
}

/// `trunk` must name a trunk the tenant may use. The configuration lists
/// one trunk per tenant (`tenants.trunk`), so a request may name only that
/// one (or leave `trunk` out); any other name is refused rather than handed
/// to FreeSWITCH as a gateway to try.
pub fn check_tenant_trunk(call: &ValidCall, tenant_trunk: &str) -> Result<(), InvalidCall> {
    match &call.trunk {
        Some(t) if t != tenant_trunk => Err(InvalidCall::field_error(
            "trunk",
            format!(
                "{t:?} is not a trunk of this tenant: it may use only its configured trunk \
                 {tenant_trunk:?} (leave trunk out to use it)"
            ),
        )),
        _ => Ok(()),
    }
}

/// Checks every field; the first offence wins, in the seed's field order.
pub fn validate(req: &CreateCallRequest) -> Result<ValidCall, InvalidCall> {
    check_party("caller", &req.caller)?;
    let caller_display_name =
        check_display_name("caller_display_name", req.caller_display_name.as_deref())?;
    check_party("callee", &req.callee)?;
    if let Some(trunk) = &req.trunk {
        check_trunk("trunk", trunk)?;
    }
    let rewrites = [
        ("rewrite_from", &req.rewrite_from),
        ("rewrite_pai", &req.rewrite_pai),
        ("rewrite_rpi", &req.rewrite_rpi),
    ];
    for (field, value) in rewrites {
        if let Some(value) = value {
            check_rewrite(field, value)?;
        }
    }
    let user_data = check_tag("user_data", req.user_data.as_deref())?;
    let target = check_tag("target", req.target.as_deref())?;
    let target_instance_id = check_tag("target_instance_id", req.target_instance_id.as_deref())?;
    let target_extension_number = check_tag(
        "target_extension_number",
        req.target_extension_number.as_deref(),
    )?;
    if !req.send_sdp {
        return Err(InvalidCall::Unsupported {
            field: "send_sdp",
            message: NO_SDP_UNSUPPORTED.to_owned(),
        });
    }
    Ok(ValidCall {
        caller: req.caller.clone(),
        callee: req.callee.clone(),
        caller_display_name,
        trunk: req.trunk.clone(),
        rewrite_from: req.rewrite_from.clone(),
        rewrite_pai: req.rewrite_pai.clone(),
        rewrite_rpi: req.rewrite_rpi.clone(),
        user_data,
        target,
        target_instance_id,
        target_extension_number,
        additional_header: req
            .additional_header
            .map(|h| (h, req.header_direction.unwrap_or_default())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn request() -> CreateCallRequest {
        CreateCallRequest {
            caller: "+15557770001".into(),
            callee: "+15557770002".into(),
            send_sdp: true,
            ..CreateCallRequest::default()
        }
    }

    fn field_of(req: &CreateCallRequest) -> Option<&'static str> {
        validate(req).err().map(|e| e.field())
    }

    #[test]
    fn a_minimal_request_passes() {
        let v = validate(&request()).unwrap();
        assert_eq!(v.caller, "+15557770001");
        assert_eq!(v.additional_header, None);
    }

    #[test]
    fn every_limit_names_its_field() {
        type Set = fn(&mut CreateCallRequest, String);
        let cases: [(&str, Set, usize, usize); 11] = [
            (
                "caller_display_name",
                |r, v| r.caller_display_name = Some(v),
                0,
                1024,
            ),
            ("callee", |r, v| r.callee = format!("+{v}"), 0, 15),
            ("trunk", |r, v| r.trunk = Some(v), 1, 64),
            ("rewrite_from", |r, v| r.rewrite_from = Some(v), 1, 16),
            ("rewrite_pai", |r, v| r.rewrite_pai = Some(v), 1, 16),
            ("rewrite_rpi", |r, v| r.rewrite_rpi = Some(v), 1, 16),
            ("user_data", |r, v| r.user_data = Some(v), 0, 128),
            ("target", |r, v| r.target = Some(v), 0, 128),
            (
                "target_instance_id",
                |r, v| r.target_instance_id = Some(v),
                0,
                128,
            ),
            (
                "target_extension_number",
                |r, v| r.target_extension_number = Some(v),
                0,
                128,
            ),
            ("caller", |r, v| r.caller = format!("a{v}"), 0, 63),
        ];
        for (field, set, min, max) in cases {
            let mut ok = request();
            set(&mut ok, "1".repeat(max));
            assert_eq!(field_of(&ok), None, "{field} at {max}");
            let mut long = request();
            set(&mut long, "1".repeat(max + 1));
            assert_eq!(field_of(&long), Some(field), "{field} above {max}");
            if min == 1 {
                let mut empty = request();
                set(&mut empty, String::new());
                assert_eq!(field_of(&empty), Some(field), "{field} empty");
            }
        }
    }

    #[test]
    fn injection_attempts_are_refused_in_every_string_field() {
        type Set = fn(&mut CreateCallRequest, String);
        let fields: [(&str, Set); 11] = [
            ("caller", |r, v| r.caller = v),
            ("caller_display_name", |r, v| {
                r.caller_display_name = Some(v)
            }),
            ("callee", |r, v| r.callee = v),
            ("trunk", |r, v| r.trunk = Some(v)),
            ("rewrite_from", |r, v| r.rewrite_from = Some(v)),
            ("rewrite_pai", |r, v| r.rewrite_pai = Some(v)),
            ("rewrite_rpi", |r, v| r.rewrite_rpi = Some(v)),
            ("user_data", |r, v| r.user_data = Some(v)),
            ("target", |r, v| r.target = Some(v)),
            ("target_instance_id", |r, v| r.target_instance_id = Some(v)),
            ("target_extension_number", |r, v| {
                r.target_extension_number = Some(v)
            }),
        ];
        let attacks = [
            "1\r2", "1\n2", "1\u{0}2", "1,2", "1{2", "1}2", "1[2", "1]2", "1'2", "1\"2", "${x}",
            "1(2", "1)2", "1\\n2", "1|2", "1<2", "1%0A2",
        ];
        for (field, set) in fields {
            for attack in attacks {
                let mut r = request();
                set(&mut r, attack.to_owned());
                assert_eq!(field_of(&r), Some(field), "{field}: {attack:?}");
            }
        }
    }

    #[test]
    fn spaces_only_inside_a_display_name() {
        let mut r = request();
        r.caller_display_name = Some("José Núñez & Co.".into());
        assert_eq!(
            validate(&r).unwrap().caller_display_name.as_deref(),
            Some("José Núñez & Co.")
        );
        r.caller_display_name = Some(" padded".into());
        assert_eq!(field_of(&r), Some("caller_display_name"));
        r.caller_display_name = Some(String::new());
        assert_eq!(validate(&r).unwrap().caller_display_name, None);
        let mut r = request();
        r.user_data = Some("a b".into());
        assert_eq!(field_of(&r), Some("user_data"));
        let mut r = request();
        r.callee = "+".into();
        assert_eq!(field_of(&r), Some("callee"));
        r.callee = "alice".into();
        assert_eq!(field_of(&r), None);
        r.callee = "alice@evil.example".into();
        assert_eq!(field_of(&r), Some("callee"));
        r.callee = "1+2".into();
        assert_eq!(field_of(&r), Some("callee"));
    }

    #[test]
    fn parties_are_e164_extensions_or_sip_users() {
        for ok in [
            "+15557770001",
            "+4930123",
            "+123456789012345",
            "1001",
            "12",
            "123456",
            "alice",
            "a",
            "alice.smith",
            "bob_2-x",
            "A1",
        ] {
            let mut r = request();
            r.callee = ok.into();
            assert_eq!(field_of(&r), None, "{ok:?}");
            r.caller = ok.into();
            assert_eq!(field_of(&r), None, "{ok:?}");
        }
        for bad in [
            "-",
            "..",
            "#",
            "*",
            "*67",
            "#31#",
            "+",
            "+1",
            "+123456",
            "+0123456789",
            "+1234567890123456",
            "1234567890123456789",
            "5557770001",
            "1",
            "1234567",
            "+1555-777-0001",
            "+1 555",
            "alice.",
            "alice-",
            "a..b",
            ".alice",
            "_alice",
            "1alice",
            "alice@example.com",
            "al ice",
            "é",
            "a+b",
        ] {
            let mut r = request();
            r.caller = bad.into();
            assert_eq!(field_of(&r), Some("caller"), "caller {bad:?}");
            let mut r = request();
            r.callee = bad.into();
            assert_eq!(field_of(&r), Some("callee"), "callee {bad:?}");
        }
    }

    #[test]
    fn display_names_of_any_script_with_marks_are_accepted() {
        for ok in [
            "नमस्ते",                            // Devanagari with a virama (U+094D, Mn)
            "Jose\u{301} Nu\u{303}n\u{303}ez", // decomposed accents (U+0301, U+0303)
            "José Núñez & Co.",
            "Ελένη Π.",
            "محمد‌رضا", // Persian with ZWNJ
            "田中 太郎",
            "क्षत्रिय ४२", // Devanagari digits
            "Support #1 *VIP*",
        ] {
            let mut r = request();
            r.caller_display_name = Some(ok.into());
            assert_eq!(
                validate(&r).map(|v| v.caller_display_name),
                Ok(Some(ok.to_owned())),
                "{ok:?}"
            );
        }
        for bad in [
            "a\u{7}b",
            "a\u{85}b",
            "a\u{200B}b", // ZERO WIDTH SPACE: not a joiner
            "a\u{202E}b", // RIGHT-TO-LEFT OVERRIDE
            "a\u{A0}b",   // NO-BREAK SPACE
            "a:_:b",
            "a:b",
            "mod_event_socket",
            "x$y",
            "x^y",
            "x|y",
            "x<y>",
            "x`y",
            "x%y",
            "x,y",
            "x(y)",
            "x/y",
            "😀",
        ] {
            let mut r = request();
            r.caller_display_name = Some(bad.into());
            assert_eq!(field_of(&r), Some("caller_display_name"), "{bad:?}");
        }
    }

    #[test]
    fn only_the_tenants_trunk() {
        let mut r = request();
        r.trunk = Some("carrier".into());
        let v = validate(&r).unwrap();
        assert!(check_tenant_trunk(&v, "carrier").is_ok());
        let e = check_tenant_trunk(&v, "other").unwrap_err();
        assert_eq!(e.field(), "trunk");
        r.trunk = None;
        assert!(check_tenant_trunk(&validate(&r).unwrap(), "other").is_ok());
    }

    #[test]
    fn no_sdp_is_unsupported_and_direction_defaults_to_caller() {
        let mut r = request();
        r.send_sdp = false;
        assert!(matches!(
            validate(&r),
            Err(InvalidCall::Unsupported {
                field: "send_sdp",
                ..
            })
        ));
        let mut r = request();
        r.header_direction = Some(HeaderDirection::All);
        assert_eq!(validate(&r).unwrap().additional_header, None);
        r.additional_header = Some(AdditionalHeader::AnswerMode);
        r.header_direction = None;
        assert_eq!(
            validate(&r).unwrap().additional_header,
            Some((AdditionalHeader::AnswerMode, HeaderDirection::Caller))
        );
    }
}
