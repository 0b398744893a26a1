//! Configuration loading and validation through the public API: the example
//! file, one file with every kind of problem (all reported, each with its
//! path), unknown keys from the file and the environment, and environment
//! overrides, including the per-node and per-tenant secrets.

use std::collections::BTreeSet;
use std::path::PathBuf;

use fsgate::config::{self, ConfigErrors};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/fsgate.example.toml")
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn problems(text: &str, vars: &[(&str, &str)]) -> ConfigErrors {
    match config::load_str(text, "test.toml", env(vars)) {
        Ok(c) => panic!("expected problems, loaded {c:?}"),
        Err(e) => e,
    }
}

const VALID: &str = r#"
[[freeswitch]]
name = "fs1"
address = "127.0.0.1:8021"

[[tenants]]
id = "acme-eu"
api_keys_sha256 = ["a2fb8545fcd457204e9fee11be92013aa3240b1b146fe262ba608fdfc159041c"]
masked_numbers = ["+15550100001"]
"#;

#[test]
fn the_example_file_is_valid() {
    let c = config::load_with_env(&example(), Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.freeswitch[0].name, "fs1");
    assert_eq!(c.tenants.len(), 2);
    assert_eq!(c.tenants[0].masked_numbers.len(), 3);
    assert_eq!(c.control.answer_timeout_ms, 2000);
}

#[test]
fn a_missing_file_is_one_problem() {
    let e =
        config::load_with_env(&PathBuf::from("/nonexistent/fsgate.toml"), Vec::new()).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(e.problems[0].message.contains("cannot read"), "{e}");
}

#[test]
fn every_problem_of_a_file_is_reported_with_its_path() {
    let text = r#"
colour = "blue"

[http]
listen = "localhost"
max_body_bytes = 0
dialplan_token = ""
dialplan_allow = ["nope"]
listne = "x"

[store]
url = "postgres://db"

[[freeswitch]]
name = "fs1"
address = "127.0.0.1:8021"
password = ""

[[freeswitch]]
name = "fs1"
address = "127.0.0.1:80a"

[control]
answer_timeout_ms = 0
idempotency_hours = "a day"

[webhooks]
concurrency = 0

[[tenants]]
id = "acme"
api_keys_sha256 = ["xyz", "a2fb8545fcd457204e9fee11be92013aa3240b1b146fe262ba608fdfc159041c"]
masked_numbers = ["+15550100001", "5550100002", "+15550100001"]
control_numbers = ["+15550100009"]
default_ttl_minutes = 300
max_ttl_minutes = 240
webhook_url = "mailto:ops@example.com"
webhook_secret = "secret"
dial_string = "sofia/gateway/${trunk}/fixed"
trunk = "my trunk"

[[tenants]]
id = "bravo"
masked_numbers = ["+15550100009"]
default_ttl_minutes = 0
max_ttl_minutes = 0
webhook_url = "https://hooks.example.com/x"
ttl = 5

[[tenants]]
id = "no spaces please"
api_keys_sha256 = ["a2fb8545fcd457204e9fee11be92013aa3240b1b146fe262ba608fdfc159041c"]

[[tenants]]
id = "bravo"
api_keys_sha256 = ["ad8e0319ce0a9c330d2ebd1506b6162f783724d283a193fc7f98dc884709a00c"]
"#;
    let e = problems(text, &[]);
    let got: BTreeSet<&str> = e.problems.iter().map(|p| p.path.as_str()).collect();
    let expected = [
        "colour",                            // unknown section
        "http.listne",                       // unknown key
        "http.listen",                       // no port
        "http.max_body_bytes",               // zero
        "http.dialplan_token",               // empty
        "http.dialplan_allow[0]",            // not an IP/CIDR
        "store.url",                         // unknown scheme
        "freeswitch[0].password",            // empty
        "freeswitch[1].name",                // duplicate
        "freeswitch[1].address",             // bad port
        "control.answer_timeout_ms",         // zero
        "control.idempotency_hours",         // wrong type
        "webhooks.concurrency",              // zero
        "tenants[acme].api_keys_sha256[0]",  // not hex
        "tenants[acme].masked_numbers[1]",   // not E.164
        "tenants[acme].masked_numbers[2]",   // duplicate
        "tenants[acme].default_ttl_minutes", // above max
        "tenants[acme].webhook_url",         // not http(s)
        "tenants[acme].webhook_secret",      // not whsec_
        "tenants[acme].dial_string",         // no ${number}
        "tenants[acme].trunk",               // space
        "tenants[1].ttl",                    // unknown key in a tenant
        "tenants[1].api_keys_sha256",        // no key
        "tenants[1].masked_numbers[0]",      // also a control number of acme
        "tenants[1].default_ttl_minutes",    // zero
        "tenants[1].max_ttl_minutes",        // zero
        "tenants[1].webhook_secret",         // url without secret
        "tenants[2].id",                     // bad id
        "tenants[2].api_keys_sha256[0]",     // same key as acme's
        "tenants[3].id",                     // duplicate id
    ];
    for path in expected {
        assert!(got.contains(path), "no problem at {path}; got:\n{e}");
    }
    assert_eq!(e.problems.len(), expected.len(), "{e}");
    // Messages are human and name the culprit.
    let msg = |path: &str| {
        e.problems
            .iter()
            .find(|p| p.path == path)
            .map(|p| p.message.clone())
            .unwrap()
    };
    assert!(msg("http.listne").contains("did you mean `listen`"));
    assert!(msg("http.listne").contains("test.toml"));
    assert!(msg("tenants[1].masked_numbers[0]").contains("tenants[acme].control_numbers[0]"));
    assert!(msg("tenants[acme].masked_numbers[1]").contains("E.164"));
    assert!(msg("control.idempotency_hours").contains("integer"));
    assert!(
        !e.to_string().contains("secret\""),
        "secret value echoed: {e}"
    );
}

