//! What a probe changed, as one log line.

use super::FailureReason;
use std::fmt;

/// A backend entered or left service, or its listing changed: one log line
/// (its `Display`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The backend's index.
    pub backend: usize,
    /// The backend's name.
    pub name: String,
    /// A change of liveness, if any.
    pub liveness: Option<Liveness>,
    /// Upstream model names the backend no longer lists (their models are
    /// no longer served there), in name order.
    pub unlisted: Vec<String>,
    /// Upstream model names it lists again, in name order.
    pub relisted: Vec<String>,
}

/// A backend's change of liveness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Out of service after this many failed probes in a row.
    Down { failures: u32, last: FailureReason },
    /// Back in service after this many successful probes in a row.
    Up { successes: u32 },
}

impl Change {
    /// Whether the change takes something out of service (log it as a
    /// warning rather than as information).
    pub fn is_loss(&self) -> bool {
        matches!(self.liveness, Some(Liveness::Down { .. })) || !self.unlisted.is_empty()
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backend `{}`: ", self.name)?;
        let mut parts: Vec<String> = Vec::new();
        match &self.liveness {
            Some(Liveness::Down { failures, last }) => parts.push(format!(
                "out of service after {failures} failed probe{} in a row (last: {last})",
                plural(*failures)
            )),
            Some(Liveness::Up { successes }) => parts.push(format!(
                "back in service after {successes} successful probe{} in a row",
                plural(*successes)
            )),
            None => {}
        }
        if !self.unlisted.is_empty() {
            parts.push(format!(
                "does not list {}: models sent there under {} are not served",
                quoted(&self.unlisted),
                if self.unlisted.len() == 1 {
                    "that name"
                } else {
                    "those names"
                }
            ));
        }
        if !self.relisted.is_empty() {
            parts.push(format!("lists {} again", quoted(&self.relisted)));
        }
        f.write_str(&parts.join("; "))
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}
