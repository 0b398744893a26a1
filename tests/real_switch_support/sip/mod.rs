//! A small SIP user agent over UDP for the tests that place and receive real calls through a
//! real FreeSWITCH on 127.0.0.1 (and, in `tests/sip_agent.rs`, against itself). It owns the SIP
//! side of those tests: a [`Phone`] per endpoint (one UDP socket for SIP, one for RTP that its
//! SDP advertises), one background task per phone that does on its own what the protocol asks
//! of a user agent (100 Trying, absorbing retransmissions and answering them again, ACKs,
//! retransmitting INVITE/BYE/CANCEL and final responses on the RFC 3261 timers, 200 to BYE,
//! CANCEL, OPTIONS, INFO, NOTIFY and UPDATE, answering re-INVITEs with its SDP), calls it places
//! ([`OutgoingCall`]), calls it receives ([`IncomingCall`], or handled by an [`Auto`] policy),
//! and a timestamped log of every message in and out, which every timeout panic prints so a
//! failing test explains itself (`FSGATE_SIP_TRACE=1` also prints it live to stderr). It does
//! not do TCP or TLS, digest authentication, REGISTER, 100rel/PRACK, session timers, DNS (a
//! Contact or Route host that is not an IP literal is replaced by the address the peer sent
//! from), forking (only an INVITE's first final response counts), re-INVITEs of its own, or
//! media: it sends no RTP and discards the RTP it receives. One Phone cannot call itself
//! directly (both legs would share one Call-ID); through FreeSWITCH it can, since the switch
//! gives the other leg a Call-ID of its own.
#![allow(dead_code)]

mod message;
mod sdp;

pub use message::SipMessage;
use message::*;
use sdp::*;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// RFC 3261 timers: the round-trip estimate, the retransmission cap, and 64*T1, how long a
/// transaction waits for its answer.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(32);
const USER_AGENT: &str = "fsgate-tests";
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, UPDATE";

/// How a Phone handles the INVITEs for one user from [`Phone::set_auto`] on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auto {
    /// 180 Ringing (unless `after` is zero), then 200 OK after `after` (unless the caller
    /// cancelled by then).
    Answer { after: Duration },
    /// This final response at once.
    Reject(u16),
    /// 180 Ringing, and never answer.
    Ring,
}

/// One SIP endpoint on UDP: a socket for SIP, one for RTP (advertised in its SDP; whatever
/// arrives there is discarded), and a background task that reads the SIP socket. Dropping the
/// Phone stops its tasks; calls that outlive it see no more messages.
pub struct Phone {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

/// A call this Phone placed.
pub struct OutgoingCall {
    inner: Arc<Inner>,
    call_id: String,
    invite: SipMessage,
    next_response: usize,
}

/// A call this Phone received, handed out by [`Phone::incoming`].
pub struct IncomingCall {
    inner: Arc<Inner>,
    call_id: String,
    invite: SipMessage,
}

struct Inner {
    /// The SIP socket, for the reader.
    sip: UdpSocket,
    /// The same socket, for sending without awaiting (see `send`).
    sip_out: std::net::UdpSocket,
    /// The SIP socket's address (an unspecified IP replaced by 127.0.0.1).
    addr: SocketAddr,
    rtp_port: u16,
    started: std::time::Instant,
    trace: bool,
    state: Mutex<State>,
    log: Mutex<Vec<String>>,
    /// Bumped after every received message: what waiters wait on.
    changes: watch::Sender<u64>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    calls: HashMap<String, Call>,
    /// Call-IDs of received calls not yet handed out by `incoming`, in arrival order.
    queue: Vec<String>,
    autos: HashMap<String, Auto>,
    /// Every initial INVITE received, in order.
    invites: Vec<SipMessage>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Uac,
    Uas,
}

struct Call {
    role: Role,
    /// The initial INVITE, sent (UAC) or received (UAS).
    invite: SipMessage,
    /// UAC: where the INVITE went. UAS: where it came from (responses go there).
    peer: SocketAddr,
    /// Where in-dialog requests go when the target's host is not an IP literal.
    fallback_addr: SocketAddr,
    local_tag: String,
    /// Our From (UAC) or To (UAS) header value, with our tag.
    local_party: String,
    /// Their header value, with their tag once known.
    remote_party: String,
    remote_target: Option<String>,
    route_set: Vec<String>,
    next_cseq: u32,
    /// User part of our Contact.
    contact_user: String,
    local_sdp: String,
    sdp_session: u64,
    sdp_version: u64,
    // UAC
    /// Responses to the initial INVITE in order (retransmitted finals left out).
    responses: Vec<SipMessage>,
    final_response: Option<SipMessage>,
    /// The ACK of the final response and where it went, sent again if the final is.
    ack: Option<(String, SocketAddr)>,
    // UAS
    final_sent: Option<u16>,
    // both
    /// INVITE transactions received, by (CSeq, branch): the last response we sent to each.
    invite_txns: HashMap<(u32, String), Option<String>>,
    /// CSeq numbers of received INVITEs whose ACK arrived.
    acked: HashSet<u32>,
    /// Responses to the BYEs and CANCELs we sent, by (CSeq, method).
    our_requests: HashMap<(u32, String), Vec<SipMessage>>,
    remote_bye: Option<SipMessage>,
    remote_cancel: Option<SipMessage>,
    bye_sent: bool,
}

impl Call {
    fn invite_cseq(&self) -> u32 {
        self.invite.cseq().map_or(0, |c| c.0)
    }

    fn final_code(&self) -> Option<u16> {
        match self.role {
            Role::Uac => self.final_response.as_ref().and_then(SipMessage::status),
            Role::Uas => self.final_sent,
        }
    }

