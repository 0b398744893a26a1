//! Masked sessions over HTTP with the Redis store: route lookups (the
//! dialplan's hot path) next to `/healthz` on the same server in the same
//! run, and session creates with 64 concurrent clients.
//!
//! One process: a fresh `redis-server` on a free port, the platform HTTP
//! layer with the masking routes on its own 2-thread runtime (as `fsgate
//! serve` runs), and a load generator (reqwest, keep-alive connections) on a
//! separate 1-thread runtime. All three share the machine's cores, so the
//! figures are a floor for a daemon on its own box.
//!
//! Two servers run side by side on the same runtime: one on Redis (the
//! subject), one on the memory store (a reference: the same HTTP and domain
//! work without Redis round trips).
//!
//! Stages:
//! 0. in process, no HTTP: `Masking::route` 32 at a time, each store;
//! 1. closed loop, 32 concurrent clients, 5 s each: `/healthz`, then lookups
//!    (throughput and latency; the lookup's share of the healthz rate);
//! 2. open loop at a fixed 2,000 req/s for 10 s: lookups, then `/healthz`
//!    (latency percentiles measured from each request's send time);
//! 3. creates on Redis: 64 clients POST /v1/sessions until 30,000 are
//!    created on a 60,000-number pool; every allocated number must be
//!    distinct.
//!
//! Lookups: 100 live sessions; each request asks for a random one, as its
//! party A, with one of 8 call UUIDs per session (8 calls "in progress" per
//! session, re-asked; a real call hangs up, so the session's call list
//! stays short). Each lookup is what the dialplan triggers: number → session
//! (one Lua script), then the call binding and the session's call start in
//! parallel (one script each): two sequential round trips, three commands.
//!
//! Run: `cargo bench --bench masking` (needs `redis-server` on PATH).
//! `MASKING_BENCH_SECS=2` shortens every stage. Figures are in BENCHMARKS.md.

#[path = "../tests/support/redis.rs"]
#[allow(dead_code)]
mod redis_server;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fsgate::clock::SystemClock;
use fsgate::config;
use fsgate::http::{self, AppState};
use fsgate::masking::model::CreateSessionRequest;
use fsgate::masking::{self, Masking};
use fsgate::store::memory::MemoryStore;
use fsgate::store::Store;
use fsgate::switch::Switch;
use fsgate::webhooks::Outbox;
use rand::Rng;

const TOKEN: &str = "bench-token";
const KEY: &str = "bench-key";
const SESSIONS: usize = 100;
const CALLS_PER_SESSION: usize = 8;
const BULK_POOL: usize = 60_000;
const CREATES: usize = 30_000;

fn secs(default: u64) -> Duration {
    let s = std::env::var("MASKING_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(s.min(default).max(1))
}

fn config_text(listen: &str) -> String {
    let lookup_pool: Vec<String> = (0..SESSIONS)
        .map(|i| format!("\"+1555010{i:04}\""))
        .collect();
    let bulk_pool: Vec<String> = (0..BULK_POOL).map(|i| format!("\"+1666{i:07}\"")).collect();
    format!(
        r#"
[http]
listen = "{listen}"
dialplan_token = "{TOKEN}"

[[freeswitch]]          # not connected: lookups and creates never touch ESL
name = "fs1"
address = "127.0.0.1:9"

[[tenants]]
id = "acme"
api_keys_sha256 = ["{key}"]
masked_numbers = [{lookup}]

[[tenants]]
id = "bulk"
api_keys_sha256 = ["{bulk_key}"]
masked_numbers = [{bulk}]
"#,
        key = fsgate::tenants::hash_key(KEY),
        bulk_key = fsgate::tenants::hash_key("bulk-key"),
        lookup = lookup_pool.join(","),
        bulk = bulk_pool.join(","),
    )
}

struct Stats {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Stats {
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1].as_secs_f64() * 1000.0
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<28} {:>9.0} req/s  p50 {:>6.3} ms  p99 {:>6.3} ms  p99.9 {:>6.3} ms  max {:>7.3} ms  n={} errors={}",
            self.rate(),
            self.pct(0.50),
            self.pct(0.99),
            self.pct(0.999),
            self.latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            self.latencies.len(),
            self.errors
        )
    }
}

fn finish(mut latencies: Vec<Duration>, errors: usize, elapsed: Duration) -> Stats {
    latencies.sort_unstable();
    Stats {
        latencies,
        errors,
        elapsed,
    }
}

type MakeReq = Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;

