//! A webhook receiver for tests: records every delivery, answers with
//! programmable statuses, and waits for envelopes by type.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Request headers.
    pub headers: HeaderMap,
    /// Raw body (the signed bytes).
    pub body: Bytes,
    /// Parsed envelope.
    pub envelope: Value,
}

impl Delivery {
    /// `type` of the envelope.
    pub fn kind(&self) -> &str {
        self.envelope["type"].as_str().unwrap_or_default()
    }

    /// `data` of the envelope.
    pub fn data(&self) -> &Value {
        &self.envelope["data"]
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Panics unless the Standard Webhooks signature verifies with `secret`
    /// (timestamp within 5 minutes of now) and `webhook-id` is the envelope's id.
    pub fn assert_signed(&self, secret: &str) {
        self.assert_signed_at(secret, chrono::Utc::now().timestamp());
    }

    /// [`Delivery::assert_signed`] with "now" given (tests on a manual clock).
    pub fn assert_signed_at(&self, secret: &str, now_unix: i64) {
        use fsgate::webhooks::sign::{verify, WebhookSecret};
        let secret = WebhookSecret::parse(secret).unwrap();
        verify(
            &secret,
            self.header("webhook-id"),
            self.header("webhook-timestamp"),
            self.header("webhook-signature"),
            &self.body,
            now_unix,
            300,
        )
        .unwrap_or_else(|e| panic!("bad signature on {}: {e:?}", self.kind()));
        assert_eq!(
            self.header("webhook-id"),
            self.envelope["id"].as_str().unwrap_or_default()
        );
    }
}

#[derive(Default)]
struct Inner {
    deliveries: Vec<Delivery>,
    /// Statuses to answer with, in order; 200 once empty.
    script: VecDeque<u16>,
    /// Delay before answering.
    delay: Duration,
}

/// The receiver. Cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    addr: SocketAddr,
    /// `http://127.0.0.1:port`, or `https://localhost:port` over TLS.
    base: String,
}

async fn hook(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (status, delay) = {
        let mut g = inner.lock().unwrap();
        let status = g.script.pop_front().unwrap_or(200);
        let envelope = serde_json::from_slice(&body).unwrap_or(Value::Null);
        g.deliveries.push(Delivery {
            headers,
            body,
            envelope,
        });
        (status, g.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts a receiver on `addr` (a receiver that was down comes up).
    pub async fn start_on(addr: SocketAddr) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Receiver::app(&inner);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            inner,
            addr,
            base: format!("http://{addr}"),
        }
    }

    /// Starts an https receiver on a free loopback port, presenting the
    /// certificate of `tls`; its URL names the host `localhost`.
    pub async fn start_tls(tls: rustls::ServerConfig) -> Receiver {
        use tower::ServiceExt;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Receiver::app(&inner);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that refuses our certificate ends here.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| app.clone().oneshot(req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            inner,
            addr,
            base: format!("https://localhost:{}", addr.port()),
        }
    }

    fn app(inner: &Arc<Mutex<Inner>>) -> Router {
        Router::new()
            .route("/hooks", post(hook))
            .with_state(inner.clone())
    }

    /// The URL to configure as `webhook_url`.
    pub fn url(&self) -> String {
        format!("{}/hooks", self.base)
    }

    /// Answer the next deliveries with these statuses (then 200).
    pub fn script(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().script.extend(statuses);
    }

    /// Wait this long before answering each delivery.
    pub fn delay(&self, d: Duration) {
        self.inner.lock().unwrap().delay = d;
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Delivery> {
        self.inner.lock().unwrap().deliveries.clone()
    }

    /// Deliveries of one envelope type.
    pub fn of_type(&self, kind: &str) -> Vec<Delivery> {
        self.all()
            .into_iter()
            .filter(|d| d.kind() == kind)
            .collect()
    }

    /// Waits (up to `within`) for a delivery of `kind` matching `pred`.
    pub async fn wait_for(
        &self,
        kind: &str,
        within: Duration,
        pred: impl Fn(&Delivery) -> bool,
    ) -> Delivery {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(d) = self.of_type(kind).into_iter().find(|d| pred(d)) {
                return d;
            }
            if tokio::time::Instant::now() >= deadline {
                let seen: Vec<String> = self.all().iter().map(|d| d.kind().to_owned()).collect();
                panic!("no {kind} webhook within {within:?}; received {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
