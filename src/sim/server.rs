//! The ESL listener and one session per client, inbound mode as
//! mod_event_socket runs it: ACL check (rude rejection), `auth/request`,
//! authentication, every socket command with its exact reply, one reply per
//! command in order, events flushed only between commands, `bgapi` jobs,
//! disconnect notices; plus the fault switches (drop, stall, malformed
//! frame, stop reading) and the record of received commands.
//!
//! It owns sockets and the per-client protocol state; channel behaviour is
//! `core`'s, command texts of `api` are `api`'s, bytes are `wire`'s.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use super::api;
use super::bus::ClientSink;
use super::core::Switch;
use super::events::background_job;
use super::faults::{Faults, Received};
use super::wire::{self, EventFormat, Request, RequestCodec};

/// Which peers may connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Acl {
    /// Everyone.
    #[default]
    AllowAll,
    /// Nobody (every connection gets the rude rejection).
    RejectAll,
    /// Only these addresses.
    Allow(Vec<IpAddr>),
}

impl Acl {
    fn allows(&self, ip: IpAddr) -> bool {
        match self {
            Acl::AllowAll => true,
            Acl::RejectAll => false,
            Acl::Allow(list) => list.contains(&ip),
        }
    }
}

/// What every session shares.
#[derive(Debug)]
pub struct ServerCtx {
    pub sw: Switch,
    pub password: String,
    pub acl: Acl,
    pub faults: Arc<Faults>,
    /// Time allowed for the first packet.
    pub first_packet_timeout: Duration,
}

