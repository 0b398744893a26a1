//! `GET /v1/events`: a tenant catches up on its envelopes after downtime.
//!
//! A thin axum handler over [`super::events_api`]: authenticate, read the
//! query, answer the page. The paging rules live in `events_api`.

use axum::extract::State;
use axum::Json;

use super::events_api::{after_is_valid, get_events, EventsPage, EventsQuery};
use crate::http::{ApiError, ApiQuery, ApiRouter, AppState, Tenant};

/// The webhook routes.
pub fn routes() -> ApiRouter {
    ApiRouter::new().api(__path_list_events, list_events)
}

/// The tenant's envelopes after `after`, in order: exactly the JSON that
/// was (or will be) sent as webhooks, kept for `webhooks.events_retention_hours`.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "webhooks",
    params(EventsQuery),
    responses((status = 200, description = "A page of envelopes", body = EventsPage),
              (status = 400, description = "A malformed query (`field` names the parameter): `limit` not a non-negative integer, an `after` this API did not return, an unknown parameter", body = crate::http::ErrorEnvelope))
)]
pub async fn list_events(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<EventsPage>, ApiError> {
    if !after_is_valid(&query) {
        return Err(ApiError::bad_request(
            Some("after"),
            "after is not a cursor this API returned (pass next_cursor as given, or leave it out)",
        )
        .with_code("invalid_query"));
    }
    Ok(get_events(state.store.clone(), tenant.id().to_owned(), query).await?)
}
