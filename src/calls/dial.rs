//! What a click-to-call asks FreeSWITCH for: the typed `originate` of the
//! caller's leg with `&bridge(<callee's leg>)`, and the channel variables
//! that turn each create field into what the INVITEs carry.
//!
//! This file owns the mapping field → channel variable (documented in the
//! README, tested against the simulator) and the expansion of the tenant's
//! dial-string template. Everything is built from the ESL layer's validated
//! pieces, so no text is formatted by hand here; it must not validate limits
//! (that is [`super::validate`]) nor send anything.
//!
//! | field | channel variables, per leg |
//! | --- | --- |
//! | (always) | `origination_uuid`, `fsgate_tenant`, `origination_caller_id_number` (the caller's leg presents `callee`, the callee's leg `caller`) |
//! | `caller_display_name` | `origination_caller_id_name` (the From display name of both INVITEs) and `fsgate_display_name` |
//! | `trunk` | replaces `${trunk}` in the tenant's `dial_string` for both legs |
//! | `rewrite_from` | `origination_caller_id_number` on both legs: the From user, through a gateway with `caller-id-in-from=true` (as the shipped `carrier` gateway is) |
//! | `rewrite_pai` | `sip_cid_type=none` and `sip_h_P-Asserted-Identity=<tel:…>` on both legs |
//! | `rewrite_rpi` | `sip_cid_type=none` and `sip_h_Remote-Party-ID=<tel:…>;party=calling;screen=yes;privacy=off` on both legs |
//! | `user_data` | `fsgate_user_data` on both legs (and the call binding) |
//! | `target`, `target_instance_id`, `target_extension_number` | `fsgate_target`, `fsgate_target_instance_id`, `fsgate_target_extension_number` on both legs |
//! | `additional_header` | `sip_h_Answer-Mode=Auto`, `sip_auto_answer=true` (Call-Info), or `alert_info=…`, on the legs `header_direction` names |
//!
//! The caller's leg also gets `sip_copy_custom_headers=false`, so that its
//! `sip_h_*` headers are not copied to the callee's INVITE when it bridges,
//! and the originate gets `ignore_early_media=true`, so that the callee is
//! rung only once the caller really answered (not on a 183 with media).

use uuid::Uuid;

use crate::config::TenantConfig;
use crate::esl::api::{ApiCommand, Originate, OriginateTarget};
use crate::esl::dialstring::{CommandError, DialString, Endpoint, Leg, VarName, VarValue};
use crate::pipeline::calltable::vars;

use super::model::AdditionalHeader;
use super::validate::ValidCall;

/// Leg variables for the target fields.
pub mod target_vars {
    /// `target`.
    pub const TARGET: &str = "fsgate_target";
    /// `target_instance_id`.
    pub const INSTANCE_ID: &str = "fsgate_target_instance_id";
    /// `target_extension_number`.
    pub const EXTENSION_NUMBER: &str = "fsgate_target_extension_number";
}

/// Why the originate could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// A request value cannot go into a dial string (`field` names it).
    #[error(transparent)]
    Field(#[from] CommandError),
    /// The tenant's `dial_string` template is unusable (a configuration error).
    #[error("tenant {tenant:?}: dial_string template {template:?}: {problem}")]
    Template {
        /// Tenant id.
        tenant: String,
        /// The template.
        template: String,
        /// What is wrong.
        problem: String,
    },
}

/// The two UUIDs of a click-to-call, chosen before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Legs {
    /// The caller's leg: the call session's id.
    pub caller: Uuid,
    /// The callee's leg, dialled once the caller answered.
    pub callee: Uuid,
}

impl Legs {
    /// Two fresh random UUIDs.
    pub fn random() -> Legs {
        Legs {
            caller: Uuid::new_v4(),
            callee: Uuid::new_v4(),
        }
    }
}

/// The trunk a call uses: the request's, else the tenant's default.
pub fn trunk_of<'a>(call: &'a ValidCall, tenant: &'a TenantConfig) -> &'a str {
    call.trunk.as_deref().unwrap_or(&tenant.trunk)
}

