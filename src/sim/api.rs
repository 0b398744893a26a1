//! The API commands the simulator understands (`api …` / `bgapi …`), with
//! mod_commands' exact output texts: status, uuid_answer, uuid_kill,
//! uuid_transfer, uuid_exists, uuid_getvar, uuid_setvar, originate, show
//! channels|calls [as json], and the "Command not found" reply.
//!
//! It turns command text into `core::Switch` calls and formats results; it
//! must not touch sockets or fire events itself.

use super::channel::Channel;
use super::core::{Dialed, HangupOrigin, Switch};
use super::events::status_text;
use super::exec::{parse_cause, Plan};
use super::originate::{parse_originate, separate_words, OriginateError, Target, ORIGINATE_USAGE};

/// Starts the driver of an originated leg when dropped (after the caller has
/// written its reply or fired its BACKGROUND_JOB, as FreeSWITCH orders them).
#[derive(Debug)]
pub struct Launch {
    sw: Switch,
    uuid: String,
    plan: Option<Plan>,
}

impl Drop for Launch {
    fn drop(&mut self) {
        if let Some(plan) = self.plan.take() {
            self.sw.spawn_driver(&self.uuid, plan);
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
        "show" => show(sw, args).into(),
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
        Dialed::Failed(c) => format!("-ERR {}\n", c.name()).into(),
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

fn json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::Value::String(s.to_string()).to_string());
}

fn rows_json(rows: &[Vec<(&'static str, String)>]) -> String {
    if rows.is_empty() {
        return "{\"row_count\": 0}\n".to_string();
    }
    let mut out = format!("{{\"row_count\":{},\"rows\":[", rows.len());
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        for (j, (k, v)) in row.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json_str(&mut out, k);
            out.push(':');
            json_str(&mut out, v);
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

fn rows_text(rows: &[Vec<(&'static str, String)>], header: &[&str]) -> String {
    let mut out = header.join(",");
    out.push('\n');
    for row in rows {
        let vals: Vec<&str> = row.iter().map(|(_, v)| v.as_str()).collect();
        out.push_str(&vals.join(","));
        out.push('\n');
    }
    out.push_str(&format!("\n{} total.\n", rows.len()));
    out
}

const CHANNEL_COLUMNS: &[&str] = &[
    "uuid",
    "direction",
    "created",
    "created_epoch",
    "name",
    "state",
    "cid_name",
    "cid_num",
    "ip_addr",
    "dest",
    "application",
    "application_data",
    "dialplan",
    "context",
    "read_codec",
    "read_rate",
    "read_bit_rate",
    "write_codec",
    "write_rate",
    "write_bit_rate",
    "secure",
    "hostname",
    "presence_id",
    "presence_data",
    "accountcode",
    "callstate",
    "callee_name",
    "callee_num",
    "callee_direction",
    "call_uuid",
    "sent_callee_name",
    "sent_callee_num",
    "initial_cid_name",
    "initial_cid_num",
    "initial_ip_addr",
    "initial_dest",
    "initial_dialplan",
    "initial_context",
];

fn channel_row(sw: &Switch, c: &Channel) -> Vec<(&'static str, String)> {
    let media = |v: &str| {
        if c.has_media {
            v.to_string()
        } else {
            String::new()
        }
    };
    let app = c.current_app.as_ref();
    let vals = vec![
        c.uuid.clone(),
        c.direction.as_str().to_string(),
        super::bus::local_stamp(c.created_us),
        (c.created_us / 1_000_000).to_string(),
        c.name.clone(),
        c.running_state.to_string(),
        c.profile.caller_id_name.clone(),
        c.profile.caller_id_number.clone(),
        c.profile.network_addr.clone(),
        c.profile.destination_number.clone(),
        app.map(|a| a.name.clone()).unwrap_or_default(),
        app.map(|a| a.data.clone()).unwrap_or_default(),
        c.profile.dialplan.clone(),
        c.profile.context.clone(),
        media("PCMU"),
        media("8000"),
        media("64000"),
        media("PCMU"),
        media("8000"),
        media("64000"),
        String::new(),
        sw.bus().switchname.clone(),
        String::new(),
        String::new(),
        String::new(),
        c.callstate.to_string(),
        c.profile.callee_id_name.clone(),
        c.profile.callee_id_number.clone(),
        String::new(),
        c.call_uuid(),
        c.vars
            .get("last_sent_callee_id_name")
            .unwrap_or_default()
            .to_string(),
        c.vars
            .get("last_sent_callee_id_number")
            .unwrap_or_default()
            .to_string(),
        c.profile.orig_caller_id_name.clone(),
        c.profile.orig_caller_id_number.clone(),
        c.profile.network_addr.clone(),
        c.profile.destination_number.clone(),
        c.profile.dialplan.clone(),
        c.profile.context.clone(),
    ];
    CHANNEL_COLUMNS.iter().copied().zip(vals).collect()
}

const CALL_A: &[&str] = &[
    "uuid",
    "direction",
    "created",
    "created_epoch",
    "name",
    "state",
    "cid_name",
    "cid_num",
    "ip_addr",
    "dest",
    "presence_id",
    "presence_data",
    "accountcode",
    "callstate",
    "callee_name",
    "callee_num",
    "callee_direction",
    "call_uuid",
    "hostname",
    "sent_callee_name",
    "sent_callee_num",
];

const CALL_B: &[&str] = &[
    "b_uuid",
    "b_direction",
    "b_created",
    "b_created_epoch",
    "b_name",
    "b_state",
    "b_cid_name",
    "b_cid_num",
    "b_ip_addr",
    "b_dest",
    "b_presence_id",
    "b_presence_data",
    "b_accountcode",
    "b_callstate",
    "b_callee_name",
    "b_callee_num",
    "b_callee_direction",
    "b_sent_callee_name",
    "b_sent_callee_num",
];

fn call_row(sw: &Switch, a: &Channel, b: Option<&Channel>) -> Vec<(&'static str, String)> {
    let get = |row: &[(&'static str, String)], k: &str| {
        row.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let ar = channel_row(sw, a);
    let mut out: Vec<(&'static str, String)> = CALL_A.iter().map(|k| (*k, get(&ar, k))).collect();
    let br = b.map(|b| channel_row(sw, b));
    for k in CALL_B {
        let v = br
            .as_ref()
            .map(|r| get(r, k.trim_start_matches("b_")))
            .unwrap_or_default();
        out.push((k, v));
    }
    out.push(("call_created_epoch", get(&ar, "created_epoch")));
    out
}

fn show(sw: &Switch, args: &str) -> String {
    let words: Vec<&str> = args.split_whitespace().collect();
    let json = words.windows(2).any(|w| w[0] == "as" && w[1] == "json");
    let chans = sw.channels();
    match words.first().copied() {
        Some("channels") => {
            let rows: Vec<_> = chans.iter().map(|c| channel_row(sw, c)).collect();
            if json {
                rows_json(&rows)
            } else {
                rows_text(&rows, CHANNEL_COLUMNS)
            }
        }
        Some("calls") => {
            let mut rows = Vec::new();
            for c in &chans {
                if c.vars.get("originator").is_some()
                    && c.partner.as_ref().is_some_and(|p| chans.iter().any(|x| &x.uuid == p))
                {
                    continue;
                }
                let b = c
                    .partner
                    .as_ref()
                    .and_then(|p| chans.iter().find(|x| &x.uuid == p));
                rows.push(call_row(sw, c, b));
            }
            if json {
                rows_json(&rows)
            } else {
                let mut header: Vec<&str> = CALL_A.to_vec();
                header.extend_from_slice(CALL_B);
                header.push("call_created_epoch");
                rows_text(&rows, &header)
            }
        }
        _ => "-USAGE: codec|endpoint|application|api|dialplan|file|timer|calls [count]|channels [count|like <match string>]|calls|detailed_calls|bridged_calls|detailed_bridged_calls|aliases|complete|chat|management|modules|nat_map|say|interfaces|interface_types|tasks|limits|status\n".to_string(),
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

    #[test]
    fn empty_show_is_freeswitch_text() {
        assert_eq!(rows_json(&[]), "{\"row_count\": 0}\n");
    }
}
