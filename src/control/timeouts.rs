//! Operations past their deadline get the result `timeout`.
//!
//! This file owns the due-operations task: every tick it asks the store for
//! each tenant's in-progress operations whose deadline has passed (by the
//! injected clock) and times them out through [`Results`], so that an
//! `answer` nobody confirmed, and any operation left in progress by a daemon
//! that stopped mid-dispatch, still gets its one `command.result`. Several
//! instances may run it; the store lets exactly one finish each operation.
//! It must not dispatch anything.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::{OperationStatus, StoreError};

use super::results::Results;

/// Operations read per tenant and tick.
pub const BATCH: usize = 100;

fn detail(command: &str, timeout_ms: u64) -> String {
    if command == "answer" {
        format!("no CHANNEL_ANSWER confirmed the answer within {timeout_ms} ms")
    } else {
        format!("no result within {timeout_ms} ms")
    }
}

/// Times out every due operation of `tenants` once; returns how many this
/// call finished.
pub async fn expire_due(results: &Results, tenants: &[String]) -> Result<usize, StoreError> {
    let now = results.clock().now();
    let mut finished = 0;
    for tenant in tenants {
        loop {
            let due = results.store().due_operations(tenant, now, BATCH).await?;
            let n = due.len();
            for op in due {
                let text = detail(&op.command, op.timeout_ms);
                if results
                    .finish(tenant, &op.id, OperationStatus::Timeout, text)
                    .await?
                    .is_some()
                {
                    finished += 1;
                }
            }
            if n < BATCH {
                break;
            }
        }
    }
    Ok(finished)
}

/// Runs [`expire_due`] every `every` until the handle is aborted.
pub fn spawn(results: Results, tenants: Vec<String>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = expire_due(&results, &tenants).await {
                tracing::warn!(error = %e, "timing out due operations failed; retrying next tick");
            }
        }
    })
}
