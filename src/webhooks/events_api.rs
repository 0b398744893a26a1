//! `GET /v1/events?after=<cursor>&limit=N`: a tenant's recent envelopes.
//!
//! This file owns reading a tenant's event log for the API: the query, the
//! page shape `{"events":[…],"next_cursor":…,"has_more":…}` and the paging
//! rules. Envelopes are returned as the exact JSON that was signed and sent
//! (not re-serialised), so a client can replay what a missed webhook carried.
//! It must not authenticate (the HTTP platform's `Tenant` extractor gives the
//! tenant id), map errors to HTTP statuses (the platform's `ApiError` does), or
//! write anything.
//!
//! The route, once the platform's extractors are in main, is a thin wrapper:
//!
//! ```text
//! async fn events(
//!     State(state): State<AppState>,
//!     tenant: Tenant,
//!     ApiQuery(query): ApiQuery<EventsQuery>,
//! ) -> Result<Json<EventsPage>, ApiError> {
//!     Ok(webhooks::get_events(state.store, tenant.id().to_owned(), query).await?)
//! }
//! ```

use std::sync::Arc;

use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::store::{Store, StoreError};

/// Envelopes per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page; a bigger `limit` is reduced to it.
pub const MAX_LIMIT: usize = 1000;

/// The query string; any other parameter is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Return envelopes after this cursor (a `next_cursor` this API
    /// returned; anything else is a 400); from the oldest retained when
    /// absent or empty.
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100); 0 is read as 1 and a bigger
    /// value is reduced to 1000.
    #[serde(default, deserialize_with = "saturating_limit")]
    #[param(schema_with = limit_schema)]
    pub limit: Option<usize>,
}

/// Any non-negative integer, of any size.
fn limit_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .minimum(Some(0))
        .build()
}

/// `limit` as digits; any size (a value past `usize` is as big as any other
/// value above [`MAX_LIMIT`]).
fn saturating_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let text = text.strip_prefix('+').unwrap_or(&text);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(serde::de::Error::custom("must be a non-negative integer"));
    }
    Ok(Some(text.parse().unwrap_or(usize::MAX)))
}

/// One page of envelopes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsPage {
    /// The envelopes, oldest first, as the JSON that was sent.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Box<RawValue>>,
    /// Where to continue: pass as `after`. Always present once a cursor is
    /// known (the last envelope's, or the `after` given when nothing is new),
    /// so a client can poll with it forever; `null` only for an empty log
    /// read from the start.
    pub next_cursor: Option<String>,
    /// True when more envelopes are waiting after this page.
    pub has_more: bool,
}

/// True when `after` is absent, empty, or a cursor the event log hands out
/// (anything else would read as an empty page and be echoed back as
/// `next_cursor`).
pub fn after_is_valid(query: &EventsQuery) -> bool {
    query
        .after
        .as_deref()
        .is_none_or(|a| a.is_empty() || crate::store::cursors::is_event_cursor(a))
}

/// Reads one page of the tenant's event log.
pub async fn list_events(
    store: &dyn Store,
    tenant: &str,
    query: &EventsQuery,
) -> Result<EventsPage, StoreError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let after = query.after.as_deref().filter(|a| !a.is_empty());
    let page = store.events_after(tenant, after, limit).await?;
    let last = page.items.last().map(|e| e.cursor.clone());
    let has_more = page.next_cursor.is_some();
    let next_cursor = page
        .next_cursor
        .or(last)
        .or_else(|| after.map(str::to_owned));
    let events = page
        .items
        .into_iter()
        .map(|e| {
            RawValue::from_string(e.payload).map_err(|err| {
                StoreError::Corrupt(format!("event {} is not JSON: {err}", e.cursor))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventsPage {
        events,
        next_cursor,
        has_more,
    })
}

/// The handler body, over plain arguments: the platform's axum route calls it
/// with its store, the authenticated tenant id and the parsed query, and maps
/// the error with its `ApiError`.
pub async fn get_events(
    store: Arc<dyn Store>,
    tenant: String,
    query: EventsQuery,
) -> Result<Json<EventsPage>, StoreError> {
    list_events(store.as_ref(), &tenant, &query).await.map(Json)
}
