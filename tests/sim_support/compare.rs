//! Frame-by-frame comparison of a simulator frame with the recorded one:
//! content type and outer headers, reply texts and api bodies, event header
//! names in order, the values of [`STABLE`] headers exactly (uuids through
//! the [`UuidMap`]), every other value by shape (uuid, digits, text).

use super::{is_uuid, show, Frame, UuidMap};

/// Headers whose values must match the recording exactly (after uuid mapping).
pub const STABLE: &[&str] = &[
    "Event-Name",
    "FreeSWITCH-Hostname",
    "FreeSWITCH-Switchname",
    "Event-Calling-File",
    "Event-Calling-Function",
    "Event-Calling-Line-Number",
    "Unique-ID",
    "Channel-Call-UUID",
    "Answer-State",
    "Call-Direction",
    "Presence-Call-Direction",
    "Channel-State",
    "Channel-Call-State",
    "Channel-State-Number",
    "Channel-HIT-Dialplan",
    "Hangup-Cause",
    "Caller-Direction",
    "Caller-Logical-Direction",
    "Caller-Username",
    "Caller-Dialplan",
    "Caller-Caller-ID-Name",
    "Caller-Caller-ID-Number",
    "Caller-Callee-ID-Name",
    "Caller-Callee-ID-Number",
    "Caller-Destination-Number",
    "Caller-Unique-ID",
    "Caller-Source",
    "Caller-Context",
    "Caller-RDNIS",
    "Caller-Profile-Index",
    "Other-Type",
    "Other-Leg-Unique-ID",
    "Other-Leg-Direction",
    "Other-Leg-Logical-Direction",
    "Other-Leg-Caller-ID-Number",
    "Other-Leg-Destination-Number",
    "Application",
    "Application-Data",
    "Application-Response",
    "Application-UUID",
    "Bridge-A-Unique-ID",
    "Bridge-B-Unique-ID",
    "Job-UUID",
    "Job-Command",
    "Job-Command-Arg",
    "variable_direction",
    "variable_is_outbound",
    "variable_uuid",
    "variable_call_uuid",
    "variable_endpoint_disposition",
    "variable_current_application",
    "variable_current_application_data",
    "variable_current_application_response",
    "variable_DP_MATCH",
    "variable_hangup_after_bridge",
    "variable_continue_on_fail",
    "variable_originate_disposition",
    "variable_DIALSTATUS",
    "variable_originate_causes",
    "variable_originator",
    "variable_originating_leg_uuid",
    "variable_signal_bond",
    "variable_bridge_to",
    "variable_bridge_uuid",
    "variable_last_bridge_to",
    "variable_max_forwards",
    "variable_fsgate_session",
    "variable_origination_uuid",
    "variable_origination_caller_id_number",
    "variable_origination_caller_id_name",
    "variable_channel_cid_flipped",
    "variable_pre_transfer_caller_id_name",
    "variable_pre_transfer_caller_id_number",
    "variable_hangup_cause",
    "variable_hangup_cause_q850",
    "variable_sip_term_status",
    "variable_proto_specific_hangup_cause",
    "variable_sip_hangup_disposition",
    "variable_bridge_hangup_cause",
    "variable_last_bridge_hangup_cause",
    "variable_last_bridge_role",
    "variable_last_app",
    "variable_last_arg",
    "variable_caller_id",
    "variable_sip_from_user",
    "variable_sip_to_user",
    "variable_sip_req_user",
    "variable_last_sent_callee_id_name",
    "variable_last_sent_callee_id_number",
];

fn shape(s: &str) -> &'static str {
    if is_uuid(s) {
        "uuid"
    } else if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        "digits"
    } else {
        "text"
    }
}

/// Compares one simulator frame with the recorded one; returns mismatches.
pub fn compare_frame(i: usize, rec: &Frame, got: &Frame, map: &mut UuidMap) -> Vec<String> {
    compare_frame_with(i, rec, got, map, &[])
}

