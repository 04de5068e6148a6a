//! Borrowed reading of JSON bodies, two ways. [`parse_document`] reads a
//! request body into a [`Json`] tree whose strings point into the body (what
//! the validation tables and the token estimate read). [`JsonObject`] keeps a
//! top-level object's members as raw slices of the original bytes, so a member
//! is parsed only when needed and an edit (a request rewrite, a response's
//! usage) can splice bytes instead of re-serialising the body.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// The members of a top-level JSON object, in body order, each borrowed.
#[derive(Debug)]
pub struct JsonObject<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// Why a body is not a JSON object the gateway can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    Empty,
    /// Not valid JSON; the text says where.
    Syntax(String),
    /// Valid JSON, but not an object.
    NotAnObject,
    /// The same member name appears twice (the gateway and a backend could
    /// read different values).
    DuplicateKey(String),
}

impl<'a> JsonObject<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, JsonError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(JsonError::Empty);
        }
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            // Report syntax errors before shape errors.
            return match serde_json::from_slice::<de::IgnoredAny>(body) {
                Ok(_) => Err(JsonError::NotAnObject),
                Err(e) => Err(JsonError::Syntax(e.to_string())),
            };
        }
        check_depth(body)?;
        let object: JsonObject<'a> =
            serde_json::from_slice(body).map_err(|e| JsonError::Syntax(e.to_string()))?;
        object.reject_duplicates()?;
        Ok(object)
    }

    fn reject_duplicates(&self) -> Result<(), JsonError> {
        let mut names: Vec<&str> = self.members.iter().map(|(k, _)| k.as_ref()).collect();
        names.sort_unstable();
        match names.windows(2).find(|w| w.first() == w.get(1)) {
            Some(pair) => Err(JsonError::DuplicateKey(
                pair.first().map(|s| s.to_string()).unwrap_or_default(),
            )),
            None => Ok(()),
        }
    }

    /// The raw value of member `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    /// Member names in body order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(k, _)| k.as_ref())
    }
}

impl<'de> Deserialize<'de> for JsonObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = JsonObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::new();
                while let Some(BorrowedStr(name)) = map.next_key::<BorrowedStr<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((name, value));
                }
                Ok(JsonObject { members })
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A string (a member name, or a value), borrowed from the body when it has
/// no escapes.
pub(crate) struct BorrowedStr<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for BorrowedStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = BorrowedStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// A JSON value borrowed from the body: strings without escapes point into
/// it. Built in one pass; objects keep their members in body order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Members<'a>),
}

/// An object's members, in body order, names unique.
pub type Members<'a> = Vec<(Cow<'a, str>, Json<'a>)>;

impl<'a> Json<'a> {
    /// An array of numbers only: a prompt or input given as token ids,
    /// whose token count is its length.
    pub fn is_token_array(&self) -> bool {
        matches!(self, Json::Array(items) if items.iter().all(|i| matches!(i, Json::Number(_))))
    }

    /// Member `name` of an object.
    pub fn get(&self, name: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => member(members, name),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// How OpenAI's messages name the value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(n) if n.is_f64() => "a decimal",
            Json::Number(_) => "an integer",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// Member `name` of `members`.
pub fn member<'m, 'a>(members: &'m Members<'a>, name: &str) -> Option<&'m Json<'a>> {
    members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Parses a request body that must be a JSON object, refusing duplicate
/// member names at any depth and nesting deeper than serde_json's limit (128).
pub fn parse_document(body: &[u8]) -> Result<Members<'_>, JsonError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(JsonError::Empty);
    }
    match serde_json::from_slice::<Json<'_>>(body) {
        Ok(Json::Object(members)) => Ok(members),
        Ok(_) => Err(JsonError::NotAnObject),
        Err(e) => {
            let text = e.to_string();
            match text.strip_prefix(DUPLICATE) {
                Some(rest) => {
                    let name = rest.rsplit_once(" at line").map_or(rest, |(name, _)| name);
                    Err(JsonError::DuplicateKey(name.to_string()))
                }
                None => Err(JsonError::Syntax(text)),
            }
        }
    }
}

const DUPLICATE: &str = "duplicate member: ";

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(v)))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut members: Members<'de> = Vec::new();
        while let Some(BorrowedStr(name)) = map.next_key::<BorrowedStr<'de>>()? {
            let value: Json<'de> = map.next_value()?;
            members.push((name, value));
        }
        if let Some(name) = first_duplicate(&members) {
            return Err(de::Error::custom(format!("{DUPLICATE}{name}")));
        }
        Ok(Json::Object(members))
    }
}

