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
    /// An API exchange is in flight: webhooks wait in `held` until its
    /// response is shown, so a request and its response stay together.
    in_exchange: bool,
    held: Vec<String>,
}

impl Transcript {
    /// A transcript that also prints to stdout when `echo` is true.
    pub fn new(echo: bool) -> Transcript {
        Transcript {
            inner: Arc::new(Mutex::new(Inner {
                echo,
                ..Inner::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Appends a block of text (one or more lines, without the final newline).
    pub fn block(&self, text: &str) {
        self.lock().emit(text);
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        self.lock().text.clone()
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

    /// An API request; webhooks arriving until [`Transcript::response`] or
    /// [`Transcript::end_exchange`] are shown after it.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) {
        let mut text = format!("\n→ {method} {path}");
        if let Some(body) = body {
            text.push('\n');
            text.push_str(&indent(&pretty(body)));
        }
        let mut g = self.lock();
        g.emit(&text);
        g.in_exchange = true;
    }

    /// An API response; then the webhooks that arrived meanwhile.
    pub fn response(&self, status: u16, reason: &str, body: &Value) {
        let mut text = format!("← {status} {reason}");
        if !body.is_null() {
            text.push('\n');
            text.push_str(&indent(&pretty(body)));
        }
        let mut g = self.lock();
        g.emit(&text);
        g.release();
    }

    /// Ends an exchange that got no response (shows the held webhooks).
    pub fn end_exchange(&self) {
        self.lock().release();
    }

    /// A webhook as it arrived, with the outcome of its signature check.
    pub fn webhook(&self, kind: &str, id: &str, signature: Result<(), String>, data: &Value) {
        let check = match signature {
            Ok(()) => "signature ok".to_owned(),
            Err(e) => format!("SIGNATURE INVALID ({e})"),
        };
        let text = format!(
            "\n⚡ webhook {kind}  {id}  {check}\n{}",
            indent(&pretty(data))
        );
        let mut g = self.lock();
        if g.in_exchange {
            g.held.push(text);
        } else {
            g.emit(&text);
        }
    }
}

impl Inner {
    fn emit(&mut self, text: &str) {
        self.text.push_str(text);
        self.text.push('\n');
        if self.echo {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }

    fn release(&mut self) {
        self.in_exchange = false;
        for text in std::mem::take(&mut self.held) {
            self.emit(&text);
        }
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
