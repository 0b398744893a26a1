//! The `curl` dialplan application, as mod_curl's `curl_app_function` behaves.
//!
//! This file owns parsing the application's words, making the real HTTP request
//! (reqwest) with FreeSWITCH's limits, shaping the result the way mod_curl does
//! (plain body, `headers` prefix or `json` summary) and storing it in the
//! channel variables `curl_response_code`, `curl_response_data` and
//! `curl_method` with FreeSWITCH's variable rules (docs/esl-protocol.md §7.2).
//! It must not decide when curl runs (the hunt or the channel code does), read
//! any channel variable other than the two timeouts, or retry.
//!
//! `https://` is fetched as FreeSWITCH 1.11's mod_curl does (checked on the
//! real switch): without the `secure` word the certificate is not verified
//! at all; with it, it is verified against `cacert.pem` in the `certs_dir`
//! variable's folder when that file exists (and only it; a file that is not
//! PEM is exit code 77), else against the system's roots (a certificate that
//! does not verify is exit code 60).
//!
//! Differences from libcurl that a test can see, all consequences of reqwest:
//! schemes other than `http` and `https` give code `0` with exit code 1. In
//! `headers`/`json` output the header names are lower case, the reason phrase
//! is the standard one for the status, and headers of redirect hops are not
//! included. A body over
//! 64000 bytes keeps exactly its first 64000 bytes (FreeSWITCH keeps whole
//! libcurl chunks, so slightly fewer). HTTP authentication is basic only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT as UA_HEADER};
use reqwest::{Method, Version};

use super::app::set_checked;
use super::fsstr::{atoi, separate_blank, url_decode};
use super::ChannelVars;

/// mod_curl's default `max-bytes`: the most body bytes kept.
pub const MAX_BYTES: usize = 64_000;
/// The user agent mod_curl sends.
pub const USER_AGENT: &str = "freeswitch-curl/1.0";
/// Words the application reads; the last one holds the rest of the text.
const MAX_WORDS: usize = 30;
/// `append_headers` beyond this many are ignored.
const MAX_APPEND_HEADERS: usize = 10;
/// libcurl follows this many redirects for mod_curl.
const MAX_REDIRECTS: usize = 15;

/// The `curl` application's data, parsed like mod_curl does (unknown words are
/// ignored; `connect-timeout`/`timeout` words are ignored too: the application
/// reads the channel variables instead).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurlRequest {
    /// First word, used as given (no URL decoding).
    pub url: String,
    /// The method word as written (`get`, `head`, `post`, `put`, `patch`,
    /// `delete`); `None` means GET and leaves `curl_method` unset.
    pub method: Option<String>,
    /// The word after `post`/`put`/`patch`/`delete`, URL-decoded.
    pub body: String,
    /// `content-type <mime>` (sent only with a body method).
    pub content_type: Option<String>,
    /// `append_headers <Name:value>`, at most 10.
    pub append_headers: Vec<String>,
    /// `headers`: put the response headers before the body.
    pub headers: bool,
    /// `json`: store mod_curl's JSON summary instead.
    pub json: bool,
    /// `secure`: verify an https server's certificate (`insecure`, or
    /// neither word, does not).
    pub secure: bool,
}

impl CurlRequest {
    /// Parses the (expanded) application data.
    pub fn parse(data: &str) -> CurlRequest {
        let words = separate_blank(data, MAX_WORDS);
        let mut req = CurlRequest {
            url: words.first().cloned().unwrap_or_default(),
            ..CurlRequest::default()
        };
        let mut i = 1;
        while i < words.len() {
            let w = words[i].to_ascii_lowercase();
            match w.as_str() {
                "headers" => req.headers = true,
                "json" => req.json = true,
                "secure" => req.secure = true,
                "insecure" => req.secure = false,
                "get" | "head" => req.method = Some(words[i].clone()),
                "post" | "patch" | "put" | "delete" => {
                    req.method = Some(words[i].clone());
                    i += 1;
                    req.body = words.get(i).map(|d| url_decode(d)).unwrap_or_default();
                }
                "content-type" => {
                    i += 1;
                    if let Some(ct) = words.get(i) {
                        req.content_type = Some(ct.clone());
                    }
                }
                "append_headers" => {
                    i += 1;
                    if let Some(h) = words.get(i) {
                        if req.append_headers.len() < MAX_APPEND_HEADERS {
                            req.append_headers.push(h.clone());
                        }
                    }
                }
                "proxy" => i += 1,
                _ => {}
            }
            i += 1;
        }
        req
    }
}