    fn has_final_to(&self, cseq: u32, method: &str) -> Option<SipMessage> {
        self.our_requests
            .get(&(cseq, method.to_string()))?
            .iter()
            .find(|r| r.status().is_some_and(|s| s >= 200))
            .cloned()
    }

    /// Request-URI, Route headers and destination of an in-dialog request (RFC 3261 12.2.1.1,
    /// loose or strict first route).
    fn target(&self) -> (String, Vec<String>, SocketAddr) {
        let target = self
            .remote_target
            .clone()
            .unwrap_or_else(|| match self.role {
                Role::Uac => self.invite.request_uri().unwrap_or("").to_string(),
                Role::Uas => addr_uri(self.invite.header("From").unwrap_or("")).to_string(),
            });
        match self.route_set.first() {
            None => {
                let dest = uri_socket_addr(&target).unwrap_or(self.fallback_addr);
                (target, Vec::new(), dest)
            }
            Some(first) => {
                let first_uri = addr_uri(first).to_string();
                let dest = uri_socket_addr(&first_uri).unwrap_or(self.fallback_addr);
                if uri_has_param(&first_uri, "lr") {
                    (target, self.route_set.clone(), dest)
                } else {
                    let mut routes = self.route_set[1..].to_vec();
                    routes.push(format!("<{target}>"));
                    (first_uri, routes, dest)
                }
            }
        }
    }

    fn summary(&self) -> String {
        let mut s = format!(
            "{:?} call {} (INVITE {})",
            self.role,
            self.invite.call_id().unwrap_or("?"),
            self.invite.request_uri().unwrap_or("?")
        );
        if !self.responses.is_empty() {
            let lines: Vec<&str> = self.responses.iter().map(|r| r.start_line()).collect();
            let _ = write!(s, "; responses: {}", lines.join(" | "));
        }
        if let Some(code) = self.final_sent {
            let _ = write!(s, "; we answered {code}");
        }
        if self.acked.contains(&self.invite_cseq()) {
            s.push_str("; ACK received");
        }
        if self.remote_bye.is_some() {
            s.push_str("; BYE received");
        }
        if self.remote_cancel.is_some() {
            s.push_str("; CANCEL received");
        }
        if self.bye_sent {
            s.push_str("; we sent BYE");
        }
        s
    }
}

/// What the reader does after handling a message (outside the state lock).
enum Action {
    Send(String, SocketAddr),
    /// A final response to an INVITE, retransmitted until its ACK.
    Final {
        call_id: String,
        cseq: u32,
        text: String,
        to: SocketAddr,
    },
    Auto {
        call_id: String,
        auto: Auto,
    },
}

impl Phone {
    /// Binds the SIP socket on `addr` ("127.0.0.1:5090", or port 0 for any) and an RTP socket
    /// on the same IP. Panics with a clear message if the port is taken.
    pub async fn bind(addr: &str) -> Phone {
        let sip_out = std::net::UdpSocket::bind(addr).unwrap_or_else(|e| {
            panic!("sip::Phone::bind: cannot bind the SIP UDP socket on {addr}: {e} (port taken?)")
        });
        sip_out
            .set_nonblocking(true)
            .expect("a non-blocking SIP socket");
        let sip = UdpSocket::from_std(
            sip_out
                .try_clone()
                .expect("a second handle on the SIP socket"),
        )
        .expect("the SIP socket in tokio");
        let local = sip.local_addr().expect("the SIP socket's address");
        let ip = if local.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            local.ip()
        };
        let rtp = bind_rtp(ip).await;
        let rtp_port = rtp.local_addr().expect("the RTP socket's address").port();
        let inner = Arc::new(Inner {
            sip,
            sip_out,
            addr: SocketAddr::new(ip, local.port()),
            rtp_port,
            started: std::time::Instant::now(),
            trace: std::env::var_os("FSGATE_SIP_TRACE").is_some_and(|v| !v.is_empty() && v != "0"),
            state: Mutex::new(State::default()),
            log: Mutex::new(Vec::new()),
            changes: watch::channel(0).0,
            tasks: Mutex::new(Vec::new()),
        });
        let reader = tokio::spawn(inner.clone().read_loop());
        let rtp_sink = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                if rtp.recv_from(&mut buf).await.is_err() {
                    tokio::task::yield_now().await;
                }
            }
        });
        Phone {
            inner,
            tasks: vec![reader, rtp_sink],
        }
    }

    /// The SIP socket's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The RTP port its SDP advertises.
    pub fn rtp_port(&self) -> u16 {
        self.inner.rtp_port
    }

    /// Every message in and out so far, timestamped.
    pub fn log(&self) -> String {
        self.inner.log_text()
    }

    /// INVITE sip:{to_user}@{switch} from sip:{from_user}@<own addr>, with an SDP offer (PCMU,
    /// PCMA, telephone-event) and the extra headers (after the standard ones). The INVITE is
    /// retransmitted on timer A until a response arrives.
    pub async fn call(
        &self,
        switch: SocketAddr,
        from_user: &str,
        to_user: &str,
        extra_headers: &[(&str, &str)],
    ) -> OutgoingCall {
        let inner = &self.inner;
        let call_id = uuid::Uuid::new_v4().to_string();
        let tag = random_token();
        let ruri = format!("sip:{to_user}@{switch}");
        let from = format!("<sip:{from_user}@{}>;tag={tag}", inner.addr);
        let to = format!("<{ruri}>");
        let session = u64::from(rand::random::<u32>());
        let sdp = render_sdp(inner.addr.ip(), inner.rtp_port, session, 1, &offer_media());
        let mut b = Builder::new(format!("INVITE {ruri} SIP/2.0"))
            .header("Via", inner.new_via())
            .header("Max-Forwards", 70)
            .header("From", &from)
            .header("To", &to)
            .header("Call-ID", &call_id)
            .header("CSeq", "1 INVITE")
            .header("Contact", inner.contact(from_user))
            .header("User-Agent", USER_AGENT)
            .header("Allow", ALLOW);
        for (name, value) in extra_headers {
            b = b.header(name, value);
        }
        let text = b.header("Content-Type", "application/sdp").finish(&sdp);
        let invite = SipMessage::parse(&text).expect("the INVITE we wrote parses");
        let call = Call {
            role: Role::Uac,
            invite: invite.clone(),
            peer: switch,
            fallback_addr: switch,
            local_tag: tag,
            local_party: from,
            remote_party: to,
            remote_target: None,
            route_set: Vec::new(),
            next_cseq: 2,
            contact_user: from_user.to_string(),
            local_sdp: sdp,
            sdp_session: session,
            sdp_version: 1,
            responses: Vec::new(),
            final_response: None,
            ack: None,
            final_sent: None,
            invite_txns: HashMap::new(),
            acked: HashSet::new(),
            our_requests: HashMap::new(),
            remote_bye: None,
            remote_cancel: None,
            bye_sent: false,
        };
        {
            let mut st = inner.lock();
            st.calls.insert(call_id.clone(), call);
            inner.send(&text, switch);
        }
        inner.spawn(
            inner
                .clone()
                .retransmit(call_id.clone(), 1, "INVITE".into(), text, switch),
        );
        OutgoingCall {
            inner: inner.clone(),
            call_id,
            invite,
            next_response: 0,
        }
    }

    /// The next INVITE received whose Request-URI user is `user` (exact match) and that was not
    /// handed out yet. Panics after `within` with what was received.
    pub async fn incoming(&self, user: &str, within: Duration) -> IncomingCall {
        let (call_id, invite) = self
            .inner
            .wait(
                within,
                |st| {
                    let pos = st.queue.iter().position(|cid| {
                        st.calls
                            .get(cid)
                            .is_some_and(|c| c.invite.request_uri_user() == Some(user))
                    })?;
                    let cid = st.queue.remove(pos);
                    let invite = st.calls.get(&cid)?.invite.clone();
                    Some((cid, invite))
                },
                |st| {
                    let seen: Vec<String> = st
                        .invites
                        .iter()
                        .map(|i| {
                            let cid = i.call_id().unwrap_or("?");
                            let taken = if st.queue.iter().any(|q| q == cid) {
                                ""
                            } else {
                                " (handed out)"
                            };
                            format!("{} Call-ID {cid}{taken}", i.start_line())
                        })
                        .collect();
                    format!(
                        "no INVITE for user {user:?} within {within:?}; INVITEs received: [{}]",
                        seen.join("; ")
                    )
                },
            )
            .await;
        IncomingCall {
            inner: self.inner.clone(),
            call_id,
            invite,
        }
    }

    /// From now on INVITEs for `user` are handled automatically; they still show in
    /// `invites_for` and can still be taken by `incoming` (to inspect them or hang up).
    pub fn set_auto(&self, user: &str, auto: Auto) {
        self.inner.lock().autos.insert(user.to_string(), auto);
    }

    /// Every initial INVITE (not retransmissions or re-INVITEs) received for `user`, in order.
    pub fn invites_for(&self, user: &str) -> Vec<SipMessage> {
        self.inner
            .lock()
            .invites
            .iter()
            .filter(|i| i.request_uri_user() == Some(user))
            .cloned()
            .collect()
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            task.abort();
        }
    }
}