async fn closed_loop(
    client: &reqwest::Client,
    make: MakeReq,
    workers: usize,
    d: Duration,
) -> Stats {
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let client = client.clone();
            let make = make.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                while start.elapsed() < d {
                    let t = Instant::now();
                    match make(&client).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            lat.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    finish(all, errors, start.elapsed())
}

async fn open_loop(client: &reqwest::Client, make: MakeReq, rate: f64, d: Duration) -> Stats {
    let start = Instant::now();
    let n = (rate * d.as_secs_f64()) as usize;
    let every = Duration::from_secs_f64(1.0 / rate);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..n {
        tokio::time::sleep_until((start + every * i as u32).into()).await;
        let req = make(client);
        let tx = tx.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let ok = match req.send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            let _ = tx.send(ok.then(|| t.elapsed()));
        });
    }
    drop(tx);
    let mut lat = Vec::with_capacity(n);
    let mut errors = 0;
    while let Some(r) = rx.recv().await {
        match r {
            Some(l) => lat.push(l),
            None => errors += 1,
        }
    }
    finish(lat, errors, start.elapsed())
}

/// One daemon's HTTP layer with the masking routes on `store`, and the
/// lookup tenant's 100 sessions as `(masked digits, party A digits)`.
struct Server {
    base: String,
    masking: Arc<Masking>,
    sessions: Arc<Vec<(String, String)>>,
    /// The call UUIDs each session is asked with.
    uuids: Arc<Vec<Vec<String>>>,
}

fn start_server(rt: &tokio::runtime::Runtime, store: Arc<dyn Store>) -> Server {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = config::load_str(&config_text(&addr.to_string()), "bench.toml", Vec::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let state = AppState::new(
            config,
            store.clone(),
            Arc::new(Vec::<(String, fsgate::esl::node::NodeState)>::new()),
            Arc::new(SystemClock),
            fsgate::telemetry::metrics(),
        );
        let outbox = Outbox::new(
            store.clone(),
            Arc::new(SystemClock),
            Duration::from_secs(3600),
        );
        let masking = Arc::new(Masking::new(
            store,
            Arc::new(SystemClock),
            state.tenants.clone(),
            Switch::new(Vec::new()),
            Arc::new(outbox),
        ));
        masking.sync_pools().await.unwrap();
        let mut sessions = Vec::new();
        for i in 0..SESSIONS {
            let s = masking
                .create(
                    "acme",
                    CreateSessionRequest {
                        party_a: format!("+1555777{i:04}"),
                        party_b: format!("+1555888{i:04}"),
                        ttl_minutes: Some(240),
                        metadata: None,
                    },
                )
                .await
                .unwrap();
            sessions.push((
                s.masked_number.trim_start_matches('+').to_owned(),
                s.party_a.trim_start_matches('+').to_owned(),
            ));
        }
        let router = http::router(state, vec![masking::routes(masking.clone())]);
        tokio::spawn(http::serve(listener, router, std::future::pending()));
        Server {
            base: format!("http://{addr}"),
            masking,
            sessions: Arc::new(sessions),
            uuids: Arc::new(
                (0..SESSIONS)
                    .map(|_| {
                        (0..CALLS_PER_SESSION)
                            .map(|_| uuid::Uuid::new_v4().to_string())
                            .collect()
                    })
                    .collect(),
            ),
        }
    })
}

/// Random lookups against `server`'s sessions (party A calling).
fn lookups(server: &Server) -> MakeReq {
    let uuids = server.uuids.clone();
    let base = server.base.clone();
    let sessions = server.sessions.clone();
    Arc::new(move |c: &reqwest::Client| {
        let mut rng = rand::thread_rng();
        let i = rng.gen_range(0..SESSIONS);
        let (masked, caller) = &sessions[i];
        let uuid = &uuids[i][rng.gen_range(0..CALLS_PER_SESSION)];
        c.get(format!(
            "{base}/v1/dialplan/route?masked={masked}&caller={caller}&uuid={uuid}&token={TOKEN}"
        ))
    })
}

/// `Masking::route` in process (no HTTP), 32 at a time on the server
/// runtime: the domain and store cost alone.
fn direct_routes(rt: &tokio::runtime::Runtime, server: &Server, d: Duration) -> Stats {
    let m = server.masking.clone();
    let ses = server.sessions.clone();
    let uuids = server.uuids.clone();
    rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..32)
            .map(|w| {
                let m = m.clone();
                let ses = ses.clone();
                let uuids = uuids.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut i = w;
                    while start.elapsed() < d {
                        let (masked, caller) = &ses[i % SESSIONS];
                        let uuid = &uuids[i % SESSIONS][w % CALLS_PER_SESSION];
                        i += 7;
                        let t = Instant::now();
                        m.route(masked, caller, uuid).await.unwrap();
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        finish(all, 0, start.elapsed())
    })
}

