//! Header edits as host calls: only the ones that change something. The
//! pipeline says what the headers must be (remove every internal header a
//! client might have spoofed, set the routing headers); the exchange holds the
//! headers it read, so it knows which removals have nothing to remove and
//! which sets are already true, and sends the host only the rest. Each host
//! call costs a round trip into the VM.

use crate::headers::Headers;
use crate::pipeline::HeaderEdits;

/// One header change the host must make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// Set the header to this one value (replacing every value it had).
    Set(&'a str, &'a str),
    Remove(&'a str),
}

impl<'a> Change<'a> {
    pub fn name(&self) -> &'a str {
        match self {
            Change::Set(name, _) | Change::Remove(name) => name,
        }
    }
}

/// The changes that `edits`, applied in order (each: removals, then sets),
/// make to `current`: the last word on each name, without removals of absent
/// headers and sets of the value a header already has.
pub fn changes<'a>(current: &Headers, edits: &[&'a HeaderEdits]) -> Vec<Change<'a>> {
    let mut last: Vec<Change<'a>> = Vec::new();
    let mut decide = |change: Change<'a>| {
        last.retain(|c| !c.name().eq_ignore_ascii_case(change.name()));
        last.push(change);
    };
    for edit in edits {
        for name in &edit.remove {
            decide(Change::Remove(name));
        }
        for (name, value) in &edit.set {
            decide(Change::Set(name, value));
        }
    }
    last.retain(|change| match change {
        Change::Remove(name) => current.contains(name),
        Change::Set(name, value) => {
            let mut values = current.values(name);
            !(values.next() == Some(value.as_bytes()) && values.next().is_none())
        }
    });
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::header_list;

    fn edits(remove: &[&str], set: &[(&str, &str)]) -> HeaderEdits {
        HeaderEdits {
            remove: remove.iter().map(|s| s.to_string()).collect(),
            set: set
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn only_what_changes_reaches_the_host() {
        let current = header_list(&[
            (":path", "/v1/chat/completions"),
            ("authorization", "Bearer sk-demo"),
            ("x-gateway-model", "spoofed"),
            ("x-keep", "same"),
        ]);
        let header_stage = edits(
            &["x-gateway-backend", "x-gateway-model", "authorization"],
            &[("x-gateway-token-cost", "1"), ("x-gateway-key-id", "demo")],
        );
        let body_stage = edits(
            &[],
            &[
                ("x-gateway-token-cost", "40"),
                ("x-gateway-backend", "a"),
                ("x-keep", "same"),
            ],
        );
        let got = changes(&current, &[&header_stage, &body_stage]);
        assert_eq!(
            got,
            [
                // Absent x-gateway-backend is not removed, but set later;
                // the spoofed model is removed; the cost is set once, last.
                Change::Remove("x-gateway-model"),
                Change::Remove("authorization"),
                Change::Set("x-gateway-key-id", "demo"),
                Change::Set("x-gateway-token-cost", "40"),
                Change::Set("x-gateway-backend", "a"),
            ]
        );
    }

    #[test]
    fn a_set_after_a_removal_replaces_and_repeated_values_are_collapsed() {
        let current = header_list(&[
            ("authorization", "Bearer sk-demo"),
            ("x-a", "1"),
            ("x-a", "1"),
        ]);
        let first = edits(&["authorization"], &[]);
        let second = edits(&[], &[("authorization", "Bearer backend"), ("x-a", "1")]);
        let got = changes(&current, &[&first, &second]);
        // x-a has the value twice: setting it makes it one value, a change.
        assert_eq!(
            got,
            [
                Change::Set("authorization", "Bearer backend"),
                Change::Set("x-a", "1")
            ]
        );
    }
}
