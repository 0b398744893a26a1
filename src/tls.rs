//! TLS material: certificate, key and CA files read from disk, and the
//! rustls configurations built from them, for the three places fsgate speaks
//! TLS: the https listener, the webhook client, and Redis (`rediss://`).
//!
//! Owns reading PEM files and turning every way they can be wrong (missing,
//! unreadable, not PEM, no certificate, no key, a key that is not the
//! certificate's) into a [`TlsFileError`] that names the file and says what
//! to fix, so that `check-config` and `serve` explain the same problems. It
//! also owns the one crypto provider (ring). It must not know where a path
//! came from in the configuration (the caller names the key) nor open any
//! connection.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// The file does not exist, or cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The file holds no PEM certificate.
    #[error(
        "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
        path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no PEM private key.
    #[error(
        "{} holds no PEM private key (expected -----BEGIN PRIVATE KEY-----, \
         RSA PRIVATE KEY or EC PRIVATE KEY)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid PEM, or a certificate in it cannot be parsed.
    #[error("{} is not usable: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key is not the private key of the certificate.
    #[error(
        "the key in {} does not belong to the certificate in {} (their public keys differ)",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

/// Makes ring the process's crypto provider (idempotent; the first call
/// wins). Only the redis client needs it (it builds its rustls
/// configuration from the process default); every configuration built here
/// names ring itself.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Read {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, reason: impl ToString) -> TlsFileError {
    TlsFileError::Invalid {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Every certificate in a PEM file (a chain, or a CA bundle), in order.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| invalid(path, e))?;
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsFileError::NoKey {
            path: path.to_owned(),
        }),
        Err(e) => Err(invalid(path, e)),
    }
}

/// The roots a client trusts: the system's (what rustls-native-certs finds;
/// none is not an error, there may be a bundle) plus every certificate of
/// `extra_ca`.
pub fn root_store(extra_ca: Option<&Path>) -> Result<RootCertStore, TlsFileError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "a system root certificate could not be loaded");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_ca {
        for cert in load_certs(path)? {
            roots.add(cert).map_err(|e| invalid(path, e))?;
        }
    }
    Ok(roots)
}

/// A client configuration trusting [`root_store`]`(extra_ca)`, checking
/// every server's certificate against the name it was reached by.
pub fn client_config(extra_ca: Option<&Path>) -> Result<ClientConfig, TlsFileError> {
    let roots = root_store(extra_ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// A server configuration for the certificate chain in `cert` and its key in
/// `key`, speaking HTTP/1.1 (ALPN). Refuses a key that is not the
/// certificate's.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsFileError> {
    let chain = load_certs(cert)?;
    let private = load_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth();
    let mut config = builder
        .with_single_cert(chain, private)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsFileError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            other => invalid(key, other),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Checks a client certificate and key pair (mutual TLS to Redis): both
/// readable, and the key the certificate's.
pub fn check_identity(cert: &Path, key: &Path) -> Result<(), TlsFileError> {
    server_config(cert, key).map(|_| ())
}

/// Whether an error (anywhere in its `source()` chain) is a TLS failure, and
/// if so rustls's error (`InvalidCertificate(UnknownIssuer)`, …).
pub fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        // An `io::Error`'s `source()` skips the error it wraps (hyper-rustls
        // wraps rustls's in one, and the connector that in another), so
        // unwrap those by hand.
        next = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// What was wrong with a peer's TLS, sorted for metrics and for hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// The certificate is not signed by a trusted CA (add the CA to the
    /// CA bundle setting, or have the peer serve its full chain).
    UntrustedCertificate,
    /// The certificate is not valid for the host it was reached by.
    WrongHost,
    /// The certificate has expired or is not valid yet.
    Expired,
    /// Anything else (no shared protocol, a revoked or malformed certificate…).
    Other,
}

impl TlsProblem {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsProblem::UntrustedCertificate => "untrusted_certificate",
            TlsProblem::WrongHost => "wrong_host",
            TlsProblem::Expired => "expired",
            TlsProblem::Other => "other",
        }
    }
}

/// Sorts a failed handshake ([`tls_failure`]'s error).
pub fn problem_of(error: &rustls::Error) -> TlsProblem {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer | C::BadSignature | C::UnknownRevocationStatus => {
                TlsProblem::UntrustedCertificate
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsProblem::WrongHost,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => TlsProblem::Expired,
            _ => TlsProblem::Other,
        },
        _ => TlsProblem::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fsgate-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn self_signed(name: &str) -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (cert.cert.pem(), cert.key_pair.serialize_pem())
    }

    #[test]
    fn every_bad_file_is_named_with_what_is_wrong() {
        let dir = tempdir();
        let (cert_a, key_a) = self_signed("a.test");
        let (_, key_b) = self_signed("b.test");
        let cert = write(&dir, "a.crt", &cert_a);
        let key = write(&dir, "a.key", &key_a);
        let other_key = write(&dir, "b.key", &key_b);
        let junk = write(&dir, "junk.pem", "hello\n");

        assert!(server_config(&cert, &key).is_ok());
        let missing = dir.join("missing.pem");
        assert!(matches!(
            load_certs(&missing),
            Err(TlsFileError::Read { path, .. }) if path == missing
        ));
        assert!(matches!(
            load_certs(&junk),
            Err(TlsFileError::NoCertificate { .. })
        ));
        assert!(matches!(load_key(&cert), Err(TlsFileError::NoKey { .. })));
        let mismatch = server_config(&cert, &other_key).unwrap_err();
        assert!(matches!(mismatch, TlsFileError::KeyMismatch { .. }));
        assert!(mismatch.to_string().contains("b.key"), "{mismatch}");
        assert!(!root_store(Some(&cert)).unwrap().is_empty());
        assert!(matches!(
            root_store(Some(&key)),
            Err(TlsFileError::NoCertificate { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tls_failures_are_found_through_io_errors() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // As hyper-rustls and hyper-util's connector nest it.
        let io = io::Error::new(io::ErrorKind::InvalidData, inner);
        let io = io::Error::other(io);
        let found = tls_failure(&io).unwrap();
        assert!(found.to_string().contains("UnknownIssuer"), "{found}");
        assert_eq!(tls_failure(&io::Error::other("plain")), None);
    }
}