/// The tenant's template with `${trunk}` and `${number}` replaced, as an
/// endpoint; a bad number is reported as `field`.
fn endpoint(
    tenant: &TenantConfig,
    trunk: &str,
    field: &'static str,
    number: &str,
) -> Result<Endpoint, DialError> {
    let text = crate::tenants::expand_dial_string(&tenant.dial_string, trunk, number);
    if text.contains("${") {
        return Err(DialError::Template {
            tenant: tenant.id.clone(),
            template: tenant.dial_string.clone(),
            problem: "only ${trunk} and ${number} can be replaced".into(),
        });
    }
    Endpoint::for_field(field, &text).map_err(|e| match e {
        // The number was checked; anything else wrong comes from the template.
        CommandError::Invalid { .. } => DialError::Template {
            tenant: tenant.id.clone(),
            template: tenant.dial_string.clone(),
            problem: e.to_string(),
        },
        e => DialError::Field(e),
    })
}

struct LegVars(Vec<(VarName, VarValue)>);

impl LegVars {
    fn put(
        &mut self,
        name: &'static str,
        field: &'static str,
        value: &str,
    ) -> Result<(), DialError> {
        let name = VarName::new(name)?;
        self.0.push((name, VarValue::for_field(field, value)?));
        Ok(())
    }

    fn put_value(&mut self, name: &'static str, value: VarValue) -> Result<(), DialError> {
        self.0.push((VarName::new(name)?, value));
        Ok(())
    }

    fn leg(self, endpoint: Endpoint) -> Leg {
        self.0
            .into_iter()
            .fold(Leg::new(endpoint), |leg, (n, v)| leg.var(n, v))
    }
}

/// The variables both legs share, for the leg `uuid` presenting `number`
/// (given by request field `number_field`).
fn common_vars(
    call: &ValidCall,
    tenant: &TenantConfig,
    uuid: Uuid,
    number_field: &'static str,
    number: &str,
) -> Result<LegVars, DialError> {
    let mut v = LegVars(Vec::new());
    v.put("origination_uuid", "origination_uuid", &uuid.to_string())?;
    v.put(vars::TENANT, "tenant", &tenant.id)?;
    match &call.rewrite_from {
        Some(from) => v.put("origination_caller_id_number", "rewrite_from", from)?,
        None => v.put("origination_caller_id_number", number_field, number)?,
    }
    if let Some(name) = &call.caller_display_name {
        v.put("origination_caller_id_name", "caller_display_name", name)?;
        v.put(vars::DISPLAY_NAME, "caller_display_name", name)?;
    }
    if call.rewrite_pai.is_some() || call.rewrite_rpi.is_some() {
        v.put("sip_cid_type", "rewrite_pai", "none")?;
    }
    if let Some(pai) = &call.rewrite_pai {
        let value = VarValue::angle_uri("rewrite_pai", &format!("tel:{pai}"), "")?;
        v.put_value("sip_h_P-Asserted-Identity", value)?;
    }
    if let Some(rpi) = &call.rewrite_rpi {
        let params = ";party=calling;screen=yes;privacy=off";
        let value = VarValue::angle_uri("rewrite_rpi", &format!("tel:{rpi}"), params)?;
        v.put_value("sip_h_Remote-Party-ID", value)?;
    }
    if let Some(data) = &call.user_data {
        v.put(vars::USER_DATA, "user_data", data)?;
    }
    let targets = [
        (target_vars::TARGET, "target", &call.target),
        (
            target_vars::INSTANCE_ID,
            "target_instance_id",
            &call.target_instance_id,
        ),
        (
            target_vars::EXTENSION_NUMBER,
            "target_extension_number",
            &call.target_extension_number,
        ),
    ];
    for (name, field, value) in targets {
        if let Some(value) = value {
            v.put(name, field, value)?;
        }
    }
    Ok(v)
}

