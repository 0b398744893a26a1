//! A stand-in for fsgate's route lookup (`GET /v1/dialplan/route?masked=…`,
//! what `dialplan/public/00_fsgate.xml` asks with mod_curl), as the
//! recordings' own little HTTP server answered it: a fixed table of masked
//! digits to (status, body); any other number 404 `UNALLOCATED_NUMBER`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One answer: masked digits, HTTP status, body.
pub type Route = (&'static str, u16, &'static str);

/// A running route server (stops when dropped).
pub struct RouteServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RouteServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn lookup(
    State(routes): State<Arc<HashMap<String, (u16, String)>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let masked = q.get("masked").cloned().unwrap_or_default();
    let (status, body) = routes
        .get(&masked)
        .cloned()
        .unwrap_or((404, "UNALLOCATED_NUMBER".into()));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

impl RouteServer {
    /// Serves `routes` on a free loopback port.
    pub async fn start(routes: &[Route]) -> RouteServer {
        let table: HashMap<String, (u16, String)> = routes
            .iter()
            .map(|(m, s, b)| (m.to_string(), (*s, b.to_string())))
            .collect();
        let app = Router::new()
            .route("/v1/dialplan/route", get(lookup))
            .with_state(Arc::new(table));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind route server");
        let addr = l.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        RouteServer { addr, task }
    }

    /// The `fsgate_url` global the switch is given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
