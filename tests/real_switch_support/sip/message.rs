//! SIP messages for the tests' user agent: parsing (headers in order,
//! compact forms, folded lines, the body cut at Content-Length), the header
//! and URI helpers the agent needs, and building requests and responses.
//! No I/O.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use super::USER_AGENT;

/// One SIP message: start line, headers in order (duplicates kept, folded lines joined), body
/// (cut at Content-Length), and the raw text as received or sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipMessage {
    raw: String,
    start_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl SipMessage {
    /// Parses one message (one UDP datagram). Leading CRLFs are skipped; a message without the
    /// blank line after its headers is taken as headers only.
    pub fn parse(text: &str) -> Result<SipMessage, String> {
        let trimmed = text.trim_start_matches(['\r', '\n']);
        let (head, rest) = if let Some(i) = trimmed.find("\r\n\r\n") {
            (&trimmed[..i], &trimmed[i + 4..])
        } else if let Some(i) = trimmed.find("\n\n") {
            (&trimmed[..i], &trimmed[i + 2..])
        } else {
            (trimmed, "")
        };
        let mut lines = head.lines();
        let start_line = lines.next().unwrap_or("").trim().to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                let Some(last) = headers.last_mut() else {
                    return Err(format!("continuation line before any header: {line:?}"));
                };
                last.1.push(' ');
                last.1.push_str(line.trim());
            } else if !line.trim().is_empty() {
                let (name, value) = line
                    .split_once(':')
                    .ok_or_else(|| format!("header line without a colon: {line:?}"))?;
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let mut msg = SipMessage {
            raw: text.to_string(),
            start_line,
            headers,
            body: String::new(),
        };
        if msg.method().is_none() && msg.status().is_none() {
            return Err(format!("not a SIP start line: {:?}", msg.start_line));
        }
        let length = msg
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<usize>().ok());
        msg.body = match length {
            Some(n) if n <= rest.len() && rest.is_char_boundary(n) => rest[..n].to_string(),
            _ => rest.to_string(),
        };
        Ok(msg)
    }

    /// The whole message as received (or sent).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn start_line(&self) -> &str {
        &self.start_line
    }

    /// The method of a request (`None` for a response).
    pub fn method(&self) -> Option<&str> {
        let mut parts = self.start_line.split_whitespace();
        let method = parts.next()?;
        parts.next()?;
        (parts.next()? == "SIP/2.0" && !method.starts_with("SIP/")).then_some(method)
    }

    /// The status code of a response (`None` for a request).
    pub fn status(&self) -> Option<u16> {
        let rest = self.start_line.strip_prefix("SIP/2.0 ")?;
        rest.split_whitespace().next()?.parse().ok()
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&str> {
        self.method()?;
        self.start_line.split_whitespace().nth(1)
    }

    /// The user part of the Request-URI (`sip:+1555@127.0.0.1:5090` -> `+1555`).
    pub fn request_uri_user(&self) -> Option<&str> {
        user_of_uri(self.request_uri()?)
    }

    /// The first header of that name, case-insensitive; compact forms (`f t i v m l c k s`
    /// and a few more) match their long names both ways.
    pub fn header(&self, name: &str) -> Option<&str> {
        let want = canonical(name);
        self.headers
            .iter()
            .find(|(n, _)| canonical(n) == want)
            .map(|(_, v)| v.as_str())
    }

    /// Every header of that name, in order, one entry per header line (a comma-separated line is
    /// one entry).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        let want = canonical(name);
        self.headers
            .iter()
            .filter(|(n, _)| canonical(n) == want)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The header names as they appear, in order, duplicates kept.
    pub fn header_names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The user part of the URI in a name-addr or addr-spec header value:
    /// `"Bob" <sip:+1555@h;x>;tag=1` -> `+1555`; `tel:+1555;x=y` -> `+1555`.
    pub fn uri_user(value: &str) -> Option<String> {
        user_of_uri(addr_uri(value)).map(str::to_string)
    }

    /// A header parameter of a header value (`tag` of `<sip:a@b>;tag=1` is `1`; a parameter
    /// without a value is `""`). Parameters inside `<...>` are the URI's, not the header's.
    pub fn param(value: &str, name: &str) -> Option<String> {
        header_param(value, name).map(str::to_string)
    }

    pub fn body(&self) -> &str {
        &self.body
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let mut parts = self.header("CSeq")?.split_whitespace();
        let number = parts.next()?.parse().ok()?;
        Some((number, parts.next()?))
    }

    pub(super) fn to_tag(&self) -> Option<&str> {
        header_param(self.header("To")?, "tag")
    }

    pub(super) fn top_via(&self) -> Option<&str> {
        split_list(self.header("Via")?).into_iter().next()
    }

    pub(super) fn branch(&self) -> Option<&str> {
        header_param(self.top_via()?, "branch")
    }

    /// The Record-Route entries, in the order received.
    pub(super) fn record_route(&self) -> Vec<String> {
        self.headers_named("Record-Route")
            .into_iter()
            .flat_map(split_list)
            .map(str::to_string)
            .collect()
    }
}

