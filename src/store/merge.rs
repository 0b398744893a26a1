//! The call table's merge rule, in Rust: the reference the memory store uses
//! and the Redis script (`redis/put_call.lua`) mirrors field by field.
//!
//! Owns only the rule; it must not touch indexes or expiry. A call never
//! moves backwards: the state is the greater one; identity, the parties
//! (caller, callee, display name), timestamps and ending details, once set,
//! are kept; other fields take a new value when one is given and are never
//! erased by `None`.
//!
//! The parties are kept because the first writer knows them best: the
//! daemon records a click-to-call's caller and callee before it dials, while
//! FreeSWITCH's caller profile on that leg says who is presented and who is
//! dialled, and a transfer rewrites the destination.

use super::model::{CallBinding, CallRecord, CallState};

/// Merges a write into the stored record.
pub(crate) fn merge_call(stored: CallRecord, new: CallRecord) -> CallRecord {
    let reconciled = if stored.state == CallState::Ended {
        stored.reconciled
    } else {
        new.reconciled
    };
    let mut extra = stored.extra;
    extra.extend(new.extra);
    CallRecord {
        uuid: stored.uuid,
        tenant: stored.tenant.or(new.tenant),
        node: if stored.node.is_empty() {
            new.node
        } else {
            stored.node
        },
        direction: stored.direction,
        state: stored.state.max(new.state),
        caller: stored.caller.or(new.caller),
        caller_display_name: stored.caller_display_name.or(new.caller_display_name),
        callee: stored.callee.or(new.callee),
        other_leg: new.other_leg.or(stored.other_leg),
        created_at: stored.created_at,
        answered_at: stored.answered_at.or(new.answered_at),
        ended_at: stored.ended_at.or(new.ended_at),
        hangup_cause: stored.hangup_cause.or(new.hangup_cause),
        q850: stored.q850.or(new.q850),
        sip_code: stored.sip_code.or(new.sip_code),
        duration_s: stored.duration_s.or(new.duration_s),
        billsec: stored.billsec.or(new.billsec),
        user_data: new.user_data.or(stored.user_data),
        session_ref: new.session_ref.or(stored.session_ref),
        reconciled,
        extra,
    }
}

/// Fills what the record does not know from the call's binding.
pub(crate) fn apply_binding(mut call: CallRecord, binding: &CallBinding) -> CallRecord {
    if call.tenant.is_none() {
        call.tenant = Some(binding.tenant.clone());
    }
    if call.session_ref.is_none() {
        call.session_ref.clone_from(&binding.session_ref);
    }
    if call.user_data.is_none() {
        call.user_data.clone_from(&binding.user_data);
    }
    call
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::CallDirection;

    fn call(caller: &str, callee: &str, state: CallState) -> CallRecord {
        CallRecord {
            uuid: "u1".into(),
            tenant: Some("acme".into()),
            node: "fs1".into(),
            direction: CallDirection::Outbound,
            state,
            caller: Some(caller.into()),
            caller_display_name: None,
            callee: Some(callee.into()),
            other_leg: None,
            created_at: chrono::Utc::now(),
            answered_at: None,
            ended_at: None,
            hangup_cause: None,
            q850: None,
            sip_code: None,
            duration_s: None,
            billsec: None,
            user_data: None,
            session_ref: None,
            reconciled: false,
            extra: Default::default(),
        }
    }

    #[test]
    fn the_first_recorded_parties_win_and_the_state_only_moves_forward() {
        let recorded = call("+15557770001", "+15557770002", CallState::Ringing);
        // The originated leg's events: caller ID shown = callee, destination = caller.
        let event = call("+15557770002", "+15557770001", CallState::Answered);
        let merged = merge_call(recorded, event);
        assert_eq!(merged.caller.as_deref(), Some("+15557770001"));
        assert_eq!(merged.callee.as_deref(), Some("+15557770002"));
        assert_eq!(merged.state, CallState::Answered);
        let late = merge_call(merged, call("x", "y", CallState::Ringing));
        assert_eq!(late.state, CallState::Answered);
    }
}
