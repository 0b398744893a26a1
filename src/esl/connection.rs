//! One authenticated inbound connection to a FreeSWITCH node.
//!
//! A connection is two tasks around one TCP socket. The **reader** drains the
//! socket as fast as bytes arrive, whatever the rest of the daemon is doing:
//! FreeSWITCH queues events per listener and kills listeners that read slowly
//! (docs/esl-protocol.md §1.7), so back-pressure must never reach the socket. It hands
//! `command/reply` and `api/response` frames to the oldest waiting request
//! (FreeSWITCH answers strictly in order, with events interleaved: §2.6), hands
//! BACKGROUND_JOB events to the `bgapi` call that chose their `Job-UUID`, and
//! puts every other event on the connection's event queue. It reads in large
//! chunks ([`READ_CHUNK`]) and hands every event decoded from one read to the
//! queue at once, with one wake-up of the consumer, not one per event.
//!
//! The queue is bounded by **bytes** ([`ConnectOptions::event_queue_bytes`]:
//! an event is charged its body plus its header index) and by a count
//! ([`ConnectOptions::event_capacity`]). Beyond either bound the newest event
//! is dropped and counted, and a [`Delivery::Lagged`] tells the consumer how
//! many it missed before the next event it gets, so that it can reconcile
//! instead of silently diverging. Once the queue is half full, event bodies are
//! copied out of the read buffer as they are decoded, so that an event that
//! waits does not keep a whole read chunk alive and the bound stays honest.
//!
//! The **writer** owns the write half and sends commands in the order callers
//! submitted them, registering each reply slot just before its bytes go out.
//! Callers only ever wait on a oneshot, so dropping a call (a timeout, a
//! cancelled request) can never leave half a command on the wire.
//!
//! Liveness: TCP keepalive on the socket (FreeSWITCH does not set it on inbound
//! sockets) and an idle limit: with HEARTBEAT subscribed, a node that sends no
//! frame at all for that long is declared dead. Every request has a timeout.
//! When the connection ends, every waiting request fails at once with
//! [`RequestError::ConnectionLost`]; nothing is left hanging.
//!
//! This module speaks the protocol only. Reconnecting is [`super::node`]'s job.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use uuid::Uuid;

use super::api::ApiCommand;
use super::codec::{DecodeError, EslCodec, Message, Reply};
use super::command::{Command, EventName, Password};
use super::event::{Event, EventFormat};
pub use super::queue::queue_charge;
use super::queue::Queue;

/// How to connect and how long to wait.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The ESL password (`event_socket.conf.xml`).
    pub password: Password,
    /// Limit for TCP connect plus authentication.
    pub connect_timeout: Duration,
    /// Limit for each command's reply.
    pub request_timeout: Duration,
    /// A connection that receives no frame for this long is declared dead.
    /// Subscribe HEARTBEAT (every 20 s by default) and set this to about three
    /// intervals. `None` disables the check.
    pub idle_timeout: Option<Duration>,
    /// TCP keepalive idle time (probes follow every third of it).
    pub keepalive: Option<Duration>,
    /// Most events the queue holds, whatever their size; beyond it the
    /// newest events are dropped. The byte bound below is usually the one
    /// that binds; this one caps a flood of tiny events.
    pub event_capacity: usize,
    /// Most bytes the queue holds: each waiting event is charged its body
    /// plus its header index ([`queue_charge`]). Beyond it the newest events
    /// are dropped (an event larger than the whole bound is still taken when
    /// the queue is empty). This is what bounds the connection's memory when
    /// the consumer falls behind. Under glibc, expect up to about twice this
    /// in resident memory: the reader allocates from the arena of whichever
    /// runtime thread it runs on.
    pub event_queue_bytes: usize,
}

/// Default of [`ConnectOptions::event_queue_bytes`]: 256 MiB, about 25,000
/// typical channel events (6 kB of text and 4 kB of index each): room for a
/// burst of many seconds while the pipeline waits (a full-speed replay of
/// 27,000 recorded events lost some behind a 16 MiB bound). `fsgate events`,
/// whose memory must stay small, asks for less.
pub const DEFAULT_EVENT_QUEUE_BYTES: usize = 256 * 1024 * 1024;

/// The socket is read into chunks of this size (more when a frame is larger).
pub const READ_CHUNK: usize = 256 * 1024;

/// A new chunk is started when less than this is free in the current one.
const MIN_READ: usize = 32 * 1024;