/// What one run of the application produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlOutcome {
    /// The HTTP status; 0 when there was no HTTP response (DNS, connect, timeout).
    pub response_code: u16,
    /// The text for `curl_response_data` (`None` when it would be empty).
    pub data: Option<String>,
    /// The method word, for `curl_method`.
    pub method: Option<String>,
    /// libcurl's exit code equivalent (0 ok, 1 unsupported protocol, 3 bad URL,
    /// 6 DNS, 7 connect, 23 response too big, 28 timeout, 47 too many
    /// redirects, 56 receive error), as `json` mode reports it.
    pub exit_code: u32,
}

/// A reqwest client configured like mod_curl's libcurl handle (user agent,
/// 15 redirects, no proxy from the environment).
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .no_proxy()
}

/// [`client_builder`], built. The client given to [`execute`] should come from
/// here (its redirect limit cannot be changed per request).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    client_builder().build()
}

/// Reads `curl_timeout` and `curl_connect_timeout` (seconds, `atoi`; zero,
/// negative or garbage means none) as `(timeout, connect_timeout)`.
pub fn timeouts<C: ChannelVars + ?Sized>(chan: &C) -> (Option<Duration>, Option<Duration>) {
    let secs = |name: &str| {
        chan.variable(name)
            .map(|v| atoi(&v))
            .filter(|&n| n > 0)
            .map(|n| Duration::from_secs(n.unsigned_abs()))
    };
    (secs("curl_timeout"), secs("curl_connect_timeout"))
}

/// Runs the application's request for `data` (already expanded). Never fails:
/// every failure is an outcome with code 0, as in FreeSWITCH.
pub async fn execute(
    data: &str,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    http: &reqwest::Client,
) -> CurlOutcome {
    perform(
        &CurlRequest::parse(data),
        timeout,
        connect_timeout,
        None,
        http,
    )
    .await
}

/// [`execute`] for an already parsed request; `ca_bundle` is what
/// [`ca_bundle`] found for the channel (`secure` requests use it).
pub async fn perform(
    req: &CurlRequest,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    ca_bundle: Option<&Path>,
    http: &reqwest::Client,
) -> CurlOutcome {
    let fetched = fetch(req, timeout, connect_timeout, ca_bundle, http).await;
    tracing::debug!(
        url = %req.url,
        status = fetched.status,
        exit_code = fetched.exit_code,
        bytes = fetched.body.len(),
        "curl application finished"
    );
    render(req, &fetched)
}

/// Stores an outcome in the channel like `curl_app_function`:
/// `curl_response_data` (removed when empty, not stored when it contains `${`),
/// `curl_response_code`, `curl_method` (removed when no method word was given).
pub fn apply<C: ChannelVars + ?Sized>(outcome: &CurlOutcome, chan: &mut C) {
    set_checked(chan, "curl_response_data", outcome.data.as_deref());
    set_checked(
        chan,
        "curl_response_code",
        Some(&outcome.response_code.to_string()),
    );
    set_checked(chan, "curl_method", outcome.method.as_deref());
}

/// The raw result of the HTTP exchange.
struct Fetched {
    exit_code: u32,
    status: u16,
    /// Header lines as libcurl hands them over, CRLF included, status line and
    /// the final blank line too.
    header_lines: Vec<String>,
    body: Vec<u8>,
}

impl Fetched {
    fn failed(exit_code: u32) -> Fetched {
        Fetched {
            exit_code,
            status: 0,
            header_lines: Vec::new(),
            body: Vec::new(),
        }
    }
}

