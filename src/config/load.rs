//! Loading the configuration: a TOML file, then environment overrides, then
//! validation, with every problem reported at once.
//!
//! This module owns how a file and the environment become a [`Config`]: the
//! `config` crate merges the file with `FSGATE__SECTION__KEY` variables (and
//! turns their strings into numbers or booleans where the key wants one);
//! this module then checks every key against the model (unknown keys are
//! errors that name the key and where it came from), deserializes section by
//! section so that one bad value does not hide the next, applies the
//! per-element overrides of the two arrays of tables, and finally runs
//! [`super::validate`]. It must not decide what a *valid* value is (that is
//! `validate.rs`) and never prints secrets in its messages.
//!
//! # Environment overrides
//!
//! * `FSGATE__<SECTION>__<KEY>` sets one key of a section, e.g.
//!   `FSGATE__HTTP__LISTEN=0.0.0.0:8080`, `FSGATE__STORE__URL=redis://r:6379/0`,
//!   `FSGATE__HTTP__DIALPLAN_ALLOW=10.0.0.5,10.1.0.0/16` (lists are
//!   comma-separated). Names are case-insensitive. Secrets of a section go
//!   the same way: `FSGATE__HTTP__DIALPLAN_TOKEN`,
//!   `FSGATE__HTTP__METRICS_TOKEN`.
//! * Nodes and tenants are arrays of tables, so their elements are addressed by
//!   name / id instead of position:
//!   `FSGATE__FREESWITCH__<NAME>__PASSWORD` (also `ADDRESS`) and
//!   `FSGATE__TENANTS__<ID>__WEBHOOK_SECRET` (also `WEBHOOK_URL`, and
//!   `API_KEYS_SHA256`, comma-separated). The name or id is matched
//!   case-insensitively, and `_` in the variable matches `-` in the id (shells
//!   do not allow `-` in variable names). The element must exist in the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use config::{Environment, File, FileFormat, Map, Source, Value, ValueKind};
use serde::de::DeserializeOwned;

use super::model::{Config, NodeConfig, TenantConfig};

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "FSGATE__";

/// One thing wrong with a configuration: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where: a key path such as `tenants[acme].masked_numbers[2]`, an
    /// environment variable name, or the file itself.
    pub path: String,
    /// What is wrong, for a human; never contains a secret value.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found while loading a configuration (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The problems, in file order where there is one.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{n} configuration problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Loads `path` with the process environment's overrides, and validates it.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_env(path, process_env())
}

/// Loads `path` with the given environment (name, value) pairs instead of the
/// process environment, and validates it.
pub fn load_with_env<I>(path: &Path, env: I) -> Result<Config, ConfigErrors>
where
    I: IntoIterator<Item = (String, String)>,
{
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        problems: vec![ConfigProblem::new(
            &name,
            format!("cannot read the configuration file: {e}"),
        )],
    })?;
    load_str(&text, &name, env)
}

/// Loads a TOML text (`source_name` names it in messages) with the given
/// environment, and validates it.
pub fn load_str<I>(text: &str, source_name: &str, env: I) -> Result<Config, ConfigErrors>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut problems = Vec::new();
    let overrides = split_env(env, &mut problems);
    let built = config::Config::builder()
        .add_source(File::from_str(text, FileFormat::Toml))
        .add_source(
            Environment::default()
                .prefix("FSGATE")
                .prefix_separator("__")
                .separator("__")
                .source(Some(
                    overrides
                        .general
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )),
        )
        .build()
        .and_then(|c| c.collect());
    let tree = match built {
        Ok(tree) => tree,
        Err(e) => {
            problems.push(ConfigProblem::new(
                source_name,
                format!(
                    "not a valid TOML configuration: {}",
                    e.to_string().trim_end()
                ),
            ));
            return Err(ConfigErrors { problems });
        }
    };

    let ctx = Ctx { source_name };
    let mut config = ctx.assemble(tree, &mut problems);
    apply_element_overrides(&mut config, &overrides.elements, &mut problems);
    problems.extend(super::validate::validate(&config));
    problems.extend(super::files::check(&config));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors { problems })
    }
}

/// The process environment, skipping variables whose name or value is not
/// UTF-8 unless they are ours (those become a problem at load).
fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            match v.into_string() {
                Ok(v) => Some((k, v)),
                Err(_) if is_ours(&k) => Some((k, "\u{FFFD}".into())),
                Err(_) => None,
            }
        })
        .collect()
}

