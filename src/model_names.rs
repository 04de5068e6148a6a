//! The model's name in responses: clients see the catalog id they asked for
//! (the canonical id when they used an alias), never the name the backend
//! knows the model by (`upstream_model`).
//!
//! Responses are edited in place: every `"model"` member whose value is a
//! backend's name is given the catalog id, at any depth (the Responses
//! API's stream events carry it under `response`), and every other byte is
//! kept. A body without such a member costs one scan and is passed on as it
//! came.

use crate::bytes::member_value;

/// (backend's name, catalog id) pairs, each with the backend's name as it
/// appears in JSON (quoted) and the catalog id's replacement (quoted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renames {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The member name looked for, quotes included.
const KEY: &[u8] = b"\"model\"";

impl Renames {
    /// The renames for `(backend's name, catalog id)` pairs; pairs whose
    /// names are the same are left out.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let pairs = pairs
            .into_iter()
            .filter(|(upstream, id)| upstream != id)
            .filter_map(|(upstream, id)| {
                Some((
                    serde_json::to_vec(upstream).ok()?,
                    serde_json::to_vec(id).ok()?,
                ))
            })
            .collect();
        Renames { pairs }
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `json` with each `"model": "<backend's name>"` member naming the
    /// catalog id instead; `None` when there is none. `json` may be a whole
    /// body or one stream event (`data: {...}`).
    pub fn apply(&self, json: &[u8]) -> Option<Vec<u8>> {
        if self.pairs.is_empty() {
            return None;
        }
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut from = 0;
        while let Some(start) = member_value(json, KEY, from) {
            from = start;
            let Some((upstream, id)) = self.pair_at(json, start) else {
                continue;
            };
            let end = start.saturating_add(upstream.len());
            let buffer = out.get_or_insert_with(|| Vec::with_capacity(json.len()));
            buffer.extend_from_slice(json.get(copied..start)?);
            buffer.extend_from_slice(id);
            copied = end;
            from = end;
        }
        let mut buffer = out?;
        buffer.extend_from_slice(json.get(copied..)?);
        Some(buffer)
    }

    /// The pair whose quoted backend name starts at `start`.
    fn pair_at(&self, json: &[u8], start: usize) -> Option<(&[u8], &[u8])> {
        let rest = json.get(start..)?;
        self.pairs
            .iter()
            .find(|(upstream, _)| rest.starts_with(upstream))
            .map(|(upstream, id)| (upstream.as_slice(), id.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renames() -> Renames {
        Renames::new([("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct")])
    }

    fn apply(json: &str) -> Option<String> {
        renames()
            .apply(json.as_bytes())
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn renames_the_model_member_and_keeps_every_other_byte() {
        assert_eq!(
            apply(r#"{"id":"x","model":"meta-llama/Llama-3.1-8B-Instruct","n":1}"#).as_deref(),
            Some(r#"{"id":"x","model":"llama-3.1-8b-instruct","n":1}"#)
        );
        // Whitespace around the colon, as Python servers write it.
        assert_eq!(
            apply("{\"model\" :\n \"meta-llama/Llama-3.1-8B-Instruct\" }").as_deref(),
            Some("{\"model\" :\n \"llama-3.1-8b-instruct\" }")
        );
    }

    #[test]
    fn renames_at_any_depth_and_every_occurrence() {
        let event = "data: {\"type\":\"response.created\",\"response\":{\"model\":\"meta-llama/Llama-3.1-8B-Instruct\"}}\n\n";
        assert_eq!(
            apply(event).as_deref(),
            Some("data: {\"type\":\"response.created\",\"response\":{\"model\":\"llama-3.1-8b-instruct\"}}\n\n")
        );
        let two = r#"[{"model":"meta-llama/Llama-3.1-8B-Instruct"},{"model":"meta-llama/Llama-3.1-8B-Instruct"}]"#;
        assert_eq!(
            apply(two).as_deref(),
            Some(r#"[{"model":"llama-3.1-8b-instruct"},{"model":"llama-3.1-8b-instruct"}]"#)
        );
    }

    #[test]
    fn leaves_text_that_only_looks_like_the_member() {
        // The name as message content, a member with another name, a
        // quoted `"model"` inside a string, a longer name, a value `"model"`.
        for json in [
            r#"{"content":"meta-llama/Llama-3.1-8B-Instruct"}"#,
            r#"{"upstream_model":"x","models":"meta-llama/Llama-3.1-8B-Instruct"}"#,
            r#"{"content":"say \"model\": \"meta-llama/Llama-3.1-8B-Instruct\""}"#,
            r#"{"model":"meta-llama/Llama-3.1-8B-Instruct-v2"}"#,
            r#"{"model":"other"}"#,
            r#"{"a":"model","b":"meta-llama/Llama-3.1-8B-Instruct"}"#,
            r#"{"model":null}"#,
            "",
            "\"model\"",
            "\"model\":",
        ] {
            assert_eq!(apply(json), None, "{json}");
        }
        // After an escaped backslash the quote is real: the member is renamed.
        assert_eq!(
            apply(r#"{"c":"\\","model":"meta-llama/Llama-3.1-8B-Instruct"}"#).as_deref(),
            Some(r#"{"c":"\\","model":"llama-3.1-8b-instruct"}"#)
        );
    }

    #[test]
    fn same_names_cost_nothing() {
        let same = Renames::new([("m", "m")]);
        assert!(same.is_empty());
        assert_eq!(same.apply(br#"{"model":"m"}"#), None);
        assert_eq!(Renames::default().apply(br#"{"model":"m"}"#), None);
    }

    #[test]
    fn several_pairs_each_renamed() {
        let r = Renames::new([("A/x", "x"), ("B/y", "y")]);
        assert_eq!(
            r.apply(br#"{"model":"B/y","data":[{"model":"A/x"}]}"#),
            Some(br#"{"model":"y","data":[{"model":"x"}]}"#.to_vec())
        );
    }

    #[test]
    fn names_with_json_escapes_are_matched_in_their_json_form() {
        let r = Renames::new([("a\"b", "c")]);
        assert_eq!(
            r.apply(br#"{"model":"a\"b"}"#),
            Some(br#"{"model":"c"}"#.to_vec())
        );
    }
}
