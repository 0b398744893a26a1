//! The platform's subcommands through the built binary: `check-config`
//! (valid and invalid files, environment overrides), `serve` refusing a bad
//! configuration with the same report, `hash-key` (argument and stdin), and
//! the help texts.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn fsgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fsgate"));
    // Keep the caller's FSGATE__* variables out of these runs.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("FSGATE")
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/fsgate.example.toml")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn bad_file() -> tempfile_like::TempFile {
    tempfile_like::TempFile::new(
        "bad",
        r#"
[http]
listen = "127.0.0.1"

[[freeswitch]]
name = "fs1"
address = "127.0.0.1:8021"

[[tenants]]
id = "acme"
api_keys_sha256 = ["nothex"]
masked_numbers = ["+15550100001", "+15550100001"]
max_ttl_minutes = 10
"#,
    )
}

#[test]
fn check_config_accepts_the_example() {
    let out = fsgate()
        .args(["check-config"])
        .arg(example())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(": OK"), "{stdout}");
    assert!(stdout.contains("acme"), "{stdout}");
    assert!(!stdout.contains("whsec_"), "secret printed: {stdout}");
    assert!(!stdout.contains("change-me-dialplan-token"), "{stdout}");
}

#[test]
fn check_config_lists_every_problem_and_exits_1() {
    let file = bad_file();
    let out = fsgate()
        .arg("check-config")
        .arg(&file.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for needle in [
        "4 problems",
        "http.listen: `127.0.0.1` is not a listen address",
        "tenants[acme].api_keys_sha256[0]:",
        "tenants[acme].masked_numbers[1]: +15550100001 is already configured",
        "tenants[acme].default_ttl_minutes: 60 is above max_ttl_minutes (10)",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in\n{stderr}");
    }
}

#[test]
fn check_config_applies_environment_overrides_unless_told_not_to() {
    let out = fsgate()
        .arg("check-config")
        .arg(example())
        .env("FSGATE__HTTP__LISTEN", "nonsense")
        .env("FSGATE__TENANTS__ACME__WEBHOOK_SECRET", "not-whsec")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("http.listen"), "{stderr}");
    assert!(stderr.contains("tenants[acme].webhook_secret"), "{stderr}");
    assert!(!stderr.contains("not-whsec"), "{stderr}");

    let out = fsgate()
        .args(["check-config", "--ignore-env"])
        .arg(example())
        .env("FSGATE__HTTP__LISTEN", "nonsense")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn serve_refuses_a_bad_configuration_with_the_same_report() {
    let file = bad_file();
    let check = fsgate()
        .arg("check-config")
        .arg(&file.path)
        .output()
        .unwrap();
    let serve: Output = fsgate()
        .args(["serve", "--config"])
        .arg(&file.path)
        .output()
        .unwrap();
    assert_eq!(serve.status.code(), Some(1));
    let problems = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("  "))
            .map(str::to_string)
            .collect()
    };
    let (c, s) = (text(&check.stderr), text(&serve.stderr));
    assert!(!problems(&c).is_empty());
    assert_eq!(
        problems(&c),
        problems(&s),
        "check-config:\n{c}\nserve:\n{s}"
    );
    assert!(s.contains("not starting"), "{s}");

    let missing = fsgate()
        .args(["serve", "--config", "/nonexistent/fsgate.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("cannot read the configuration file"));
}

#[test]
fn hash_key_from_an_argument_and_from_stdin() {
    let out = fsgate()
        .args(["hash-key", "demo-acme-key"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected = "a2fb8545fcd457204e9fee11be92013aa3240b1b146fe262ba608fdfc159041c\n";
    assert_eq!(text(&out.stdout), expected);

    let mut child = fsgate()
        .args(["hash-key", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"demo-acme-key\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), expected);

    // The example file's hash is that key's: the two agree.
    let example = std::fs::read_to_string(example()).unwrap();
    assert!(example.contains(expected.trim()));

    let out = fsgate()
        .args(["hash-key", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn help_describes_every_subcommand() {
    let out = fsgate().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    for sub in [
        "serve",
        "check-config",
        "hash-key",
        "events",
        "sim",
        "--log-format",
    ] {
        assert!(help.contains(sub), "--help lacks {sub}:\n{help}");
    }
    for (sub, needles) in [
        ("serve", &["--config", "FSGATE_CONFIG", "check-config"][..]),
        (
            "check-config",
            &["<FILE>", "--ignore-env", "Exit status"][..],
        ),
        ("hash-key", &["<KEY>", "stdin", "api_keys_sha256"][..]),
    ] {
        let out = fsgate().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
        let help = text(&out.stdout);
        for n in needles {
            assert!(help.contains(n), "{sub} --help lacks {n}:\n{help}");
        }
    }
    let out = fsgate()
        .args(["--log-format", "xml", "hash-key", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A file in the target directory's temp area, removed on drop.
mod tempfile_like {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct TempFile {
        pub path: PathBuf,
    }

    static N: AtomicUsize = AtomicUsize::new(0);

    impl TempFile {
        pub fn new(name: &str, contents: &str) -> TempFile {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            let path = dir.join(format!(
                "cli-platform-{}-{}-{name}.toml",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::write(&path, contents).unwrap();
            TempFile { path }
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