/// The channel variable and value that ask FreeSWITCH for `header`.
///
/// Alert-Info carries a URI (RFC 3261 §20.4: `<absoluteURI> *(;param)`):
/// mod_sofia parses the header and, given a bare `info=alert-autoanswer;delay=0`,
/// sends `<info=alert-autoanswer>;delay=0` (seen on FreeSWITCH 1.11). So
/// the `info` value goes as a parameter of a placeholder URI, the form
/// auto-answering phones expect; `Auto Answer`, which has a space, as a
/// quoted-string (bare, mod_sofia drops the whole header).
pub fn header_var(header: AdditionalHeader) -> Result<(&'static str, VarValue), DialError> {
    const FIELD: &str = "additional_header";
    let alert = |info: &str| VarValue::angle_uri(FIELD, ALERT_INFO_URI, info);
    Ok(match header {
        AdditionalHeader::AnswerMode => ("sip_h_Answer-Mode", VarValue::for_field(FIELD, "Auto")?),
        AdditionalHeader::CallInfo => ("sip_auto_answer", VarValue::for_field(FIELD, "true")?),
        AdditionalHeader::AlertInfoAutoAnswerDelay0 => {
            ("alert_info", alert(";info=alert-autoanswer;delay=0")?)
        }
        AdditionalHeader::AlertInfoAutoAnswer => (
            "alert_info",
            VarValue::angle_uri_quoted_param(FIELD, ALERT_INFO_URI, "info", "Auto Answer")?,
        ),
        AdditionalHeader::AlertInfoIntercom => ("alert_info", alert(";info=intercom")?),
    })
}

/// The placeholder URI of the Alert-Info headers (nothing is fetched from it).
const ALERT_INFO_URI: &str = "http://localhost";

