//! How simulated far ends react when the switch calls them (originate,
//! bridge): answer after a delay, reject with a cause, or never answer,
//! chosen by the first behaviour whose regex matches the endpoint string
//! (e.g. `sofia/external/2000@127.0.0.1:5090`) or its destination (`2000`).
//!
//! Pure rules; the timing itself is done by `core`. Must not touch channels.

use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::esl::HangupCause;

/// A behaviour as given on the control API / CLI.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BehaviourSpec {
    /// Regex on the endpoint string or destination.
    pub pattern: String,
    /// Answer after this many ms (ring first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_after_ms: Option<u64>,
    /// Reject with this cause name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<String>,
    /// Ring forever (until the originate times out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_answer: bool,
}

/// What a far end does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Ring, then answer after the delay.
    Answer(Duration),
    /// Reject with the cause (after ringing for the delay).
    Reject(HangupCause),
    /// Never answer.
    NoAnswer,
}

/// Why a behaviour is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BehaviourError {
    /// Not a regex.
    #[error("invalid pattern {0:?}: {1}")]
    Pattern(String, String),
    /// Unknown cause name.
    #[error("unknown hangup cause {0:?}")]
    Cause(String),
    /// Not exactly one of answer_after_ms / reject / no_answer.
    #[error("give exactly one of answer_after_ms, reject, no_answer")]
    Ambiguous,
}

#[derive(Debug, Clone)]
struct Compiled {
    spec: BehaviourSpec,
    re: Regex,
    reaction: Reaction,
}

/// The ordered behaviour table.
#[derive(Debug, Clone)]
pub struct Behaviours {
    rules: Vec<Compiled>,
    default: Reaction,
}

impl Behaviours {
    /// A table whose unmatched far ends answer after `default_answer`.
    pub fn new(default_answer: Duration) -> Behaviours {
        Behaviours {
            rules: Vec::new(),
            default: Reaction::Answer(default_answer),
        }
    }

    /// Validates and appends a behaviour (later rules are checked first).
    pub fn add(&mut self, spec: BehaviourSpec) -> Result<(), BehaviourError> {
        let re = Regex::new(&spec.pattern)
            .map_err(|e| BehaviourError::Pattern(spec.pattern.clone(), e.to_string()))?;
        let n = spec.answer_after_ms.is_some() as u8
            + spec.reject.is_some() as u8
            + spec.no_answer as u8;
        if n != 1 {
            return Err(BehaviourError::Ambiguous);
        }
        let reaction = if let Some(ms) = spec.answer_after_ms {
            Reaction::Answer(Duration::from_millis(ms))
        } else if let Some(c) = &spec.reject {
            Reaction::Reject(
                HangupCause::from_name_ignore_case(c)
                    .ok_or_else(|| BehaviourError::Cause(c.clone()))?,
            )
        } else {
            Reaction::NoAnswer
        };
        self.rules.insert(0, Compiled { spec, re, reaction });
        Ok(())
    }

    /// Parses the CLI form `PATTERN=answer:200|reject:USER_BUSY|no-answer`.
    pub fn parse_cli(s: &str) -> Result<BehaviourSpec, BehaviourError> {
        let (pattern, what) = s.rsplit_once('=').ok_or(BehaviourError::Ambiguous)?;
        let mut spec = BehaviourSpec {
            pattern: pattern.to_string(),
            answer_after_ms: None,
            reject: None,
            no_answer: false,
        };
        if let Some(ms) = what.strip_prefix("answer:") {
            spec.answer_after_ms = Some(ms.parse().map_err(|_| BehaviourError::Ambiguous)?);
        } else if let Some(c) = what.strip_prefix("reject:") {
            spec.reject = Some(c.to_string());
        } else if what == "no-answer" || what == "no_answer" {
            spec.no_answer = true;
        } else {
            return Err(BehaviourError::Ambiguous);
        }
        Ok(spec)
    }

    /// Removes every behaviour.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The behaviours, most recent first.
    pub fn list(&self) -> Vec<BehaviourSpec> {
        self.rules.iter().map(|c| c.spec.clone()).collect()
    }

    /// What the far end `endpoint` (with destination `dest`) does.
    pub fn reaction(&self, endpoint: &str, dest: &str) -> Reaction {
        self.rules
            .iter()
            .find(|c| c.re.is_match(endpoint) || c.re.is_match(dest))
            .map(|c| c.reaction)
            .unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_and_latest_first() {
        let mut b = Behaviours::new(Duration::ZERO);
        b.add(BehaviourSpec {
            pattern: "^2000$".into(),
            answer_after_ms: Some(200),
            reject: None,
            no_answer: false,
        })
        .unwrap();
        assert_eq!(
            b.reaction("sofia/external/2000@127.0.0.1", "2000"),
            Reaction::Answer(Duration::from_millis(200))
        );
        b.add(Behaviours::parse_cli("2000=reject:user_busy").unwrap())
            .unwrap();
        assert_eq!(
            b.reaction("sofia/external/2000@127.0.0.1", "2000"),
            Reaction::Reject(HangupCause::USER_BUSY)
        );
        assert_eq!(b.reaction("x", "3000"), Reaction::Answer(Duration::ZERO));
        assert_eq!(
            b.add(Behaviours::parse_cli("3000=reject:NOPE").unwrap()),
            Err(BehaviourError::Cause("NOPE".into()))
        );
        assert!(b
            .add(BehaviourSpec {
                pattern: "(".into(),
                answer_after_ms: Some(1),
                reject: None,
                no_answer: false
            })
            .is_err());
        b.add(Behaviours::parse_cli("^3=no-answer").unwrap())
            .unwrap();
        assert_eq!(b.reaction("sofia/x/3000", "3000"), Reaction::NoAnswer);
        assert_eq!(b.list().len(), 3);
        b.clear();
        assert!(b.list().is_empty());
    }
}
