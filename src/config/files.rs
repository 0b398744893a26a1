//! The files a configuration names: the https listener's certificate and
//! key, the webhook client's CA bundle, Redis's CA bundle and client
//! certificate. `check-config` and `serve` both read them here, so a path that
//! does not exist, a key the daemon cannot read, a file that is not PEM or a
//! key that is not its certificate's is explained before anything listens.
//!
//! Owns which keys name files and which must come in pairs; what is wrong
//! with a file is [`crate::tls`]'s to say. It runs after
//! [`validate`](super::validate) and never reads the environment.

use super::load::ConfigProblem;
use super::model::{file_path, Config};
use crate::tls;

/// Every problem with the files `config` names; empty when they are usable.
pub fn check(config: &Config) -> Vec<ConfigProblem> {
    let mut problems = Problems(Vec::new());
    let http = &config.http;
    problems.identity(
        ("http.tls_cert_file", &http.tls_cert_file),
        ("http.tls_key_file", &http.tls_key_file),
    );
    problems.ca("webhooks.ca_file", &config.webhooks.ca_file);
    let store = &config.store;
    problems.ca("store.ca_file", &store.ca_file);
    problems.identity(
        ("store.client_cert_file", &store.client_cert_file),
        ("store.client_key_file", &store.client_key_file),
    );
    problems.0
}

struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn push(&mut self, key: &str, message: impl ToString) {
        self.0.push(ConfigProblem::new(key, message.to_string()));
    }

    /// A CA bundle: readable, with at least one certificate.
    fn ca(&mut self, key: &str, path: &Option<String>) {
        if let Some(path) = file_path(path) {
            if let Err(e) = tls::load_certs(&path) {
                self.push(key, e);
            }
        }
    }

    /// A certificate and its key: both or neither, each readable, and the
    /// key the certificate's.
    fn identity(
        &mut self,
        (cert_key, cert): (&str, &Option<String>),
        (key_key, key): (&str, &Option<String>),
    ) {
        match (file_path(cert), file_path(key)) {
            (None, None) => {}
            (Some(_), None) => self.push(key_key, format!("is required with {cert_key}")),
            (None, Some(_)) => self.push(cert_key, format!("is required with {key_key}")),
            (Some(cert), Some(key)) => {
                let (cert, key) = (cert.as_path(), key.as_path());
                let chain = tls::load_certs(cert).map_err(|e| self.push(cert_key, e));
                let private = tls::load_key(key).map_err(|e| self.push(key_key, e));
                if chain.is_ok() && private.is_ok() {
                    if let Err(e) = tls::server_config(cert, key) {
                        self.push(key_key, e);
                    }
                }
            }
        }
    }
}
