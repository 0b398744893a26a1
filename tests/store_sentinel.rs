//! The store on Redis Sentinel through a failover, end to end: a real
//! primary, two replicas and three `redis-sentinel`s (quorum 2, down after
//! 1 s) on free ports; the real `fsgate serve` binary on
//! `redis+sentinel://…/mymaster` (with `replica_acks = 1`: every write is
//! followed by `WAIT 1`), a simulator node and a webhook receiver; load —
//! masked-number sessions created and completed continuously over the REST
//! API, each completion emitting `session.completed` — while the primary is
//! killed with SIGKILL. The test waits for the sentinels to name a new
//! primary (polling them, not sleeping), keeps the load on, then checks:
//! every session the API acknowledged (201) is there with its state; no
//! masked number is held by two open sessions; every completion the API
//! acknowledged has its webhook, with one event id per completion
//! (redeliveries of one id are counted apart); requests during the failover
//! were answered 503 (never 500) and succeeded on retry. It prints the
//! figures (sessions, events, redeliveries, 503s, failover time).
//!
//! Besides, on a smaller deployment: scripts load through the `WAIT`
//! pipeline (NOSCRIPT after `SCRIPT FLUSH`), a server error is the command's
//! answer, and a write whose replica is gone is refused as unavailable once
//! the `WAIT` times out (done on the primary, not acknowledged).
//!
//! Needs `redis-sentinel` on PATH (Debian: `apt-get install redis-sentinel`;
//! scripts/test.sh installs it): without it the test fails saying so. Never
//! mocks Redis.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fsgate::config::{Config, NodeConfig};
use fsgate::sim::{self, SimConfig, SimHandle};
use serde_json::{json, Value};
use support::receiver::Receiver;
use support::sentinel::{named_primary, query, wait_until, SentinelSet};
use support::stack::{tenant, SECRET};

const WORKERS: usize = 6;
const POOL: usize = 200;
/// Sessions left open (the rest are completed), at most.
const KEEP_OPEN: usize = 60;

