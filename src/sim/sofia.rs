//! What mod_sofia would write into a channel at each step of a SIP call:
//! the variables (names, order, plausible values) that the recordings show
//! on inbound and outbound legs at create, 180, 200, ACK, bridge and hangup.
//!
//! Only variable bookkeeping of the fake SIP side; state changes and events
//! belong to `core`.

use rand::Rng;

use super::channel::{Channel, SipPeer};

/// The local SIP profile address.
pub const PROFILE_HOST: &str = "127.0.0.1";
/// The local SIP port.
pub const PROFILE_PORT: u16 = 5080;

fn tag() -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut r = rand::thread_rng();
    (0..13)
        .map(|_| A[r.gen_range(0..A.len())] as char)
        .collect()
}

/// A fresh peer description for a far end at host:port.
pub fn new_peer(user: &str, host: &str, port: u16, inbound: bool) -> SipPeer {
    let mut r = rand::thread_rng();
    SipPeer {
        host: host.to_string(),
        port,
        user: user.to_string(),
        call_id: if inbound {
            // sipp-style Call-ID of the far end.
            format!(
                "{}-{}@{host}",
                r.gen_range(1..100u32),
                r.gen_range(1000..65000u32)
            )
        } else {
            uuid::Uuid::new_v4().to_string()
        },
        from_tag: tag(),
        to_tag: tag(),
        local_media_port: r.gen_range(16384..32768) & !1,
        remote_media_port: r.gen_range(6000..7000) & !1,
        ssrc: r.gen(),
    }
}

fn sdp_remote(port: u16) -> String {
    format!("v=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {port} RTP/AVP 0\na=rtpmap:0 PCMU/8000\n")
}

fn sdp_local(port: u16) -> String {
    let id: u32 = rand::thread_rng().gen_range(1_000_000_000..1_900_000_000);
    format!("v=0\no=FreeSWITCH {id} {} IN IP4 127.0.0.1\ns=FreeSWITCH\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {port} RTP/AVP 0 8 101 13\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\na=rtpmap:13 CN/8000\na=ptime:20\na=sendrecv\n", id + 1)
}

/// The remote SDP a far end offered/answered.
pub fn remote_sdp(ch: &Channel) -> String {
    sdp_remote(ch.sip.remote_media_port)
}