impl ConnectOptions {
    /// Defaults for a password: 5 s connect, 10 s per request, 60 s idle
    /// limit, 10 s keepalive, an event queue of at most 256 MiB
    /// ([`DEFAULT_EVENT_QUEUE_BYTES`]) and 65,536 events.
    pub fn new(password: Password) -> ConnectOptions {
        ConnectOptions {
            password,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(60)),
            keepalive: Some(Duration::from_secs(10)),
            event_capacity: 65_536,
            event_queue_bytes: DEFAULT_EVENT_QUEUE_BYTES,
        }
    }
}

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP failed: the switch is down or unreachable. Worth retrying.
    #[error("cannot reach FreeSWITCH: {0}")]
    Io(#[from] std::io::Error),
    /// Connect or authentication took longer than the limit. Worth retrying.
    #[error("FreeSWITCH did not complete the connection within {0:?}")]
    Timeout(Duration),
    /// The password was refused. Retrying cannot help: fix the configuration.
    #[error("FreeSWITCH refused the ESL password (-ERR invalid); check the configured password")]
    AuthFailed,
    /// The switch's ACL refused this client: fix `apply-inbound-acl` in
    /// event_socket.conf.xml. Retried all the same (slowly): a switch whose
    /// mod_event_socket is being reloaded refuses every client this way
    /// until it is loaded again (seen on the real switch).
    #[error("FreeSWITCH rejected this client by ACL: {0}")]
    Rejected(String),
    /// The peer did not speak ESL as expected.
    #[error("unexpected answer from the ESL peer: {0}")]
    Protocol(String),
}

impl ConnectError {
    /// False for errors that only a configuration change can fix (a refused
    /// password). An ACL rejection is retried: it is also what a switch
    /// reloading its Event Socket answers.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ConnectError::AuthFailed)
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No reply within the request timeout. The command may still run.
    #[error("FreeSWITCH did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection closed before the reply came. The command may or may
    /// not have run; reconcile before retrying anything not idempotent.
    #[error("the ESL connection was lost before FreeSWITCH answered")]
    ConnectionLost,
    /// The reply was not the kind this request expects.
    #[error("unexpected reply from FreeSWITCH: {0}")]
    Unexpected(String),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// We closed it.
    Local,
    /// The peer closed the socket (or sent its disconnect notice).
    PeerClosed,
    /// No frame for longer than the idle limit.
    Idle(Duration),
    /// The byte stream could not be decoded or the socket failed.
    Error(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::PeerClosed => f.write_str("closed by FreeSWITCH"),
            CloseReason::Idle(d) => write!(f, "no frame from FreeSWITCH for {d:?}"),
            CloseReason::Error(e) => write!(f, "{e}"),
        }
    }
}

/// What the event queue carries.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// One event, in the order FreeSWITCH sent it.
    Event(Event),
    /// This many events were dropped (the queue was full) before the next
    /// delivery, or before the end when the last events were dropped. State
    /// built from events must be reconciled.
    Lagged(u64),
}

/// Counters of one connection.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events read from the socket.
    pub events_received: AtomicU64,
    /// Events dropped because the consumer was behind.
    pub events_dropped: AtomicU64,
    /// Frames that were well framed but unreadable.
    pub malformed: AtomicU64,
    /// Bytes charged ([`queue_charge`]) by the events waiting in the queue now.
    pub queued_bytes: AtomicU64,
    /// The most bytes the queue ever held.
    pub peak_queued_bytes: AtomicU64,
}

enum Answer {
    Reply(Reply),
    Api(Bytes),
}

type Slot = oneshot::Sender<Answer>;

struct Shared {
    pending: Mutex<VecDeque<Slot>>,
    jobs: Mutex<HashMap<String, oneshot::Sender<Event>>>,
    closed: AtomicBool,
    close_reason: watch::Sender<Option<CloseReason>>,
    stats: Stats,
}

impl Shared {
    fn close(&self, reason: CloseReason) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.close_reason.send_replace(Some(reason));
        }
        // Dropping the senders wakes every waiter with ConnectionLost.
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

struct Outgoing {
    bytes: BytesMut,
    slot: Option<Slot>,
}

/// Sends commands on one connection. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Outgoing>,
    request_timeout: Duration,
    close_rx: watch::Receiver<Option<CloseReason>>,
}

/// The events of one connection.
pub struct Events {
    queue: Arc<Queue>,
    shared: Arc<Shared>,
    close_rx: watch::Receiver<Option<CloseReason>>,
}

impl Events {
    /// The next delivery; `None` once the connection has ended and every
    /// queued delivery was taken.
    pub async fn recv(&mut self) -> Option<Delivery> {
        loop {
            let ready = self.queue.ready.notified();
            if let Some(one) = self.queue.take_one(&self.shared.stats) {
                return one;
            }
            ready.await;
        }
    }

