//! Masked-number sessions (seed 000, docs/architecture.md §2.1): two real numbers paired
//! behind one number from the tenant's pool for a TTL, routed through the
//! dialplan lookup and the originate API, with `session.*` webhooks.
//!
//! One idea per file: [`model`] (request and response shapes, input
//! checks), [`error`] (the typed failure and its HTTP mapping), [`service`]
//! ([`Masking`], the rules), [`dial`] (what a party's leg looks like),
//! [`lookup`] (the mod_curl route), [`snapshots`] (what the lookup last
//! saw of each number's session), [`originate`] (the two-leg call),
//! [`handler`] (call events → session state), [`expiry`] (the TTL sweep),
//! [`reconcile`] (active sessions' calls checked against the switch),
//! [`events`] (the webhook port), [`routes`] (thin HTTP handlers and their
//! OpenAPI). Nothing here formats ESL text or reads
//! the system clock.
//!
//! Wiring (the daemon): build one [`Masking`] over the store, clock,
//! tenants, switch and webhook outbox; keep the pools synced (the daemon
//! checks them every second, so an emptied store gets them back;
//! [`Masking::sync_pools`] is the one-shot form); pass [`routes()`] to `http::router`; add [`SessionCallHandler`] to
//! the pipeline's handlers; start [`spawn_expiry`] with
//! [`expiry::EXPIRY_INTERVAL`] and a [`SessionReconciler`] with
//! [`SESSION_RECONCILE_INTERVAL`].

pub mod dial;
pub mod error;
pub mod events;
pub mod expiry;
pub mod handler;
pub mod lookup;
pub mod model;
pub mod originate;
pub mod reconcile;
pub mod routes;
pub mod service;
pub mod snapshots;

pub use error::MaskingError;
pub use events::{RecordedEvents, SessionEvents};
pub use expiry::spawn_expiry;
pub use handler::SessionCallHandler;
pub use lookup::RouteAnswer;
pub use reconcile::{SessionReconciler, SESSION_RECONCILE_INTERVAL};
pub use routes::routes;
pub use service::{Masking, MaskingOptions};