async fn fetch(
    req: &CurlRequest,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    ca_bundle: Option<&Path>,
    http: &reqwest::Client,
) -> Fetched {
    // libcurl guesses http:// for a URL without a scheme.
    let url_text = if req.url.contains("://") {
        req.url.clone()
    } else {
        format!("http://{}", req.url)
    };
    let url = match reqwest::Url::parse(&url_text) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => u,
        Ok(_) => return Fetched::failed(1),
        Err(_) => return Fetched::failed(3),
    };
    let method_word = req
        .method
        .as_deref()
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "get".to_owned());
    let method = match method_word.as_str() {
        "head" => Method::HEAD,
        "post" => Method::POST,
        "put" => Method::PUT,
        "patch" => Method::PATCH,
        "delete" => Method::DELETE,
        _ => Method::GET,
    };
    let own_client;
    let client = match own_client_for(&url, req.secure, ca_bundle, connect_timeout) {
        Ok(Some(c)) => {
            own_client = c;
            &own_client
        }
        Ok(None) => http,
        Err(exit_code) => return Fetched::failed(exit_code),
    };
    let mut rb = client
        .request(method.clone(), url)
        .header(UA_HEADER, USER_AGENT);
    for line in &req.append_headers {
        if let Some((name, value)) = line.split_once(':') {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.trim().as_bytes()),
                HeaderValue::from_str(value.trim_start()),
            ) {
                rb = rb.header(n, v);
            }
        }
    }
    let content_type = req.content_type.as_deref();
    match method_word.as_str() {
        "post" | "patch" | "delete" => {
            let ct = content_type.unwrap_or("application/x-www-form-urlencoded");
            if let Ok(v) = HeaderValue::from_str(ct) {
                rb = rb.header(CONTENT_TYPE, v);
            }
            rb = rb.body(req.body.clone());
        }
        "put" => {
            if let Some(Ok(v)) = content_type.map(HeaderValue::from_str) {
                rb = rb.header(CONTENT_TYPE, v);
            }
            rb = rb.body(req.body.clone());
        }
        _ => {}
    }
    if let Some(t) = timeout {
        rb = rb.timeout(t);
    }
    let mut resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => return Fetched::failed(exit_code_of(&e)),
    };
    let status = resp.status();
    let mut header_lines = vec![format!(
        "{} {} {}\r\n",
        version_text(resp.version()),
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )];
    for (name, value) in resp.headers() {
        header_lines.push(format!(
            "{}: {}\r\n",
            name,
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    header_lines.push("\r\n".to_owned());
    let mut body = Vec::new();
    let mut exit_code = 0;
    if method != Method::HEAD {
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BYTES - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        exit_code = 23;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    exit_code = exit_code_of(&e);
                    break;
                }
            }
        }
    }
    Fetched {
        exit_code,
        status: status.as_u16(),
        header_lines,
        body,
    }
}

fn version_text(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// The client a request needs when the shared one will not do: a connect
/// timeout, or https (verified as `secure` says). `Err` is libcurl's exit
/// code for a CA bundle it cannot use (77).
fn own_client_for(
    url: &reqwest::Url,
    secure: bool,
    ca_bundle: Option<&Path>,
    connect_timeout: Option<Duration>,
) -> Result<Option<reqwest::Client>, u32> {
    if url.scheme() != "https" && connect_timeout.is_none() {
        return Ok(None);
    }
    let mut builder = client_builder();
    if let Some(ct) = connect_timeout {
        builder = builder.connect_timeout(ct);
    }
    if url.scheme() == "https" {
        builder = match (secure, ca_bundle.filter(|p| p.exists())) {
            (false, _) => builder
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true),
            (true, None) => builder,
            (true, Some(bundle)) => {
                let certs = crate::tls::load_certs(bundle).map_err(|_| 77u32)?;
                let mut b = builder.tls_built_in_root_certs(false);
                for cert in certs {
                    let cert = reqwest::Certificate::from_der(&cert).map_err(|_| 77u32)?;
                    b = b.add_root_certificate(cert);
                }
                b
            }
        };
    }
    Ok(builder.build().ok())
}