/// Whether a variable name starts with `FSGATE__` (any case). When it does,
/// its first bytes are ASCII, so slicing after the prefix is safe.
fn is_ours(name: &str) -> bool {
    name.as_bytes()
        .get(..ENV_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX.as_bytes()))
}

// --- environment variables ------------------------------------------------------

/// Which keys of an array element can be overridden by name / id.
const NODE_ENV_KEYS: &[&str] = &["password", "address"];
const TENANT_ENV_KEYS: &[&str] = &["webhook_secret", "webhook_url", "api_keys_sha256"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum ElementSection {
    Node,
    Tenant,
}

#[derive(Debug, Clone)]
struct ElementOverride {
    var: String,
    section: ElementSection,
    element: String,
    key: &'static str,
    value: String,
}

#[derive(Debug, Default)]
struct EnvOverrides {
    /// `FSGATE__SECTION__KEY` variables, by their original name.
    general: BTreeMap<String, String>,
    /// Per-element overrides of `[[freeswitch]]` and `[[tenants]]`.
    elements: Vec<ElementOverride>,
}

fn split_env<I>(env: I, problems: &mut Vec<ConfigProblem>) -> EnvOverrides
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut out = EnvOverrides::default();
    for (name, value) in env {
        if !is_ours(&name) {
            continue;
        }
        let rest = &name[ENV_PREFIX.len()..];
        let (section, tail) = match rest.find("__") {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (rest, ""),
        };
        let (kind, keys, example) = if section.eq_ignore_ascii_case("freeswitch") {
            (
                ElementSection::Node,
                NODE_ENV_KEYS,
                "FSGATE__FREESWITCH__<NAME>__PASSWORD",
            )
        } else if section.eq_ignore_ascii_case("tenants") {
            (
                ElementSection::Tenant,
                TENANT_ENV_KEYS,
                "FSGATE__TENANTS__<ID>__WEBHOOK_SECRET",
            )
        } else {
            if value == "\u{FFFD}" {
                problems.push(ConfigProblem::new(&name, "the value is not valid UTF-8"));
                continue;
            }
            out.general.insert(name, value);
            continue;
        };
        let lower = tail.to_ascii_lowercase();
        let found = keys.iter().find_map(|key| {
            let suffix = format!("__{key}");
            (lower.len() > suffix.len() && lower.ends_with(&suffix))
                .then(|| (*key, &tail[..tail.len() - suffix.len()]))
        });
        match found {
            Some((key, element)) => out.elements.push(ElementOverride {
                var: name.clone(),
                section: kind,
                element: element.to_string(),
                key,
                value,
            }),
            None => problems.push(ConfigProblem::new(
                &name,
                format!(
                    "not a supported override: elements are addressed by name or id, as in \
                     {example}; the keys that can be set this way are {}",
                    keys.iter()
                        .map(|k| k.to_ascii_uppercase())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
    out
}

/// How an element's name or id is compared with the one in a variable name:
/// case-insensitive, `-` and `_` alike.
pub(crate) fn env_name_key(s: &str) -> String {
    s.to_ascii_lowercase().replace('-', "_")
}

fn apply_element_overrides(
    config: &mut Config,
    overrides: &[ElementOverride],
    problems: &mut Vec<ConfigProblem>,
) {
    for o in overrides {
        let wanted = env_name_key(&o.element);
        let (what, indices): (&str, Vec<usize>) = match o.section {
            ElementSection::Node => (
                "[[freeswitch]] node named",
                (0..config.freeswitch.len())
                    .filter(|&i| env_name_key(&config.freeswitch[i].name) == wanted)
                    .collect(),
            ),
            ElementSection::Tenant => (
                "tenant with id",
                (0..config.tenants.len())
                    .filter(|&i| env_name_key(&config.tenants[i].id) == wanted)
                    .collect(),
            ),
        };
        match indices.as_slice() {
            [] => problems.push(ConfigProblem::new(
                &o.var,
                format!(
                    "there is no {what} `{}` in the file (overrides only change existing elements)",
                    o.element
                ),
            )),
            [i] => match o.section {
                ElementSection::Node => {
                    let node = &mut config.freeswitch[*i];
                    match o.key {
                        "password" => node.password = o.value.clone(),
                        _ => node.address = o.value.clone(),
                    }
                }
                ElementSection::Tenant => {
                    let tenant = &mut config.tenants[*i];
                    match o.key {
                        "webhook_secret" => tenant.webhook_secret = Some(o.value.clone()),
                        "webhook_url" => tenant.webhook_url = Some(o.value.clone()),
                        _ => {
                            tenant.api_keys_sha256 = o
                                .value
                                .split(',')
                                .map(|s| s.trim().to_string())
                                .filter(|s| !s.is_empty())
                                .collect()
                        }
                    }
                }
            },
            _ => problems.push(ConfigProblem::new(
                &o.var,
                format!(
                    "`{}` matches more than one {what} (names are compared case-insensitively, \
                     `-` and `_` alike); rename one",
                    o.element
                ),
            )),
        }
    }
}

// --- the tree ---------------------------------------------------------------------

const TABLE_SECTIONS: &[&str] = &["http", "store", "control", "calls", "webhooks", "shutdown"];
const ARRAY_SECTIONS: &[&str] = &["freeswitch", "tenants"];

/// Keys of a table section whose value is a list, from the model.
fn list_keys(section: &str) -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(top)) => match top.get(section) {
            Some(serde_json::Value::Object(keys)) => keys
                .iter()
                .filter(|(_, v)| v.is_array())
                .map(|(k, _)| k.clone())
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// An environment variable setting a list key is comma-separated.
fn split_env_lists(section: &str, table: &mut Map<String, Value>) {
    for key in list_keys(section) {
        let Some(value) = table.get_mut(&key) else {
            continue;
        };
        if value.origin().is_none() {
            continue;
        }
        if let ValueKind::String(s) = &value.kind {
            let items = s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::new(None, ValueKind::String(s.to_string())))
                .collect();
            value.kind = ValueKind::Array(items);
        }
    }
}

/// The keys a section may contain, read from the model itself so that a key
/// added there is known here without a second list to maintain.
fn known_keys(section: &str) -> Vec<String> {
    let config = Config::default();
    let value = match section {
        "freeswitch" => serde_json::to_value(NodeConfig {
            name: String::new(),
            address: String::new(),
            password: String::new(),
        }),
        "tenants" => serde_json::to_value(sample_tenant()),
        "" => serde_json::to_value(&config),
        other => serde_json::to_value(&config).map(|v| v.get(other).cloned().unwrap_or_default()),
    };
    match value {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn sample_tenant() -> TenantConfig {
    TenantConfig {
        id: String::new(),
        api_keys_sha256: Vec::new(),
        masked_numbers: Vec::new(),
        control_numbers: Vec::new(),
        default_ttl_minutes: 0,
        max_ttl_minutes: 0,
        hangup_on_expiry: false,
        webhook_url: None,
        webhook_secret: None,
        trunk: String::new(),
        dial_string: String::new(),
    }
}

struct Ctx<'a> {
    source_name: &'a str,
}

impl Ctx<'_> {
    /// Where a value came from, for messages.
    fn origin(&self, value: &Value, path: &[&str]) -> String {
        if value.origin().is_some() {
            format!("from the environment variable {}", env_var_name(path))
        } else {
            format!("in {}", self.source_name)
        }
    }

    fn assemble(&self, tree: Map<String, Value>, problems: &mut Vec<ConfigProblem>) -> Config {
        let mut config = Config::default();
        let top = known_keys("");
        for (key, value) in tree {
            if !top.contains(&key) {
                problems.push(ConfigProblem::new(
                    &key,
                    format!(
                        "unknown section ({}){}",
                        self.origin(&value, &[&key]),
                        suggestion(&key, &top)
                    ),
                ));
                continue;
            }
            if TABLE_SECTIONS.contains(&key.as_str()) {
                let Some(table) = self.table(&key, value, problems) else {
                    continue;
                };
                let mut table =
                    self.drop_unknown(&key, &[&key], table, &known_keys(&key), problems);
                split_env_lists(&key, &mut table);
                match key.as_str() {
                    "http" => set(&mut config.http, self.typed(&key, &key, table, problems)),
                    "store" => set(&mut config.store, self.typed(&key, &key, table, problems)),
                    "control" => set(&mut config.control, self.typed(&key, &key, table, problems)),
                    "calls" => set(&mut config.calls, self.typed(&key, &key, table, problems)),
                    "webhooks" => set(
                        &mut config.webhooks,
                        self.typed(&key, &key, table, problems),
                    ),
                    _ => set(
                        &mut config.shutdown,
                        self.typed(&key, &key, table, problems),
                    ),
                }
            } else if ARRAY_SECTIONS.contains(&key.as_str()) {
                let origin = self.origin(&value, &[&key]);
                let items = match value.kind {
                    ValueKind::Array(items) => items,
                    _ => {
                        problems.push(ConfigProblem::new(
                            &key,
                            format!("must be an array of tables, written [[{key}]] ({origin})"),
                        ));
                        continue;
                    }
                };
                let known = known_keys(&key);
                let label_key = if key == "freeswitch" { "name" } else { "id" };
                let names: Vec<Option<String>> = items
                    .iter()
                    .map(|item| element_name(item, label_key))
                    .collect();
                for (i, item) in items.into_iter().enumerate() {
                    let label = element_label(&key, i, &names);
                    let Some(table) = self.table(&label, item, problems) else {
                        continue;
                    };
                    let table = self.drop_unknown(&label, &[], table, &known, problems);
                    if key == "freeswitch" {
                        if let Some(node) = self.typed::<NodeConfig>(&label, &key, table, problems)
                        {
                            config.freeswitch.push(node);
                        }
                    } else if let Some(tenant) =
                        self.typed::<TenantConfig>(&label, &key, table, problems)
                    {
                        config.tenants.push(tenant);
                    }
                }
            }
        }
        config
    }

    fn table(
        &self,
        label: &str,
        value: Value,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<Map<String, Value>> {
        let origin = self.origin(&value, &[label]);
        match value.kind {
            ValueKind::Table(t) => Some(t),
            _ => {
                problems.push(ConfigProblem::new(
                    label,
                    format!("must be a table ({origin})"),
                ));
                None
            }
        }
    }

    /// Reports and removes keys the model does not know.
    fn drop_unknown(
        &self,
        label: &str,
        env_path: &[&str],
        mut table: Map<String, Value>,
        known: &[String],
        problems: &mut Vec<ConfigProblem>,
    ) -> Map<String, Value> {
        let unknown: Vec<String> = table
            .keys()
            .filter(|k| !known.contains(k))
            .cloned()
            .collect();
        for key in unknown {
            if let Some(value) = table.remove(&key) {
                let mut path = env_path.to_vec();
                path.push(&key);
                problems.push(ConfigProblem::new(
                    format!("{label}.{key}"),
                    format!(
                        "unknown key ({}){}",
                        self.origin(&value, &path),
                        suggestion(&key, known)
                    ),
                ));
            }
        }
        table
    }

    /// Deserializes one section or element, reporting every bad value: each
    /// failure names its key, which is dropped (falls back to its default)
    /// before trying again.
    fn typed<T: DeserializeOwned>(
        &self,
        label: &str,
        section: &str,
        mut table: Map<String, Value>,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<T> {
        let mut dropped: BTreeSet<String> = BTreeSet::new();
        for _ in 0..=table.len() + 1 {
            let value = Value::new(None, ValueKind::Table(table.clone()));
            let err = match serde_path_to_error::deserialize::<_, T>(value) {
                Ok(t) => return Some(t),
                Err(e) => e,
            };
            let path = err.path().to_string();
            let first = err.path().iter().next().and_then(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            });
            let message = describe(err.inner());
            match first {
                Some(key) if table.contains_key(&key) => {
                    let origin = table
                        .get(&key)
                        .map(|v| {
                            let env = if TABLE_SECTIONS.contains(&section) {
                                vec![section, key.as_str()]
                            } else {
                                vec![]
                            };
                            self.origin(v, &env)
                        })
                        .unwrap_or_default();
                    problems.push(ConfigProblem::new(
                        format!("{label}.{path}"),
                        format!("{message} ({origin})"),
                    ));
                    table.remove(&key);
                    dropped.insert(key);
                }
                _ => {
                    let missing = missing_field(err.inner());
                    if !missing.is_some_and(|m| dropped.contains(&m)) {
                        problems.push(ConfigProblem::new(label, message));
                    }
                    return None;
                }
            }
        }
        None
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// The element's name (`name` or `id`) when it is a valid identifier.
fn element_name(item: &Value, key: &str) -> Option<String> {
    let ValueKind::Table(t) = &item.kind else {
        return None;
    };
    match t.get(key) {
        Some(Value {
            kind: ValueKind::String(s),
            ..
        }) if super::validate::is_ident(s) => Some(s.clone()),
        _ => None,
    }
}

/// `section[name]` when the name is valid and unique, else `section[index]`
/// (the same labels `validate` uses).
fn element_label(section: &str, index: usize, names: &[Option<String>]) -> String {
    if let Some(name) = &names[index] {
        let key = env_name_key(name);
        let count = names
            .iter()
            .flatten()
            .filter(|n| env_name_key(n) == key)
            .count();
        if count == 1 {
            return format!("{section}[{name}]");
        }
    }
    format!("{section}[{index}]")
}

fn env_var_name(path: &[&str]) -> String {
    let mut name = String::from("FSGATE");
    for p in path {
        name.push_str("__");
        name.push_str(&p.to_ascii_uppercase());
    }
    name
}

fn describe(e: &config::ConfigError) -> String {
    match e {
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("expected {expected}, found {unexpected}"),
        config::ConfigError::NotFound(k) => format!("missing required key `{k}`"),
        config::ConfigError::At { error, .. } => describe(error),
        config::ConfigError::Message(m) => m.clone(),
        other => other.to_string(),
    }
}

fn missing_field(e: &config::ConfigError) -> Option<String> {
    match e {
        config::ConfigError::NotFound(k) => Some(k.clone()),
        config::ConfigError::At { error, .. } => missing_field(error),
        _ => None,
    }
}

/// ", did you mean `x`?" when a known key is close to an unknown one.
fn suggestion(key: &str, known: &[String]) -> String {
    known
        .iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn known_keys_come_from_the_model() {
        assert!(known_keys("http").contains(&"listen".to_string()));
        assert!(known_keys("freeswitch").contains(&"password".to_string()));
        assert!(known_keys("tenants").contains(&"dial_string".to_string()));
        assert!(known_keys("").contains(&"tenants".to_string()));
    }

    #[test]
    fn suggestions_for_typos() {
        let known = known_keys("http");
        assert_eq!(suggestion("listn", &known), "; did you mean `listen`?");
        assert_eq!(suggestion("zzzzzzzz", &known), "");
    }

    #[test]
    fn bad_toml_is_one_problem_naming_the_file() {
        let err = load_str("[http\nlisten=", "x.toml", no_env()).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].path, "x.toml");
        assert!(err.problems[0].message.contains("TOML"));
    }

    #[test]
    fn every_type_error_of_a_section_is_reported() {
        let text = "[control]\nanswer_timeout_ms = \"soon\"\nidempotency_hours = -1\n";
        let err = load_str(text, "x.toml", no_env()).unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"control.answer_timeout_ms"), "{err}");
        assert!(paths.contains(&"control.idempotency_hours"), "{err}");
    }

    #[test]
    fn odd_variable_names_do_not_panic() {
        let env = vec![
            ("FSGATE_é__X".to_string(), "1".to_string()),
            ("FSGATE__".to_string(), "1".to_string()),
            ("FSGATE__TENANTS__".to_string(), "1".to_string()),
            (
                "FSGATE__TENANTS____WEBHOOK_SECRET".to_string(),
                "1".to_string(),
            ),
            ("É".to_string(), "1".to_string()),
        ];
        let err = load_str("", "x.toml", env).unwrap_err();
        assert!(
            err.problems.iter().any(|p| p.path == "FSGATE__TENANTS__"),
            "{err}"
        );
    }

    #[test]
    fn the_http_tokens_and_limits_come_from_the_environment() {
        let text = "[[freeswitch]]\nname = \"fs1\"\naddress = \"127.0.0.1:8021\"\n\n\
                    [[tenants]]\nid = \"acme\"\napi_keys_sha256 = [\"\
                    a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3\"]\n";
        let env = vec![
            (
                "FSGATE__HTTP__METRICS_TOKEN".to_string(),
                "12345".to_string(),
            ),
            (
                "FSGATE__HTTP__MAX_CONNECTIONS".to_string(),
                "200".to_string(),
            ),
            (
                "FSGATE__HTTP__DIALPLAN_RESERVED_CONNECTIONS".to_string(),
                "20".to_string(),
            ),
        ];
        let c = load_str(text, "x.toml", env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.http.metrics_token.as_deref(), Some("12345"));
        assert_eq!(c.http.max_connections, 200);
        assert_eq!(c.http.dialplan_reserved_connections, 20);
        let env = vec![(
            "FSGATE__HTTP__DIALPLAN_RESERVED_CONNECTIONS".to_string(),
            "5000".to_string(),
        )];
        let e = load_str(text, "x.toml", env).unwrap_err();
        assert_eq!(
            e.problems[0].path, "http.dialplan_reserved_connections",
            "{e}"
        );
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_name(&["http", "listen"]), "FSGATE__HTTP__LISTEN");
    }
}
