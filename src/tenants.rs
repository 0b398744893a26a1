//! The tenants, as the running daemon sees them: built once from the
//! validated configuration, then looked up by API key, by id, and by the
//! masked and control numbers they own.
//!
//! This module owns API-key matching (SHA-256 of the presented key compared
//! in constant time with every configured hash, so timing reveals neither
//! which tenant nor how much matched) and number normalisation (`+15550100001`
//! and `15550100001` are the same number) and dial-string template
//! expansion. It holds no request logic (that is
//! `http::auth`) and never keeps or logs a plaintext key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::{Config, TenantConfig};

/// One tenant's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSettings {
    config: TenantConfig,
}

impl TenantSettings {
    /// The tenant id (also its `X-App-ID`).
    pub fn id(&self) -> &str {
        &self.config.id
    }
    /// Its masked-number pool, as configured (E.164).
    pub fn masked_numbers(&self) -> &[String] {
        &self.config.masked_numbers
    }
    /// Numbers whose inbound calls are parked for call control (E.164).
    pub fn control_numbers(&self) -> &[String] {
        &self.config.control_numbers
    }
    /// TTL of a session created without one.
    pub fn default_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.default_ttl_minutes) * 60)
    }
    /// Largest TTL a session may ask for.
    pub fn max_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.max_ttl_minutes) * 60)
    }
    /// `default_ttl_minutes` as configured.
    pub fn default_ttl_minutes(&self) -> u32 {
        self.config.default_ttl_minutes
    }
    /// `max_ttl_minutes` as configured.
    pub fn max_ttl_minutes(&self) -> u32 {
        self.config.max_ttl_minutes
    }
    /// Hang up calls still up when their session expires.
    pub fn hangup_on_expiry(&self) -> bool {
        self.config.hangup_on_expiry
    }
    /// Where webhooks go, if anywhere.
    pub fn webhook_url(&self) -> Option<&str> {
        self.config.webhook_url.as_deref()
    }
    /// The Standard Webhooks secret (`whsec_…`), if any. Never log it.
    pub fn webhook_secret(&self) -> Option<&str> {
        self.config.webhook_secret.as_deref()
    }
    /// Default trunk (gateway) for outbound legs.
    pub fn trunk(&self) -> &str {
        &self.config.trunk
    }
    /// The dial-string template (`${trunk}`, `${number}`).
    pub fn dial_string(&self) -> &str {
        &self.config.dial_string
    }
    /// The template with `trunk` (`None`: the tenant's own) and `number`
    /// filled in; see [`expand_dial_string`].
    pub fn dial_string_for(&self, trunk: Option<&str>, number: &str) -> String {
        expand_dial_string(
            &self.config.dial_string,
            trunk.unwrap_or(self.trunk()),
            number,
        )
    }
    /// Whether `number` is in the masked pool (normalised comparison).
    pub fn owns_masked(&self, number: &str) -> bool {
        let n = normalize_number(number);
        self.config
            .masked_numbers
            .iter()
            .any(|m| normalize_number(m) == n)
    }
    /// The whole configuration block.
    pub fn config(&self) -> &TenantConfig {
        &self.config
    }
}

/// All tenants, indexed.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    list: Vec<Arc<TenantSettings>>,
    by_id: HashMap<String, usize>,
    /// (SHA-256 of a key, index of its tenant), in config order.
    keys: Vec<([u8; 32], usize)>,
    masked: HashMap<String, usize>,
    control: HashMap<String, usize>,
}

impl Tenants {
    /// Indexes the tenants of a (validated) configuration. Hashes that are not
    /// 64 hex characters are skipped: they could never match.
    pub fn from_config(config: &Config) -> Tenants {
        Tenants::new(config.tenants.iter().cloned())
    }

    /// Indexes the given tenants.
    pub fn new(tenants: impl IntoIterator<Item = TenantConfig>) -> Tenants {
        let mut t = Tenants::default();
        for (i, config) in tenants.into_iter().enumerate() {
            t.by_id.entry(config.id.clone()).or_insert(i);
            for h in &config.api_keys_sha256 {
                let mut digest = [0u8; 32];
                if hex::decode_to_slice(h, &mut digest).is_ok() {
                    t.keys.push((digest, i));
                }
            }
            for n in &config.masked_numbers {
                t.masked.entry(normalize_number(n)).or_insert(i);
            }
            for n in &config.control_numbers {
                t.control.entry(normalize_number(n)).or_insert(i);
            }
            t.list.push(Arc::new(TenantSettings { config }));
        }
        t
    }

