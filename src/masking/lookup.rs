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
//! call binding and `session_call_started`, one store step) before the
//! answer leaves, so its events name the session. With a snapshot of the
//! number's session (`snapshots.rs`) that step is the lookup's only store
//! round trip; without one, or when the snapshot is stale, the holder is
//! read first. It must not format the response (the route handler does)
//! nor build dial-string text by hand (`dial` does).

use uuid::Uuid;

use super::dial;
use super::error::MaskingError;
use super::model::Party;
use super::service::{is_live, Masking};
use crate::esl::HangupCause;
use crate::store::SessionRecord;
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
        let now = self.clock.now();
        let mut snapshot = self.snapshots.get(tenant.id(), &number, now);
        let hit = if snapshot.is_some() { "hit" } else { "miss" };
        metrics::counter!("fsgate_route_snapshots_total", "result" => hit).increment(1);
        // At most two passes: a snapshot (one round trip: the tie), then,
        // when the snapshot turns out stale, the holder read afresh.
        loop {
            let fresh = snapshot.is_none();
            let session = match snapshot.take() {
                Some(s) => s,
                None => match self.store.session_by_number(tenant.id(), &number).await? {
                    Some(s) if is_live(&s, now) => self.snapshots.put(&s, now),
                    _ => {
                        self.snapshots.forget(tenant.id(), &number);
                        return Ok(RouteAnswer::Refuse(HangupCause::UNALLOCATED_NUMBER));
                    }
                },
            };
            let Some(to) = called_party(&session, &caller) else {
                if fresh {
                    return Ok(RouteAnswer::Refuse(HangupCause::CALL_REJECTED));
                }
                continue; // perhaps the number's next session: read it
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
            if self
                .call_started(tenant.id(), &session, &uuid)
                .await?
                .is_some()
            {
                metrics::counter!("fsgate_route_lookups_total", "result" => "bridge").increment(1);
                return Ok(RouteAnswer::Bridge(body));
            }
            // Completed since it was read: the number is free, or held anew.
            self.snapshots.forget(tenant.id(), &number);
            if fresh {
                return Ok(RouteAnswer::Refuse(HangupCause::UNALLOCATED_NUMBER));
            }
            metrics::counter!("fsgate_route_snapshots_total", "result" => "stale").increment(1);
        }
    }
}

/// The party `caller` reaches through the session: the other one; `None`
/// for anyone else.
fn called_party(session: &SessionRecord, caller: &str) -> Option<Party> {
    if caller == normalize_number(&session.party_a) {
        Some(Party::B)
    } else if caller == normalize_number(&session.party_b) {
        Some(Party::A)
    } else {
        None
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