/// Accepts clients until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ServerCtx>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let ctx = ctx.clone();
                    let sd = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(e) = Session::run(stream, peer, ctx, sd).await {
                            tracing::debug!(%peer, "esl session ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("esl accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

enum After {
    Continue,
    /// Write a disconnect notice and close.
    Close,
}

struct Session {
    ctx: Arc<ServerCtx>,
    sink: Arc<ClientSink>,
    wr: OwnedWriteHalf,
    buf: BytesMut,
    logging: bool,
}

fn starts_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

impl Session {
    async fn run(
        stream: TcpStream,
        peer: SocketAddr,
        ctx: Arc<ServerCtx>,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        if !ctx.acl.allows(peer.ip()) {
            let mut wr = wr;
            let mut b = BytesMut::new();
            wire::write_rude_rejection(&mut b);
            wire::write_disconnect_notice(&mut b);
            wr.write_all(&b).await?;
            let _ = wr.shutdown().await;
            return Ok(());
        }
        let bus = ctx.sw.bus().clone();
        let (sink, mut rx) = bus.register(peer);
        let mut s = Session {
            ctx: ctx.clone(),
            sink: sink.clone(),
            wr,
            buf: BytesMut::new(),
            logging: false,
        };
        let result = async {
            let mut reader = FramedRead::new(rd, RequestCodec::default());
            let mut drop_rx = ctx.faults.drop_gen.subscribe();
            let mut malformed_rx = ctx.faults.malformed_gen.subscribe();
            let mut stop_rx = ctx.faults.stop_reading.subscribe();
            wire::write_auth_request(&mut s.buf);
            s.flush().await?;
            let first_deadline = Instant::now() + ctx.first_packet_timeout;
            let mut first = true;
            loop {
                let stop_until = (*stop_rx.borrow()).filter(|t| *t > Instant::now());
                let reading = stop_until.is_none();
                let events_on = sink.authed.load(Ordering::Relaxed);
                tokio::select! {
                    biased;
                    _ = sink.kill.notified() => {
                        let text = sink.kill_reason.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        wire::write_disconnect_notice_text(&mut s.buf, text.as_deref().unwrap_or(wire::GOODBYE));
                        s.flush().await?;
                        break;
                    }
                    _ = drop_rx.changed() => break,
                    _ = shutdown.changed() => {
                        wire::write_disconnect_notice(&mut s.buf);
                        let _ = s.flush().await;
                        break;
                    }
                    _ = malformed_rx.changed() => {
                        s.buf.extend_from_slice(b"Content-Length: not-a-number\nContent-Type: text/event-plain\n\n");
                        s.flush().await?;
                    }
                    _ = stop_rx.changed() => {}
                    _ = async { if let Some(t) = stop_until { tokio::time::sleep_until(t).await } }, if !reading => {}
                    req = reader.next(), if reading => {
                        first = false;
                        match req {
                            None => break,
                            Some(Err(wire::RequestError::Io(e))) => return Err(e),
                            Some(Err(e)) => {
                                tracing::warn!(%peer, "closing client: {e}");
                                wire::write_disconnect_notice(&mut s.buf);
                                s.flush().await?;
                                break;
                            }
                            Some(Ok(req)) => {
                                match Box::pin(s.command(req)).await? {
                                    After::Continue => {}
                                    After::Close => {
                                        wire::write_disconnect_notice(&mut s.buf);
                                        s.flush().await?;
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    ev = rx.recv(), if events_on => {
                        let Some(ev) = ev else { break };
                        let format = sink.subs.lock().unwrap_or_else(|e| e.into_inner()).format;
                        wire::write_event(&mut s.buf, format, &ev.headers, ev.body.as_deref().map(str::as_bytes));
                        s.flush().await?;
                    }
                    _ = tokio::time::sleep_until(first_deadline), if first => break,
                }
                if sink.subs.lock().unwrap_or_else(|e| e.into_inner()).take_flush() {
                    while rx.try_recv().is_ok() {}
                }
            }
            Ok(())
        }
        .await;
        let _ = s.wr.shutdown().await;
        bus.unregister(sink.id);
        result
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.wr.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    async fn reply(&mut self, text: &str, extra: &[(&str, &str)]) -> std::io::Result<()> {
        self.stall().await;
        wire::write_command_reply(&mut self.buf, text, extra);
        self.flush().await
    }

    async fn stall(&self) {
        if let Some(t) = self.ctx.faults.stalled_until() {
            tokio::time::sleep_until(t).await;
        }
    }

    async fn command(&mut self, req: Request) -> std::io::Result<After> {
        let line = req.line.clone();
        let shown = if starts_ci(&line, "auth ") {
            "auth ********".to_string()
        } else {
            line.clone()
        };
        self.ctx.faults.record(Received {
            client: self.sink.id,
            peer: self.sink.peer.to_string(),
            line: shown,
            headers: req.headers.clone(),
        });
        let authed = self.sink.authed.load(Ordering::Relaxed);
        if starts_ci(&line, "exit") || starts_ci(&line, "...") {
            self.reply("+OK bye", &[]).await?;
            return Ok(After::Close);
        }
        if !authed {
            if starts_ci(&line, "auth ") {
                let pass = &line[5..];
                if pass == self.ctx.password {
                    self.sink.authed.store(true, Ordering::Relaxed);
                    self.reply("+OK accepted", &[]).await?;
                    return Ok(After::Continue);
                }
                self.reply("-ERR invalid", &[]).await?;
                return Ok(After::Close);
            }
            if starts_ci(&line, "userauth ") {
                self.reply("-ERR invalid", &[]).await?;
                return Ok(After::Close);
            }
            self.reply("-ERR command not found", &[]).await?;
            return Ok(After::Continue);
        }
        let sw = self.ctx.sw.clone();
        if starts_ci(&line, "api ") {
            let (cmd, args) = api::split_command(&line[4..]);
            let out = Box::pin(api::execute(&sw, &cmd, &args)).await;
            let body = if out.body.is_empty() {
                "-ERR no reply\n".to_string()
            } else {
                out.body.clone()
            };
            self.stall().await;
            wire::write_api_response(&mut self.buf, body.as_bytes());
            self.flush().await?;
            drop(out);
            return Ok(After::Continue);
        }
        if starts_ci(&line, "bgapi ") {
            let job: String = req
                .header("Job-UUID")
                .map(|j| j.chars().take(36).collect())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let (cmd, args) = api::split_command(&line[6..]);
            self.reply(&format!("+OK Job-UUID: {job}"), &[("Job-UUID", &job)])
                .await?;
            tokio::spawn(async move {
                let out = Box::pin(api::execute(&sw, &cmd, &args)).await;
                let ev = background_job(sw.bus(), &job, &cmd, &args, &out.body);
                sw.bus().fire(ev);
                drop(out);
            });
            return Ok(After::Continue);
        }
        let reply = self.socket_command(&req);
        match reply {
            Some(text) => self.reply(&text, &[]).await?,
            None => self.reply("-ERR command not found", &[]).await?,
        }
        Ok(After::Continue)
    }

    /// Socket commands other than api/bgapi/auth/exit; None = not found.
    fn socket_command(&mut self, req: &Request) -> Option<String> {
        let line = req.line.as_str();
        let arg = |n: usize| line.get(n..).unwrap_or("").trim().to_string();
        let mut subs = self.sink.subs.lock().unwrap_or_else(|e| e.into_inner());
        if starts_ci(line, "nixevent") {
            return Some(subs.nixevent(&arg(8)));
        }
        if starts_ci(line, "noevents") {
            let r = subs.noevents();
            subs.request_flush();
            return Some(r);
        }
        if starts_ci(line, "event") {
            return Some(subs.event(&arg(5)));
        }
        if starts_ci(line, "filter ") {
            return Some(subs.filter(&arg(7)));
        }
        if starts_ci(line, "myevents") {
            let a = arg(8);
            let mut w = a.split_whitespace();
            let uuid = w.next().unwrap_or_default().to_string();
            let fmt = w.next();
            if !self.ctx.sw.locate(&uuid) {
                return Some("-ERR invalid uuid".to_string());
            }
            if subs.listening() {
                return Some("-ERR aready enabled.".to_string());
            }
            subs.event(&format!("{} ALL", fmt.unwrap_or("plain")));
            subs.filter(&format!("Unique-ID {uuid}"));
            return Some("+OK Events Enabled".to_string());
        }
        if starts_ci(line, "divert_events") {
            return Some("-ERR not controlling a session.".to_string());
        }
        if starts_ci(line, "linger") || starts_ci(line, "nolinger") {
            return Some("-ERR not controlling a session".to_string());
        }
        if starts_ci(line, "nolog") {
            return Some(if self.logging {
                self.logging = false;
                "+OK no longer logging".to_string()
            } else {
                "-ERR not loging".to_string()
            });
        }
        if starts_ci(line, "log") {
            let a = arg(3);
            let (name, n) = match a.to_ascii_lowercase().as_str() {
                "" | "debug" | "7" => ("debug", 7),
                "info" | "6" => ("info", 6),
                "notice" | "5" => ("notice", 5),
                "warning" | "4" => ("warning", 4),
                "err" | "error" | "3" => ("err", 3),
                "crit" | "2" => ("crit", 2),
                "alert" | "1" => ("alert", 1),
                "console" | "0" => ("console", 0),
                _ => return Some("-ERR invalid log level".to_string()),
            };
            self.logging = true;
            let shown = if a.is_empty() { name.to_string() } else { a };
            return Some(format!("+OK log level {shown} [{n}]"));
        }
        drop(subs);
        if starts_ci(line, "sendevent") {
            let name = arg(9);
            let name = if name.is_empty() {
                "CUSTOM".to_string()
            } else {
                name
            };
            let bus = self.ctx.sw.bus();
            let mut ev = bus.new_event(&name, "mod_event_socket.c", "parse_command", 2153);
            let id = uuid::Uuid::new_v4().to_string();
            for (k, v) in &req.headers {
                if k.eq_ignore_ascii_case("Event-Subclass") {
                    ev.subclass = Some(v.clone());
                }
                ev.add(k, v.clone());
            }
            ev.add("Event-UUID", id.clone());
            ev.body = req
                .body
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            bus.fire(ev);
            return Some(format!("+OK {id}"));
        }
        if starts_ci(line, "sendmsg") {
            let uuid = arg(7);
            let uuid = if uuid.is_empty() {
                req.header("Unique-ID").unwrap_or_default().to_string()
            } else {
                uuid
            };
            if !self.ctx.sw.locate(&uuid) {
                return Some(format!("-ERR invalid session id [{uuid}]"));
            }
            let sw = self.ctx.sw.clone();
            match req.header("call-command").unwrap_or_default() {
                "hangup" => {
                    let cause = super::exec::parse_cause(req.header("hangup-cause").unwrap_or(""));
                    sw.hangup(&uuid, cause, super::core::HangupOrigin::Local);
                }
                "execute" => {
                    let app = req
                        .header("execute-app-name")
                        .unwrap_or_default()
                        .to_string();
                    let data = req
                        .header("execute-app-arg")
                        .unwrap_or_default()
                        .to_string();
                    tokio::spawn(async move {
                        sw.execute(&uuid, &app, &data).await;
                    });
                }
                _ => {}
            }
            return Some("+OK".to_string());
        }
        None
    }
}

/// The current format of a client (for reports).
pub fn format_name(f: EventFormat) -> &'static str {
    match f {
        EventFormat::Plain => "plain",
        EventFormat::Json => "json",
    }
}