/// The `originate` of a click-to-call: the caller's leg, then
/// `&bridge(<callee's leg>)`.
pub fn originate(
    call: &ValidCall,
    tenant: &TenantConfig,
    legs: Legs,
) -> Result<Originate, DialError> {
    let trunk = trunk_of(call, tenant);
    let mut a = common_vars(call, tenant, legs.caller, "callee", &call.callee)?;
    let mut b = common_vars(call, tenant, legs.callee, "caller", &call.caller)?;
    a.put(
        "sip_copy_custom_headers",
        "sip_copy_custom_headers",
        "false",
    )?;
    if let Some((header, direction)) = call.additional_header {
        let (name, value) = header_var(header)?;
        if direction.caller() {
            a.put_value(name, value.clone())?;
        }
        if direction.callee() {
            b.put_value(name, value)?;
        }
    }
    let a_leg = a.leg(endpoint(tenant, trunk, "caller", &call.caller)?);
    let b_leg = b.leg(endpoint(tenant, trunk, "callee", &call.callee)?);
    let caller_dial = DialString::builder()
        .var(VarName::new("ignore_early_media")?, VarValue::new("true")?)
        .leg(a_leg)
        .build()?;
    let callee_dial = DialString::builder().leg(b_leg).build()?;
    let o = Originate::new(caller_dial, OriginateTarget::Bridge(callee_dial));
    // The command must build now, so that nothing is recorded for a call
    // that could never be sent.
    ApiCommand::originate(&o).map_err(|e| DialError::Template {
        tenant: tenant.id.clone(),
        template: tenant.dial_string.clone(),
        problem: e.to_string(),
    })?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::model::{CreateCallRequest, HeaderDirection};
    use crate::calls::validate::validate;

    fn tenant() -> TenantConfig {
        serde_json::from_value(serde_json::json!({"id": "acme"})).unwrap()
    }

    fn legs() -> Legs {
        Legs {
            caller: "8438156f-f28b-45f8-9eff-0b7839c69aab".parse().unwrap(),
            callee: "0a1b2c3d-0000-4000-8000-000000000001".parse().unwrap(),
        }
    }

    fn line(req: CreateCallRequest) -> String {
        let call = validate(&req).unwrap();
        let o = originate(&call, &tenant(), legs()).unwrap();
        ApiCommand::originate(&o).unwrap().args().to_owned()
    }

    fn base() -> CreateCallRequest {
        CreateCallRequest {
            caller: "+15557770001".into(),
            callee: "+15557770002".into(),
            send_sdp: true,
            ..CreateCallRequest::default()
        }
    }

    #[test]
    fn minimal_click_to_call() {
        assert_eq!(
            line(base()),
            "{ignore_early_media=true}[origination_uuid=8438156f-f28b-45f8-9eff-0b7839c69aab,fsgate_tenant=acme,\
             origination_caller_id_number=+15557770002,sip_copy_custom_headers=false]sofia/gateway/carrier/+15557770001 \
             &bridge([origination_uuid=0a1b2c3d-0000-4000-8000-000000000001,fsgate_tenant=acme,\
             origination_caller_id_number=+15557770001]sofia/gateway/carrier/+15557770002)"
        );
    }

    #[test]
    fn every_field_reaches_its_variable_and_spaces_are_quoted() {
        let mut r = base();
        r.caller_display_name = Some("Acme Support".into());
        r.trunk = Some("backup".into());
        r.rewrite_from = Some("+15550000001".into());
        r.rewrite_pai = Some("+15550000002".into());
        r.rewrite_rpi = Some("15550000003".into());
        r.user_data = Some("order=42".into());
        r.target = Some("sip:agent@example.com".into());
        r.target_instance_id = Some("i-1".into());
        r.target_extension_number = Some("1001".into());
        r.additional_header = Some(AdditionalHeader::AlertInfoAutoAnswer);
        r.header_direction = Some(HeaderDirection::Callee);
        let text = line(r);
        assert!(text.starts_with("'{ignore_early_media=true}["), "{text}");
        assert!(text.contains(" '&bridge(["), "{text}");
        for needle in [
            "origination_caller_id_name=Acme Support",
            "fsgate_display_name=Acme Support",
            "sofia/gateway/backup/+1555777000",
            "origination_caller_id_number=+15550000001",
            "sip_cid_type=none",
            "sip_h_P-Asserted-Identity=<tel:+15550000002>",
            "sip_h_Remote-Party-ID=<tel:15550000003>;party=calling;screen=yes;privacy=off",
            "fsgate_user_data=order=42",
            "fsgate_target=sip:agent@example.com",
            "fsgate_target_instance_id=i-1",
            "fsgate_target_extension_number=1001",
        ] {
            assert_eq!(
                text.matches(needle).count(),
                2,
                "{needle} on both legs: {text}"
            );
        }
        assert_eq!(
            text.matches("alert_info=<http://localhost>;info=\"Auto Answer\"")
                .count(),
            1
        );
        let bridge = &text[text.find("&bridge(").unwrap()..];
        assert!(bridge.contains("alert_info"), "{bridge}");
    }

    #[test]
    fn header_direction_picks_the_legs() {
        for (direction, on_a, on_b) in [
            (HeaderDirection::Caller, true, false),
            (HeaderDirection::Callee, false, true),
            (HeaderDirection::All, true, true),
        ] {
            let mut r = base();
            r.additional_header = Some(AdditionalHeader::AnswerMode);
            r.header_direction = Some(direction);
            let text = line(r);
            let (a, b) = text.split_at(text.find("&bridge(").unwrap());
            assert_eq!(a.contains("sip_h_Answer-Mode=Auto"), on_a, "{direction:?}");
            assert_eq!(b.contains("sip_h_Answer-Mode=Auto"), on_b, "{direction:?}");
        }
    }

    #[test]
    fn the_layer_below_still_names_the_field() {
        let mut r = base();
        r.user_data = Some("a:_:b".into());
        let call = validate(&r).unwrap();
        assert!(matches!(
            originate(&call, &tenant(), legs()),
            Err(DialError::Field(CommandError::ForbiddenSequence {
                field: "user_data",
                ..
            }))
        ));
    }

    #[test]
    fn template_problems_are_configuration_errors() {
        let call = validate(&base()).unwrap();
        let mut t = tenant();
        t.dial_string = "sofia/gateway/${gateway}/${number}".into();
        assert!(matches!(
            originate(&call, &t, legs()),
            Err(DialError::Template { .. })
        ));
        t.dial_string = "error/GATEWAY_DOWN".into();
        assert!(originate(&call, &t, legs()).is_ok());
    }
}
