//! `docker/compose.yaml` and `docker/.env.example` read the way compose reads
//! them: a service's `environment:` list, and `${VAR:?…}` / `${VAR:-default}`
//! resolved from the example values. Shared by the tests that check the
//! containers' configuration contract.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// `KEY=value` lines of `docker/.env.example`.
pub fn env_example() -> BTreeMap<String, String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/.env.example"))
            .unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Resolves compose's `${NAME}`, `${NAME:?msg}`, `${NAME:-default}`.
pub fn interpolate(value: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').expect("unclosed ${ in compose.yaml");
        let expr = &after[..end];
        let (name, default) = if let Some((n, _msg)) = expr.split_once(":?") {
            (n, None)
        } else if let Some((n, d)) = expr.split_once(":-") {
            (n, Some(d))
        } else {
            (expr, None)
        };
        let resolved = vars
            .get(name)
            .cloned()
            .or_else(|| default.map(str::to_owned))
            .unwrap_or_else(|| panic!("{name} is neither in .env.example nor defaulted"));
        out.push_str(&resolved);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The `environment:` list of `service` in compose.yaml, as written.
pub fn service_environment(service: &str) -> Vec<(String, String)> {
    service_environment_in("docker/compose.yaml", service)
}

/// `service`'s environment in `docker/compose.yaml` with an override file
/// (`docker/compose.tls.yaml`, …) on top, as `compose -f … -f …` merges it:
/// by variable name, the override winning.
pub fn merged_environment(overlay: &str, service: &str) -> Vec<(String, String)> {
    let mut env = service_environment(service);
    for (k, v) in service_environment_in(overlay, service) {
        match env.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k, v)),
        }
    }
    env
}

/// The `environment:` list of `service` in a compose file of the
/// repository, as written.
pub fn service_environment_in(file: &str, service: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let mut in_service = false;
    let mut in_env = false;
    let mut env = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 2 && trimmed.ends_with(':') {
            in_service = trimmed.strip_suffix(':') == Some(service);
            in_env = false;
            continue;
        }
        if indent == 0 {
            in_service = false;
            in_env = false;
            continue;
        }
        if !in_service {
            continue;
        }
        if indent == 4 {
            in_env = trimmed == "environment:";
            continue;
        }
        if in_env {
            let item = trimmed
                .strip_prefix("- ")
                .expect("environment is a list of NAME=value");
            let (k, v) = item.split_once('=').expect("NAME=value");
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    env
}

/// `service`'s environment with every variable resolved from `.env.example`.
pub fn resolved_environment(service: &str) -> Vec<(String, String)> {
    let vars = env_example();
    service_environment(service)
        .into_iter()
        .map(|(k, v)| (k, interpolate(&v, &vars)))
        .collect()
}
