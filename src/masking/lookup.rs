//! The dialplan's route lookup: FreeSWITCH (mod_curl, from
//! `dialplan/public/00_fsgate.xml`) asks where a call to a masked number
//! goes, and fsgate answers with one of the protocol's outcomes
//! ([`RouteAnswer`]): bridge to a dial string (200), park a call-control call
//! (204), or refuse with a Q.850 cause (404).
//!
//! This file owns who may reach whom through a masked number: only a party
//! of the live session holding that number, reaching the other party; a
//! number with no live session is `UNALLOCATED_NUMBER`, any other caller is
//! `CALL_REJECTED`. A bridged call's a-leg UUID is tied to the session (the
//! call binding and `session_call_started`) before the answer leaves, so its
//! events name the session. It must not format the response (the route
//! handler does) nor build dial-string text by hand (`dial` does).

use uuid::Uuid;

use super::dial;
use super::error::MaskingError;
use super::model::Party;
use super::service::{is_live, Masking};
use crate::esl::HangupCause;
use crate::store::CallBinding;
use crate::tenants::normalize_number;

/// What the dialplan does with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAnswer {
    /// 200: `bridge` to this dial string (never contains `${`).
    Bridge(String),
    /// 204: a tenant's call-control number: `park`.
    Park,
    /// 404: `hangup` with this cause.
    Refuse(HangupCause),
}

/// Digits of a dialled or calling number as the dialplan sends them (with
/// or without `+`): 7 to 15 digits, not starting with 0.
fn number_digits(field: &'static str, text: &str) -> Result<String, MaskingError> {
    let d = normalize_number(text);
    if (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0') {
        Ok(d)
    } else {
        Err(MaskingError::invalid(
            field,
            "must be a number of 7 to 15 digits, with or without '+'",
        ))
    }
}

/// The caller as the dialplan sends it: `anonymous`, or up to 64 of
/// `[0-9A-Za-z_.+-]` (the dialplan's own filter).
fn caller_id(text: &str) -> Result<String, MaskingError> {
    let ok = (1..=65).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
    if ok {
        Ok(normalize_number(text))
    } else {
        Err(MaskingError::invalid(
            "caller",
            "must be a caller ID of up to 64 letters, digits, '_', '.', '-' (or 'anonymous')",
        ))
    }
}