/// An RTP socket on `ip`, on an even port if one comes within a few tries.
async fn bind_rtp(ip: IpAddr) -> UdpSocket {
    let mut last = None;
    for _ in 0..10 {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .unwrap_or_else(|e| panic!("sip::Phone::bind: cannot bind an RTP socket on {ip}: {e}"));
        if socket.local_addr().is_ok_and(|a| a.port() % 2 == 0) {
            return socket;
        }
        last = Some(socket);
    }
    last.expect("an RTP socket")
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn record(&self, entry: String) {
        if self.trace {
            eprintln!("{entry}");
        }
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
    }

    fn stamp(&self) -> String {
        format!("[{:>9.3}s]", self.started.elapsed().as_secs_f64())
    }

    fn note(&self, what: &str) {
        self.record(format!("{} {} note: {what}", self.stamp(), self.addr));
    }

    fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    fn new_via(&self) -> String {
        format!(
            "SIP/2.0/UDP {};branch=z9hG4bK{};rport",
            self.addr,
            random_token()
        )
    }

    fn contact(&self, user: &str) -> String {
        let user = if user.is_empty() { "fsgate" } else { user };
        format!("<sip:{user}@{}>", self.addr)
    }

    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(fut));
    }

    /// Sends one datagram at once, without awaiting: callers send while they hold the state
    /// lock, so that no waiter sees a state change before the message that goes with it is on
    /// the wire (no BYE overtaking the ACK of a 200, no 180 before the 100). A full socket
    /// buffer (never seen on loopback) loses the datagram, as UDP may; retransmissions recover.
    fn send(&self, text: &str, to: SocketAddr) {
        self.record(format!(
            "{} {} -> {to}\n{}",
            self.stamp(),
            self.addr,
            text.trim_end()
        ));
        for _ in 0..100 {
            match self.sip_out.send_to(text.as_bytes(), to) {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => {
                    self.note(&format!("sending to {to} failed: {e}"));
                    return;
                }
            }
        }
        self.note(&format!("sending to {to} failed: the socket stayed full"));
    }

    async fn read_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, src) = match self.sip.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    self.note(&format!("receiving failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.trim().is_empty() {
                continue; // keep-alive
            }
            self.record(format!(
                "{} {} <- {src}\n{}",
                self.stamp(),
                self.addr,
                text.trim_end()
            ));
            let msg = match SipMessage::parse(&text) {
                Ok(msg) => msg,
                Err(e) => {
                    self.note(&format!("ignored a message that does not parse: {e}"));
                    continue;
                }
            };
            {
                let mut st = self.lock();
                let actions = if msg.method().is_some() {
                    self.on_request(&mut st, msg, src)
                } else {
                    self.on_response(&mut st, msg, src)
                };
                for action in actions {
                    match action {
                        Action::Send(text, to) => self.send(&text, to),
                        Action::Final {
                            call_id,
                            cseq,
                            text,
                            to,
                        } => {
                            self.send(&text, to);
                            let me = self.clone();
                            self.spawn(async move {
                                if let Err(e) =
                                    me.resend_until_acked(&call_id, cseq, &text, to).await
                                {
                                    me.note(&e);
                                }
                            });
                        }
                        Action::Auto { call_id, auto } => {
                            self.spawn(self.clone().run_auto(call_id, auto));
                        }
                    }
                }
            }
            self.bump();
        }
    }

    fn on_request(&self, st: &mut State, msg: SipMessage, src: SocketAddr) -> Vec<Action> {
        let method = msg.method().unwrap_or("").to_ascii_uppercase();
        let (Some(call_id), Some((cseq, _))) = (msg.call_id().map(str::to_string), msg.cseq())
        else {
            if method == "ACK" {
                return Vec::new();
            }
            let text = response_to(&msg, 400, Some(&random_token())).finish("");
            return vec![Action::Send(text, src)];
        };
        let branch = msg.branch().unwrap_or("").to_string();
        let in_dialog = msg.to_tag().is_some();
        let simple = |code: u16| {
            let tag = (!in_dialog).then(random_token);
            Action::Send(response_to(&msg, code, tag.as_deref()).finish(""), src)
        };
        match method.as_str() {
            "INVITE" if !in_dialog => {
                if let Some(call) = st.calls.get(&call_id) {
                    return match call.invite_txns.get(&(cseq, branch)) {
                        Some(last) => {
                            self.note(&format!("INVITE retransmission absorbed ({call_id})"));
                            last.iter().map(|t| Action::Send(t.clone(), src)).collect()
                        }
                        None => vec![simple(482)],
                    };
                }
                self.new_invite(st, msg, src, call_id, cseq, branch)
            }
            "INVITE" => {
                let Some(call) = st.calls.get_mut(&call_id) else {
                    return vec![simple(481)];
                };
                if let Some(last) = call.invite_txns.get(&(cseq, branch.clone())) {
                    return last.iter().map(|t| Action::Send(t.clone(), src)).collect();
                }
                let sdp = self.answer_sdp(call, msg.body());
                let text = response_to(&msg, 200, None)
                    .header("Contact", self.contact(&call.contact_user))
                    .header("Allow", ALLOW)
                    .header("Content-Type", "application/sdp")
                    .finish(&sdp);
                call.invite_txns.insert((cseq, branch), Some(text.clone()));
                vec![Action::Final {
                    call_id,
                    cseq,
                    text,
                    to: src,
                }]
            }
            "ACK" => {
                if let Some(call) = st.calls.get_mut(&call_id) {
                    call.acked.insert(cseq);
                }
                Vec::new()
            }
            "BYE" => {
                let Some(call) = st.calls.get_mut(&call_id) else {
                    return vec![simple(481)];
                };
                if call.remote_bye.is_none() {
                    call.remote_bye = Some(msg.clone());
                }
                vec![simple(200)]
            }
            "CANCEL" => {
                let call = st
                    .calls
                    .get_mut(&call_id)
                    .filter(|c| c.role == Role::Uas && c.invite_cseq() == cseq);
                let Some(call) = call else {
                    return vec![simple(481)];
                };
                let ok = response_to(&msg, 200, Some(&call.local_tag)).finish("");
                let mut actions = vec![Action::Send(ok, src)];
                if call.final_sent.is_none() {
                    call.final_sent = Some(487);
                    call.remote_cancel = Some(msg.clone());
                    let text = self.invite_response(call, 487);
                    let key = (cseq, call.invite.branch().unwrap_or("").to_string());
                    call.invite_txns.insert(key, Some(text.clone()));
                    actions.push(Action::Final {
                        call_id,
                        cseq,
                        text,
                        to: call.peer,
                    });
                }
                actions
            }
            "OPTIONS" | "INFO" | "NOTIFY" | "UPDATE" => {
                let call = st.calls.get_mut(&call_id);
                if in_dialog && call.is_none() {
                    return vec![simple(481)];
                }
                if method == "OPTIONS" {
                    let tag = (!in_dialog).then(random_token);
                    let text = response_to(&msg, 200, tag.as_deref())
                        .header("Allow", ALLOW)
                        .header("Accept", "application/sdp")
                        .finish("");
                    return vec![Action::Send(text, src)];
                }
                match call {
                    Some(call) if method == "UPDATE" && !msg.body().trim().is_empty() => {
                        let sdp = self.answer_sdp(call, msg.body());
                        let text = response_to(&msg, 200, None)
                            .header("Contact", self.contact(&call.contact_user))
                            .header("Content-Type", "application/sdp")
                            .finish(&sdp);
                        vec![Action::Send(text, src)]
                    }
                    None if method == "UPDATE" => vec![simple(481)],
                    _ => vec![simple(200)],
                }
            }
            _ if in_dialog => {
                if st.calls.contains_key(&call_id) {
                    vec![simple(501)]
                } else {
                    vec![simple(481)]
                }
            }
            _ => {
                let text = response_to(&msg, 405, Some(&random_token()))
                    .header("Allow", ALLOW)
                    .finish("");
                vec![Action::Send(text, src)]
            }
        }
    }

    fn new_invite(
        &self,
        st: &mut State,
        msg: SipMessage,
        src: SocketAddr,
        call_id: String,
        cseq: u32,
        branch: String,
    ) -> Vec<Action> {
        let trying = response_to(&msg, 100, None).finish("");
        let user = msg.request_uri_user().unwrap_or("").to_string();
        let local_tag = random_token();
        let session = u64::from(rand::random::<u32>());
        let media = answer_media(msg.body()).unwrap_or_else(offer_media);
        let local_sdp = render_sdp(self.addr.ip(), self.rtp_port, session, 1, &media);
        let to = msg.header("To").unwrap_or("");
        let call = Call {
            role: Role::Uas,
            invite: msg.clone(),
            peer: src,
            fallback_addr: src,
            local_party: format!("{to};tag={local_tag}"),
            local_tag,
            remote_party: msg.header("From").unwrap_or("").to_string(),
            remote_target: msg.header("Contact").map(|c| addr_uri(c).to_string()),
            route_set: msg.record_route(),
            next_cseq: 1,
            contact_user: user.clone(),
            local_sdp,
            sdp_session: session,
            sdp_version: 1,
            responses: Vec::new(),
            final_response: None,
            ack: None,
            final_sent: None,
            invite_txns: HashMap::from([((cseq, branch), Some(trying.clone()))]),
            acked: HashSet::new(),
            our_requests: HashMap::new(),
            remote_bye: None,
            remote_cancel: None,
            bye_sent: false,
        };
        st.calls.insert(call_id.clone(), call);
        st.invites.push(msg);
        st.queue.push(call_id.clone());
        let mut actions = vec![Action::Send(trying, src)];
        if let Some(auto) = st.autos.get(&user) {
            actions.push(Action::Auto {
                call_id,
                auto: *auto,
            });
        }
        actions
    }

    fn on_response(&self, st: &mut State, msg: SipMessage, src: SocketAddr) -> Vec<Action> {
        let (Some(call_id), Some((cseq, method)), Some(code)) =
            (msg.call_id(), msg.cseq(), msg.status())
        else {
            self.note("ignored a response without Call-ID, CSeq or status");
            return Vec::new();
        };
        let Some(call) = st.calls.get_mut(call_id) else {
            self.note(&format!("ignored a response for an unknown call {call_id}"));
            return Vec::new();
        };
        if !method.eq_ignore_ascii_case("INVITE") {
            call.our_requests
                .entry((cseq, method.to_ascii_uppercase()))
                .or_default()
                .push(msg.clone());
            return Vec::new();
        }
        if call.role != Role::Uac || cseq != call.invite_cseq() {
            self.note("ignored a response to an INVITE we did not send");
            return Vec::new();
        }
        if code < 200 {
            if call.final_response.is_none() {
                call.responses.push(msg.clone());
            }
            return Vec::new();
        }
        if call.final_response.is_some() {
            // The final response again: our ACK was lost or is late. ACK again.
            return call
                .ack
                .iter()
                .map(|(text, to)| Action::Send(text.clone(), *to))
                .collect();
        }
        call.responses.push(msg.clone());
        call.final_response = Some(msg.clone());
        let to_header = msg.header("To").unwrap_or("").to_string();
        call.remote_party = to_header.clone();
        let (text, dest) = if (200..300).contains(&code) {
            call.remote_target = msg.header("Contact").map(|c| addr_uri(c).to_string());
            call.route_set = msg.record_route().into_iter().rev().collect();
            call.fallback_addr = src;
            let (ruri, routes, dest) = call.target();
            let mut b = Builder::new(format!("ACK {ruri} SIP/2.0"))
                .header("Via", self.new_via())
                .header("Max-Forwards", 70);
            for route in routes {
                b = b.header("Route", route);
            }
            let text = b
                .header("From", &call.local_party)
                .header("To", &to_header)
                .header("Call-ID", call_id)
                .header("CSeq", format!("{cseq} ACK"))
                .header("User-Agent", USER_AGENT)
                .finish("");
            (text, dest)
        } else {
            let invite = &call.invite;
            let text = Builder::new(format!(
                "ACK {} SIP/2.0",
                invite.request_uri().unwrap_or("")
            ))
            .header("Via", invite.top_via().unwrap_or(""))
            .header("Max-Forwards", 70)
            .header("From", invite.header("From").unwrap_or(""))
            .header("To", &to_header)
            .header("Call-ID", call_id)
            .header("CSeq", format!("{cseq} ACK"))
            .header("User-Agent", USER_AGENT)
            .finish("");
            (text, call.peer)
        };
        call.ack = Some((text.clone(), dest));
        vec![Action::Send(text, dest)]
    }

    /// Our SDP answer to an offer in a re-INVITE or UPDATE (our last SDP if there is none),
    /// its version bumped only if it changed.
    fn answer_sdp(&self, call: &mut Call, offer: &str) -> String {
        let Some(media) = answer_media(offer) else {
            return call.local_sdp.clone();
        };
        let ip = self.addr.ip();
        let same = render_sdp(
            ip,
            self.rtp_port,
            call.sdp_session,
            call.sdp_version,
            &media,
        );
        if same != call.local_sdp {
            call.sdp_version += 1;
            call.local_sdp = render_sdp(
                ip,
                self.rtp_port,
                call.sdp_session,
                call.sdp_version,
                &media,
            );
        }
        call.local_sdp.clone()
    }

    /// A response of ours to the initial INVITE of an incoming call.
    fn invite_response(&self, call: &Call, code: u16) -> String {
        let mut b = response_to(&call.invite, code, Some(&call.local_tag));
        if (101..300).contains(&code) {
            for rr in call.invite.headers_named("Record-Route") {
                b = b.header("Record-Route", rr);
            }
            b = b.header("Contact", self.contact(&call.contact_user));
        }
        if (200..300).contains(&code) {
            b.header("Allow", ALLOW)
                .header("Content-Type", "application/sdp")
                .finish(&call.local_sdp)
        } else {
            b.finish("")
        }
    }

    /// Waits until `check` gives a value, or `within` has passed (then `None`).
    async fn try_wait<T>(
        &self,
        within: Duration,
        mut check: impl FnMut(&mut State) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        let mut changes = self.changes.subscribe();
        loop {
            let got = check(&mut self.lock());
            if got.is_some() {
                return got;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return check(&mut self.lock());
            }
        }
    }

    /// As `try_wait`, panicking with `what` and the log on a timeout.
    async fn wait<T>(
        &self,
        within: Duration,
        check: impl FnMut(&mut State) -> Option<T>,
        what: impl FnOnce(&State) -> String,
    ) -> T {
        if let Some(got) = self.try_wait(within, check).await {
            return got;
        }
        let message = what(&self.lock());
        panic!("{}", self.failure(&message));
    }

    fn failure(&self, message: &str) -> String {
        format!(
            "sip phone {}: {message}\n--- SIP log of phone {} ---\n{}\n--- end of SIP log ---",
            self.addr,
            self.addr,
            self.log_text()
        )
    }

    fn describe(&self, st: &State, call_id: &str) -> String {
        st.calls
            .get(call_id)
            .map_or_else(|| format!("unknown call {call_id}"), Call::summary)
    }

    /// Sends a final response to an INVITE (already sent once) again on T1 doubling (capped at
    /// T2) until its ACK arrives (or a BYE, which means the ACK was lost), for at most 64*T1.
    async fn resend_until_acked(
        &self,
        call_id: &str,
        cseq: u32,
        text: &str,
        to: SocketAddr,
    ) -> Result<(), String> {
        let start = Instant::now();
        let mut interval = T1;
        loop {
            let done = self
                .try_wait(interval, |st| {
                    let call = st.calls.get(call_id)?;
                    (call.acked.contains(&cseq) || call.remote_bye.is_some()).then_some(())
                })
                .await;
            if done.is_some() {
                return Ok(());
            }
            if start.elapsed() >= TRANSACTION_TIMEOUT {
                let first = text.lines().next().unwrap_or("");
                return Err(format!(
                    "no ACK for our {first:?} to INVITE CSeq {cseq} of call {call_id} within {TRANSACTION_TIMEOUT:?}"
                ));
            }
            self.send(text, to);
            interval = (interval * 2).min(T2);
        }
    }

    /// Retransmits a request we sent (timer A for an INVITE, doubling; timer E otherwise,
    /// capped at T2) until it gets a response (an INVITE) or a final response (otherwise).
    async fn retransmit(
        self: Arc<Self>,
        call_id: String,
        cseq: u32,
        method: String,
        text: String,
        to: SocketAddr,
    ) {
        let start = Instant::now();
        let mut interval = T1;
        loop {
            let answered = self
                .try_wait(interval, |st| {
                    let call = st.calls.get(&call_id)?;
                    let done = if method == "INVITE" {
                        !call.responses.is_empty()
                    } else {
                        call.has_final_to(cseq, &method).is_some()
                    };
                    done.then_some(())
                })
                .await;
            if answered.is_some() || start.elapsed() >= TRANSACTION_TIMEOUT {
                return;
            }
            self.send(&text, to);
            interval = if method == "INVITE" {
                interval * 2
            } else {
                (interval * 2).min(T2)
            };
        }
    }

    async fn run_auto(self: Arc<Self>, call_id: String, auto: Auto) {
        let result = match auto {
            Auto::Answer { after } => {
                let mut result = Ok(());
                if !after.is_zero() {
                    result = self.provisional(&call_id, 180).await;
                    tokio::time::sleep(after).await;
                }
                match result {
                    Ok(()) => self.final_response(&call_id, 200).await,
                    err => err,
                }
            }
            Auto::Reject(code) => self.final_response(&call_id, code).await,
            Auto::Ring => self.provisional(&call_id, 180).await,
        };
        if let Err(e) = result {
            self.note(&format!("auto {auto:?}: {e}"));
        }
    }

    /// A provisional response to an incoming call's INVITE.
    async fn provisional(&self, call_id: &str, code: u16) -> Result<(), String> {
        {
            let mut st = self.lock();
            let call = st
                .calls
                .get_mut(call_id)
                .ok_or_else(|| format!("unknown call {call_id}"))?;
            if let Some(done) = call.final_sent {
                return Err(format!(
                    "call {call_id} already has its final response ({done}); no {code} now"
                ));
            }
            let text = self.invite_response(call, code);
            let key = (
                call.invite_cseq(),
                call.invite.branch().unwrap_or("").to_string(),
            );
            call.invite_txns.insert(key, Some(text.clone()));
            self.send(&text, call.peer);
        }
        Ok(())
    }

    /// A final response to an incoming call's INVITE, sent until its ACK arrives.
    async fn final_response(&self, call_id: &str, code: u16) -> Result<(), String> {
        let (text, to, cseq) = {
            let mut st = self.lock();
            let call = st
                .calls
                .get_mut(call_id)
                .ok_or_else(|| format!("unknown call {call_id}"))?;
            if let Some(done) = call.final_sent {
                let why = if call.remote_cancel.is_some() {
                    " (the caller cancelled)"
                } else {
                    ""
                };
                return Err(format!(
                    "call {call_id} already has its final response ({done}{why}); no {code} now"
                ));
            }
            call.final_sent = Some(code);
            let text = self.invite_response(call, code);
            let cseq = call.invite_cseq();
            let key = (cseq, call.invite.branch().unwrap_or("").to_string());
            call.invite_txns.insert(key, Some(text.clone()));
            self.send(&text, call.peer);
            (text, call.peer, cseq)
        };
        self.resend_until_acked(call_id, cseq, &text, to).await
    }

    /// BYE in an established dialog; waits for its final response.
    async fn bye(self: &Arc<Self>, call_id: &str) {
        let (text, dest, cseq) = {
            let mut st = self.lock();
            let Some(call) = st.calls.get_mut(call_id) else {
                drop(st);
                panic!(
                    "{}",
                    self.failure(&format!("BYE on unknown call {call_id}"))
                );
            };
            let cseq = call.next_cseq;
            call.next_cseq += 1;
            call.bye_sent = true;
            let (ruri, routes, dest) = call.target();
            let mut b = Builder::new(format!("BYE {ruri} SIP/2.0"))
                .header("Via", self.new_via())
                .header("Max-Forwards", 70);
            for route in routes {
                b = b.header("Route", route);
            }
            let text = b
                .header("From", &call.local_party)
                .header("To", &call.remote_party)
                .header("Call-ID", call_id)
                .header("CSeq", format!("{cseq} BYE"))
                .header("User-Agent", USER_AGENT)
                .finish("");
            self.send(&text, dest);
            (text, dest, cseq)
        };
        self.spawn(
            self.clone()
                .retransmit(call_id.to_string(), cseq, "BYE".into(), text, dest),
        );
        let response = self
            .wait(
                TRANSACTION_TIMEOUT,
                |st| st.calls.get(call_id)?.has_final_to(cseq, "BYE"),
                |st| {
                    format!(
                        "no final response to our BYE within {TRANSACTION_TIMEOUT:?}: {}",
                        self.describe(st, call_id)
                    )
                },
            )
            .await;
        if response.status() != Some(200) {
            self.note(&format!("our BYE got {:?}, not 200", response.start_line()));
        }
    }
}

