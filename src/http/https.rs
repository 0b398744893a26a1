//! The https listener's certificate: loaded from `http.tls_cert_file` and
//! `http.tls_key_file` at start, swapped in place on SIGHUP (a renewed
//! certificate is picked up without dropping a connection or a call), and
//! the TLS handshake of each accepted connection.
//!
//! Owns the current rustls server configuration and reloading it: a reload
//! that fails (a half-written file, a key that is not the certificate's)
//! keeps the certificate in use and says why, so a bad renewal never takes
//! the API or the dialplan lookup down. Accepting, the connection cap and
//! the timeouts stay [`super::listener`]'s and [`super::conn`]'s; this module
//! never reads a request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{file_path, HttpConfig};
use crate::tls::{self, TlsFileError};

/// Counter: certificate reloads, by `result` (`ok`, `failed`).
pub const TLS_RELOADS: &str = "fsgate_http_tls_reloads_total";
/// Counter: TLS handshakes that failed or timed out.
pub const TLS_HANDSHAKE_FAILURES: &str = "fsgate_http_tls_handshake_failures_total";

/// The certificate the listener serves, and where it is reloaded from.
pub struct Https {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<ServerConfig>,
}

impl std::fmt::Debug for Https {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Https")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Https {
    /// The https settings of `[http]`: `None` for plain http (neither file
    /// set), or the loaded certificate.
    pub fn from_config(http: &HttpConfig) -> Result<Option<Arc<Https>>, TlsFileError> {
        match (
            file_path(&http.tls_cert_file),
            file_path(&http.tls_key_file),
        ) {
            (Some(cert), Some(key)) => Https::load(cert, key).map(|h| Some(Arc::new(h))),
            // Half a pair is a configuration problem `config::files` reports.
            _ => Ok(None),
        }
    }

    /// Loads the certificate chain in `cert` and its key in `key`.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Https, TlsFileError> {
        let config = tls::server_config(&cert, &key)?;
        Ok(Https {
            cert,
            key,
            current: ArcSwap::from_pointee(config),
        })
    }

    /// Reads the files again and serves the new certificate to the next
    /// connections; on failure keeps the one in use.
    pub fn reload(&self) -> Result<(), TlsFileError> {
        match tls::server_config(&self.cert, &self.key) {
            Ok(config) => {
                self.current.store(Arc::new(config));
                metrics::counter!(TLS_RELOADS, "result" => "ok").increment(1);
                tracing::info!(cert = %self.cert.display(), "https certificate reloaded");
                Ok(())
            }
            Err(e) => {
                metrics::counter!(TLS_RELOADS, "result" => "failed").increment(1);
                tracing::error!(
                    error = %e,
                    "cannot reload the https certificate; still serving the previous one"
                );
                Err(e)
            }
        }
    }

    /// The TLS handshake of one accepted connection, within `timeout` (the
    /// header timeout: a client that connects and says nothing is cut).
    pub(super) async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> Option<TlsStream<TcpStream>> {
        let acceptor = TlsAcceptor::from(self.current.load_full());
        let outcome = tokio::time::timeout(timeout, acceptor.accept(stream)).await;
        match outcome {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                metrics::counter!(TLS_HANDSHAKE_FAILURES).increment(1);
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                metrics::counter!(TLS_HANDSHAKE_FAILURES).increment(1);
                tracing::debug!("TLS handshake timed out");
                None
            }
        }
    }

    /// Reloads on every SIGHUP until the process ends (Unix only).
    pub fn reload_on_sighup(self: &Arc<Https>) -> tokio::task::JoinHandle<()> {
        let https = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP; the https certificate will not reload");
                return;
            };
            while hangups.recv().await.is_some() {
                let _ = https.reload();
            }
        })
    }
}

/// Registers the help text of the https metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(TLS_RELOADS, "https certificate reloads by result");
    metrics::describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes on the https listener that failed or timed out"
    );
}