impl Masking {
    /// Answers `GET /v1/dialplan/route?masked=…&caller=…&uuid=…`.
    pub async fn route(
        &self,
        masked: &str,
        caller: &str,
        uuid: &str,
    ) -> Result<RouteAnswer, MaskingError> {
        let digits = number_digits("masked", masked)?;
        let caller = caller_id(caller)?;
        let uuid = Uuid::parse_str(uuid)
            .map_err(|_| MaskingError::invalid("uuid", "must be the call's UUID"))?
            .to_string();
        if self.tenants.by_control_number(&digits).is_some() {
            return Ok(RouteAnswer::Park);
        }
        let Some(tenant) = self.tenants.by_masked_number(&digits) else {
            return Ok(RouteAnswer::Refuse(HangupCause::UNALLOCATED_NUMBER));
        };
        // Configured numbers are E.164 with '+', and the pool holds them so.
        let number = format!("+{digits}");
        let session = match self.store.session_by_number(tenant.id(), &number).await? {
            Some(s) if is_live(&s, self.clock.now()) => s,
            _ => return Ok(RouteAnswer::Refuse(HangupCause::UNALLOCATED_NUMBER)),
        };
        let to = if caller == normalize_number(&session.party_a) {
            Party::B
        } else if caller == normalize_number(&session.party_b) {
            Party::A
        } else {
            return Ok(RouteAnswer::Refuse(HangupCause::CALL_REJECTED));
        };
        let body = dial::bridge_to(tenant, &session, to.number_in(&session))?.to_string();
        if body.contains("${") {
            // Unreachable by construction (no validated piece holds '$');
            // mod_curl would drop such a body, so never send one.
            return Err(MaskingError::DialString(
                crate::esl::dialstring::CommandError::ForbiddenSequence {
                    field: "dial_string",
                    sequence: "${",
                },
            ));
        }
        let binding = CallBinding {
            tenant: tenant.id().to_owned(),
            session_ref: Some(session.session_ref.clone()),
            user_data: None,
        };
        let (bound, started) = tokio::join!(
            self.store
                .put_call_binding(&uuid, binding, self.options.binding_ttl),
            self.call_started(tenant.id(), &session.session_ref, &uuid),
        );
        bound?;
        if started?.is_none() {
            // Completed between the read and the tie: the number is free.
            return Ok(RouteAnswer::Refuse(HangupCause::UNALLOCATED_NUMBER));
        }
        metrics::counter!("fsgate_route_lookups_total", "result" => "bridge").increment(1);
        Ok(RouteAnswer::Bridge(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::service::tests::{create_req, fixture, fixture_with, tenant};
    use crate::store::SessionState;

    const U1: &str = "0a1b2c3d-0000-4000-8000-000000000001";
    const U2: &str = "0a1b2c3d-0000-4000-8000-000000000002";

    fn bridged(a: &RouteAnswer) -> &str {
        match a {
            RouteAnswer::Bridge(d) => d,
            other => panic!("expected a bridge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn parties_reach_each_other_and_nobody_else_does() {
        let f = fixture().await;
        let s = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        let m = s.masked_number.trim_start_matches('+').to_owned();

        let a = f.masking.route(&m, "15557770001", U1).await.unwrap();
        let d = bridged(&a);
        assert!(d.ends_with("sofia/gateway/carrier/+15557770002"), "{d}");
        assert!(d.contains(&format!("origination_caller_id_number={}", s.masked_number)));
        assert!(d.contains(&format!("fsgate_session={}", s.session_ref)));
        assert!(!d.contains("${") && !d.contains("+15557770001"));

        let b = f
            .masking
            .route(&s.masked_number, "+15557770002", U2)
            .await
            .unwrap();
        assert!(bridged(&b).ends_with("/+15557770001"));

        for stranger in ["15557779999", "anonymous", "Bob"] {
            assert_eq!(
                f.masking.route(&m, stranger, U1).await.unwrap(),
                RouteAnswer::Refuse(HangupCause::CALL_REJECTED)
            );
        }
        // Tied: the session is active with both a-legs, bindings name it.
        let now = f.masking.get("acme", &s.session_ref).await.unwrap();
        assert_eq!(now.state, SessionState::Active);
        assert_eq!(now.active_calls, [U1, U2]);
        let binding = f.store.get_call_binding(U1).await.unwrap().unwrap();
        assert_eq!(binding.session_ref.as_deref(), Some(s.session_ref.as_str()));
        assert_eq!(binding.tenant, "acme");
    }

    #[tokio::test]
    async fn unallocated_control_and_completed_numbers() {
        let f = fixture_with(vec![tenant("acme", &["+15550100001"])]).await;
        // In the pool but no session; not in any pool.
        for n in ["15550100001", "15559999999"] {
            assert_eq!(
                f.masking.route(n, "15557770001", U1).await.unwrap(),
                RouteAnswer::Refuse(HangupCause::UNALLOCATED_NUMBER)
            );
        }
        assert_eq!(
            f.masking
                .route("+15550109000", "15557770001", U1)
                .await
                .unwrap(),
            RouteAnswer::Park
        );
        let s = f
            .masking
            .create("acme", create_req("+15557770001", "+15557770002"))
            .await
            .unwrap();
        f.masking.complete("acme", &s.session_ref).await.unwrap();
        for caller in ["15557770001", "15557770002"] {
            assert_eq!(
                f.masking.route(&s.masked_number, caller, U1).await.unwrap(),
                RouteAnswer::Refuse(HangupCause::UNALLOCATED_NUMBER)
            );
        }
        // The number's next session routes to its own pairing only.
        let n = f
            .masking
            .create("acme", create_req("+15557770003", "+15557770004"))
            .await
            .unwrap();
        assert_eq!(n.masked_number, s.masked_number);
        assert_eq!(
            f.masking
                .route(&s.masked_number, "15557770001", U1)
                .await
                .unwrap(),
            RouteAnswer::Refuse(HangupCause::CALL_REJECTED)
        );
        let d = f
            .masking
            .route(&s.masked_number, "15557770003", U1)
            .await
            .unwrap();
        assert!(bridged(&d).ends_with("/+15557770004"));
        assert!(bridged(&d).contains(&n.session_ref));
    }

    #[tokio::test]
    async fn an_expired_session_does_not_route_even_before_the_sweep() {
        let f = fixture().await;
        let mut r = create_req("+15557770001", "+15557770002");
        r.ttl_minutes = Some(1);
        let s = f.masking.create("acme", r).await.unwrap();
        f.clock.advance(chrono::Duration::seconds(60));
        assert_eq!(
            f.masking
                .route(&s.masked_number, "15557770001", U1)
                .await
                .unwrap(),
            RouteAnswer::Refuse(HangupCause::UNALLOCATED_NUMBER)
        );
    }

    #[tokio::test]
    async fn malformed_queries_are_refused_before_any_lookup() {
        let f = fixture().await;
        let cases = [
            ("1555", "15557770001", U1, "masked"),
            ("1555010000${x}", "15557770001", U1, "masked"),
            ("15550100001", "1555 777", U1, "caller"),
            ("15550100001", "a${b}", U1, "caller"),
            ("15550100001", "", U1, "caller"),
            ("15550100001", "15557770001", "not-a-uuid", "uuid"),
            ("15550100001", "15557770001", "", "uuid"),
        ];
        for (m, c, u, field) in cases {
            let e = f.masking.route(m, c, u).await.unwrap_err();
            assert_eq!((e.status(), e.field()), (400, Some(field)), "{m} {c} {u}");
        }
    }
}