    /// The tenant whose configured hashes include SHA-256(`key`). Every
    /// configured hash is compared, in constant time, whatever matches.
    pub fn by_api_key(&self, key: &str) -> Option<&Arc<TenantSettings>> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = u64::MAX;
        for (hash, index) in &self.keys {
            found.conditional_assign(&(*index as u64), hash.ct_eq(&digest));
        }
        usize::try_from(found).ok().and_then(|i| self.list.get(i))
    }

    /// The tenant with this id (exact match).
    pub fn by_id(&self, id: &str) -> Option<&Arc<TenantSettings>> {
        self.by_id.get(id).map(|&i| &self.list[i])
    }

    /// The tenant whose masked pool holds `number` (with or without `+`).
    pub fn by_masked_number(&self, number: &str) -> Option<&Arc<TenantSettings>> {
        self.masked
            .get(&normalize_number(number))
            .map(|&i| &self.list[i])
    }

    /// The tenant owning the call-control number `number` (with or without `+`).
    pub fn by_control_number(&self, number: &str) -> Option<&Arc<TenantSettings>> {
        self.control
            .get(&normalize_number(number))
            .map(|&i| &self.list[i])
    }

    /// Every tenant, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TenantSettings>> {
        self.list.iter()
    }

    /// How many tenants.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// No tenants at all.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// A tenant's dial-string template with `${trunk}` and `${number}` replaced
/// (nothing else is: the caller checks the result as an endpoint, so any
/// other `${` is refused there).
pub fn expand_dial_string(template: &str, trunk: &str, number: &str) -> String {
    template
        .replace("${trunk}", trunk)
        .replace("${number}", number)
}

/// A number in the form used for comparisons: surrounding whitespace and one
/// leading `+` removed (`+15550100001` and `15550100001` are equal).
pub fn normalize_number(number: &str) -> String {
    let n = number.trim();
    n.strip_prefix('+').unwrap_or(n).to_string()
}

/// The SHA-256 (lowercase hex) of an API key, as `api_keys_sha256` wants it.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl crate::pipeline::NumberDirectory for Tenants {
    fn owner_of(&self, number: &str) -> Option<crate::pipeline::NumberOwner> {
        use crate::pipeline::{NumberKind, NumberOwner};
        if let Some(t) = self.by_masked_number(number) {
            return Some(NumberOwner {
                tenant: t.id().to_owned(),
                kind: NumberKind::Masked,
            });
        }
        self.by_control_number(number).map(|t| NumberOwner {
            tenant: t.id().to_owned(),
            kind: NumberKind::Control,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str, key: &str, masked: &[&str], control: &[&str]) -> TenantConfig {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "api_keys_sha256": [hash_key(key)],
            "masked_numbers": masked,
            "control_numbers": control,
        }))
        .unwrap()
    }

    fn tenants() -> Tenants {
        Tenants::new([
            tenant("acme", "key-acme", &["+15550100001"], &["+15550109000"]),
            tenant("beta", "key-beta", &["+15550100002"], &[]),
        ])
    }

    #[test]
    fn hash_key_is_sha256_hex() {
        assert_eq!(
            hash_key("123"),
            "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"
        );
    }

    #[test]
    fn lookup_by_key() {
        let t = tenants();
        assert_eq!(t.by_api_key("key-acme").unwrap().id(), "acme");
        assert_eq!(t.by_api_key("key-beta").unwrap().id(), "beta");
        assert!(t.by_api_key("key-gamma").is_none());
        assert!(t.by_api_key("").is_none());
    }

    #[test]
    fn lookup_by_id_and_numbers() {
        let t = tenants();
        assert_eq!(t.by_id("beta").unwrap().id(), "beta");
        assert!(t.by_id("BETA").is_none());
        assert_eq!(t.by_masked_number("15550100001").unwrap().id(), "acme");
        assert_eq!(t.by_masked_number("+15550100002").unwrap().id(), "beta");
        assert!(t.by_masked_number("+15550109000").is_none());
        assert_eq!(t.by_control_number("15550109000").unwrap().id(), "acme");
        assert!(t.by_id("acme").unwrap().owns_masked("15550100001"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn settings_accessors() {
        let t = tenants();
        let acme = t.by_id("acme").unwrap();
        assert_eq!(acme.default_ttl(), Duration::from_secs(3600));
        assert_eq!(acme.max_ttl_minutes(), 240);
        assert_eq!(acme.trunk(), "carrier");
        assert!(acme.webhook_url().is_none());
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize_number(" +15550100001 "), "15550100001");
        assert_eq!(normalize_number("15550100001"), "15550100001");
    }
}
