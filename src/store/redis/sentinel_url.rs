//! The `redis+sentinel://` URL form: `[user:pass@]s1:p1[,s2:p2…]/master[/db]`
//! (`rediss+sentinel://` for TLS), parsed into the sentinels to ask, the
//! master name they monitor, the database, and the data nodes' credentials.
//!
//! Owns the syntax and its error messages (which never echo a password); what
//! a [`SentinelTarget`] is used for is [`super::sentinel`]'s.

/// The sentinels and the master a `redis+sentinel://` URL names.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelTarget {
    /// `rediss+sentinel`: TLS to the sentinels and to the data nodes.
    pub tls: bool,
    /// The sentinels' `host:port`s.
    pub sentinels: Vec<(String, u16)>,
    /// The master name the sentinels monitor.
    pub master: String,
    /// The database on the data nodes.
    pub db: i64,
    /// The data nodes' user (the URL's userinfo).
    pub username: Option<String>,
    /// The data nodes' password (the URL's userinfo).
    pub password: Option<String>,
}

impl std::fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelTarget")
            .field("tls", &self.tls)
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Parses what follows `redis+sentinel://`: `[user:pass@]h1:p1[,h2:p2…]/
/// master[/db]`. The error says what is wrong (never echoing the password).
pub(crate) fn parse(tls: bool, rest: &str) -> Result<SentinelTarget, String> {
    let (authority, path) = rest
        .split_once('/')
        .ok_or("no master name (redis+sentinel://host:port,host:port/master-name[/db])")?;
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let sentinels = hosts
        .split(',')
        .map(|h| host_port(h.trim()))
        .collect::<Result<Vec<_>, String>>()?;
    let mut segments = path.split('/');
    let master = segments.next().unwrap_or_default().trim();
    if master.is_empty() {
        return Err("no master name after the sentinels (…/master-name[/db])".into());
    }
    let db = match segments.next() {
        None => 0,
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or("the database after the master name must be a number")?,
    };
    if segments.next().is_some() {
        return Err("nothing may follow the database (…/master-name[/db])".into());
    }
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, pass) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            let user = percent_decode(user)?;
            let pass = pass.map(percent_decode).transpose()?;
            ((!user.is_empty()).then_some(user), pass)
        }
    };
    Ok(SentinelTarget {
        tls,
        sentinels,
        master: master.to_owned(),
        db,
        username,
        password,
    })
}

/// `host:port` or `[v6]:port`.
fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("sentinel `{s}` needs a port (host:port)"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("sentinel `{s}` has no valid port"))?;
    if host.is_empty() {
        return Err(format!("sentinel `{s}` has no host"));
    }
    Ok((host.to_owned(), port))
}

/// `%XX` escapes of a URL's userinfo.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a bad %-escape in the credentials")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the credentials are not UTF-8".to_owned())
}
