//! The key layout. Every key of a tenant carries the hash tag `{t:<tenant>}`
//! so that one script may touch several of them on Redis Cluster; global keys
//! are tagged by what they belong to (`{call:<uuid>}`, `{node:<node>}`) and a
//! script only ever touches keys of one tag. The variable part of a key is
//! always last, after a kind that no other key shares.
//!
//! Owns key names only; it must not issue commands.

/// Stands for the variable part of a key in [`around`].
const HOLE: &str = "\u{0}";

/// A key name split at [`HOLE`].
fn around(key: &str) -> (String, String) {
    let (head, tail) = key.split_once(HOLE).unwrap_or((key, ""));
    (head.to_owned(), tail.to_owned())
}

/// Key names under one prefix (`fsgate` by default; tests use their own).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// `<prefix>:{t:<tenant>}:<kind>`.
    pub(crate) fn tenant(&self, tenant: &str, kind: &str) -> String {
        format!("{}:{{t:{tenant}}}:{kind}", self.prefix)
    }

    /// `<prefix>:{call:<uuid>}:<kind>`: `call` (the record and its
    /// sequence, one hash) and `binding`.
    pub(crate) fn call(&self, uuid: &str, kind: &str) -> String {
        format!("{}:{{call:{uuid}}}:{kind}", self.prefix)
    }

    /// `<prefix>:{node:<node>}:live`: live calls on a node.
    pub(crate) fn node_live(&self, node: &str) -> String {
        format!("{}:{{node:{node}}}:live", self.prefix)
    }

    /// [`Keys::node_live`] as the text before and after the node, for a
    /// script that learns the node itself.
    pub(crate) fn node_live_around(&self) -> (String, String) {
        around(&self.node_live(HOLE))
    }

    /// A tenant's live calls (`calls:live`) as the text before and after the
    /// tenant id, for a script that learns the tenant itself.
    pub(crate) fn tenant_live_around(&self) -> (String, String) {
        around(&self.tenant(HOLE, "calls:live"))
    }

    // --- per tenant -----------------------------------------------------

    /// The keys every session script gets, in this order.
    pub(crate) fn session_keys(&self, tenant: &str, session_ref: &str) -> [String; 10] {
        [
            self.tenant(tenant, &format!("ses:{session_ref}")),
            self.tenant(tenant, &format!("sescalls:{session_ref}")),
            self.sessions(tenant, None),
            self.sessions(tenant, Some("open")),
            self.sessions(tenant, Some("active")),
            self.sessions(tenant, Some("completed")),
            self.tenant(tenant, "expiry"),
            self.tenant(tenant, "holders"),
            self.tenant(tenant, "free"),
            self.tenant(tenant, "pool"),
        ]
    }

    /// Sessions by creation time, all or of one state.
    pub(crate) fn sessions(&self, tenant: &str, state: Option<&str>) -> String {
        match state {
            None => self.tenant(tenant, "sessions"),
            Some(s) => self.tenant(tenant, &format!("sessions:{s}")),
        }
    }

    /// `<prefix>:{t:<tenant>}:idem:<endpoint>:<key>`: one Idempotency-Key
    /// record (the client's key last; endpoint names have no `:`).
    pub(crate) fn idempotency(&self, tenant: &str, endpoint: &str, key: &str) -> String {
        self.tenant(tenant, &format!("idem:{endpoint}:{key}"))
    }
}