impl fmt::Display for SipMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Header names in lower case, compact forms expanded.
pub(super) fn canonical(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let long = match lower.as_str() {
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "v" => "via",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        "s" => "subject",
        "e" => "content-encoding",
        "o" => "event",
        "r" => "refer-to",
        "b" => "referred-by",
        "u" => "allow-events",
        "x" => "session-expires",
        _ => return lower,
    };
    long.to_string()
}

/// Byte positions of the `<` and `>` of a name-addr, outside quoted display names.
pub(super) fn angle_span(value: &str) -> Option<(usize, usize)> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = None;
    for (i, c) in value.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' if start.is_none() => in_quotes = true,
            '<' if start.is_none() => start = Some(i),
            '>' => {
                if let Some(s) = start {
                    return Some((s, i));
                }
            }
            _ => {}
        }
    }
    None
}

/// The URI of a name-addr (`"x" <uri>;p`) or addr-spec (`uri;p`) header value.
pub(super) fn addr_uri(value: &str) -> &str {
    match angle_span(value) {
        Some((s, e)) => value[s + 1..e].trim(),
        None => value.split(';').next().unwrap_or("").trim(),
    }
}

/// The `;params` of a header value that follow its URI.
pub(super) fn params_part(value: &str) -> &str {
    match angle_span(value) {
        Some((_, e)) => &value[e + 1..],
        None => value.find(';').map_or("", |i| &value[i..]),
    }
}

pub(super) fn find_param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .find_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
}

pub(super) fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    find_param(params_part(value), name)
}

/// Splits a header value at the commas that separate its entries (not inside quotes or `<>`).
pub(super) fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_quotes, mut escaped, mut in_angle, mut start) = (false, false, false, 0);
    for (i, c) in value.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => in_angle = true,
            '>' => in_angle = false,
            ',' if !in_angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// The user part of a `sip:`/`sips:` URI (password dropped) or the number of a `tel:` URI.
pub(super) fn user_of_uri(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.trim().split_once(':')?;
    let user = if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let (userinfo, _) = rest.split_once('@')?;
        userinfo.split(':').next()?
    } else if scheme.eq_ignore_ascii_case("tel") {
        rest.split(';').next()?
    } else {
        return None;
    };
    (!user.is_empty()).then_some(user)
}

/// The host part (and its parameters) of a SIP URI: what follows the user part.
pub(super) fn uri_host_part(uri: &str) -> &str {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    rest.rfind('@').map_or(rest, |i| &rest[i + 1..])
}

/// The address of a SIP URI whose host is an IP literal (port 5060 when none is given).
pub(super) fn uri_socket_addr(uri: &str) -> Option<SocketAddr> {
    let hostport = uri_host_part(uri).split([';', '?']).next()?.trim();
    let (ip, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, tail) = v6.split_once(']')?;
        (host, tail.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let ip: IpAddr = ip.parse().ok()?;
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 5060,
    };
    Some(SocketAddr::new(ip, port))
}

pub(super) fn uri_has_param(uri: &str, name: &str) -> bool {
    uri_host_part(uri).split('?').next().is_some_and(|h| {
        h.split(';').skip(1).any(|p| {
            p.split('=')
                .next()
                .is_some_and(|k| k.trim().eq_ignore_ascii_case(name))
        })
    })
}

pub(super) fn reason(code: u16) -> &'static str {
    let known = match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    };
    match (known, code / 100) {
        ("", 1) => "Progress",
        ("", 2) => "Success",
        ("", 3) => "Redirect",
        ("", 4) => "Client Error",
        ("", 5) => "Server Error",
        ("", _) => "Global Failure",
        (known, _) => known,
    }
}

pub(super) fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Writes a message: start line, headers, and Content-Length always.
pub(super) struct Builder {
    text: String,
}

impl Builder {
    pub(super) fn new(start_line: impl fmt::Display) -> Builder {
        Builder {
            text: format!("{start_line}\r\n"),
        }
    }

    pub(super) fn header(mut self, name: &str, value: impl fmt::Display) -> Builder {
        let _ = write!(self.text, "{name}: {value}\r\n");
        self
    }

    pub(super) fn finish(mut self, body: &str) -> String {
        let _ = write!(self.text, "Content-Length: {}\r\n\r\n{body}", body.len());
        self.text
    }
}

/// A response's common part: every Via in order, From, To (our tag added unless it has one or
/// this is a 100), Call-ID, CSeq, User-Agent.
pub(super) fn response_to(req: &SipMessage, code: u16, to_tag: Option<&str>) -> Builder {
    let mut b = Builder::new(format!("SIP/2.0 {code} {}", reason(code)));
    for via in req.headers_named("Via") {
        b = b.header("Via", via);
    }
    b = b.header("From", req.header("From").unwrap_or(""));
    let to = req.header("To").unwrap_or("");
    b = match to_tag {
        Some(tag) if code != 100 && header_param(to, "tag").is_none() => {
            b.header("To", format!("{to};tag={tag}"))
        }
        _ => b.header("To", to),
    };
    b.header("Call-ID", req.header("Call-ID").unwrap_or(""))
        .header("CSeq", req.header("CSeq").unwrap_or(""))
        .header("User-Agent", USER_AGENT)
}
