//! The call table's merge rule, in Rust: the reference the memory store uses
//! and the Redis script (`redis/put_call.lua`) mirrors field by field.
//!
//! Owns only the rule; it must not touch indexes or expiry. A call never
//! moves backwards: the state is the greater one; identity, timestamps and
//! ending details, once set, are kept; other fields take a new value when one
//! is given and are never erased by `None`.

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
        caller: new.caller.or(stored.caller),
        caller_display_name: new.caller_display_name.or(stored.caller_display_name),
        callee: new.callee.or(stored.callee),
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
