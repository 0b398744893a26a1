//! Reconciling the call table with a node after a gap.
//!
//! Events that happen while a connection is down are gone (FreeSWITCH does not
//! replay them), and a consumer that fell behind may have dropped some. After
//! either, the pipeline compares the node's live calls in the table with the
//! channels the node reports (`show channels as json`). A call the table still
//! has but the node does not is confirmed gone with `uuid_exists` (the `show`
//! output lags events a little) and then ended with a synthetic hangup marked
//! `reconciled`, which flows through the same handlers as a real one, so its
//! session returns to open and its `call.hangup` webhook is sent. A channel the
//! node has but the table does not is adopted. Across daemon instances each
//! synthetic hangup is claimed once, like a real event.

use std::collections::HashSet;

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::{CallEvent, CallEventKind, Deps};
use crate::store::{CallDirection, CallRecord, CallState, StoreError};
use crate::switch::{ChannelRow, SwitchError};

/// What reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Calls ended because the node no longer has them.
    pub ended: usize,
    /// Channels taken into the table.
    pub adopted: usize,
    /// Calls missing from the node but too young to judge (see [`GRACE`]):
    /// the node must be reconciled again after the grace period.
    pub deferred: usize,
}

/// A call the daemon recorded moments ago may not exist on the switch yet
/// (click-to-call and masked originates write the record before sending the
/// originate), so a call younger than this is not ended; it is judged on the
/// next pass.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why reconciliation could not finish (it is retried on the next trigger).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The node could not be asked.
    #[error(transparent)]
    Switch(#[from] SwitchError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The cause given to calls whose real hangup was not seen.
pub const RECONCILED_CAUSE: &str = "NORMAL_UNSPECIFIED";

/// Reconciles one node.
pub async fn reconcile_node(deps: &Deps, node: &str) -> Result<Report, ReconcileError> {
    let rows = deps.switch.channels(node).await?;
    let live = deps.store.live_calls_on_node(node).await?;
    let on_switch: HashSet<&str> = rows.iter().map(|r| r.uuid.as_str()).collect();
    let in_table: HashSet<&str> = live.iter().map(|c| c.uuid.as_str()).collect();
    let mut report = Report::default();

    let now = deps.clock.now();
    let grace = chrono::Duration::from_std(GRACE).unwrap_or_default();
    for call in live.iter().filter(|c| !on_switch.contains(c.uuid.as_str())) {
        if now - call.created_at < grace {
            report.deferred += 1;
            continue;
        }
        if let Ok(uuid) = Uuid::parse_str(&call.uuid) {
            if deps.switch.exists(node, uuid).await? {
                continue; // just created: `show` has not caught up
            }
        }
        // When the call really ended is unknown unless its last event (a
        // CHANNEL_HANGUP whose HANGUP_COMPLETE was missed) said so: the
        // durations are then that event's, else null, never "until now".
        let mut ended = call.clone();
        let last_seen_end = call.ended_at;
        ended.state = CallState::Ended;
        ended.ended_at = Some(last_seen_end.unwrap_or_else(|| deps.clock.now()));
        ended.hangup_cause = Some(RECONCILED_CAUSE.to_owned());
        ended.q850 = Some(31);
        ended.duration_s = last_seen_end
            .map(|end| (end - call.created_at).num_seconds().max(0) as u64)
            .or(call.duration_s);
        ended.billsec = match (last_seen_end, call.answered_at) {
            (Some(end), Some(answered)) => Some((end - answered).num_seconds().max(0) as u64),
            _ => call.billsec,
        };
        ended.reconciled = true;
        let call = deps.store.put_call(ended, deps.retention).await?;
        dispatch(deps, node, CallEventKind::HangupComplete, &call).await?;
        report.ended += 1;
    }

    for row in rows.iter().filter(|r| !in_table.contains(r.uuid.as_str())) {
        if deps
            .store
            .get_call(&row.uuid)
            .await?
            .is_some_and(|c| c.state == CallState::Ended)
        {
            continue; // ended meanwhile; `show` lags
        }
        let mut record = adopt(node, row);
        super::attribute(deps.directory.as_ref(), &mut record);
        deps.store.put_call(record, deps.retention).await?;
        report.adopted += 1;
    }
    Ok(report)
}

async fn dispatch(
    deps: &Deps,
    node: &str,
    kind: CallEventKind,
    call: &CallRecord,
) -> Result<(), StoreError> {
    let change = CallEvent {
        node,
        kind,
        event: None,
        call,
    };
    for handler in &deps.handlers {
        handler.on_call_event(&change).await?;
    }
    Ok(())
}

fn adopt(node: &str, row: &ChannelRow) -> CallRecord {
    let created_at = row
        .created_epoch
        .parse::<i64>()
        .ok()
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .unwrap_or_else(Utc::now);
    let state = match row.callstate.as_str() {
        "ACTIVE" | "HELD" | "UNHELD" => CallState::Answered,
        "EARLY" => CallState::Early,
        _ => CallState::Ringing,
    };
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let direction = if row.direction == "outbound" {
        CallDirection::Outbound
    } else {
        CallDirection::Inbound
    };
    let mut record = CallRecord::new(&row.uuid, node, direction, created_at);
    record.state = state;
    record.caller = non_empty(&row.cid_num);
    record.caller_display_name = non_empty(&row.cid_name);
    record.callee = non_empty(&row.dest);
    record.answered_at = (state == CallState::Answered).then_some(created_at);
    // `reconciled` means "its end was inferred"; adoption is marked apart.
    record
        .extra
        .insert(ADOPTED.to_owned(), serde_json::Value::Bool(true));
    record
}

/// Key in [`CallRecord::extra`] marking a call taken into the table from
/// `show channels` rather than from its events.
pub const ADOPTED: &str = "adopted";
