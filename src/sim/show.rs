//! `show channels|calls [as json]`: mod_commands' listing of the core
//! database's `channels` table and `calls` view, rendered from the live
//! channel table with the columns, order and texts of the recordings
//! (route-park-show-transfer, route-bridge-show). The real switch fills that
//! database from a queue, so its rows lag the events by some 0.3-0.7 s; the
//! simulator answers from the channels as they are.
//!
//! Formatting only; it reads channels through `core::Switch`.

use super::channel::Channel;
use super::core::Switch;

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
        // Filled in by the core database when the bridge updates the callee.
        if c.bridged_us != 0 {
            "SEND".to_string()
        } else {
            String::new()
        },
        // The core database fills the column when the channel is bridged.
        if c.bridged_us != 0 {
            c.call_uuid()
        } else {
            String::new()
        },
        c.vars
            .get("last_sent_callee_id_name")
            .unwrap_or_default()
            .to_string(),
        c.vars
            .get("last_sent_callee_id_number")
            .unwrap_or_default()
            .to_string(),
        c.initial.caller_id_name.clone(),
        c.initial.caller_id_number.clone(),
        c.initial.network_addr.clone(),
        c.initial.destination_number.clone(),
        c.initial.dialplan.clone(),
        c.initial.context.clone(),
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
    // From the core database's `calls` table, whose row the bridge inserts.
    let call_created = match b {
        Some(_) if a.bridged_us != 0 => (a.bridged_us / 1_000_000).to_string(),
        _ => String::new(),
    };
    out.push(("call_created_epoch", call_created));
    out
}

/// The `show` API.
pub fn show(sw: &Switch, args: &str) -> String {
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
    fn empty_show_is_freeswitch_text() {
        assert_eq!(rows_json(&[]), "{\"row_count\": 0}\n");
    }
}
