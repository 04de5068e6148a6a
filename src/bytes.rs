//! Byte-string search, shared by the parsers that look for a delimiter in a
//! body (multipart boundaries), and the scan for a JSON member by name at any
//! depth without parsing (the `"model"` member of responses, the content
//! members of stream events).

/// The first `needle` in `haystack` at or after `from` (an empty needle is
/// found at `from`). Scans for the needle's first byte, then compares.
pub fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let Some(&first) = needle.first() else {
        return (from <= haystack.len()).then_some(from);
    };
    let mut at = from;
    loop {
        let rest = haystack.get(at..)?;
        at = at.saturating_add(rest.iter().position(|b| *b == first)?);
        if haystack.get(at..)?.starts_with(needle) {
            return Some(at);
        }
        at = at.saturating_add(1);
    }
}

/// Where the value of the next member named `quoted_name` (quotes
/// included) starts, at or after `from`: past the name, whitespace, one colon
/// and whitespace. A quote inside a string is escaped, so an unescaped name
/// followed by a colon is a member name; the same bytes as a value, or inside
/// a string, are passed over.
pub fn member_value(json: &[u8], quoted_name: &[u8], from: usize) -> Option<usize> {
    let mut from = from;
    loop {
        let at = find(json, quoted_name, from)?;
        from = at.saturating_add(quoted_name.len());
        if !escaped(json, at) {
            if let Some(value) = skip_colon(json, from) {
                return Some(value);
            }
        }
    }
}

/// Whether the quote at `at` is escaped (inside a string, by an odd run of
/// backslashes).
fn escaped(json: &[u8], at: usize) -> bool {
    let before = json.get(..at).unwrap_or_default();
    let run = before.iter().rev().take_while(|b| **b == b'\\').count();
    run % 2 == 1
}

/// Where the value starts after a member name ending at `from`: past
/// whitespace, one colon and whitespace. `None` when no colon follows (the
/// name was a value, not a member name).
fn skip_colon(json: &[u8], from: usize) -> Option<usize> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let rest = json.get(from..)?;
    let colon = rest.iter().position(|b| !is_space(b))?;
    if rest.get(colon) != Some(&b':') {
        return None;
    }
    let after = rest.get(colon.saturating_add(1)..)?;
    let value = after.iter().position(|b| !is_space(b))?;
    Some(
        from.saturating_add(colon)
            .saturating_add(1)
            .saturating_add(value),
    )
}

#[cfg(test)]
mod tests {
    use super::{find, member_value};

    #[test]
    fn member_values_are_found_past_values_and_strings() {
        let json = br#"{"a":"model","x":"\"model\": 1","model" : "m1","n":{"model":2}}"#;
        let first = member_value(json, b"\"model\"", 0).unwrap();
        assert!(json[first..].starts_with(b"\"m1\""));
        let second = member_value(json, b"\"model\"", first).unwrap();
        assert!(json[second..].starts_with(b"2}"));
        assert_eq!(member_value(json, b"\"model\"", second), None);
        assert_eq!(member_value(br#"{"model""#, b"\"model\"", 0), None);
    }

    #[test]
    fn finds_the_first_match_from_an_offset() {
        assert_eq!(find(b"abcabc", b"bc", 0), Some(1));
        assert_eq!(find(b"abcabc", b"bc", 2), Some(4));
        assert_eq!(find(b"abcabc", b"bd", 0), None);
        assert_eq!(find(b"aab", b"ab", 0), Some(1));
        assert_eq!(find(b"ab", b"abc", 0), None);
        assert_eq!(find(b"ab", b"b", 9), None);
        assert_eq!(find(b"ab", b"", 1), Some(1));
        assert_eq!(find(b"ab", b"", 3), None);
        assert_eq!(find(b"", b"", 0), Some(0));
    }
}