/// Where a `secure` request looks for its CA bundle: `cacert.pem` in the
/// folder the `certs_dir` variable names (FreeSWITCH's certs directory).
pub fn ca_bundle<C: ChannelVars + ?Sized>(chan: &C) -> Option<PathBuf> {
    chan.variable("certs_dir")
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(&d).join("cacert.pem"))
}

fn exit_code_of(e: &reqwest::Error) -> u32 {
    if crate::tls::tls_failure(e).is_some() {
        // libcurl: CURLE_PEER_FAILED_VERIFICATION.
        60
    } else if e.is_timeout() {
        28
    } else if e.is_redirect() {
        47
    } else if e.is_builder() {
        3
    } else if e.is_connect() {
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(err) = source {
            if err.to_string().contains("dns error") {
                return 6;
            }
            source = err.source();
        }
        7
    } else {
        56
    }
}

/// Shapes the exchange into what mod_curl stores.
fn render(req: &CurlRequest, f: &Fetched) -> CurlOutcome {
    // The body is a C string: it ends at a NUL, and "" or " " count as none.
    let body = f.body.split(|&b| b == 0).next().unwrap_or_default();
    let body = String::from_utf8_lossy(body).into_owned();
    let http_response = (!body.is_empty() && body != " ").then_some(body);
    let data = if req.json {
        json_summary(f, http_response.as_deref())
    } else {
        let mut s = String::new();
        if req.headers {
            for line in &f.header_lines {
                s.push_str(line);
                s.push('\n');
            }
            s.push('\n');
        }
        s.push_str(http_response.as_deref().unwrap_or(""));
        s
    };
    CurlOutcome {
        response_code: f.status,
        data: (!data.is_empty()).then_some(data),
        method: req.method.clone(),
        exit_code: f.exit_code,
    }
}

/// mod_curl's `print_json`: every value a string, keys in its order.
fn json_summary(f: &Fetched, body: Option<&str>) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    let mut out = format!(
        "{{\"exit_code\":{},\"status_code\":{}",
        q(&f.exit_code.to_string()),
        q(&f.status.to_string())
    );
    if let Some(body) = body {
        out.push_str(&format!(",\"body\":{}", q(body)));
    }
    let mut headers = Vec::new();
    for raw in &f.header_lines {
        let line = match raw.rfind('\r') {
            Some(cr) => &raw[..cr],
            None => raw.as_str(),
        };
        if line.is_empty() {
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            headers.push(format!(
                "{{\"key\":{},\"value\":{}}}",
                q(key),
                q(value.trim_start_matches(' '))
            ));
        } else if line.starts_with("HTTP") {
            let parts = separate_blank(line, 3);
            if parts.len() > 2 {
                out.push_str(&format!(
                    ",\"version\":{},\"phrase\":{}",
                    q(&parts[0]),
                    q(&parts[2])
                ));
            }
        }
    }
    out.push_str(&format!(",\"headers\":[{}]}}", headers.join(",")));
    out
}

#[cfg(test)]
mod tests {
    use super::super::testchan::TestChannel;
    use super::*;

    #[test]
    fn words_are_parsed_like_mod_curl() {
        let r = CurlRequest::parse(
            "http://h/x json post a%20b%3D1 content-type application/json \
             append_headers 'X-One: 1' append_headers X-Two:2 timeout 5 bogus",
        );
        assert_eq!(r.url, "http://h/x");
        assert!(r.json && !r.headers);
        assert_eq!(r.method.as_deref(), Some("post"));
        assert_eq!(r.body, "a b=1");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.append_headers, ["X-One: 1", "X-Two:2"]);

