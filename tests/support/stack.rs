//! The whole product in one test: the simulator running the shipped
//! `dialplan/` (its `fsgate_url` pointing at the daemon), the real daemon,
//! a webhook receiver, and optionally a real redis-server.
//!
//! Two tenants are provisioned: `acme` (key `acme-key`, masked pool
//! +15550100001…, control number +15550109000) and `globex` (key
//! `globex-key`, masked pool +15550200001…, control number +15550209000).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fsgate::clock::{SharedClock, SystemClock};
use fsgate::config::{Config, NodeConfig, TenantConfig};
use fsgate::daemon::{Daemon, Options};
use fsgate::sim::{self, SimConfig, SimHandle};
use serde_json::Value;

use super::receiver::Receiver;
use super::redis::RedisServer;

/// The webhook secret of both tenants (base64 of 32 bytes).
pub const SECRET: &str = "whsec_3DV+tirdfT2lasv8aL7/xg/ygNuz1ngwcNXEHC9/x34=";

/// A last change to the configuration.
pub type Tweak = Box<dyn FnOnce(&mut Config) + Send>;

/// How to build a stack.
pub struct StackOptions {
    /// Use a real redis-server instead of the memory store.
    pub redis: bool,
    /// Extra redis-server arguments (e.g. append-only persistence).
    pub redis_args: Vec<&'static str>,
    /// Masked numbers per tenant.
    pub pool: usize,
    /// The daemon's clock.
    pub clock: SharedClock,
    /// Last changes to the configuration.
    pub tweak: Option<Tweak>,
    /// The simulator's dialplan directory (default: the shipped `dialplan/`).
    pub dialplan: Option<std::path::PathBuf>,
    /// Serve https: the daemon with this certificate, the simulator's
    /// `fsgate_url` on `https://localhost`, the tests' client trusting the CA.
    pub tls: Option<StackTls>,
}

/// The https of a stack.
pub struct StackTls {
    /// The daemon's certificate (for `localhost`) and key.
    pub cert_file: std::path::PathBuf,
    /// Its key.
    pub key_file: std::path::PathBuf,
    /// The CA the tests' HTTP client trusts.
    pub ca_file: std::path::PathBuf,
    /// The simulator's `certs_dir` (where `secure` looks for `cacert.pem`).
    pub certs_dir: std::path::PathBuf,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            redis: false,
            redis_args: Vec::new(),
            pool: 4,
            clock: Arc::new(SystemClock),
            tweak: None,
            dialplan: None,
            tls: None,
        }
    }
}

/// A running product.
pub struct Stack {
    /// The FreeSWITCH simulator.
    pub sim: SimHandle,
    /// The daemon (an Option so tests can stop or kill it).
    pub daemon: Option<Daemon>,
    /// Receives every tenant's webhooks.
    pub receiver: Receiver,
    /// The redis-server, when asked for.
    pub redis: Option<RedisServer>,
    /// The configuration the daemon runs with.
    pub config: Config,
    /// `http://addr` of the daemon.
    pub base: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    clock: SharedClock,
}

/// Tenant `id` with key `<id>-key`, `pool` masked numbers `+<prefix>00001`…,
/// control number `+<prefix>09000`, webhooks to `receiver`, the `carrier` trunk.
pub fn tenant(id: &str, prefix: &str, pool: usize, receiver: &Receiver) -> TenantConfig {
    let mut t: TenantConfig = serde_json::from_value(serde_json::json!({ "id": id })).unwrap();
    t.api_keys_sha256 = vec![fsgate::tenants::hash_key(&format!("{id}-key"))];
    t.masked_numbers = (1..=pool).map(|i| format!("+{prefix}{i:05}")).collect();
    t.control_numbers = vec![format!("+{prefix}09000")];
    t.webhook_url = Some(receiver.url());
    t.webhook_secret = Some(SECRET.to_owned());
    t.trunk = "carrier".into();
    t.dial_string = "sofia/gateway/${trunk}/${number}".into();
    t
}

