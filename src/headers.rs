//! HTTP headers as the proxy-wasm host gives them: lower-case names, raw
//! values, in the order they came, a name possibly repeated.
//!
//! A leaf module: it imports nothing from the crate, so every stage (the
//! pipeline, the body checks, the rate-limit headers, the host adapter) can
//! share it without importing one another.

use std::borrow::Cow;

/// A request's or a response's headers. Lookups compare names without regard
/// to ASCII case and allocate nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    /// Every value of header `name`, in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of header `name`.
    pub fn first(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of header `name`, when it is UTF-8.
    pub fn first_str(&self, name: &str) -> Option<&str> {
        self.first(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of header `name` as text, invalid UTF-8 replaced
    /// by U+FFFD (borrowed when it is valid).
    pub fn text(&self, name: &str) -> Option<Cow<'_, str>> {
        self.first(name).map(String::from_utf8_lossy)
    }

    /// Whether the headers hold `name` at all.
    pub fn contains(&self, name: &str) -> bool {
        self.first(name).is_some()
    }

    /// A response's status (`:status`), when it is a number.
    pub fn status(&self) -> Option<u16> {
        self.first_str(":status")?.parse().ok()
    }

    /// How many (name, value) pairs there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every (name, value) pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }
}

impl From<Vec<(String, Vec<u8>)>> for Headers {
    fn from(pairs: Vec<(String, Vec<u8>)>) -> Self {
        Headers(pairs)
    }
}

impl FromIterator<(String, Vec<u8>)> for Headers {
    fn from_iter<I: IntoIterator<Item = (String, Vec<u8>)>>(pairs: I) -> Self {
        Headers(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn lookups_ignore_case_and_keep_order() {
        let h = headers(&[
            (":status", b"429"),
            ("Retry-After", b"3"),
            ("x-note", b"a"),
            ("x-note", b"\xff b"),
        ]);
        assert_eq!(
            h.values("x-note").collect::<Vec<_>>(),
            [&b"a"[..], b"\xff b"]
        );
        assert_eq!(h.first("retry-after"), Some(&b"3"[..]));
        assert_eq!(h.first_str("RETRY-AFTER"), Some("3"));
        assert_eq!(h.first("missing"), None);
        assert!(h.contains("x-note") && !h.contains("x-not"));
        assert_eq!(h.status(), Some(429));
        assert_eq!(
            h.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            [":status", "Retry-After", "x-note", "x-note"]
        );
    }

    #[test]
    fn text_is_lossy_and_first_str_strict() {
        let h = headers(&[("x-bin", b"a\xffb"), (":status", b"ok")]);
        assert_eq!(h.first_str("x-bin"), None);
        assert_eq!(h.text("x-bin").as_deref(), Some("a\u{fffd}b"));
        assert_eq!(h.status(), None);
        assert_eq!(Headers::default().status(), None);
        assert_eq!(Headers::default().text("x-bin"), None);
    }
}