impl OutgoingCall {
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The INVITE as we sent it.
    pub fn invite(&self) -> &SipMessage {
        &self.invite
    }

    /// The next response to the INVITE, of any class (100 Trying included); a final one has
    /// already been ACKed (the phone's reader does that as it arrives, per RFC 3261).
    pub async fn response(&mut self, within: Duration) -> SipMessage {
        let (cid, index) = (self.call_id.as_str(), self.next_response);
        let msg = self
            .inner
            .wait(
                within,
                |st| st.calls.get(cid)?.responses.get(index).cloned(),
                |st| {
                    format!(
                        "no response #{} to our INVITE within {within:?}: {}",
                        index + 1,
                        self.inner.describe(st, cid)
                    )
                },
            )
            .await;
        self.next_response += 1;
        msg
    }

    /// Waits for the final response (skipping provisional ones): a 2xx is `Ok`, anything else
    /// `Err`; either has been ACKed.
    pub async fn answered(&mut self, within: Duration) -> Result<SipMessage, SipMessage> {
        let cid = self.call_id.as_str();
        let (fin, seen) = self
            .inner
            .wait(
                within,
                |st| {
                    let call = st.calls.get(cid)?;
                    Some((call.final_response.clone()?, call.responses.len()))
                },
                |st| {
                    format!(
                        "no final response to our INVITE within {within:?}: {}",
                        self.inner.describe(st, cid)
                    )
                },
            )
            .await;
        self.next_response = seen;
        if fin.status().is_some_and(|s| (200..300).contains(&s)) {
            Ok(fin)
        } else {
            Err(fin)
        }
    }