/// [`compare_frame`], with the event headers named in `unordered` left out
/// of the order check (they must still be there, with matching values).
pub fn compare_frame_with(
    i: usize,
    rec: &Frame,
    got: &Frame,
    map: &mut UuidMap,
    unordered: &[&str],
) -> Vec<String> {
    let mut errs = Vec::new();
    if rec.content_type() != got.content_type() {
        errs.push(format!(
            "frame {i}: content type {:?} != recorded {:?}",
            got.content_type(),
            rec.content_type()
        ));
        return errs;
    }
    let rec_names: Vec<&str> = rec.headers.iter().map(|(k, _)| k.as_str()).collect();
    let got_names: Vec<&str> = got.headers.iter().map(|(k, _)| k.as_str()).collect();
    if rec_names != got_names {
        errs.push(format!(
            "frame {i}: outer header names {got_names:?} != recorded {rec_names:?}"
        ));
    }
    if !rec.is_event() {
        if let Some(r) = rec.header("Reply-Text") {
            let g = got.header("Reply-Text").unwrap_or_default();
            if let (Some(ru), Some(gu)) = (
                r.strip_prefix("+OK Job-UUID: "),
                g.strip_prefix("+OK Job-UUID: "),
            ) {
                if !map.pair(ru, gu) {
                    errs.push(format!("frame {i}: job uuid {gu} inconsistent with {ru}"));
                }
            } else if map.apply(r) != g {
                errs.push(format!("frame {i}: Reply-Text {g:?} != recorded {r:?}"));
            }
        }
        if rec.content_type() == "api/response" {
            let r = rec.body_str();
            let g = got.body_str();
            if show::is_listing(&r) {
                errs.extend(show::compare(i, &r, &g, map));
            } else if r.starts_with("UP ") {
                if !g.starts_with("UP ") || g.lines().count() != r.lines().count() {
                    errs.push(format!(
                        "frame {i}: status body {g:?} not shaped like {r:?}"
                    ));
                }
            } else if map.apply(&r) != g {
                errs.push(format!("frame {i}: api body {g:?} != recorded {r:?}"));
            }
        }
        return errs;
    }
    let re = rec.event();
    let ge = got.event();
    let name = re.name().to_string();
    let rn: Vec<&str> = re.names();
    let gn: Vec<&str> = ge.names();
    let strip = |v: &[&str]| -> Vec<String> {
        v.iter()
            .filter(|n| !unordered.contains(n))
            .map(|n| n.to_string())
            .collect()
    };
    let same_set = {
        let (mut a, mut b) = (rn.clone(), gn.clone());
        a.sort_unstable();
        b.sort_unstable();
        a == b
    };
    if rn != gn && !(same_set && strip(&rn) == strip(&gn)) {
        let missing: Vec<&&str> = rn.iter().filter(|n| !gn.contains(n)).collect();
        let extra: Vec<&&str> = gn.iter().filter(|n| !rn.contains(n)).collect();
        errs.push(format!(
            "frame {i} {name}: header names differ (missing {missing:?}, extra {extra:?}, first difference at {:?})",
            rn.iter()
                .zip(gn.iter())
                .position(|(a, b)| a != b)
                .map(|p| (p, rn[p], gn[p]))
        ));
    }
    for (k, rv) in &re.headers {
        let Some(gv) = ge.get(k) else { continue };
        if STABLE.contains(&k.as_str()) {
            if is_uuid(rv) {
                if !is_uuid(gv) || !map.pair(rv, gv) {
                    errs.push(format!(
                        "frame {i} {name}: {k} {gv:?} inconsistent with recorded {rv:?}"
                    ));
                }
            } else if map.apply(rv) != *gv {
                errs.push(format!("frame {i} {name}: {k} = {gv:?}, recorded {rv:?}"));
            }
        } else if shape(rv) != shape(gv) && k != "_body" {
            errs.push(format!(
                "frame {i} {name}: {k} = {gv:?} not shaped like recorded {rv:?}"
            ));
        }
    }
    match (&re.body, &ge.body) {
        (Some(r), Some(g)) => {
            if !r.starts_with("UP ") && &map.apply(r) != g {
                errs.push(format!("frame {i} {name}: body {g:?} != recorded {r:?}"));
            }
        }
        (None, None) => {}
        (r, g) => errs.push(format!("frame {i} {name}: body {g:?} vs recorded {r:?}")),
    }
    errs
}