/// Variables of a new inbound call (INVITE received), after the core ones.
pub fn inbound_create(ch: &mut Channel, to: &str, created_us: i64) {
    let p = ch.sip.clone();
    let from = p.user.clone();
    let hp = format!("{}:{}", p.host, p.port);
    let v = &mut ch.vars;
    v.put("sip_from_user", &from);
    v.put("sip_from_port", p.port.to_string());
    v.put("sip_from_uri", format!("{from}@{hp}"));
    v.put("sip_from_host", &p.host);
    v.put("video_media_flow", "disabled");
    v.put("text_media_flow", "disabled");
    v.put("channel_name", &ch.name);
    v.put("sip_call_id", &p.call_id);
    v.put("sip_local_network_addr", PROFILE_HOST);
    v.put("sip_network_ip", &p.host);
    v.put("sip_network_port", p.port.to_string());
    v.put("sip_invite_stamp", created_us.to_string());
    v.put("sip_received_ip", &p.host);
    v.put("sip_received_port", p.port.to_string());
    v.put("sip_via_protocol", "udp");
    // sofia drops a leading '+' (and nothing else).
    v.put(
        "sip_from_user_stripped",
        from.strip_prefix('+').unwrap_or(&from),
    );
    v.put("sip_from_tag", &p.from_tag);
    v.put("sofia_profile_name", "external");
    v.put("sofia_profile_url", "sip:mod_sofia@127.0.0.1:5080");
    v.put("recovery_profile_name", "external");
    v.put(
        "sip_full_via",
        format!("SIP/2.0/UDP {hp};branch=z9hG4bK-{}-1-0", p.from_tag),
    );
    v.put("sip_from_display", &from);
    v.put(
        "sip_full_from",
        format!("{from} <sip:{from}@{hp}>;tag={}", p.from_tag),
    );
    v.put("sip_to_display", to);
    v.put(
        "sip_full_to",
        format!("{to} <sip:{to}@{PROFILE_HOST}:{PROFILE_PORT}>"),
    );
    v.put("sip_req_user", to);
    v.put("sip_req_port", PROFILE_PORT.to_string());
    v.put("sip_req_uri", format!("{to}@{PROFILE_HOST}:{PROFILE_PORT}"));
    v.put("sip_req_host", PROFILE_HOST);
    v.put("sip_to_user", to);
    v.put("sip_to_port", PROFILE_PORT.to_string());
    v.put("sip_to_uri", format!("{to}@{PROFILE_HOST}:{PROFILE_PORT}"));
    v.put("sip_to_host", PROFILE_HOST);
    v.put("sip_contact_user", &from);
    v.put("sip_contact_port", p.port.to_string());
    v.put("sip_contact_uri", format!("{from}@{hp}"));
    v.put("sip_contact_host", &p.host);
    v.put("sip_subject", "Performance Test");
    v.put("sip_via_host", &p.host);
    v.put("sip_via_port", p.port.to_string());
    v.put("max_forwards", "70");
    v.put("switch_r_sdp", sdp_remote(p.remote_media_port));
    v.put("ep_codec_string", "CORE_PCM_MODULE.PCMU@8000h@20i@64000b");
    v.put("rtp_use_codec_string", "PCMU,PCMA");
    v.put("remote_video_media_flow", "inactive");
    v.put("remote_text_media_flow", "inactive");
    v.put("remote_audio_media_flow", "sendrecv");
    v.put("audio_media_flow", "sendrecv");
    v.put("remote_media_ip", &p.host);
    v.put("remote_media_port", p.remote_media_port.to_string());
    codec_vars(ch);
    ch.vars.put("endpoint_disposition", "RECEIVED");
}

fn codec_vars(ch: &mut Channel) {
    let v = &mut ch.vars;
    v.put("rtp_audio_recv_pt", "0");
    v.put("rtp_use_codec_name", "PCMU");
    v.put("rtp_use_codec_rate", "8000");
    v.put("rtp_use_codec_ptime", "20");
    v.put("rtp_use_codec_channels", "1");
    v.put("rtp_last_audio_codec_string", "PCMU@8000h@20i@1c");
    v.put("read_codec", "PCMU");
    v.put("original_read_codec", "PCMU");
    v.put("read_rate", "8000");
    v.put("original_read_rate", "8000");
    v.put("write_codec", "PCMU");
    v.put("write_rate", "8000");
    v.put("dtmf_type", "info");
}

/// Local media set up when an inbound leg answers (200 OK sent).
pub fn inbound_answer(ch: &mut Channel) {
    let p = ch.sip.clone();
    let v = &mut ch.vars;
    v.put("rtp_local_sdp_str", sdp_local(p.local_media_port));
    v.put("local_media_ip", PROFILE_HOST);
    v.put("local_media_port", p.local_media_port.to_string());
    v.put("advertised_media_ip", PROFILE_HOST);
    v.put("rtp_use_timer_name", "soft");
    v.put("rtp_use_pt", "0");
    v.put("rtp_use_ssrc", p.ssrc.to_string());
    v.put("remote_media_ip", &p.host);
    v.put("remote_media_port", p.remote_media_port.to_string());
}

/// The ACK of an answered inbound leg.
pub fn inbound_ack(ch: &mut Channel) {
    let p = ch.sip.clone();
    let from = p.user.clone();
    let to = ch.vars.get("sip_to_user").unwrap_or_default().to_string();
    let hp = format!("{}:{}", p.host, p.port);
    let v = &mut ch.vars;
    v.put("sip_to_tag", &p.to_tag);
    v.put("sip_from_tag", &p.from_tag);
    v.put("sip_cseq", "1");
    v.put("sip_call_id", &p.call_id);
    v.put(
        "sip_full_via",
        format!("SIP/2.0/UDP {hp};branch=z9hG4bK-{}-1-5", p.from_tag),
    );
    v.put("sip_from_display", &from);
    v.put(
        "sip_full_from",
        format!("{from} <sip:{from}@{hp}>;tag={}", p.from_tag),
    );
    v.put("sip_to_display", &to);
    v.put(
        "sip_full_to",
        format!(
            "{to} <sip:{to}@{PROFILE_HOST}:{PROFILE_PORT}>;tag={}",
            p.to_tag
        ),
    );
}