    /// Ends the call from our side: BYE once answered (waits for its final response), CANCEL
    /// before (after the first provisional response, as RFC 3261 asks; waits for the response
    /// to the CANCEL and the INVITE's final response, and BYEs if that was a 2xx after all).
    /// Nothing if the call has already ended.
    pub async fn hangup(&mut self) {
        let inner = self.inner.clone();
        let cid = self.call_id.as_str();
        let what = |st: &State| inner.describe(st, cid);
        // CANCEL only after some response: wait for one.
        let state = inner
            .wait(
                TRANSACTION_TIMEOUT,
                |st| {
                    let call = st.calls.get(cid)?;
                    let progressed = !call.responses.is_empty() || call.remote_bye.is_some();
                    progressed.then(|| {
                        (
                            call.final_code(),
                            call.remote_bye.is_some() || call.bye_sent,
                        )
                    })
                },
                |st| format!("hangup: no response at all to our INVITE: {}", what(st)),
            )
            .await;
        let final_code = match state {
            (_, true) => return,
            (Some(code), _) if !(200..300).contains(&code) => return,
            (Some(_), _) => {
                inner.bye(cid).await;
                return;
            }
            (None, _) => {
                let (text, dest, cseq) = {
                    let st = inner.lock();
                    let call = &st.calls[cid];
                    let inv = &call.invite;
                    let cseq = call.invite_cseq();
                    let text = Builder::new(format!(
                        "CANCEL {} SIP/2.0",
                        inv.request_uri().unwrap_or("")
                    ))
                    .header("Via", inv.top_via().unwrap_or(""))
                    .header("Max-Forwards", 70)
                    .header("From", inv.header("From").unwrap_or(""))
                    .header("To", inv.header("To").unwrap_or(""))
                    .header("Call-ID", cid)
                    .header("CSeq", format!("{cseq} CANCEL"))
                    .header("User-Agent", USER_AGENT)
                    .finish("");
                    inner.send(&text, call.peer);
                    (text, call.peer, cseq)
                };
                inner.spawn(inner.clone().retransmit(
                    cid.to_string(),
                    cseq,
                    "CANCEL".into(),
                    text,
                    dest,
                ));
                inner
                    .wait(
                        TRANSACTION_TIMEOUT,
                        |st| {
                            let call = st.calls.get(cid)?;
                            call.has_final_to(cseq, "CANCEL")?;
                            call.final_code()
                        },
                        |st| {
                            format!(
                                "hangup: no response to our CANCEL and final response to the INVITE: {}",
                                what(st)
                            )
                        },
                    )
                    .await
            }
        };
        if (200..300).contains(&final_code) {
            inner.note("the INVITE was answered as we cancelled it: BYE");
            inner.bye(cid).await;
        }
    }

