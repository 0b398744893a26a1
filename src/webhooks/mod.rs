//! Signed webhooks: envelopes, signatures, the durable outbox, delivery with
//! retries, and the event log API.
//!
//! This module owns what tenants receive and how it reaches them (docs/architecture.md
//! §2.5): [`envelope`] (the JSON shape and typed data), [`sign`] (Standard
//! Webhooks), [`outbox`] (emit = one store write, never HTTP), [`schedule`]
//! (retry policy, pure), [`worker`] (the delivery loops) and [`events_api`]
//! (`GET /v1/events`). It must not decide *which* events happen: the domain
//! modules build the data and call [`Outbox::emit`]. Delivery is at least
//! once: a receiver must de-duplicate on `webhook-id` (the envelope `id`).
//!
//! # Verifying a webhook (for tenants)
//!
//! Every request carries `webhook-id`, `webhook-timestamp` (Unix seconds,
//! fresh on every attempt) and `webhook-signature: v1,<base64>`, where the
//! signature is HMAC-SHA256, keyed with the bytes of the tenant secret after
//! `whsec_` base64-decoded, over `"{webhook-id}.{webhook-timestamp}.{raw body}"`.
//! Verify against the raw body bytes (not re-serialised JSON), compare in
//! constant time, and reject timestamps more than five minutes off. Any
//! Standard Webhooks library does this; by hand in Python:
//!
//! ```text
//! import base64, hashlib, hmac, time
//! def verify(secret, headers, body: bytes):
//!     key = base64.b64decode(secret.removeprefix("whsec_"))
//!     msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
//!     if abs(time.time() - int(ts)) > 300: raise ValueError("stale")
//!     mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
//!     expected = base64.b64encode(mac.digest()).decode()
//!     for sig in headers["webhook-signature"].split(" "):
//!         version, _, value = sig.partition(",")
//!         if version == "v1" and hmac.compare_digest(value, expected): return
//!     raise ValueError("bad signature")
//! ```
//!
//! or in Rust with this crate's reference implementation:
//!
//! ```
//! use fsgate::webhooks::sign::{sign, verify, WebhookSecret};
//!
//! let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
//! let body = br#"{"id":"evt_01J","type":"call.answered"}"#;
//! let signature = sign(&secret, "evt_01J", 1_614_265_330, body); // what fsgate sends
//! // The receiver, with the three headers and the raw body:
//! assert!(verify(&secret, "evt_01J", "1614265330", &signature, body, 1_614_265_331, 300).is_ok());
//! assert!(verify(&secret, "evt_01J", "1614265330", &signature, b"{}", 1_614_265_331, 300).is_err());
//! ```

pub mod envelope;
pub mod events_api;
pub mod outbox;
pub mod routes;
pub mod schedule;
pub mod sign;
pub mod worker;

pub use envelope::{
    CallAnsweredData, CallHangupData, CallInfo, CallInitiatedData, CommandResultData,
    CommandStatus, Envelope, EnvelopeError, EventData, EventType, SessionData,
};
pub use events_api::{get_events, list_events, EventsPage, EventsQuery};
pub use outbox::{EmitError, Outbox, Wakeup};
pub use schedule::{AttemptResult, RetrySchedule, TlsProblem, Verdict};
pub use sign::{verify, SignedHeaders, VerifyError, WebhookSecret};
pub use worker::{Deliverer, DelivererConfig, DelivererError, DelivererHandle};