/// Sofia's part of a new outbound leg (before the INVITE is sent).
/// `gateway`: the leg goes through this gateway (`sofia/gateway/<name>/…`).
pub fn outbound_create_head(
    ch: &mut Channel,
    bridged: bool,
    gateway: Option<&str>,
    dest_url: &str,
) {
    let v = &mut ch.vars;
    if let Some(gw) = gateway {
        v.put("sip_gateway_name", gw);
    }
    v.put("sip_local_network_addr", PROFILE_HOST);
    v.put(
        "sip_profile_name",
        if gateway.is_some() {
            "gateway"
        } else {
            "external"
        },
    );
    if !bridged {
        v.put("video_media_flow", "disabled");
    }
    v.put("text_media_flow", "disabled");
    v.put("channel_name", &ch.name);
    v.put("sip_destination_url", format!("sip:{dest_url}"));
}

/// The rest of a new outbound leg's variables (media offer, request URI).
pub fn outbound_create_tail(
    ch: &mut Channel,
    bridged: bool,
    gateway: Option<&str>,
    dest_url: &str,
) {
    let p = ch.sip.clone();
    let v = &mut ch.vars;
    v.put("originate_endpoint", "sofia");
    v.put(
        "rtp_use_codec_string",
        if bridged {
            "PCMU@8000h@20i"
        } else {
            "PCMU,PCMA"
        },
    );
    v.put("local_media_ip", PROFILE_HOST);
    v.put("local_media_port", p.local_media_port.to_string());
    v.put("advertised_media_ip", PROFILE_HOST);
    v.put("audio_media_flow", "sendrecv");
    if bridged {
        v.put("video_media_flow", "inactive");
    }
    v.put("rtp_local_sdp_str", sdp_local(p.local_media_port));
    v.put(
        "sip_outgoing_contact_uri",
        match gateway {
            Some(gw) => {
                format!("<sip:gw+{gw}@{PROFILE_HOST}:{PROFILE_PORT};transport=udp;gw={gw}>")
            }
            None => format!("<sip:mod_sofia@{PROFILE_HOST}:{PROFILE_PORT}>"),
        },
    );
    v.put("sip_req_uri", dest_url);
    v.put("sip_to_host", format!("{}:{}", p.host, p.port));
    v.put("sip_from_host", PROFILE_HOST);
    v.put("sofia_profile_name", "external");
    v.put("recovery_profile_name", "external");
    v.put("sofia_profile_url", "sip:mod_sofia@127.0.0.1:5080");
}

