//! A real `redis-server` speaking only TLS, for the `rediss://` tests: a CA,
//! a server certificate for 127.0.0.1 and localhost and a client certificate
//! (made by [`super::certs`]), and the server started on a free port with
//! `--port 0 --tls-port P --tls-auth-clients yes` (a client must present a
//! certificate of the CA).
//!
//! Also Redis Sentinel over TLS: a TLS-only primary, a replica and a
//! sentinel with only a TLS port ([`TlsSentinelSet`]).
//!
//! Owns the certificate files and the child processes, and removes / kills
//! them on drop. It never mocks Redis and never skips: a `redis-server`
//! missing or built without TLS makes it panic saying so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fsgate::store::StoreOptions;

use super::certs::TestCa;

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A CA (see [`super::certs`]), a server and a client certificate signed by
/// it, and another CA (trusted by nobody), as PEM files.
pub struct TlsFiles {
    /// The CA's certificate (what clients and the server trust).
    pub ca: PathBuf,
    /// The server's certificate (127.0.0.1, localhost) and key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The client's certificate and key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed none of these.
    pub other_ca: PathBuf,
    // The directories, removed on drop.
    authority: TestCa,
    _other: TestCa,
}

impl TlsFiles {
    /// Generates everything in new scratch directories.
    pub fn generate() -> TlsFiles {
        let authority = TestCa::new("redis-tls");
        let other = TestCa::new("redis-tls-other");
        let server = authority.server("server", &["127.0.0.1", "localhost"]);
        let client = authority.client("client");
        TlsFiles {
            ca: authority.ca_file(),
            server_cert: server.cert_file,
            server_key: server.key_file,
            client_cert: client.cert_file,
            client_key: client.key_file,
            other_ca: other.ca_file(),
            authority,
            _other: other,
        }
    }

    /// The CA's scratch directory (the server's `--dir` too).
    pub fn dir(&self) -> &Path {
        &self.authority.dir
    }
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Starts `program` on a free TLS port (`args(port)` gives its arguments)
/// and waits for a TLS PING; retries on another port when it exits (the
/// port was taken meanwhile).
fn start_tls(files: &TlsFiles, program: &str, args: impl Fn(u16) -> Vec<String>) -> (Child, u16) {
    for _ in 0..20 {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = Command::new(program)
            .args(args(port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {program} ({e}): install it (apt-get install {program}); tests \
                     never skip"
                )
            });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break; // the port was taken meanwhile: another one
            }
            if pings(port, files) {
                return (child, port);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{program} on TLS port {port} did not answer PING within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!(
        "could not start {program} with a TLS port after 20 tries: is it built with TLS \
         (Debian's is)? tests never skip"
    );
}

/// The arguments of a TLS-only redis-server on `port` (`auth_clients`:
/// client certificates required).
fn server_args(files: &TlsFiles, dir: &Path, port: u16, auth_clients: bool) -> Vec<String> {
    let args: Vec<String> = [
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        // 127.0.0.2 (loopback, not on the certificate): for name checks.
        "--bind",
        "127.0.0.1",
        "127.0.0.2",
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync-delay",
        "0",
        "--dir",
        &path(dir),
        "--tls-cert-file",
        &path(&files.server_cert),
        "--tls-key-file",
        &path(&files.server_key),
        "--tls-ca-cert-file",
        &path(&files.ca),
        "--tls-replication",
        "yes",
        "--tls-auth-clients",
        if auth_clients { "yes" } else { "no" },
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One TLS-only redis-server requiring client certificates, killed on drop.
pub struct RedisTlsServer {
    child: Child,
    port: u16,
    /// The certificates it uses (and clients may).
    pub files: TlsFiles,
}

impl RedisTlsServer {
    /// Generates certificates and starts the server on a free port.
    pub fn start() -> RedisTlsServer {
        fsgate::tls::install_crypto_provider();
        let files = TlsFiles::generate();
        let (child, port) = start_tls(&files, "redis-server", |port| {
            server_args(&files, files.dir(), port, true)
        });
        RedisTlsServer { child, port, files }
    }

    /// `rediss://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Store options trusting the CA and presenting the client certificate.
    pub fn options(&self) -> StoreOptions {
        let mut o = StoreOptions::from(self.url());
        o.ca_file = Some(self.files.ca.clone());
        o.client_cert_file = Some(self.files.client_cert.clone());
        o.client_key_file = Some(self.files.client_key.clone());
        o
    }
}

/// A TLS PING with the client certificate.
fn pings(port: u16, files: &TlsFiles) -> bool {
    let certs = redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: std::fs::read(&files.client_cert).unwrap(),
            client_key: std::fs::read(&files.client_key).unwrap(),
        }),
        root_cert: Some(std::fs::read(&files.ca).unwrap()),
    };
    let url = format!("rediss://127.0.0.1:{port}");
    let Ok(client) = redis::Client::build_with_tls(url, certs) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    redis::cmd("PING").query::<String>(&mut conn).is_ok()
}