fn main() {
    let redis_server = redis_server::RedisServer::start();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis_store = server_rt
        .block_on(fsgate::store::open(&redis_server.url()))
        .unwrap();
    let t = Instant::now();
    let redis = start_server(&server_rt, redis_store);
    eprintln!(
        "redis server ready ({} pool numbers synced, {} sessions) in {:?}",
        SESSIONS + BULK_POOL,
        SESSIONS,
        t.elapsed()
    );
    let memory = start_server(&server_rt, Arc::new(MemoryStore::new()));

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let lookup = lookups(&redis);
    let lookup_memory = lookups(&memory);
    let healthz: MakeReq = {
        let base = redis.base.clone();
        Arc::new(move |c: &reqwest::Client| c.get(format!("{base}/healthz")))
    };

    if std::env::var("MASKING_BENCH_ONLY").as_deref() == Ok("lookup") {
        // For profiling: only the closed-loop lookups.
        client_rt.block_on(async {
            let l = closed_loop(&client, lookup.clone(), 32, secs(10)).await;
            println!("{}", l.line("/v1/dialplan/route"));
        });
        // Redis's own view: calls and microseconds per command.
        let out = std::process::Command::new("redis-cli")
            .args([
                "-p",
                &redis_server.port().to_string(),
                "INFO",
                "commandstats",
            ])
            .output();
        if let Ok(out) = out {
            println!("{}", String::from_utf8_lossy(&out.stdout));
        }
        return;
    }

    client_rt.block_on(async {
        // Sanity: a lookup bridges.
        let r = lookup(&client).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body = r.text().await.unwrap();
        assert!(
            body.contains("sofia/gateway/") && !body.contains("${"),
            "{body}"
        );
        closed_loop(&client, lookup.clone(), 32, Duration::from_secs(1)).await; // warm-up
    });

    println!("# fsgate masking benchmark (see benches/masking.rs)");
    let dr = direct_routes(&server_rt, &redis, secs(3));
    let dm = direct_routes(&server_rt, &memory, secs(3));
    println!("## in process, 32 concurrent, no HTTP");
    println!("{}", dr.line("Masking::route (redis)"));
    println!("{}", dm.line("Masking::route (memory)"));

    client_rt.block_on(async {
        let h = closed_loop(&client, healthz.clone(), 32, secs(5)).await;
        let l = closed_loop(&client, lookup.clone(), 32, secs(5)).await;
        let m = closed_loop(&client, lookup_memory.clone(), 32, secs(5)).await;
        println!("## closed loop, 32 clients");
        println!("{}", h.line("/healthz"));
        println!("{}", l.line("route lookup (redis)"));
        println!("{}", m.line("route lookup (memory)"));
        println!(
            "lookup / healthz throughput: redis {:.0} %, memory {:.0} %",
            100.0 * l.rate() / h.rate(),
            100.0 * m.rate() / h.rate()
        );

        let lo = open_loop(&client, lookup.clone(), 2000.0, secs(10)).await;
        let ho = open_loop(&client, healthz.clone(), 2000.0, secs(10)).await;
        let mo = open_loop(&client, lookup_memory.clone(), 2000.0, secs(10)).await;
        println!("## open loop, 2,000 req/s");
        println!("{}", lo.line("route lookup (redis)"));
        println!("{}", ho.line("/healthz"));
        println!("{}", mo.line("route lookup (memory)"));

        // Creates on Redis.
        let created = Arc::new(std::sync::Mutex::new(Vec::with_capacity(CREATES)));
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let client = client.clone();
                let base = redis.base.clone();
                let created = created.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut errors = 0;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= CREATES {
                            break;
                        }
                        let t = Instant::now();
                        let r = client
                            .post(format!("{base}/v1/sessions"))
                            .header("X-API-Key", "bulk-key")
                            .json(&serde_json::json!({
                                "party_a": format!("+1777{i:07}"),
                                "party_b": "+15559990000",
                                "ttl_minutes": 240,
                            }))
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status().as_u16() == 201 => {
                                let v: serde_json::Value = r.json().await.unwrap();
                                lat.push(t.elapsed());
                                created
                                    .lock()
                                    .unwrap()
                                    .push(v["masked_number"].as_str().unwrap().to_owned());
                            }
                            _ => errors += 1,
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        let mut lat = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.unwrap();
            lat.extend(l);
            errors += e;
        }
        let c = finish(lat, errors, start.elapsed());
        let numbers = created.lock().unwrap();
        let distinct: HashSet<&String> = numbers.iter().collect();
        println!("## creates, 64 clients (redis)");
        println!("{}", c.line("POST /v1/sessions"));
        println!(
            "created {} sessions, {} distinct masked numbers, {} double allocations",
            numbers.len(),
            distinct.len(),
            numbers.len() - distinct.len()
        );
        assert_eq!(
            numbers.len(),
            distinct.len(),
            "a number was allocated twice"
        );
    });
    drop(server_rt);
}
