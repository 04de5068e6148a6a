//! Byte-string search, shared by the parsers that look for a delimiter in a
//! body (multipart boundaries, the `"model"` member of responses).

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

#[cfg(test)]
mod tests {
    use super::find;

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