impl Stack {
    /// Starts everything.
    pub async fn start(options: StackOptions) -> Stack {
        let receiver = Receiver::start().await;
        let redis = options
            .redis
            .then(|| RedisServer::start_with(&options.redis_args));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();

        let mut sim_cfg = SimConfig::ephemeral();
        sim_cfg.dialplan_dir = Some(
            options
                .dialplan
                .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/dialplan").into()),
        );
        let base = match &options.tls {
            None => format!("http://{addr}"),
            Some(_) => format!("https://localhost:{}", addr.port()),
        };
        sim_cfg.globals = vec![("fsgate_url".into(), base.clone())];
        if let Some(tls) = &options.tls {
            sim_cfg
                .globals
                .push(("certs_dir".into(), tls.certs_dir.display().to_string()));
        }
        sim_cfg.heartbeat_interval = Duration::from_secs(2);
        let sim = sim::start(sim_cfg).await.unwrap();

        let mut config = Config::default();
        config.http.listen = addr.to_string();
        config.store.url = redis.as_ref().map_or("memory://".to_owned(), |r| r.url());
        config.freeswitch = vec![NodeConfig {
            name: "fs1".into(),
            address: sim.esl_addr().to_string(),
            password: "ClueCon".into(),
        }];
        config.tenants = vec![
            tenant("acme", "155501", options.pool, &receiver),
            tenant("globex", "155502", options.pool, &receiver),
        ];
        config.shutdown.drain_timeout_ms = 3000;
        let mut http = reqwest::Client::builder();
        if let Some(tls) = &options.tls {
            config.http.tls_cert_file = Some(tls.cert_file.display().to_string());
            config.http.tls_key_file = Some(tls.key_file.display().to_string());
            let trust = fsgate::tls::client_config(Some(&tls.ca_file)).unwrap();
            http = http.use_preconfigured_tls(trust);
        }
        if let Some(tweak) = options.tweak {
            tweak(&mut config);
        }
        let problems = fsgate::config::validate(&config);
        assert!(problems.is_empty(), "test config invalid: {problems:?}");

        let daemon = start_daemon(&config, Some(listener), options.clock.clone()).await;
        let stack = Stack {
            sim,
            daemon: Some(daemon),
            receiver,
            redis,
            config,
            base,
            http: http.build().unwrap(),
            clock: options.clock,
        };
        stack.wait_ready().await;
        stack
    }

    /// The daemon's address.
    pub fn addr(&self) -> SocketAddr {
        self.daemon.as_ref().expect("daemon running").addr()
    }

    /// The running daemon.
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("daemon running")
    }

    /// Another daemon instance on the same store and simulator (its own
    /// HTTP port), as a second replica behind a load balancer.
    pub async fn second_instance(&self) -> Daemon {
        let mut config = self.config.clone();
        config.http.listen = "127.0.0.1:0".into();
        start_daemon(&config, None, self.clock.clone()).await
    }

    /// Waits until `/readyz` says ready.
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the daemon never became ready");
    }

    /// A request with tenant `acme`'s key (X-API-Key).
    pub fn acme(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.as_tenant("acme", method, path)
    }

    /// A request with `tenant`'s key (X-API-Key).
    pub fn as_tenant(
        &self,
        tenant: &str,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("X-API-Key", format!("{tenant}-key"))
    }

    /// GET as acme, returning status and JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.acme(reqwest::Method::GET, path).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST JSON as acme, returning status and JSON.
    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .acme(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the simulator has received everything the daemon wrote
    /// to it so far: one `uuid_exists` round trip on the node's connection,
    /// which FreeSWITCH and the simulator answer in order. The signal to
    /// wait on before counting the commands that reached the switch.
    pub async fn switch_caught_up(&self) {
        let switch = &self.daemon().state().switch;
        let node = self.config.freeswitch[0].name.clone();
        switch
            .exists(&node, uuid::Uuid::new_v4())
            .await
            .expect("the switch answers");
    }

    /// Stops the daemon gracefully.
    pub async fn stop_daemon(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
    }
}

async fn start_daemon(
    config: &Config,
    listener: Option<tokio::net::TcpListener>,
    clock: SharedClock,
) -> Daemon {
    let options = Options {
        clock,
        listener,
        pipeline_shards: 4,
    };
    Daemon::start(config.clone(), options)
        .await
        .expect("the daemon starts")
}