    /// Waits for deliveries and moves up to `limit` of them into `out`
    /// (appended); returns how many. Zero means the connection has ended and
    /// the queue is drained. Draining in batches costs one lock and at most
    /// one wake-up per batch instead of per event.
    pub async fn recv_many(&mut self, out: &mut Vec<Delivery>, limit: usize) -> usize {
        loop {
            let ready = self.queue.ready.notified();
            if let Some(n) = self.queue.take(out, limit, &self.shared.stats) {
                return n;
            }
            ready.await;
        }
    }

    /// Why the connection ended (after `recv` returned `None`).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_rx.borrow().clone()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.queue.abandon(&self.shared.stats);
    }
}

/// The read half with its buffer and decoder.
struct Reader {
    read: OwnedReadHalf,
    buf: BytesMut,
    codec: EslCodec,
}

impl Reader {
    fn new(read: OwnedReadHalf) -> Reader {
        Reader {
            read,
            buf: BytesMut::with_capacity(READ_CHUNK),
            codec: EslCodec::default(),
        }
    }

    /// The next complete message already in the buffer.
    fn decode(&mut self) -> Result<Option<Message>, DecodeError> {
        self.codec.decode(&mut self.buf)
    }

    /// Reads once from the socket; false at a clean end of stream.
    async fn fill(&mut self) -> Result<bool, DecodeError> {
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            self.buf.reserve(READ_CHUNK);
        }
        if self.read.read_buf(&mut self.buf).await? > 0 {
            return Ok(true);
        }
        if self.buf.is_empty() {
            Ok(false)
        } else {
            Err(DecodeError::Io(std::io::Error::other(
                "bytes remaining on stream",
            )))
        }
    }

    /// The next message, reading as needed; `None` at a clean end of stream.
    async fn next(&mut self) -> Result<Option<Message>, DecodeError> {
        loop {
            if let Some(m) = self.decode()? {
                return Ok(Some(m));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }
}

/// A background job: the `bgapi` was accepted; its result comes later.
pub struct BackgroundJob {
    job_uuid: Uuid,
    rx: oneshot::Receiver<Event>,
    shared: Arc<Shared>,
}

impl BackgroundJob {
    /// The Job-UUID we chose.
    pub fn job_uuid(&self) -> Uuid {
        self.job_uuid
    }

    /// Waits for the BACKGROUND_JOB event; its body is the API output.
    pub async fn result(mut self, timeout: Duration) -> Result<Event, RequestError> {
        match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(_)) => Err(RequestError::ConnectionLost),
            Err(_) => Err(RequestError::Timeout(timeout)),
        }
    }
}

impl Drop for BackgroundJob {
    fn drop(&mut self) {
        let key = self.job_uuid.to_string();
        self.shared
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}

/// Connects, authenticates, and starts the reader and writer tasks.
pub async fn connect(addr: &str, opts: &ConnectOptions) -> Result<(Client, Events), ConnectError> {
    match tokio::time::timeout(opts.connect_timeout, connect_inner(addr, opts)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout(opts.connect_timeout)),
    }
}

async fn connect_inner(
    addr: &str,
    opts: &ConnectOptions,
) -> Result<(Client, Events), ConnectError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    if let Some(idle) = opts.keepalive {
        let ka = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval((idle / 3).max(Duration::from_secs(1)))
            .with_retries(3);
        socket2::SockRef::from(&stream).set_tcp_keepalive(&ka)?;
    }
    let (read, mut write) = stream.into_split();
    let mut frames = Reader::new(read);

    let first = next_message(&mut frames).await?;
    match first {
        Message::AuthRequest => {}
        Message::RudeRejection(text) => return Err(ConnectError::Rejected(text.trim().to_owned())),
        other => {
            return Err(ConnectError::Protocol(format!(
                "expected auth/request, got {other:?}"
            )))
        }
    }
    let mut buf = BytesMut::new();
    Command::Auth(opts.password.clone()).encode(&mut buf);
    write.write_all(&buf).await?;
    match next_message(&mut frames).await? {
        Message::Reply(r) if r.is_ok() => {}
        Message::Reply(r) if r.text().starts_with("-ERR invalid") => {
            return Err(ConnectError::AuthFailed)
        }
        Message::Reply(r) => {
            return Err(ConnectError::Protocol(format!(
                "auth answered {:?}",
                r.text()
            )))
        }
        other => return Err(ConnectError::Protocol(format!("auth answered {other:?}"))),
    }

    let (close_tx, close_rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        pending: Mutex::new(VecDeque::new()),
        jobs: Mutex::new(HashMap::new()),
        closed: AtomicBool::new(false),
        close_reason: close_tx,
        stats: Stats::default(),
    });
    let (tx, out_rx) = mpsc::unbounded_channel();
    let queue = Arc::new(Queue::new(opts.event_capacity, opts.event_queue_bytes));
    tokio::spawn(write_loop(write, out_rx, shared.clone()));
    tokio::spawn(read_loop(
        frames,
        queue.clone(),
        shared.clone(),
        opts.idle_timeout,
    ));
    let events = Events {
        queue,
        shared: shared.clone(),
        close_rx: close_rx.clone(),
    };
    let client = Client {
        shared,
        tx,
        request_timeout: opts.request_timeout,
        close_rx,
    };
    Ok((client, events))
}

