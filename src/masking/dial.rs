//! How fsgate reaches a party of a session and what that party sees: the
//! endpoint from the tenant's `dial_string` template, and the leg variables
//! that present the masked number (never a real one) and tag the leg with
//! its tenant and session.
//!
//! Which variable does what (docs/esl-protocol.md §8, mod_sofia's INVITE):
//!
//! | variable | effect on the INVITE to the party |
//! | --- | --- |
//! | `origination_caller_id_number` | the caller-ID number: the From user part (gateways with `caller-id-in-from=true`, as `freeswitch-conf` ships them) and the number in P-Asserted-Identity |
//! | `origination_caller_id_name` | the caller-ID name: From display name and PAI display name |
//! | `sip_from_display` | the From display name, explicitly (wins over the name) |
//! | `sip_cid_type=pid` | a `P-Asserted-Identity` header (with the masked number) and no `Remote-Party-ID`; set per leg because a gateway leg does not inherit it from the A-leg |
//! | `exclude_outgoing_extra_header=.*` | drops every `sip_h_*` header this leg would send, including the X-/P-/Diversion headers FreeSWITCH copies from an inbound caller's INVITE (§8.1), which could carry the caller's real number |
//! | `fsgate_tenant`, `fsgate_session` | tag the leg, so its events name tenant and session (`pipeline::calltable::vars`) |
//!
//! This file owns those choices and builds them with the typed
//! [`crate::esl::dialstring`] pieces, so nothing here formats ESL text by
//! hand; a value that could not go on the wire fails to build. It must not
//! read the store or decide who may call whom (that is `lookup` and
//! `originate`).

use crate::esl::dialstring::{CommandError, DialString, Endpoint, Leg, VarName, VarValue};
use crate::pipeline::calltable::vars;
use crate::store::SessionRecord;
use crate::tenants::TenantSettings;

/// The endpoint of `number` through the tenant's trunk: the `dial_string`
/// template with `${trunk}` and `${number}` replaced, checked as an
/// [`Endpoint`] (so no `${` or other dial-string syntax can survive).
pub fn endpoint(tenant: &TenantSettings, number: &str) -> Result<Endpoint, CommandError> {
    Endpoint::for_field("dial_string", &tenant.dial_string_for(None, number))
}

fn var(name: &'static str, value: &str) -> Result<(VarName, VarValue), CommandError> {
    Ok((VarName::new(name)?, VarValue::for_field(name, value)?))
}

/// The variables of a leg that rings a party of `session`: the masked number
/// as every identity the party sees, the tags, and `extra` on top.
pub fn masked_leg_vars(
    session: &SessionRecord,
    extra: &[(&'static str, &str)],
) -> Result<Vec<(VarName, VarValue)>, CommandError> {
    let m = session.masked_number.as_str();
    let mut out = vec![
        var("origination_caller_id_number", m)?,
        var("origination_caller_id_name", m)?,
        var("sip_from_display", m)?,
        var("sip_cid_type", "pid")?,
        var("exclude_outgoing_extra_header", ".*")?,
        var(vars::TENANT, &session.tenant)?,
        var(vars::SESSION, &session.session_ref)?,
    ];
    for (name, value) in extra {
        out.push(var(name, value)?);
    }
    Ok(out)
}

/// `[vars]endpoint` for ringing `number`, as the dialplan's `bridge` takes it.
pub fn bridge_to(
    tenant: &TenantSettings,
    session: &SessionRecord,
    number: &str,
) -> Result<DialString, CommandError> {
    let leg = masked_leg_vars(session, &[])?
        .into_iter()
        .fold(Leg::new(endpoint(tenant, number)?), |leg, (n, v)| {
            leg.var(n, v)
        });
    DialString::builder().leg(leg).build()
}

/// `{vars}endpoint` for an originated leg to `number` (globals, so that
/// `origination_uuid` and friends apply to the leg FreeSWITCH creates).
pub fn originate_to(
    tenant: &TenantSettings,
    session: &SessionRecord,
    number: &str,
    extra: &[(&'static str, &str)],
) -> Result<DialString, CommandError> {
    masked_leg_vars(session, extra)?
        .into_iter()
        .fold(DialString::builder(), |b, (n, v)| b.var(n, v))
        .leg(Leg::new(endpoint(tenant, number)?))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::service::tests::{start, tenant};
    use crate::store::SessionState;
    use crate::tenants::Tenants;

    fn session() -> SessionRecord {
        SessionRecord {
            tenant: "acme".into(),
            session_ref: "ses_abc".into(),
            state: SessionState::Open,
            masked_number: "+15550100001".into(),
            party_a: "+15557770001".into(),
            party_b: "+15557770002".into(),
            ttl_minutes: 60,
            created_at: start(),
            expires_at: start(),
            completed_at: None,
            completion_reason: None,
            metadata: None,
            active_calls: vec![],
        }
    }

    #[test]
    fn bridge_dial_string_presents_only_the_masked_number() {
        let t = Tenants::new([tenant("acme", &["+15550100001"])]);
        let t = t.by_id("acme").unwrap();
        let d = bridge_to(t, &session(), "+15557770002")
            .unwrap()
            .to_string();
        assert_eq!(
            d,
            "[origination_caller_id_number=+15550100001,origination_caller_id_name=+15550100001,\
             sip_from_display=+15550100001,sip_cid_type=pid,exclude_outgoing_extra_header=.*,\
             fsgate_tenant=acme,fsgate_session=ses_abc]sofia/gateway/carrier/+15557770002"
        );
        assert!(!d.contains("${"));
        assert!(!d.contains("+15557770001"), "the caller's real number");
    }

    #[test]
    fn templates_are_checked() {
        let mut c = tenant("acme", &["+15550100001"]);
        c.dial_string = "sofia/external/${number}@10.0.0.1:5060".into();
        let t = Tenants::new([c.clone()]);
        let e = endpoint(t.by_id("acme").unwrap(), "+15557770002").unwrap();
        assert_eq!(e.as_str(), "sofia/external/+15557770002@10.0.0.1:5060");
        c.dial_string = "sofia/gateway/${trunk}/${number}${x}".into();
        let t = Tenants::new([c.clone()]);
        assert!(endpoint(t.by_id("acme").unwrap(), "+15557770002").is_err());
        c.dial_string = "sofia/gateway/${trunk}/${number}".into();
        c.trunk = "a,b".into();
        let t = Tenants::new([c]);
        assert!(bridge_to(t.by_id("acme").unwrap(), &session(), "+15557770002").is_err());
    }
}