/// The first member name that appears twice, if any.
fn first_duplicate<'m>(members: &'m Members<'_>) -> Option<&'m str> {
    if members.len() <= 16 {
        // Small objects: pairwise is cheaper than sorting.
        for (i, (name, _)) in members.iter().enumerate() {
            if members
                .iter()
                .skip(i.saturating_add(1))
                .any(|(other, _)| other == name)
            {
                return Some(name);
            }
        }
        return None;
    }
    let mut names: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
    names.sort_unstable();
    names
        .windows(2)
        .find(|w| w.first() == w.get(1))
        .and_then(|w| w.first().copied())
}

/// Deepest nesting of arrays and objects a body may have (serde_json's own
/// limit for parsed values; raw members are skipped without one).
pub const MAX_DEPTH: usize = 128;

/// Refuses bodies nested deeper than [`MAX_DEPTH`], in one pass over the bytes.
fn check_depth(body: &[u8]) -> Result<(), JsonError> {
    // Nesting needs an opening bracket per level: a body with no more than
    // MAX_DEPTH of them (nearly every body) cannot be too deep, and counting
    // them is a far cheaper loop than following strings and escapes.
    let openings = body.iter().filter(|b| matches!(b, b'[' | b'{')).count();
    if openings <= MAX_DEPTH {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth = depth.saturating_add(1);
                if depth > MAX_DEPTH {
                    return Err(JsonError::Syntax(format!(
                        "nesting deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Where `part` lies inside `body`, when it was borrowed from it.
pub fn span_of_str(body: &[u8], part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= body.len()).then_some(start..end)
}

/// `body` with the bytes in `range` replaced by `replacement`.
pub fn splice(body: &[u8], range: Range<usize>, replacement: &[u8]) -> Option<Vec<u8>> {
    let head = body.get(..range.start)?;
    let tail = body.get(range.end..)?;
    let mut out = Vec::with_capacity(
        head.len()
            .saturating_add(replacement.len())
            .saturating_add(tail.len()),
    );
    out.extend_from_slice(head);
    out.extend_from_slice(replacement);
    out.extend_from_slice(tail);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_borrowed_in_order() {
        let body = br#" {"model": "m", "n": 2, "x": {"y": [1,2]}} "#;
        let obj = JsonObject::parse(body).unwrap();
        assert_eq!(obj.keys().collect::<Vec<_>>(), ["model", "n", "x"]);
        assert_eq!(obj.get("model").unwrap().get(), r#""m""#);
        assert_eq!(obj.get("x").unwrap().get(), r#"{"y": [1,2]}"#);
        assert!(obj.get("missing").is_none());
    }

    #[test]
    fn escaped_names_are_unescaped() {
        let obj = JsonObject::parse(br#"{"mo\u0064el": "m"}"#).unwrap();
        assert_eq!(obj.get("model").unwrap().get(), r#""m""#);
    }

    #[test]
    fn rejections() {
        let cases: [(&[u8], fn(&JsonError) -> bool); 9] = [
            (b"", |e| *e == JsonError::Empty),
            (b"  \n", |e| *e == JsonError::Empty),
            (b"[1]", |e| *e == JsonError::NotAnObject),
            (b"\"s\"", |e| *e == JsonError::NotAnObject),
            (b"{", |e| matches!(e, JsonError::Syntax(_))),
            (b"{\"a\":1} x", |e| matches!(e, JsonError::Syntax(_))),
            (b"nonsense", |e| matches!(e, JsonError::Syntax(_))),
            (b"{\"a\":\xff}", |e| matches!(e, JsonError::Syntax(_))),
            (br#"{"model":"a","model":"b"}"#, |e| {
                *e == JsonError::DuplicateKey("model".into())
            }),
        ];
        for (body, check) in cases {
            let err = JsonObject::parse(body).unwrap_err();
            assert!(
                check(&err),
                "{:?} -> {err:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn duplicate_detected_even_when_escaped() {
        let err = JsonObject::parse(br#"{"model":"a","m\u006fdel":"b"}"#).unwrap_err();
        assert_eq!(err, JsonError::DuplicateKey("model".into()));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut body = b"{\"a\":".to_vec();
        body.extend(std::iter::repeat_n(b'[', 100_000));
        body.extend(std::iter::repeat_n(b']', 100_000));
        body.push(b'}');
        assert!(matches!(
            JsonObject::parse(&body),
            Err(JsonError::Syntax(_))
        ));
        let mut at_limit = b"{\"a\":".to_vec();
        at_limit.extend(std::iter::repeat_n(b'[', MAX_DEPTH - 1));
        at_limit.extend(std::iter::repeat_n(b']', MAX_DEPTH - 1));
        at_limit.push(b'}');
        assert!(JsonObject::parse(&at_limit).is_ok());
        // One level more is refused (the bracket count alone cannot clear it)...
        let mut over = b"{\"a\":".to_vec();
        over.extend(std::iter::repeat_n(b'[', MAX_DEPTH));
        over.extend(std::iter::repeat_n(b']', MAX_DEPTH));
        over.push(b'}');
        assert!(matches!(
            JsonObject::parse(&over),
            Err(JsonError::Syntax(_))
        ));
        // ...while many shallow brackets are not nesting.
        let siblings = format!(r#"{{"a":[{}[]]}}"#, "[],".repeat(MAX_DEPTH * 2));
        assert!(JsonObject::parse(siblings.as_bytes()).is_ok());
        // Brackets inside strings do not count.
        let in_string = format!(r#"{{"a":"{}"}}"#, "[".repeat(1000));
        assert!(JsonObject::parse(in_string.as_bytes()).is_ok());
        let escaped_quote = format!(r#"{{"a":"\"{}"}}"#, "[".repeat(1000));
        assert!(JsonObject::parse(escaped_quote.as_bytes()).is_ok());
        let deep_array = vec![b'['; 100_000];
        assert!(matches!(
            JsonObject::parse(&deep_array),
            Err(JsonError::Syntax(_))
        ));
    }

    #[test]
    fn document_is_parsed_borrowed() {
        let body =
            br#"{"model": "m", "messages": [{"role": "user", "content": "caf\u00e9"}], "n": 1.5}"#;
        let doc = parse_document(body).unwrap();
        let model = member(&doc, "model").unwrap();
        assert!(matches!(model, Json::String(Cow::Borrowed("m"))));
        let content = member(&doc, "messages").unwrap();
        let Json::Array(items) = content else {
            panic!()
        };
        assert_eq!(items[0].get("content").unwrap().as_str(), Some("café"));
        assert_eq!(member(&doc, "n").unwrap().type_name(), "a decimal");
    }

    #[test]
    fn document_rejections() {
        let cases: &[(&[u8], JsonError)] = &[
            (b"", JsonError::Empty),
            (b"[]", JsonError::NotAnObject),
            (
                br#"{"a":{"b":1,"b":2}}"#,
                JsonError::DuplicateKey("b".into()),
            ),
            (
                br#"{"a":[{"x":1},{"y":1,"y":2}]}"#,
                JsonError::DuplicateKey("y".into()),
            ),
            (
                br#"{"model":"a","m\u006fdel":"b"}"#,
                JsonError::DuplicateKey("model".into()),
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                &parse_document(body).unwrap_err(),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let many: String = (0..40).map(|i| format!(r#""k{i}":1,"#)).collect();
        let dup = format!("{{{many}\"k7\":2}}");
        assert_eq!(
            parse_document(dup.as_bytes()).unwrap_err(),
            JsonError::DuplicateKey("k7".into())
        );
        for bad in [
            &b"{\"a\":1e400}"[..],
            b"{\"a\":NaN}",
            b"{\"a\":Infinity}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":1,}",
        ] {
            assert!(
                matches!(parse_document(bad), Err(JsonError::Syntax(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut deep = b"{\"a\":".to_vec();
        deep.extend(std::iter::repeat_n(b'[', 10_000));
        deep.extend(std::iter::repeat_n(b']', 10_000));
        deep.push(b'}');
        assert!(matches!(parse_document(&deep), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn splice_replaces_exactly_the_value() {
        let body = br#"{"model": "alias", "x": 1}"#;
        let obj = JsonObject::parse(body).unwrap();
        let span = span_of_str(body, obj.get("model").unwrap().get()).unwrap();
        let out = splice(body, span, br#""canonical""#).unwrap();
        assert_eq!(out, br#"{"model": "canonical", "x": 1}"#);
    }
}