async fn next_message(frames: &mut Reader) -> Result<Message, ConnectError> {
    match frames.next().await {
        Ok(Some(m)) => Ok(m),
        Err(DecodeError::Io(e)) => Err(ConnectError::Io(e)),
        Err(e) => Err(ConnectError::Protocol(e.to_string())),
        Ok(None) => Err(ConnectError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "FreeSWITCH closed the connection",
        ))),
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
) {
    let mut batch = BytesMut::with_capacity(4096);
    while let Some(first) = rx.recv().await {
        // Register slots and gather whatever else is queued into one write.
        let mut next = Some(first);
        while let Some(out) = next {
            if let Some(slot) = out.slot {
                let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
                // After close, dropping the slot fails its waiter at once.
                if !shared.closed.load(Ordering::SeqCst) {
                    pending.push_back(slot);
                }
            }
            batch.extend_from_slice(&out.bytes);
            next = rx.try_recv().ok();
        }
        if let Err(e) = write.write_all(&batch).await {
            shared.close(CloseReason::Error(format!(
                "writing to FreeSWITCH failed: {e}"
            )));
            break;
        }
        batch.clear();
    }
    let _ = write.shutdown().await;
}

/// Ends the queue however the reader stops (returning, or the task aborted).
struct EndQueue(Arc<Queue>);

impl Drop for EndQueue {
    fn drop(&mut self) {
        self.0.end();
    }
}

async fn read_loop(
    mut frames: Reader,
    queue: Arc<Queue>,
    shared: Arc<Shared>,
    idle: Option<Duration>,
) {
    let _end = EndQueue(queue.clone());
    let mut closing = shared.close_reason.subscribe();
    let idle_limit = idle.unwrap_or(Duration::MAX);
    let detach_above = (queue.max_bytes() / 2) as u64;
    let mut batch: Vec<Event> = Vec::with_capacity(64);
    let mut last_frame = Instant::now();
    let reason = 'read: loop {
        // Everything already buffered, then one read.
        frames
            .codec
            .set_detach_events(shared.stats.queued_bytes.load(Ordering::Relaxed) > detach_above);
        loop {
            let message = match frames.decode() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    queue.push(&mut batch, &shared.stats);
                    break 'read CloseReason::Error(e.to_string());
                }
            };
            last_frame = Instant::now();
            match message {
                Message::Event(event) => {
                    shared.stats.events_received.fetch_add(1, Ordering::Relaxed);
                    if event.is("BACKGROUND_JOB") {
                        // Events before it reach the queue before its waiter wakes.
                        queue.push(&mut batch, &shared.stats);
                        if let Some(event) = take_job_result(&shared, event) {
                            batch.push(event);
                        }
                    } else {
                        batch.push(event);
                    }
                }
                Message::Reply(r) => {
                    queue.push(&mut batch, &shared.stats);
                    answer(&shared, Answer::Reply(r));
                }
                Message::ApiResponse(body) => {
                    queue.push(&mut batch, &shared.stats);
                    answer(&shared, Answer::Api(body));
                }
                Message::Disconnect(notice) if notice.is_linger() => {}
                Message::Disconnect(_) => {
                    queue.push(&mut batch, &shared.stats);
                    break 'read CloseReason::PeerClosed;
                }
                Message::Malformed { error, .. } => {
                    shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "unreadable event from FreeSWITCH skipped");
                }
                Message::AuthRequest
                | Message::RudeRejection(_)
                | Message::Log(_)
                | Message::Other(_) => {}
            }
        }
        queue.push(&mut batch, &shared.stats);
        let deadline = last_frame.checked_add(idle_limit);
        let read = async {
            match deadline {
                Some(at) => tokio::time::timeout_at(at, frames.fill()).await.ok(),
                None => Some(frames.fill().await),
            }
        };
        let filled = tokio::select! {
            filled = read => filled,
            // Closed locally: stop reading; the reason is already recorded.
            _ = closing.wait_for(Option::is_some) => return,
        };
        match filled {
            None => break CloseReason::Idle(idle_limit),
            Some(Ok(true)) => {}
            Some(Ok(false)) => break CloseReason::PeerClosed,
            Some(Err(e)) => break CloseReason::Error(e.to_string()),
        }
    };
    tracing::debug!(%reason, "ESL connection ended");
    shared.close(reason);
}