// --- the daemon ------------------------------------------------------------------------

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A running `fsgate serve`; SIGKILLed on drop.
struct Daemon {
    child: Child,
    base: String,
    _config: TempFile,
    log: PathBuf,
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The log stays for a failing test (its path is in the message).
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl Daemon {
    async fn spawn(config: &Config) -> Daemon {
        let problems = fsgate::config::validate(config);
        assert!(problems.is_empty(), "test config invalid: {problems:?}");
        let id = uuid::Uuid::new_v4();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join(format!("sentinel-{id}.toml"));
        std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
        let log = dir.join(format!("sentinel-{id}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_fsgate"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("FSGATE_LOG", "info,fsgate::http=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            base: format!("http://{}", config.http.listen),
            _config: TempFile(path),
            log,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", d.base)).send().await {
                if r.status().is_success() {
                    return d;
                }
            }
            assert!(
                Instant::now() < deadline,
                "fsgate serve never became ready; log: {}",
                d.log.display()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn simulator() -> SimHandle {
    let mut cfg = SimConfig::ephemeral();
    cfg.dialplan_dir =
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim-dialplan").into());
    sim::start(cfg).await.unwrap()
}

// --- the load ---------------------------------------------------------------------------

/// What the load saw.
#[derive(Default)]
struct Tally {
    /// Every session acknowledged with 201: ref → (masked number, completed
    /// with 200).
    sessions: HashMap<String, (String, bool)>,
    /// 503 answers, by error code.
    unavailable: HashMap<String, usize>,
    /// Operations that got at least one 503 and then succeeded.
    retried_ok: usize,
    /// Anything else that was not a success (status, body).
    unexpected: Vec<(u16, String)>,
}

struct Load {
    http: reqwest::Client,
    base: String,
    stop: AtomicBool,
    killed_at: OnceLock<Instant>,
    /// The first success of a request sent after the kill.
    first_after_kill: Mutex<Option<Instant>>,
    kept_open: AtomicUsize,
    tally: Mutex<Tally>,
}

impl Load {
    /// Sends `body` to `path` until it answers `ok`; 503s (and 409
    /// pool_exhausted) are retried. Returns the body.
    async fn until_ok(&self, path: &str, body: &Value, ok: u16) -> Value {
        let mut saw_503 = false;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < deadline,
                "POST {path} did not succeed within 30 s"
            );
            let sent = Instant::now();
            let r = self
                .http
                .post(format!("{}{path}", self.base))
                .header("X-API-Key", "acme-key")
                .json(body)
                .send()
                .await;
            let (status, v) = match r {
                Ok(r) => {
                    let status = r.status().as_u16();
                    (status, r.json::<Value>().await.unwrap_or(Value::Null))
                }
                Err(e) => {
                    self.tally
                        .lock()
                        .unwrap()
                        .unexpected
                        .push((0, format!("POST {path}: {e}")));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if status == ok {
                if let Some(killed) = self.killed_at.get() {
                    if sent > *killed {
                        let mut first = self.first_after_kill.lock().unwrap();
                        let at = Instant::now();
                        if first.is_none_or(|f| at < f) {
                            *first = Some(at);
                        }
                    }
                }
                if saw_503 {
                    self.tally.lock().unwrap().retried_ok += 1;
                }
                return v;
            }
            let code = v["error"]["code"].as_str().unwrap_or_default().to_owned();
            match (status, code.as_str()) {
                (503, _) => {
                    saw_503 = true;
                    *self
                        .tally
                        .lock()
                        .unwrap()
                        .unavailable
                        .entry(code)
                        .or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (409, "pool_exhausted") => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => {
                    self.tally
                        .lock()
                        .unwrap()
                        .unexpected
                        .push((status, v.to_string()));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// One worker: create a session, complete it (or leave some open), again.
    async fn worker(self: Arc<Self>, w: usize) {
        let mut n = 0usize;
        while !self.stop.load(Ordering::Relaxed) {
            n += 1;
            let body = json!({
                "party_a": format!("+1555777{w:02}01"),
                "party_b": format!("+1555777{w:02}02"),
                "metadata": {"worker": w, "n": n},
            });
            let s = self.until_ok("/v1/sessions", &body, 201).await;
            let sref = s["ref"].as_str().unwrap().to_owned();
            let number = s["masked_number"].as_str().unwrap().to_owned();
            self.tally
                .lock()
                .unwrap()
                .sessions
                .insert(sref.clone(), (number, false));
            let keep =
                n.is_multiple_of(5) && self.kept_open.fetch_add(1, Ordering::Relaxed) < KEEP_OPEN;
            if keep {
                continue;
            }
            let done = self
                .until_ok(&format!("/v1/sessions/{sref}/complete"), &json!({}), 200)
                .await;
            assert_eq!(done["state"], "completed", "{done}");
            self.tally
                .lock()
                .unwrap()
                .sessions
                .get_mut(&sref)
                .unwrap()
                .1 = true;
        }
    }
}

// --- the test -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_under_load_fails_over_without_losing_an_acknowledged_write() {
    let started = Instant::now();
    // The topology: a primary, two replicas in sync, three sentinels that
    // know all of them and each other (quorum 2).
    let mut set = tokio::task::block_in_place(|| SentinelSet::start(2, 3, 2));
    let topology_ready = started.elapsed();

    // The daemon on the sentinels.
    let sim = simulator().await;
    let hooks = Receiver::start().await;
    let mut config = Config::default();
    config.http.listen = format!("127.0.0.1:{}", free_port());
    config.store.url = set.url();
    config.store.replica_acks = 1;
    config.store.replica_ack_timeout_ms = 1000;
    config.freeswitch = vec![NodeConfig {
        name: "fs1".into(),
        address: sim.esl_addr().to_string(),
        password: "ClueCon".into(),
    }];
    config.tenants = vec![tenant("acme", "155501", POOL, &hooks)];
    // A short request timeout: a delivery whose settle failed in the
    // failover comes back after its lease (the timeout + 10 s).
    config.webhooks.timeout_ms = 1000;
    config.shutdown.drain_timeout_ms = 2000;
    let daemon = Daemon::spawn(&config).await;

    let load = Arc::new(Load {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        base: daemon.base.clone(),
        stop: AtomicBool::new(false),
        killed_at: OnceLock::new(),
        first_after_kill: Mutex::new(None),
        kept_open: AtomicUsize::new(0),
        tally: Mutex::new(Tally::default()),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(Arc::clone(&load).worker(w)))
        .collect();

    // Load on the first primary, then SIGKILL it.
    let before = Instant::now();
    while load.tally.lock().unwrap().sessions.len() < 100 {
        assert!(
            before.elapsed() < Duration::from_secs(15),
            "the load never got going; log: {}",
            daemon.log.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old = set.primary.port();
    let sessions_before_kill = load.tally.lock().unwrap().sessions.len();
    load.killed_at.set(Instant::now()).unwrap();
    let killed = *load.killed_at.get().unwrap();
    set.primary.stop(); // SIGKILL

    // A replica is promoted: the sentinels name another primary, and it
    // says it is one.
    let new_primary =
        tokio::task::block_in_place(|| set.wait_for_new_primary(old, Duration::from_secs(20)));
    let promoted_at = Instant::now();

    // The load goes on through the new primary for a while.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let first = *load.first_after_kill.lock().unwrap();
        if let Some(first) = first {
            if first.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no write succeeded through the new primary; log: {}",
            daemon.log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let first_write = load.first_after_kill.lock().unwrap().unwrap();
    let tally = std::mem::take(&mut *load.tally.lock().unwrap());

    // Nothing but successes and 503s.
    assert!(
        tally.unexpected.is_empty(),
        "answers other than success or 503: {:?}; log: {}",
        tally.unexpected,
        daemon.log.display()
    );
    let unavailable: usize = tally.unavailable.values().sum();
    assert!(
        unavailable > 0,
        "no request met the failover (expected 503s while no primary was known)"
    );
    assert!(tally.retried_ok > 0);

    // Every acknowledged session is there with its state.
    let http = reqwest::Client::new();
    // (A read answered 503 is retried: the sentinels may fail over again.)
    let reads_503 = Arc::new(AtomicUsize::new(0));
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", daemon.base);
        let reads_503 = Arc::clone(&reads_503);
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let r = http
                    .get(&url)
                    .header("X-API-Key", "acme-key")
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body = r.json::<Value>().await.unwrap();
                if status != 503 || Instant::now() > deadline {
                    return (status, body);
                }
                reads_503.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    for (sref, (number, completed)) in &tally.sessions {
        let (status, s) = get(format!("/v1/sessions/{sref}")).await;
        assert_eq!(
            status, 200,
            "acknowledged session {sref} lost in the failover: {s}"
        );
        assert_eq!(s["masked_number"], number.as_str(), "{s}");
        let want = if *completed { "completed" } else { "open" };
        assert_eq!(s["state"], want, "{sref}: {s}");
    }

    // No masked number is held by two open sessions (those the load left
    // open, and any whose create was applied but answered 503).
    let mut open: Vec<Value> = Vec::new();
    for state in ["open", "active"] {
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/sessions?state={state}&limit=200");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = get(path).await;
            assert_eq!(status, 200, "{page}");
            open.extend(page["sessions"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
    }
    let mut holders: HashMap<&str, Vec<&str>> = HashMap::new();
    for s in &open {
        holders
            .entry(s["masked_number"].as_str().unwrap())
            .or_default()
            .push(s["ref"].as_str().unwrap());
    }
    let shared: Vec<_> = holders.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(shared.is_empty(), "numbers held twice: {shared:?}");
    let open_refs: HashSet<&str> = open.iter().map(|s| s["ref"].as_str().unwrap()).collect();
    let left_open = tally.sessions.values().filter(|(_, c)| !c).count();
    let orphans = open_refs.len() - left_open;

    // Every acknowledged completion has its session.completed webhook, one
    // event id each.
    let completed: HashSet<&str> = tally
        .sessions
        .iter()
        .filter(|(_, (_, c))| *c)
        .map(|(r, _)| r.as_str())
        .collect();
    let webhooks_from = Instant::now();
    let deadline = webhooks_from + Duration::from_secs(30);
    loop {
        let got: HashSet<String> = hooks
            .of_type("session.completed")
            .iter()
            .filter_map(|d| d.data()["ref"].as_str().map(str::to_owned))
            .collect();
        let missing: Vec<&&str> = completed.iter().filter(|r| !got.contains(**r)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged completions have no webhook (e.g. {:?}); log: {}",
            missing.len(),
            completed.len(),
            missing.iter().take(5).collect::<Vec<_>>(),
            daemon.log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let webhooks_wait = webhooks_from.elapsed();
    // Deliveries whose settle failed in the failover are delivered again
    // after their lease: wait until none is outstanding (no lease, no retry
    // left in the primary), so that every redelivery is counted.
    let sentinel_ports: Vec<u16> = set.sentinels.iter().map(|s| s.port()).collect();
    let primary_now = move || {
        sentinel_ports
            .iter()
            .find_map(|p| named_primary(*p))
            .unwrap_or(new_primary)
    };
    let settled = primary_now.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(
            "every webhook delivery settled",
            Duration::from_secs(30),
            || {
                let primary = settled();
                let zcard = |key: &str| {
                    query(primary, redis::cmd("ZCARD").arg(key))
                        .ok()
                        .and_then(|v| redis::from_redis_value::<u64>(v).ok())
                };
                zcard("fsgate:{t:acme}:wh:leases") == Some(0)
                    && zcard("fsgate:{t:acme}:wh:retry") == Some(0)
            },
        )
    })
    .await
    .unwrap();
    let settled_after_kill = killed.elapsed();
    let final_primary = primary_now();
    let mut ids_per_ref: HashMap<String, HashSet<String>> = HashMap::new();
    let mut deliveries_per_id: HashMap<String, usize> = HashMap::new();
    for d in hooks.of_type("session.completed") {
        d.assert_signed(SECRET);
        let id = d.header("webhook-id").to_owned();
        *deliveries_per_id.entry(id.clone()).or_default() += 1;
        ids_per_ref
            .entry(d.data()["ref"].as_str().unwrap().to_owned())
            .or_default()
            .insert(id);
    }
    for (sref, ids) in &ids_per_ref {
        assert!(
            completed.contains(sref.as_str()),
            "a session.completed for {sref}, which was not completed"
        );
        assert_eq!(ids.len(), 1, "{sref} completed once, emitted as {ids:?}");
    }
    let events = deliveries_per_id.len();
    let redeliveries: usize = deliveries_per_id.values().map(|n| n - 1).sum();

    let ms = |d: Duration| d.as_millis();
    println!(
        "sentinel failover: {} sessions acknowledged ({} before the kill; {} completed, {} left \
         open, {} unacknowledged creates found open), {} session.completed events ({} \
         redeliveries of one webhook-id), {} answers 503 {:?} ({} operations retried to \
         success), 0 other failures; primary :{} killed -> sentinels name :{} after {} ms -> \
         first successful write through the daemon after {} ms; webhooks all in {} ms after \
         the load, every delivery settled {} ms after the kill; {} reads answered 503 after \
         the load{}; topology up in {} ms, whole test {} ms",
        tally.sessions.len(),
        sessions_before_kill,
        completed.len(),
        left_open,
        orphans,
        events,
        redeliveries,
        unavailable,
        tally.unavailable,
        tally.retried_ok,
        old,
        new_primary,
        ms(promoted_at - killed),
        ms(first_write - killed),
        ms(webhooks_wait),
        ms(settled_after_kill),
        reads_503.load(Ordering::Relaxed),
        if final_primary == new_primary {
            String::new()
        } else {
            format!(" (the sentinels then failed over again, to :{final_primary})")
        },
        ms(topology_ready),
        ms(started.elapsed()),
    );
    drop(daemon);
    drop(set);
}

// --- scripts, errors and acknowledgements through WAIT ------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_errors_and_a_missing_replica_through_wait() {
    use chrono::Utc;
    use fsgate::store::{CompletionReason, NewSession, StoreError, StoreOptions};

    let mut set = tokio::task::block_in_place(|| SentinelSet::start(1, 1, 1));
    // Acknowledgements waited for long enough to come under any load; and
    // a store that gives up on them soon, for the replica gone.
    let store_with = |timeout_ms: u64| {
        let mut options = StoreOptions::from(set.url());
        options.replica_acks = 1;
        options.replica_ack_timeout = Duration::from_millis(timeout_ms);
        fsgate::store::open(options)
    };
    let store = store_with(10_000).await.unwrap();
    let impatient = store_with(300).await.unwrap();
    let numbers: Vec<String> = (1..=3).map(|i| format!("+155501000{i:02}")).collect();
    assert!(store.sync_pool("acme", &numbers).await.unwrap());
    // Answered once the replica has it (WAIT 1): it is there already.
    let on_replica = query(
        set.replicas[0].port(),
        redis::cmd("SCARD").arg("fsgate:{t:acme}:pool"),
    )
    .unwrap();
    assert_eq!(redis::from_redis_value::<u64>(on_replica).unwrap(), 3);

    // Scripts are loaded again (NOSCRIPT, then SCRIPT LOAD) through WAIT.
    query(set.primary.port(), redis::cmd("SCRIPT").arg("FLUSH")).unwrap();
    let now = Utc::now();
    let new = |r: &str| NewSession {
        tenant: "acme".into(),
        session_ref: r.into(),
        party_a: "+15557770001".into(),
        party_b: "+15557770002".into(),
        ttl_minutes: 10,
        metadata: None,
        created_at: now,
        expires_at: now + chrono::Duration::minutes(10),
    };
    let created = store.create_session(new("ses_a")).await.unwrap();
    assert_eq!(created.session_ref, "ses_a");

    // A server error is the command's answer (WRONGTYPE: corrupt data).
    query(
        set.primary.port(),
        redis::cmd("SET").arg("fsgate:{t:acme}:ses:ses_x").arg("x"),
    )
    .unwrap();
    let wrong = store.get_session("acme", "ses_x").await;
    assert!(matches!(wrong, Err(StoreError::Corrupt(_))), "{wrong:?}");

    // The replica gone: whatever ran on the primary is refused as
    // unavailable once WAIT gives up (a failover could lose it); the
    // caller's retry would be told the same until a replica is back.
    set.replicas[0].stop();
    let refused = impatient
        .complete_session("acme", "ses_a", CompletionReason::Closed, now, None)
        .await;
    match refused {
        Err(StoreError::Unavailable(why)) => {
            assert!(why.contains("replicas confirmed"), "{why}")
        }
        other => panic!("a write no replica has must not be acknowledged: {other:?}"),
    }
}