        let r = CurlRequest::parse("http://h/x HEAD headers");
        assert_eq!(r.method.as_deref(), Some("HEAD"));
        assert!(r.headers);
        assert_eq!(CurlRequest::parse("http://h post").body, "");
        assert_eq!(CurlRequest::parse("").url, "");
    }

    fn fetched(status: u16, body: &str) -> Fetched {
        Fetched {
            exit_code: 0,
            status,
            header_lines: vec![
                format!("HTTP/1.1 {status} Not Found\r\n"),
                "content-type: text/plain\r\n".to_owned(),
                "\r\n".to_owned(),
            ],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn json_summary_matches_print_json() {
        let req = CurlRequest {
            json: true,
            ..CurlRequest::default()
        };
        let out = render(&req, &fetched(404, "no \"such\"\n"));
        assert_eq!(
            out.data.as_deref(),
            Some(
                "{\"exit_code\":\"0\",\"status_code\":\"404\",\"body\":\"no \\\"such\\\"\\n\",\
                 \"version\":\"HTTP/1.1\",\"phrase\":\"Not Found\",\
                 \"headers\":[{\"key\":\"content-type\",\"value\":\"text/plain\"}]}"
            )
        );
        let none = render(&req, &Fetched::failed(7));
        assert_eq!(
            none.data.as_deref(),
            Some("{\"exit_code\":\"7\",\"status_code\":\"0\",\"headers\":[]}")
        );
    }

    #[test]
    fn headers_mode_prefixes_raw_lines() {
        let req = CurlRequest {
            headers: true,
            ..CurlRequest::default()
        };
        let out = render(&req, &fetched(200, "body"));
        assert_eq!(
            out.data.as_deref(),
            Some("HTTP/1.1 200 Not Found\r\n\ncontent-type: text/plain\r\n\n\r\n\n\nbody")
        );
    }

    #[test]
    fn body_is_a_c_string() {
        let req = CurlRequest::default();
        assert_eq!(render(&req, &fetched(200, " ")).data, None);
        assert_eq!(render(&req, &fetched(200, "")).data, None);
        assert_eq!(
            render(&req, &fetched(200, "ab\0cd")).data.as_deref(),
            Some("ab")
        );
    }

    #[test]
    fn apply_follows_channel_variable_rules() {
        let mut c = TestChannel::new("1", "2");
        c.var("curl_response_data", "old");
        c.var("curl_method", "old");
        let outcome = CurlOutcome {
            response_code: 200,
            data: Some("{\"js\":\"${x}\"}".into()),
            method: None,
            exit_code: 0,
        };
        apply(&outcome, &mut c);
        assert_eq!(c.get("curl_response_data"), None);
        assert_eq!(c.get("curl_response_code").as_deref(), Some("200"));
        assert_eq!(c.get("curl_method"), None);

        let outcome = CurlOutcome {
            response_code: 0,
            data: None,
            method: Some("post".into()),
            exit_code: 28,
        };
        apply(&outcome, &mut c);
        assert_eq!(c.get("curl_response_code").as_deref(), Some("0"));
        assert_eq!(c.get("curl_method").as_deref(), Some("post"));
    }

    #[test]
    fn timeouts_from_channel_variables() {
        let mut c = TestChannel::new("1", "2");
        assert_eq!(timeouts(&c), (None, None));
        c.var("curl_timeout", "3");
        c.var("curl_connect_timeout", "x");
        assert_eq!(timeouts(&c), (Some(Duration::from_secs(3)), None));
        c.var("curl_timeout", "-1");
        c.var("curl_connect_timeout", "2");
        assert_eq!(timeouts(&c), (None, Some(Duration::from_secs(2))));
    }

    #[tokio::test]
    async fn unsupported_and_bad_urls_give_code_zero() {
        let http = client().unwrap();
        let out = execute("ftp://example.invalid/x", None, None, &http).await;
        assert_eq!((out.response_code, out.exit_code), (0, 1));
        let out = execute("http://[bad", None, None, &http).await;
        assert_eq!((out.response_code, out.exit_code), (0, 3));
        assert_eq!(out.data, None);
    }
}
