//! The API commands the simulator understands (`api …` / `bgapi …`), with
//! mod_commands' exact output texts: status, uuid_answer, uuid_kill,
//! uuid_transfer, uuid_exists, uuid_getvar, uuid_setvar, originate, show
//! (in `show.rs`), and the "Command not found" reply.
//!
//! It turns command text into `core::Switch` calls and formats results; it
//! must not touch sockets or fire events itself.

use super::channel::Channel;
use super::core::{Dialed, HangupOrigin, Switch};
use super::events::status_text;
use super::exec::{parse_cause, Plan};
use super::originate::{parse_originate, separate_words, OriginateError, Target, ORIGINATE_USAGE};

/// Starts the driver of an originated leg when dropped (after the caller has
/// written its reply or fired its BACKGROUND_JOB, as FreeSWITCH orders them),
/// or reports a leg that failed.
#[derive(Debug)]
pub struct Launch {
    sw: Switch,
    uuid: String,
    plan: Option<Plan>,
}

impl Drop for Launch {
    fn drop(&mut self) {
        match self.plan.take() {
            Some(plan) => self.sw.spawn_driver(&self.uuid, plan),
            None => self.sw.finish(&self.uuid),
        }
    }
}

/// What an API command produced.
#[derive(Debug)]
pub struct Output {
    /// The response body.
    pub body: String,
    /// A channel to start once the response is out.
    pub launch: Option<Launch>,
}

impl From<String> for Output {
    fn from(body: String) -> Output {
        Output { body, launch: None }
    }
}

impl From<&str> for Output {
    fn from(body: &str) -> Output {
        Output {
            body: body.to_string(),
            launch: None,
        }
    }
}

/// Splits `cmd args` the way the core does (trimmed).
pub fn split_command(line: &str) -> (String, String) {
    let line = line.trim();
    match line.split_once(' ') {
        Some((c, a)) => (c.to_string(), a.trim().to_string()),
        None => (line.to_string(), String::new()),
    }
}

/// Runs an API command.
pub async fn execute(sw: &Switch, cmd: &str, args: &str) -> Output {
    match cmd {
        "status" => status_text(sw.bus(), sw.stats()).into(),
        "uuid_answer" => {
            let uuid = args.split_whitespace().next().unwrap_or_default();
            if !sw.locate(uuid) {
                return "-ERROR\n".into();
            }
            if sw.answer(uuid, &[]) {
                "+OK\n".into()
            } else {
                "-ERROR\n".into()
            }
        }
        "uuid_kill" => {
            if args.is_empty() {
                return "-USAGE: <uuid> [cause]\n".into();
            }
            let (uuid, cause) = match args.split_once(' ') {
                Some((u, c)) => (u, parse_cause(c)),
                None => (args, crate::esl::HangupCause::NORMAL_CLEARING),
            };
            if !sw.locate(uuid) {
                return "-ERR No such channel!\n".into();
            }
            sw.hangup(uuid, cause, HangupOrigin::Local);
            "+OK\n".into()
        }
        "uuid_exists" => {
            let uuid = args.split_whitespace().next().unwrap_or_default();
            if sw.locate(uuid) { "true" } else { "false" }.into()
        }
        "uuid_transfer" => uuid_transfer(sw, args),
        "uuid_getvar" => {
            let w: Vec<&str> = args.split_whitespace().collect();
            if w.len() < 2 {
                return "-USAGE: <uuid> <var>\n".into();
            }
            match sw.channel(w[0]) {
                Some(ch) if !ch.hanging_up => ch
                    .vars
                    .get(w[1])
                    .map(str::to_string)
                    .unwrap_or_else(|| "_undef_".to_string())
                    .into(),
                _ => "-ERR No such channel!\n".into(),
            }
        }
        "uuid_setvar" => {
            let mut it = args.splitn(3, ' ');
            let (Some(uuid), Some(var)) = (it.next(), it.next()) else {
                return "-USAGE: <uuid> <var> [value]\n".into();
            };
            let value = it.next().filter(|v| !v.is_empty() && *v != "undef");
            if !sw.locate(uuid) {
                return "-ERR No such channel!\n".into();
            }
            sw.set_var(uuid, var, value);
            "+OK\n".into()
        }
        "originate" => Box::pin(originate(sw, args)).await,
        "show" => super::show::show(sw, args).into(),
        "hostname" => sw.bus().switchname.clone().into(),
        "version" => "FreeSWITCH Version 1.11.3-dev~64bit (fsgate simulator)\n".into(),
        _ => format!("-ERR {cmd} Command not found!\n").into(),
    }
}