fn answer(shared: &Shared, answer: Answer) {
    let slot = shared
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_front();
    match slot {
        // The waiter may have timed out; its slot still keeps replies in order.
        Some(slot) => drop(slot.send(answer)),
        None => tracing::warn!("reply from FreeSWITCH with no request waiting; ignored"),
    }
}

/// Routes a BACKGROUND_JOB to the `bgapi` that asked for it; returns it
/// when no `bgapi` waits for it.
fn take_job_result(shared: &Shared, event: Event) -> Option<Event> {
    let job = event.job_uuid()?.into_owned();
    let waiter = shared
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job);
    match waiter {
        Some(tx) => {
            let _ = tx.send(event);
            None
        }
        None => Some(event),
    }
}

impl Client {
    async fn request(&self, command: &Command) -> Result<Answer, RequestError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(RequestError::ConnectionLost);
        }
        let mut bytes = BytesMut::new();
        command.encode(&mut bytes);
        let (slot, rx) = oneshot::channel();
        self.tx
            .send(Outgoing {
                bytes,
                slot: Some(slot),
            })
            .map_err(|_| RequestError::ConnectionLost)?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(RequestError::ConnectionLost),
            Err(_) => Err(RequestError::Timeout(self.request_timeout)),
        }
    }

    /// Sends a socket command and returns its `command/reply`.
    pub async fn command(&self, command: &Command) -> Result<Reply, RequestError> {
        match self.request(command).await? {
            Answer::Reply(r) => Ok(r),
            Answer::Api(body) => Err(RequestError::Unexpected(format!(
                "api/response to {}: {}",
                command.name(),
                String::from_utf8_lossy(&body)
            ))),
        }
    }

    /// Runs `api <command>` and returns its output (the api/response body).
    /// Output starting `-ERR` is still output: the caller interprets it.
    pub async fn api(&self, command: &ApiCommand) -> Result<Bytes, RequestError> {
        match self.request(&Command::Api(command.clone())).await? {
            Answer::Api(body) => Ok(body),
            // `-ERR permission denied` comes as a command/reply.
            Answer::Reply(r) => Err(RequestError::Unexpected(r.text().into_owned())),
        }
    }

    /// Runs `bgapi <command>` with a Job-UUID of our own. Returns once
    /// FreeSWITCH accepted the job; the result arrives as a BACKGROUND_JOB,
    /// which the connection must be subscribed to.
    pub async fn bgapi(&self, command: &ApiCommand) -> Result<BackgroundJob, RequestError> {
        let job_uuid = Uuid::new_v4();
        let (tx, rx) = oneshot::channel();
        self.shared
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job_uuid.to_string(), tx);
        let job = BackgroundJob {
            job_uuid,
            rx,
            shared: self.shared.clone(),
        };
        let reply = self
            .command(&Command::BgApi {
                command: command.clone(),
                job_uuid,
            })
            .await?;
        if !reply.is_ok() {
            return Err(RequestError::Unexpected(reply.text().into_owned()));
        }
        Ok(job)
    }

    /// Subscribes to events (`event <format> <names…>`; no names means ALL).
    pub async fn subscribe(
        &self,
        format: EventFormat,
        events: &[EventName],
    ) -> Result<(), RequestError> {
        let reply = self
            .command(&Command::Event {
                format,
                events: events.to_vec(),
            })
            .await?;
        if reply.is_ok() {
            Ok(())
        } else {
            Err(RequestError::Unexpected(reply.text().into_owned()))
        }
    }

    /// Sends `exit` and closes. Waiting requests fail with ConnectionLost.
    pub async fn close(&self) {
        let mut bytes = BytesMut::new();
        Command::Exit.encode(&mut bytes);
        let _ = self.tx.send(Outgoing { bytes, slot: None });
        self.shared.close(CloseReason::Local);
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Waits until the connection ends and says why.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.close_rx.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return CloseReason::Local;
            }
        }
    }

    /// The connection's counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }
}