#[test]
fn environment_overrides_sections_and_elements() {
    let c = config::load_str(
        VALID,
        "test.toml",
        env(&[
            ("FSGATE__HTTP__LISTEN", "0.0.0.0:9090"),
            ("FSGATE__HTTP__DIALPLAN_TOKEN", "tok-123"),
            ("FSGATE__HTTP__DIALPLAN_ALLOW", "10.0.0.5,10.1.0.0/16"),
            ("fsgate__store__url", "redis://redis:6379/0"),
            ("FSGATE__CONTROL__ANSWER_TIMEOUT_MS", "1500"),
            ("FSGATE__FREESWITCH__FS1__PASSWORD", "s3cret"),
            ("FSGATE__FREESWITCH__fs1__ADDRESS", "10.0.0.7:8021"),
            (
                "FSGATE__TENANTS__ACME_EU__WEBHOOK_SECRET",
                "whsec_ZnNnYXRlLWV4YW1wbGUtc2VjcmV0LTAxMjM0NTY3ODk=",
            ),
            (
                "FSGATE__TENANTS__acme-eu__WEBHOOK_URL",
                "https://hooks.example.com/in",
            ),
            ("FSGATE_LOG", "debug"), // not an override (single underscore)
            ("HOME", "/root"),       // not ours
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.http.listen, "0.0.0.0:9090");
    assert_eq!(c.http.dialplan_token.as_deref(), Some("tok-123"));
    assert_eq!(c.http.dialplan_allow, vec!["10.0.0.5", "10.1.0.0/16"]);
    assert_eq!(c.store.url, "redis://redis:6379/0");
    assert_eq!(c.control.answer_timeout_ms, 1500);
    assert_eq!(c.freeswitch[0].password, "s3cret");
    assert_eq!(c.freeswitch[0].address, "10.0.0.7:8021");
    assert_eq!(
        c.tenants[0].webhook_secret.as_deref(),
        Some("whsec_ZnNnYXRlLWV4YW1wbGUtc2VjcmV0LTAxMjM0NTY3ODk=")
    );
    assert_eq!(
        c.tenants[0].webhook_url.as_deref(),
        Some("https://hooks.example.com/in")
    );
}

#[test]
fn override_values_are_taken_as_written() {
    let c = config::load_str(
        VALID,
        "test.toml",
        env(&[
            ("FSGATE__HTTP__DIALPLAN_TOKEN", "000123"),
            ("FSGATE__FREESWITCH__FS1__PASSWORD", "true"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.http.dialplan_token.as_deref(), Some("000123"));
    assert_eq!(c.freeswitch[0].password, "true");
}

#[test]
fn overrides_are_validated_and_bad_ones_named() {
    let e = problems(
        VALID,
        &[
            ("FSGATE__HTTP__LISTN", "x"),
            ("FSGATE__CONTROL__ANSWER_TIMEOUT_MS", "soon"),
            ("FSGATE__STORE__URL", ""),
            ("FSGATE__TENANTS__NOBODY__WEBHOOK_SECRET", "whsec_x"),
            ("FSGATE__TENANTS__ACME_EU__TRUNK", "x"),
            ("FSGATE__FREESWITCH__0__PASSWORD", "x"),
            ("FSGATE__TENANTS__ACME_EU__WEBHOOK_SECRET", "plain-SECRET"),
        ],
    );
    let text = e.to_string();
    for needle in [
        "http.listn: unknown key (from the environment variable FSGATE__HTTP__LISTN)",
        "control.answer_timeout_ms: expected an integer",
        "FSGATE__CONTROL__ANSWER_TIMEOUT_MS",
        "store.url: is empty",
        "FSGATE__TENANTS__NOBODY__WEBHOOK_SECRET: there is no tenant with id `NOBODY`",
        "FSGATE__TENANTS__ACME_EU__TRUNK: not a supported override",
        "FSGATE__FREESWITCH__0__PASSWORD: there is no [[freeswitch]] node named `0`",
        "tenants[acme-eu].webhook_secret: must start with `whsec_`",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(!text.contains("plain-SECRET"), "{text}");
}

#[test]
fn config_debug_redacts_secrets() {
    let c = config::load_str(
        VALID,
        "test.toml",
        env(&[
            ("FSGATE__FREESWITCH__FS1__PASSWORD", "pw-SECRET-1"),
            ("FSGATE__HTTP__DIALPLAN_TOKEN", "tok-SECRET-2"),
        ]),
    )
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("SECRET"), "{debug}");
}
