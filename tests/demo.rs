//! `fsgate demo` end to end: in-process through `fsgate::demo::run`, and as
//! the built binary (`cargo run -- demo` is what the README leads with).
//! Both must succeed quickly and show every webhook type with a verified
//! signature; a broken set-up must fail with a clear message and exit 1.

use std::process::Command;
use std::time::{Duration, Instant};

use fsgate::demo::{self, DemoOptions};

/// The webhook types the walkthrough must show.
const KINDS: [&str; 7] = [
    "session.active",
    "session.open",
    "session.completed",
    "call.initiated",
    "call.answered",
    "call.hangup",
    "command.result",
];

fn assert_shows_everything(text: &str) {
    for kind in KINDS {
        assert!(
            text.contains(&format!("⚡ webhook {kind} ")),
            "no {kind} webhook shown:\n{text}"
        );
    }
    for line in [
        "→ POST /v1/sessions",
        "→ POST /api/v1/sessions",
        "/commands/answer",
        "/commands/hangup",
        "/commands/disconnect",
        "← 202 Accepted",
        "with caller ID +1555010000",
        "\"reason\": \"closed\"",
        "\"cause\": \"USER_BUSY\"",
    ] {
        assert!(text.contains(line), "{line:?} not shown:\n{text}");
    }
    assert!(!text.contains("SIGNATURE INVALID"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_walks_through_everything_in_process() {
    let started = Instant::now();
    let report = match demo::run(DemoOptions::default()).await {
        Ok(r) => r,
        Err(f) => panic!("demo failed: {}\n{}", f.error, f.transcript),
    };
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(report.steps, 4);
    assert_shows_everything(&report.transcript);
    // Every webhook received was shown, each with a verified signature.
    let shown: Vec<&str> = report
        .transcript
        .lines()
        .filter(|l| l.starts_with("⚡ webhook "))
        .collect();
    assert!(
        shown.len() >= report.webhooks && report.webhooks >= 14,
        "{shown:?}"
    );
    assert!(
        shown.iter().all(|l| l.ends_with("signature ok")),
        "{shown:?}"
    );
}

#[test]
fn the_binary_exits_0_and_prints_the_walkthrough() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_fsgate"))
        .arg("demo")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_shows_everything(&stdout);
    assert!(stdout.contains("steps succeeded"), "{stdout}");
}

#[test]
fn a_broken_setup_fails_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_fsgate"))
        .args(["demo", "--dialplan", "/nonexistent/fsgate-dialplan"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fsgate demo: FAILED:"), "{stderr}");
    assert!(stderr.contains("simulator"), "{stderr}");
}