/// 180 Ringing received on an outbound leg.
pub fn outbound_ringing(ch: &mut Channel) {
    let p = ch.sip.clone();
    let cid_name = ch.profile.caller_id_name.clone();
    let cid_num = ch.profile.caller_id_number.clone();
    let hp = format!("{}:{}", p.host, p.port);
    let user = p.user.clone();
    let v = &mut ch.vars;
    v.put("sip_local_network_addr", PROFILE_HOST);
    v.put("sip_reply_host", &p.host);
    v.put("sip_reply_port", p.port.to_string());
    v.put("sip_network_ip", &p.host);
    v.put("sip_network_port", p.port.to_string());
    v.put("sip_recover_contact", format!("<sip:{hp};transport=UDP>"));
    let via = format!(
        "SIP/2.0/UDP {PROFILE_HOST}:{PROFILE_PORT};rport;branch=z9hG4bK{}",
        p.from_tag
    );
    v.put("sip_full_via", &via);
    v.put("sip_recover_via", &via);
    v.put("sip_from_display", &cid_name);
    v.put(
        "sip_full_from",
        format!(
            "\"{cid_name}\" <sip:{cid_num}@{PROFILE_HOST}>;tag={}",
            p.from_tag
        ),
    );
    v.put("sip_full_to", format!("<sip:{user}@{hp}>;tag={}", p.to_tag));
    v.put("sip_from_user", &cid_num);
    v.put("sip_from_uri", format!("{cid_num}@{PROFILE_HOST}"));
    v.put("sip_from_host", PROFILE_HOST);
    v.put("sip_to_user", &user);
    v.put("sip_to_port", p.port.to_string());
    v.put("sip_to_uri", format!("{user}@{hp}"));
    v.put("sip_to_host", &p.host);
    v.put("sip_contact_params", "transport=UDP");
    v.put("sip_contact_user", "nobody");
    v.put("sip_contact_port", p.port.to_string());
    v.put("sip_contact_uri", format!("nobody@{hp}"));
    v.put("sip_contact_host", &p.host);
    v.put("sip_to_tag", &p.to_tag);
    v.put("sip_from_tag", &p.from_tag);
    v.put(
        "sip_cseq",
        rand::thread_rng()
            .gen_range(100_000_000..200_000_000u32)
            .to_string(),
    );
    v.put("sip_call_id", &p.call_id);
}

/// 200 OK received on an outbound leg.
pub fn outbound_answer(ch: &mut Channel) {
    let p = ch.sip.clone();
    let bridged = ch.vars.get("originator").is_some();
    let v = &mut ch.vars;
    v.put("switch_r_sdp", sdp_remote(p.remote_media_port));
    v.put("ep_codec_string", "CORE_PCM_MODULE.PCMU@8000h@20i@64000b");
    v.put(
        "rtp_use_codec_string",
        if bridged {
            "PCMU@8000h@20i"
        } else {
            "PCMU,PCMA"
        },
    );
    v.put("remote_video_media_flow", "inactive");
    v.put("remote_text_media_flow", "inactive");
    v.put("remote_audio_media_flow", "sendrecv");
    codec_vars(ch);
    let v = &mut ch.vars;
    v.put("local_media_ip", PROFILE_HOST);
    v.put("local_media_port", p.local_media_port.to_string());
    v.put("advertised_media_ip", PROFILE_HOST);
    v.put("rtp_use_timer_name", "soft");
    v.put("rtp_use_pt", "0");
    v.put("rtp_use_ssrc", p.ssrc.to_string());
    v.put("remote_media_ip", &p.host);
    v.put("remote_media_port", p.remote_media_port.to_string());
}

/// A final error response (4xx-6xx) to the INVITE of an outbound leg: what
/// sofia records before the hangup event (route-bridge-busy: 486).
pub fn outbound_refused(ch: &mut Channel, code: u16, q850: u16) {
    let p = ch.sip.clone();
    let v = &mut ch.vars;
    v.put("sip_call_id", &p.call_id);
    v.put("sip_local_network_addr", PROFILE_HOST);
    v.put("sip_reply_host", &p.host);
    v.put("sip_reply_port", p.port.to_string());
    v.put("sip_network_ip", &p.host);
    v.put("sip_network_port", p.port.to_string());
    v.put("sip_hangup_disposition", "recv_refuse");
    v.put("sip_invite_failure_status", code.to_string());
    v.put("sip_invite_failure_phrase", reason_phrase(code));
    v.put("sip_term_status", code.to_string());
    v.put("proto_specific_hangup_cause", format!("sip:{code}"));
    v.put("sip_term_cause", q850.to_string());
}

/// A CANCEL received on an unanswered inbound leg (route-bridge-cancel):
/// sofia answers 487 and records it, with the raw 487 as `sip_term_cause`.
pub fn inbound_cancelled(ch: &mut Channel) {
    let v = &mut ch.vars;
    v.put("sip_hangup_disposition", "recv_cancel");
    v.put("sip_invite_failure_status", "487");
    v.put("sip_invite_failure_phrase", "CANCEL");
    v.put("sip_term_status", "487");
    v.put("proto_specific_hangup_cause", "sip:487");
    v.put("sip_term_cause", "487");
}