impl Drop for RedisTlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis Sentinel over TLS: a TLS-only primary, a replica replicating over
/// TLS and a sentinel with only a TLS port (`tls-replication yes`: it talks
/// TLS to the data nodes), client certificates not required; all killed on
/// drop.
pub struct TlsSentinelSet {
    _sentinel: Killed,
    _replica: Killed,
    _primary: Killed,
    sentinel_port: u16,
    /// The certificates (and the nodes' scratch directory).
    pub files: TlsFiles,
}

impl TlsSentinelSet {
    /// Starts everything and waits until the sentinel knows the replica.
    pub fn start() -> TlsSentinelSet {
        fsgate::tls::install_crypto_provider();
        let files = TlsFiles::generate();
        let dir = |name: &str| {
            let d = files.dir().join(name);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let (primary_dir, replica_dir, sentinel_dir) =
            (dir("primary"), dir("replica"), dir("sentinel"));
        let (primary, primary_port) = start_tls(&files, "redis-server", |port| {
            server_args(&files, &primary_dir, port, false)
        });
        let (replica, _) = start_tls(&files, "redis-server", |port| {
            let mut args = server_args(&files, &replica_dir, port, false);
            args.extend([
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary_port.to_string(),
            ]);
            args
        });
        let (sentinel, sentinel_port) = start_tls(&files, "redis-sentinel", |port| {
            let conf = sentinel_dir.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port 0\ntls-port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\n\
                     tls-replication yes\ntls-auth-clients no\n\
                     sentinel monitor mymaster 127.0.0.1 {primary_port} 1\n\
                     sentinel down-after-milliseconds mymaster 1000\n",
                    dir = sentinel_dir.display(),
                    cert = files.server_cert.display(),
                    key = files.server_key.display(),
                    ca = files.ca.display(),
                ),
            )
            .unwrap();
            vec![path(&conf)]
        });
        let set = TlsSentinelSet {
            _sentinel: Killed(sentinel),
            _replica: Killed(replica),
            _primary: Killed(primary),
            sentinel_port,
            files,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while set
            .sentinel_query(&["SENTINEL", "MASTER", "mymaster"])
            .and_then(|v| {
                let map: std::collections::HashMap<String, String> =
                    redis::from_redis_value(v).ok()?;
                map.get("num-slaves").cloned()
            })
            != Some("1".into())
        {
            assert!(
                Instant::now() < deadline,
                "the TLS sentinel never saw the replica"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        set
    }

    fn sentinel_query(&self, words: &[&str]) -> Option<redis::Value> {
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&self.files.ca).unwrap()),
        };
        let url = format!("rediss://127.0.0.1:{}", self.sentinel_port);
        let client = redis::Client::build_with_tls(url, certs).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        let mut cmd = redis::cmd(words[0]);
        for w in &words[1..] {
            cmd.arg(*w);
        }
        cmd.query(&mut conn).ok()
    }

    /// `rediss+sentinel://127.0.0.1:<sentinel>/mymaster`.
    pub fn url(&self) -> String {
        format!(
            "rediss+sentinel://127.0.0.1:{}/mymaster",
            self.sentinel_port
        )
    }

    /// Store options trusting the CA.
    pub fn options(&self) -> StoreOptions {
        let mut o = StoreOptions::from(self.url());
        o.ca_file = Some(self.files.ca.clone());
        o
    }
}
