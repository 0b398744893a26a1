//! The demo's webhook receiver: an axum server on 127.0.0.1:0 that checks
//! every delivery's Standard Webhooks signature with the demo tenant's
//! secret, prints it to the transcript as it arrives, and lets the
//! walkthrough wait for an envelope by type.
//!
//! It owns only receiving and verifying; it must not judge whether the
//! walkthrough succeeded (it records a bad signature; the walkthrough fails
//! on it) and it answers every delivery 200 so nothing is retried.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::transcript::Transcript;
use super::DemoError;
use crate::webhooks::sign::{verify, WebhookSecret};

/// How far a `webhook-timestamp` may be from now.
const TOLERANCE_SECS: i64 = 300;

/// One delivery, verified.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The envelope.
    pub envelope: Value,
    /// Whether the signature checked out (else why not).
    pub signature: Result<(), String>,
}

impl Delivery {
    /// The envelope's `type`.
    pub fn kind(&self) -> &str {
        self.envelope["type"].as_str().unwrap_or_default()
    }

    /// The envelope's `data`.
    pub fn data(&self) -> &Value {
        &self.envelope["data"]
    }
}

struct Shared {
    secret: WebhookSecret,
    transcript: Transcript,
    deliveries: Mutex<Vec<Delivery>>,
}

/// The running receiver.
pub struct Receiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = verify(
        &shared.secret,
        header(&headers, "webhook-id"),
        header(&headers, "webhook-timestamp"),
        header(&headers, "webhook-signature"),
        &body,
        chrono::Utc::now().timestamp(),
        TOLERANCE_SECS,
    )
    .map_err(|e| e.to_string());
    let envelope: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let delivery = Delivery {
        envelope,
        signature,
    };
    shared.transcript.webhook(
        delivery.kind(),
        delivery.envelope["id"].as_str().unwrap_or_default(),
        delivery.signature.clone(),
        delivery.data(),
    );
    match shared.deliveries.lock() {
        Ok(mut g) => g.push(delivery),
        Err(poisoned) => poisoned.into_inner().push(delivery),
    }
    StatusCode::OK
}

impl Receiver {
    /// Starts the receiver on a free loopback port.
    pub async fn start(
        secret: WebhookSecret,
        transcript: Transcript,
    ) -> Result<Receiver, DemoError> {
        let shared = Arc::new(Shared {
            secret,
            transcript,
            deliveries: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/hooks", post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| DemoError::Setup(format!("webhook receiver: cannot listen: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| DemoError::Setup(format!("webhook receiver: {e}")))?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { shared, addr, task })
    }

    /// The URL to configure as the tenant's `webhook_url`.
    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Delivery> {
        match self.shared.deliveries.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Waits (up to `within`) for a delivery of `kind` whose data matches
    /// `pred`; a bad signature on any delivery fails at once.
    pub async fn wait_for(
        &self,
        kind: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Delivery, DemoError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let all = self.all();
            if let Some(bad) = all.iter().find(|d| d.signature.is_err()) {
                return Err(DemoError::Signature {
                    kind: bad.kind().to_owned(),
                    reason: bad.signature.clone().err().unwrap_or_default(),
                });
            }
            if let Some(d) = all.into_iter().find(|d| d.kind() == kind && pred(d.data())) {
                return Ok(d);
            }
            if tokio::time::Instant::now() >= deadline {
                let seen: Vec<String> = self.all().iter().map(|d| d.kind().to_owned()).collect();
                return Err(DemoError::NoWebhook {
                    kind: kind.to_owned(),
                    within,
                    seen,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server.
    pub fn stop(self) {
        self.task.abort();
    }
}