/// The reason phrase sofia-sip uses for a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

/// RTP statistics written at hangup.
pub fn rtp_stats(ch: &mut Channel, answered_ms: i64) {
    let packets = (answered_ms / 20).max(0);
    let v = &mut ch.vars;
    for (n, val) in [
        ("rtp_audio_in_raw_bytes", "0".to_string()),
        ("rtp_audio_in_media_bytes", "0".to_string()),
        ("rtp_audio_in_packet_count", "0".to_string()),
        ("rtp_audio_in_media_packet_count", "0".to_string()),
        ("rtp_audio_in_skip_packet_count", packets.to_string()),
        ("rtp_audio_in_jitter_packet_count", "0".to_string()),
        ("rtp_audio_in_dtmf_packet_count", "0".to_string()),
        ("rtp_audio_in_cng_packet_count", "0".to_string()),
        ("rtp_audio_in_flush_packet_count", "0".to_string()),
        ("rtp_audio_in_largest_jb_size", "0".to_string()),
        ("rtp_audio_in_jitter_min_variance", "0.00".to_string()),
        ("rtp_audio_in_jitter_max_variance", "0.00".to_string()),
        ("rtp_audio_in_jitter_loss_rate", "0.00".to_string()),
        ("rtp_audio_in_jitter_burst_rate", "0.00".to_string()),
        ("rtp_audio_in_mean_interval", "0.00".to_string()),
        ("rtp_audio_in_flaw_total", "0".to_string()),
        ("rtp_audio_in_quality_percentage", "100.00".to_string()),
        ("rtp_audio_in_mos", "4.50".to_string()),
        ("rtp_audio_out_raw_bytes", "0".to_string()),
        ("rtp_audio_out_media_bytes", "0".to_string()),
        ("rtp_audio_out_packet_count", "0".to_string()),
        ("rtp_audio_out_media_packet_count", "0".to_string()),
        ("rtp_audio_out_skip_packet_count", "0".to_string()),
        ("rtp_audio_out_dtmf_packet_count", "0".to_string()),
        ("rtp_audio_out_cng_packet_count", "0".to_string()),
        ("rtp_audio_rtcp_packet_count", "0".to_string()),
        ("rtp_audio_rtcp_octet_count", "0".to_string()),
    ] {
        v.put(n, val);
    }
}

/// FreeSWITCH's SIP→cause mapping (`sofia_glue_sip_cause_to_freeswitch`).
pub fn sip_to_cause(code: u16) -> crate::esl::HangupCause {
    use crate::esl::HangupCause as C;
    match code {
        200 => C::NORMAL_CLEARING,
        401 | 402 | 403 | 407 | 603 | 608 => C::CALL_REJECTED,
        404 => C::UNALLOCATED_NUMBER,
        485 | 604 => C::NO_ROUTE_DESTINATION,
        408 | 504 => C::RECOVERY_ON_TIMER_EXPIRE,
        410 => C::NUMBER_CHANGED,
        413 | 414 | 416 | 420 | 421 | 423 | 505 | 513 => C::INTERWORKING,
        480 => C::NO_USER_RESPONSE,
        400 | 481 | 500 | 503 => C::NORMAL_TEMPORARY_FAILURE,
        486 | 600 => C::USER_BUSY,
        484 => C::INVALID_NUMBER_FORMAT,
        488 | 606 => C::INCOMPATIBLE_DESTINATION,
        502 => C::NETWORK_OUT_OF_ORDER,
        405 => C::SERVICE_UNAVAILABLE,
        406 | 415 | 501 => C::SERVICE_NOT_IMPLEMENTED,
        482 | 483 => C::EXCHANGE_ROUTING_ERROR,
        487 => C::ORIGINATOR_CANCEL,
        _ => C::NORMAL_UNSPECIFIED,
    }
}
