//! A real Redis Sentinel deployment for tests: a primary, replicas in sync
//! with it, and `redis-sentinel`s monitoring it as `mymaster` (down after
//! 1 s), each on a free port, started and waited for (replication up, every
//! sentinel knowing the replicas and the other sentinels).
//!
//! Owns the child processes and their scratch directories, and kills and
//! removes them on drop (printing each sentinel's last log lines when a test
//! is failing). It never mocks Redis and never skips: when
//! `redis-sentinel` is missing it panics saying to install it
//! (`apt-get install redis-sentinel`; scripts/test.sh does).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::RedisServer;

/// The master name the sentinels monitor.
pub const MASTER: &str = "mymaster";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One command to the server on `port` (a fresh connection, short timeouts).
pub fn query(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
    conn.set_read_timeout(Some(Duration::from_millis(500)))?;
    cmd.query(&mut conn)
}

/// One field of `INFO <section>` of the server on `port`.
pub fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    let v = query(port, redis::cmd("INFO").arg(section)).ok()?;
    let text: String = redis::from_redis_value(v).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// Polls `check` every 20 ms until it is true, or panics after `within`.
pub fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `redis-sentinel`, killed on drop.
pub struct Sentinel {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Sentinel {
    /// Starts a sentinel monitoring the primary on `primary` with `quorum`.
    pub fn start(primary: u16, quorum: usize) -> Sentinel {
        let dir = std::env::temp_dir().join(format!("fsgate-sentinel-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for _ in 0..20 {
            let port = free_port();
            let conf = dir.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                     sentinel monitor {MASTER} 127.0.0.1 {primary} {quorum}\n\
                     sentinel down-after-milliseconds {MASTER} 2000\n\
                     sentinel failover-timeout {MASTER} 4000\n\
                     sentinel parallel-syncs {MASTER} 2\n",
                    dir = dir.display()
                ),
            )
            .unwrap();
            let mut child = match Command::new("redis-sentinel")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(child) => child,
                Err(e) => panic!(
                    "cannot run redis-sentinel ({e}): install it (apt-get install \
                     redis-sentinel; scripts/test.sh does); tests never skip"
                ),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: another one
                }
                if query(port, &redis::cmd("PING")).is_ok() {
                    return Sentinel { child, port, dir };
                }
                assert!(
                    Instant::now() < deadline,
                    "redis-sentinel on port {port} never answered PING"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start redis-sentinel on a free port after 20 tries");
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A field of what it says about the master (`SENTINEL MASTER`).
    pub fn master_field(&self, field: &str) -> Option<String> {
        let v = query(self.port, redis::cmd("SENTINEL").arg("MASTER").arg(MASTER)).ok()?;
        let map: HashMap<String, String> = redis::from_redis_value(v).ok()?;
        map.get(field).cloned()
    }
}

/// The primary's port the sentinel on `port` names.
pub fn named_primary(port: u16) -> Option<u16> {
    let v = query(
        port,
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER),
    )
    .ok()?;
    let addr: Option<(String, String)> = redis::from_redis_value(v).ok()?;
    addr.and_then(|(_, port)| port.parse().ok())
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // What the sentinel saw, for the failure at hand.
            let log = std::fs::read_to_string(self.dir.join("sentinel.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- redis-sentinel :{} (last lines) ---\n{}",
                self.port,
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A primary, its replicas and the sentinels watching them.
pub struct SentinelSet {
    /// The first primary (kill it for a failover).
    pub primary: RedisServer,
    /// Its replicas.
    pub replicas: Vec<RedisServer>,
    /// The sentinels.
    pub sentinels: Vec<Sentinel>,
}

impl SentinelSet {
    /// Starts `replicas` replicas and `sentinels` sentinels (failover quorum
    /// `quorum`), and waits until replication is up and every sentinel
    /// knows every replica and every other sentinel.
    pub fn start(replicas: usize, sentinels: usize, quorum: usize) -> SentinelSet {
        // Every node may become the primary: none waits for more replicas
        // before a full sync (5 s by default).
        const NO_DELAY: [&str; 2] = ["--repl-diskless-sync-delay", "0"];
        let primary = RedisServer::start_with(&NO_DELAY);
        let p = primary.port().to_string();
        let replicas: Vec<RedisServer> = (0..replicas)
            .map(|_| {
                RedisServer::start_with(&[NO_DELAY[0], NO_DELAY[1], "--replicaof", "127.0.0.1", &p])
            })
            .collect();
        for r in &replicas {
            wait_until("a replica in sync", Duration::from_secs(10), || {
                info_field(r.port(), "replication", "master_link_status").as_deref() == Some("up")
            });
        }
        let sentinels: Vec<Sentinel> = (0..sentinels)
            .map(|_| Sentinel::start(primary.port(), quorum))
            .collect();
        let (want_replicas, want_others) = (
            replicas.len().to_string(),
            (sentinels.len() - 1).to_string(),
        );
        for s in &sentinels {
            wait_until(
                "each sentinel knows the replicas and the other sentinels",
                Duration::from_secs(15),
                || {
                    s.master_field("num-slaves").as_deref() == Some(want_replicas.as_str())
                        && s.master_field("num-other-sentinels").as_deref()
                            == Some(want_others.as_str())
                },
            );
        }
        SentinelSet {
            primary,
            replicas,
            sentinels,
        }
    }

    /// `redis+sentinel://127.0.0.1:s1,…/mymaster`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// Blocks until a sentinel names a primary other than `old` and that
    /// node says it is a master; its port.
    pub fn wait_for_new_primary(&self, old: u16, within: Duration) -> u16 {
        let ports: Vec<u16> = self.sentinels.iter().map(|s| s.port).collect();
        let mut new = None;
        wait_until("the sentinels name a new primary", within, || {
            new = ports
                .iter()
                .find_map(|s| named_primary(*s).filter(|p| *p != old));
            new.is_some_and(|p| info_field(p, "replication", "role").as_deref() == Some("master"))
        });
        new.unwrap()
    }
}