    /// Waits for the far end to end the call: its BYE (already answered 200), or, while the
    /// call is unanswered, a final non-2xx response (already ACKed).
    pub async fn ended_by_remote(&mut self, within: Duration) -> SipMessage {
        let cid = self.call_id.as_str();
        self.inner
            .wait(
                within,
                |st| {
                    let call = st.calls.get(cid)?;
                    if let Some(bye) = &call.remote_bye {
                        return Some(bye.clone());
                    }
                    call.final_response
                        .clone()
                        .filter(|f| f.status().is_some_and(|s| s >= 300))
                },
                |st| {
                    format!(
                        "the far end did not end the call within {within:?}: {}",
                        self.inner.describe(st, cid)
                    )
                },
            )
            .await
    }
}

impl IncomingCall {
    /// The INVITE as received.
    pub fn invite(&self) -> &SipMessage {
        &self.invite
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// 180 Ringing (with our To-tag and Contact).
    pub async fn ring(&mut self) {
        if let Err(e) = self.inner.provisional(&self.call_id, 180).await {
            panic!("{}", self.inner.failure(&format!("ring: {e}")));
        }
    }

    /// 200 OK with our SDP answer; waits for the ACK, sending the 200 again on T1 doubling
    /// until it comes (at most 64*T1).
    pub async fn answer(&mut self) {
        if let Err(e) = self.inner.final_response(&self.call_id, 200).await {
            panic!("{}", self.inner.failure(&format!("answer: {e}")));
        }
    }

    /// A final non-2xx response; waits for the ACK (sending the response again until it comes).
    pub async fn reject(&mut self, code: u16) {
        assert!(code >= 300, "reject({code}): not a failure code");
        if let Err(e) = self.inner.final_response(&self.call_id, code).await {
            panic!("{}", self.inner.failure(&format!("reject: {e}")));
        }
    }

    /// BYE (once the ACK of our 200 is in) and waits for its final response. Unanswered, the
    /// call is rejected with 480 instead; nothing if it has already ended.
    pub async fn hangup(&mut self) {
        let inner = self.inner.clone();
        let cid = self.call_id.as_str();
        let (final_sent, ended) = {
            let st = inner.lock();
            let call = &st.calls[cid];
            (
                call.final_sent,
                call.remote_bye.is_some() || call.remote_cancel.is_some() || call.bye_sent,
            )
        };
        match final_sent {
            _ if ended => {}
            None => {
                if let Err(e) = inner.final_response(cid, 480).await {
                    // A CANCEL may have overtaken us: then the call is over anyway.
                    inner.note(&format!("hangup before answer: {e}"));
                }
            }
            Some(code) if (200..300).contains(&code) => {
                let cseq = self.invite.cseq().map_or(0, |c| c.0);
                let ended = inner
                    .wait(
                        TRANSACTION_TIMEOUT,
                        |st| {
                            let call = st.calls.get(cid)?;
                            (call.acked.contains(&cseq) || call.remote_bye.is_some())
                                .then_some(call.remote_bye.is_some())
                        },
                        |st| format!("hangup: no ACK for our 200: {}", inner.describe(st, cid)),
                    )
                    .await;
                if !ended {
                    inner.bye(cid).await;
                }
            }
            Some(_) => {}
        }
    }

    /// Waits for the caller to end the call: its BYE (answered 200), or its CANCEL (answered
    /// 200, then 487 to the INVITE; returns once that is ACKed).
    pub async fn ended_by_remote(&mut self, within: Duration) -> SipMessage {
        let cid = self.call_id.as_str();
        let cseq = self.invite.cseq().map_or(0, |c| c.0);
        self.inner
            .wait(
                within,
                |st| {
                    let call = st.calls.get(cid)?;
                    if let Some(bye) = &call.remote_bye {
                        return Some(bye.clone());
                    }
                    call.remote_cancel
                        .clone()
                        .filter(|_| call.acked.contains(&cseq))
                },
                |st| {
                    format!(
                        "the caller did not end the call within {within:?}: {}",
                        self.inner.describe(st, cid)
                    )
                },
            )
            .await
    }
}
