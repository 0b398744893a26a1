//! SDP for the tests' user agent: its audio offer, the answer to an offer,
//! and rendering. No I/O.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::USER_AGENT;

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Codec {
    pt: u8,
    rtpmap: String,
    fmtp: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Media {
    Audio {
        codecs: Vec<Codec>,
        direction: &'static str,
    },
    /// A stream we do not take, answered with port 0: `video RTP/AVP 31`.
    Rejected(String),
}

pub(super) fn offer_media() -> Vec<Media> {
    vec![Media::Audio {
        codecs: vec![
            Codec {
                pt: 0,
                rtpmap: "PCMU/8000".into(),
                fmtp: None,
            },
            Codec {
                pt: 8,
                rtpmap: "PCMA/8000".into(),
                fmtp: None,
            },
            Codec {
                pt: 101,
                rtpmap: "telephone-event/8000".into(),
                fmtp: Some("0-16".into()),
            },
        ],
        direction: "sendrecv",
    }]
}

/// The answer to an SDP offer: its first RTP/AVP audio stream with the PCMU, PCMA and
/// telephone-event payloads it offers (in its order, with its payload numbers), every other
/// stream rejected. `None` when the body has no media line (then we make the offer).
pub(super) fn answer_media(offer: &str) -> Option<Vec<Media>> {
    struct Section {
        kind: String,
        proto: String,
        fmts: Vec<String>,
        rtpmaps: HashMap<String, String>,
        fmtps: HashMap<String, String>,
        direction: Option<String>,
    }
    let mut session_direction: Option<String> = None;
    let mut sections: Vec<Section> = Vec::new();
    for line in offer.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or("").to_string();
            parts.next();
            let proto = parts.next().unwrap_or("").to_string();
            sections.push(Section {
                kind,
                proto,
                fmts: parts.map(str::to_string).collect(),
                rtpmaps: HashMap::new(),
                fmtps: HashMap::new(),
                direction: None,
            });
        } else if let Some(a) = line.strip_prefix("a=") {
            let direction = matches!(a, "sendrecv" | "sendonly" | "recvonly" | "inactive");
            match sections.last_mut() {
                None if direction => session_direction = Some(a.to_string()),
                None => {}
                Some(s) if direction => s.direction = Some(a.to_string()),
                Some(s) => {
                    if let Some(map) = a.strip_prefix("rtpmap:") {
                        if let Some((pt, name)) = map.split_once(' ') {
                            s.rtpmaps.insert(pt.to_string(), name.trim().to_string());
                        }
                    } else if let Some(f) = a.strip_prefix("fmtp:") {
                        if let Some((pt, params)) = f.split_once(' ') {
                            s.fmtps.insert(pt.to_string(), params.trim().to_string());
                        }
                    }
                }
            }
        }
    }
    if sections.is_empty() {
        return None;
    }
    let mut audio_taken = false;
    let media = sections
        .into_iter()
        .map(|s| {
            let first = s.fmts.first().cloned().unwrap_or_else(|| "0".into());
            if s.kind != "audio" || s.proto != "RTP/AVP" || audio_taken {
                return Media::Rejected(format!("{} {} {first}", s.kind, s.proto));
            }
            let mut codecs = Vec::new();
            for fmt in &s.fmts {
                let Ok(pt) = fmt.parse::<u8>() else { continue };
                let name = s.rtpmaps.get(fmt).cloned().unwrap_or_else(|| match pt {
                    0 => "PCMU/8000".into(),
                    8 => "PCMA/8000".into(),
                    _ => String::new(),
                });
                let lower = name.to_ascii_lowercase();
                if lower == "pcmu/8000" || lower == "pcma/8000" {
                    codecs.push(Codec {
                        pt,
                        rtpmap: name.to_ascii_uppercase(),
                        fmtp: None,
                    });
                } else if lower.starts_with("telephone-event/8000") {
                    codecs.push(Codec {
                        pt,
                        rtpmap: "telephone-event/8000".into(),
                        fmtp: Some(s.fmtps.get(fmt).cloned().unwrap_or_else(|| "0-16".into())),
                    });
                }
            }
            if !codecs
                .iter()
                .any(|c| !c.rtpmap.starts_with("telephone-event"))
            {
                return Media::Rejected(format!("{} {} {first}", s.kind, s.proto));
            }
            audio_taken = true;
            let offered = s.direction.or(session_direction.clone());
            let direction = match offered.as_deref() {
                Some("sendonly") => "recvonly",
                Some("recvonly") => "sendonly",
                Some("inactive") => "inactive",
                _ => "sendrecv",
            };
            Media::Audio { codecs, direction }
        })
        .collect();
    Some(media)
}

pub(super) fn render_sdp(
    ip: IpAddr,
    rtp_port: u16,
    session: u64,
    version: u64,
    media: &[Media],
) -> String {
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut s = format!("v=0\r\no={USER_AGENT} {session} {version} IN {family} {ip}\r\n");
    let _ = write!(s, "s={USER_AGENT}\r\nc=IN {family} {ip}\r\nt=0 0\r\n");
    for m in media {
        match m {
            Media::Audio { codecs, direction } => {
                let pts: Vec<String> = codecs.iter().map(|c| c.pt.to_string()).collect();
                let _ = write!(s, "m=audio {rtp_port} RTP/AVP {}\r\n", pts.join(" "));
                for c in codecs {
                    let _ = write!(s, "a=rtpmap:{} {}\r\n", c.pt, c.rtpmap);
                    if let Some(f) = &c.fmtp {
                        let _ = write!(s, "a=fmtp:{} {f}\r\n", c.pt);
                    }
                }
                let _ = write!(s, "a=ptime:20\r\na={direction}\r\n");
            }
            Media::Rejected(rest) => {
                let mut parts = rest.splitn(2, ' ');
                let kind = parts.next().unwrap_or("audio");
                let _ = write!(s, "m={kind} 0 {}\r\n", parts.next().unwrap_or("RTP/AVP 0"));
            }
        }
    }
    s
}
