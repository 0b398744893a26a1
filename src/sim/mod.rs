//! The FreeSWITCH simulator (`fsgate sim`): a stand-in switch that speaks the
//! real Event Socket protocol on TCP, with channels that ring, answer, park,
//! run the XML dialplan, bridge, transfer and hang up, emitting the events of
//! the real switch in the same order and shape (held to the recordings in
//! `tests/fixtures/captures/`), plus an HTTP control API for the outside world
//! (callers, far ends, faults).
//!
//! It must never grow into a telephony engine: there is no media and no SIP,
//! only the behaviour the captures and the FreeSWITCH sources show. This file
//! owns the configuration, start-up and the handle; the parts live in the
//! submodules (the XML dialplan and the `curl` application in [`dialplan`]).
//! It must not contain protocol or channel logic.

pub mod api;
pub mod behaviour;
pub mod bus;
pub mod channel;
pub mod control;
pub mod core;
pub mod dial;
pub mod dialplan;
pub mod events;
pub mod exec;
pub mod faults;
pub mod originate;
pub mod report;
pub mod server;
pub mod show;
pub mod sofia;
pub mod subs;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::behaviour::{BehaviourSpec, Behaviours};
pub use self::core::Switch;
pub use self::faults::Faults;
pub use self::server::Acl;

/// Simulator configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// ESL listen address (port 0: any free port).
    pub listen: SocketAddr,
    /// ESL password.
    pub password: String,
    /// Control API address; None: no HTTP control API.
    pub control: Option<SocketAddr>,
    /// Directory of XML dialplan files for inbound calls.
    pub dialplan_dir: Option<PathBuf>,
    /// HEARTBEAT interval (FreeSWITCH: 20 s).
    pub heartbeat_interval: Duration,
    /// Which ESL peers are accepted.
    pub acl: Acl,
    /// `FreeSWITCH-Hostname` / `-Switchname`.
    pub switchname: String,
    /// How long far ends ring before answering when no behaviour matches.
    pub answer_delay: Duration,
    /// Originate/bridge timeout when none is given.
    pub originate_timeout: Duration,
    /// Far-end behaviours, first match wins (later entries override earlier ones).
    pub behaviours: Vec<BehaviourSpec>,
    /// Per-client event queue length (FreeSWITCH: 100 000).
    pub queue_len: usize,
    /// Global variables, as `vars.xml` sets them (`fsgate_url`, say).
    pub globals: Vec<(String, String)>,
    /// SIP gateways (`sofia/gateway/<name>/<number>`): name and proxy
    /// `host:port`. Default: the project's `carrier` at 127.0.0.1:5090
    /// (freeswitch-conf/vars.fsgate.xml `fsgate_carrier_proxy`). A gateway
    /// not listed is taken to be host `<name>`, port 5060.
    pub gateways: Vec<(String, String)>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8021)),
            password: "ClueCon".to_string(),
            control: Some(SocketAddr::from(([127, 0, 0, 1], 8022))),
            dialplan_dir: None,
            heartbeat_interval: Duration::from_secs(20),
            acl: Acl::AllowAll,
            switchname: default_switchname(),
            answer_delay: Duration::ZERO,
            originate_timeout: Duration::from_secs(60),
            behaviours: Vec::new(),
            queue_len: 100_000,
            globals: Vec::new(),
            gateways: vec![("carrier".into(), "127.0.0.1:5090".into())],
        }
    }
}

impl SimConfig {
    /// A configuration for tests: ESL and control on 127.0.0.1 port 0.
    pub fn ephemeral() -> SimConfig {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..SimConfig::default()
        }
    }
}

/// The machine's host name (FreeSWITCH's default switchname).
pub fn default_switchname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The dialplan could not be loaded.
    #[error(transparent)]
    Dialplan(#[from] dialplan::DialplanError),
    /// A configured behaviour is invalid.
    #[error(transparent)]
    Behaviour(#[from] behaviour::BehaviourError),
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    esl_addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    switch: Switch,
    faults: Arc<Faults>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// The ESL address actually bound.
    pub fn esl_addr(&self) -> SocketAddr {
        self.esl_addr
    }

    /// The control API address actually bound.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// In-process access to the switch core.
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// The fault switches and the received-command log.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// Stops listening, says goodbye to connected clients and stops the tasks.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        tokio::time::sleep(Duration::from_millis(10)).await;
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts a simulator.
pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
    let dialplan = match &cfg.dialplan_dir {
        Some(dir) => Some(Arc::new(dialplan::Dialplan::load_dir(dir)?)),
        None => None,
    };
    let mut behaviours = Behaviours::new(cfg.answer_delay);
    for b in &cfg.behaviours {
        behaviours.add(b.clone())?;
    }
    let bus = Arc::new(bus::Bus::new(cfg.switchname.clone(), cfg.queue_len));
    let sw = Switch::new(
        bus.clone(),
        behaviours,
        dialplan,
        cfg.originate_timeout,
        cfg.globals.iter().cloned().collect(),
        cfg.gateways.iter().cloned().collect(),
    );
    let faults = Arc::new(Faults::default());
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let esl_addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let ctx = Arc::new(server::ServerCtx {
        sw: sw.clone(),
        password: cfg.password.clone(),
        acl: cfg.acl.clone(),
        faults: faults.clone(),
        first_packet_timeout: Duration::from_secs(25),
    });
    tasks.push(tokio::spawn(server::serve(
        listener,
        ctx,
        shutdown_rx.clone(),
    )));
    let mut control_addr = None;
    if let Some(addr) = cfg.control {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        control_addr = Some(
            l.local_addr()
                .map_err(|source| SimError::Bind { addr, source })?,
        );
        let app = control::router(sw.clone(), faults.clone());
        let mut rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.changed().await;
                })
                .await;
        }));
    }
    let hb_sw = sw.clone();
    let interval = cfg.heartbeat_interval.max(Duration::from_millis(10));
    tasks.push(tokio::spawn(async move {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            t.tick().await;
            let ev = events::heartbeat(hb_sw.bus(), hb_sw.stats());
            hb_sw.bus().fire(ev);
        }
    }));
    tracing::info!(%esl_addr, ?control_addr, core_uuid = %bus.core_uuid, "FreeSWITCH simulator listening");
    Ok(SimHandle {
        esl_addr,
        control_addr,
        switch: sw,
        faults,
        shutdown,
        tasks,
    })
}
