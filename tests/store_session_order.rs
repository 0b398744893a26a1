//! Session times follow the order of the store's atomic steps: the daemon
//! reads the clock before it asks the store, so a session created on a
//! number may carry a `created_at` from before the completion that freed
//! that number (two requests racing). The store then moves the new
//! session's `created_at` and `expires_at` forward (same TTL) to the
//! release, so that two sessions never appear to hold one number at once.
//! Run on the memory store, a real redis-server and a Redis Cluster, as
//! `tests/store_conformance.rs` does.

#[macro_use]
mod support;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use fsgate::store::*;

type S = Arc<dyn Store>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
}

fn new_session(r: &str, created: DateTime<Utc>) -> NewSession {
    NewSession {
        tenant: "acme".into(),
        session_ref: r.into(),
        party_a: "+15557770001".into(),
        party_b: "+15557770002".into(),
        ttl_minutes: 10,
        metadata: None,
        created_at: created,
        expires_at: created + Duration::minutes(10),
    }
}

/// B's time was read before A's completion, but B got A's number after it.
async fn a_session_never_starts_before_its_number_was_released(s: S) {
    s.sync_pool("acme", &["+15550100001".to_owned()])
        .await
        .unwrap();
    let a = s.create_session(new_session("ses_a", t0())).await.unwrap();
    let released = t0() + Duration::milliseconds(5_007);
    s.complete_session("acme", "ses_a", CompletionReason::Closed, released, None)
        .await
        .unwrap()
        .unwrap();
    let early = t0() + Duration::milliseconds(5_000);
    let b = s.create_session(new_session("ses_b", early)).await.unwrap();
    assert_eq!(b.masked_number, a.masked_number);
    assert_eq!(b.created_at, released, "moved to the release");
    assert_eq!(
        b.expires_at - b.created_at,
        Duration::minutes(10),
        "same TTL"
    );
    assert_eq!(
        s.get_session("acme", "ses_b").await.unwrap(),
        Some(b.clone())
    );
    let by_number = s.session_by_number("acme", "+15550100001").await.unwrap();
    assert_eq!(by_number, Some(b.clone()));
    let listed = s.list_sessions("acme", None, None, 10).await.unwrap().items;
    assert_eq!(
        listed
            .iter()
            .map(|x| x.session_ref.as_str())
            .collect::<Vec<_>>(),
        ["ses_b", "ses_a"],
        "newest first, by the written times"
    );
    assert_eq!(listed[0], b);
    // Not due before its moved expiry.
    let due = s
        .due_sessions("acme", early + Duration::minutes(10), 10)
        .await
        .unwrap();
    assert!(due.is_empty(), "{due:?}");
    let due = s.due_sessions("acme", b.expires_at, 10).await.unwrap();
    assert_eq!(due, ["ses_b"]);

    // A creation read after the release keeps its own time.
    s.complete_session(
        "acme",
        "ses_b",
        CompletionReason::Closed,
        b.created_at + Duration::seconds(1),
        None,
    )
    .await
    .unwrap();
    let late = b.created_at + Duration::seconds(30);
    let c = s.create_session(new_session("ses_c", late)).await.unwrap();
    assert_eq!(
        (c.created_at, c.expires_at),
        (late, late + Duration::minutes(10))
    );
}

/// A release inside a millisecond still orders: the later session starts
/// no earlier than the completion (both at millisecond precision or finer).
async fn sub_millisecond_releases_still_order(s: S) {
    s.sync_pool("acme", &["+15550100001".to_owned()])
        .await
        .unwrap();
    s.create_session(new_session("ses_a", t0())).await.unwrap();
    let released = t0() + Duration::microseconds(7_400);
    s.complete_session("acme", "ses_a", CompletionReason::Ttl, released, None)
        .await
        .unwrap();
    let early = t0() + Duration::microseconds(7_100);
    let b = s.create_session(new_session("ses_b", early)).await.unwrap();
    let a = s.get_session("acme", "ses_a").await.unwrap().unwrap();
    assert!(
        b.created_at >= a.completed_at.unwrap(),
        "{} < {:?}",
        b.created_at,
        a.completed_at
    );
    assert_eq!(b.expires_at - b.created_at, Duration::minutes(10));
}

store_conformance!(
    a_session_never_starts_before_its_number_was_released,
    sub_millisecond_releases_still_order,
);