fn uuid_transfer(sw: &Switch, args: &str) -> Output {
    const USAGE: &str = "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n";
    let mut w = separate_words(args);
    if w.len() < 2 || w.len() > 5 {
        return USAGE.into();
    }
    let uuid = w.remove(0);
    let mode = match w[0].as_str() {
        "-bleg" | "-both" => Some(w.remove(0)),
        _ => None,
    };
    if w.is_empty() {
        return USAGE.into();
    }
    let Some(ch) = sw.channel(&uuid).filter(|c| !c.hanging_up) else {
        return "-ERR No such channel!\n".into();
    };
    let exten = w[0].clone();
    let defaults = |c: &Channel| {
        let dp = c
            .vars
            .get("force_transfer_dialplan")
            .map(str::to_string)
            .or_else(|| {
                (!c.profile.dialplan.is_empty() && c.profile.dialplan != "inline")
                    .then(|| c.profile.dialplan.clone())
            })
            .unwrap_or_else(|| "XML".to_string());
        let ctx = c
            .vars
            .get("force_transfer_context")
            .map(str::to_string)
            .or_else(|| (!c.profile.context.is_empty()).then(|| c.profile.context.clone()))
            .unwrap_or_else(|| "default".to_string());
        (dp, ctx)
    };
    let mut targets = Vec::new();
    match mode.as_deref() {
        Some("-bleg") => targets.push(sw.partner(&uuid).unwrap_or(uuid.clone())),
        Some("-both") => {
            if let Some(p) = sw.partner(&uuid) {
                targets.push(p);
            }
            targets.push(uuid.clone());
        }
        _ => targets.push(uuid.clone()),
    }
    for t in targets {
        let Some(tc) = sw.channel(&t) else { continue };
        let (ddp, dctx) = defaults(&tc);
        let dp = w.get(1).cloned().unwrap_or(ddp);
        let ctx = w.get(2).cloned().unwrap_or(dctx);
        if sw.transfer(&t, &exten, &dp, &ctx).is_err() {
            return "-ERR\n".into();
        }
    }
    let _ = ch;
    "+OK\n".into()
}

async fn originate(sw: &Switch, args: &str) -> Output {
    let a = match parse_originate(args) {
        Ok(a) => a,
        Err(OriginateError::Usage) => return ORIGINATE_USAGE.into(),
        Err(OriginateError::Dial(_)) => return "-ERR INVALID_URL\n".into(),
    };
    let timeout = a
        .dial
        .global
        .iter()
        .rev()
        .find(|(k, _)| k == "originate_timeout")
        .and_then(|(_, v)| v.parse().ok())
        .or(a.timeout_s)
        .map(std::time::Duration::from_secs)
        .unwrap_or(sw.default_timeout());
    let dialed = Box::pin(sw.dial_string(
        None,
        &a.dial,
        (a.cid_name.clone(), a.cid_num.clone()),
        timeout,
    ))
    .await;
    match dialed {
        Dialed::Failed(c, leg) => Output {
            body: format!("-ERR {}\n", c.name()),
            // The failed leg reports once the result is out (originate-no-answer).
            launch: leg.map(|uuid| Launch {
                sw: sw.clone(),
                uuid,
                plan: None,
            }),
        },
        Dialed::Answered(b) => {
            sw.originate_answered_flip(&b);
            let plan = match a.target {
                Target::App { name, arg } => Plan::Apps(vec![(name, arg)]),
                Target::Exten {
                    exten,
                    dialplan,
                    context,
                } => {
                    let _ = sw.transfer(&b, &exten, &dialplan, &context);
                    sw.clear_signals(&b);
                    Plan::Hunt
                }
            };
            Output {
                body: format!("+OK {b}\n"),
                launch: Some(Launch {
                    sw: sw.clone(),
                    uuid: b,
                    plan: Some(plan),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_commands() {
        assert_eq!(
            split_command("  uuid_kill  x USER_BUSY "),
            ("uuid_kill".to_string(), "x USER_BUSY".to_string())
        );
        assert_eq!(
            split_command("status"),
            ("status".to_string(), String::new())
        );
    }
}
