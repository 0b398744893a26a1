//! What the demo shows a person: section headings, API requests and
//! responses (method, path, status, pretty JSON), webhooks as they arrive,
//! and notes about the simulated phones.
//!
//! Owns the text layout and where it goes (stdout, and a copy kept for the
//! caller, e.g. a test). It must not decide anything about the walkthrough:
//! it only renders what it is given, and a closed stdout never fails the demo.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A shared, append-only transcript. Cheap to clone; safe to write from the
/// webhook receiver's tasks and the walkthrough at once.
#[derive(Clone, Default)]
pub struct Transcript {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    echo: bool,
    text: String,
}

impl Transcript {
    /// A transcript that also prints to stdout when `echo` is true.
    pub fn new(echo: bool) -> Transcript {
        Transcript {
            inner: Arc::new(Mutex::new(Inner {
                echo,
                text: String::new(),
            })),
        }
    }

    /// Appends a block of text (one or more lines, without the final newline).
    pub fn block(&self, text: &str) {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        g.text.push_str(text);
        g.text.push('\n');
        if g.echo {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        match self.inner.lock() {
            Ok(g) => g.text.clone(),
            Err(poisoned) => poisoned.into_inner().text.clone(),
        }
    }

    /// A section heading.
    pub fn heading(&self, title: &str) {
        let rule = "─".repeat(72usize.saturating_sub(title.chars().count() + 4));
        self.block(&format!("\n── {title} {rule}"));
    }

    /// A note about what happens outside the API (the simulated phones).
    pub fn note(&self, text: &str) {
        self.block(&format!("   · {text}"));
    }

    /// An API request.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) {
        let mut text = format!("\n→ {method} {path}");
        if let Some(body) = body {
            text.push('\n');
            text.push_str(&indent(&pretty(body)));
        }
        self.block(&text);
    }

    /// An API response.
    pub fn response(&self, status: u16, reason: &str, body: &Value) {
        let mut text = format!("← {status} {reason}");
        if !body.is_null() {
            text.push('\n');
            text.push_str(&indent(&pretty(body)));
        }
        self.block(&text);
    }

    /// A webhook as it arrived, with the outcome of its signature check.
    pub fn webhook(&self, kind: &str, id: &str, signature: Result<(), String>, data: &Value) {
        let check = match signature {
            Ok(()) => "signature ok".to_owned(),
            Err(e) => format!("SIGNATURE INVALID ({e})"),
        };
        self.block(&format!(
            "\n⚡ webhook {kind}  {id}  {check}\n{}",
            indent(&pretty(data))
        ));
    }
}

/// Pretty JSON (falls back to the compact form, which cannot fail for a Value).
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
