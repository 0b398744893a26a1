//! Certificates for the TLS tests: a private CA made per test, and server
//! and client certificates it signs, written as PEM files into a temporary
//! directory (as an operator would point the configuration at them).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate authority of one test.
pub struct TestCa {
    /// Where its files are written.
    pub dir: PathBuf,
    cert: Certificate,
    key: KeyPair,
}

/// A certificate the CA issued, with its key, as files and PEM text.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The PEM certificate file.
    pub cert_file: PathBuf,
    /// The PEM private key file.
    pub key_file: PathBuf,
    /// The certificate, DER (to compare with what a server presents).
    pub der: Vec<u8>,
}

impl TestCa {
    /// A new CA whose files go to a new temporary directory.
    pub fn new(name: &str) -> TestCa {
        let dir = std::env::temp_dir().join(format!("fsgate-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("fsgate test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca = TestCa { dir, cert, key };
        std::fs::write(ca.ca_file(), ca.cert.pem()).unwrap();
        ca
    }

    /// The CA certificate's PEM file (what `ca_file` settings point at).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate for `names` (DNS names or IP addresses), written
    /// as `<file>.crt` and `<file>.key`.
    pub fn server(&self, file: &str, names: &[&str]) -> Issued {
        self.issue(file, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (mutual TLS), written as `<file>.crt`/`.key`.
    pub fn client(&self, file: &str) -> Issued {
        self.issue(file, &["fsgate"], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, file: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let cert_file = self.dir.join(format!("{file}.crt"));
        let key_file = self.dir.join(format!("{file}.key"));
        write(&cert_file, &cert.pem());
        write(&key_file, &key.serialize_pem());
        Issued {
            cert_file,
            key_file,
            der: cert.der().to_vec(),
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a file whole (through a temporary name and a rename, as a
/// certificate renewal tool does, so a reader never sees half a file).
pub fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A rustls server configuration for an issued certificate (test servers).
pub fn server_config(issued: &Issued) -> rustls::ServerConfig {
    fsgate::tls::server_config(&issued.cert_file, &issued.key_file).unwrap()
}

/// A rustls client configuration trusting only `ca` (test clients).
pub fn client_config(ca: &TestCa) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in fsgate::tls::load_certs(&ca.ca_file()).unwrap() {
        roots.add(cert).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth()
}
