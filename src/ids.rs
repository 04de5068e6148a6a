//! Ids that route themselves. When a backend returns an id a later call will
//! use (a stored response, a deferred completion, a video job), the gateway
//! hands the client an id that carries the backend and the backend's own id,
//! authenticated by an HMAC over the key id as well:
//!
//! `{prefix}_{base64url(backend)}.{base64url(original id)}.{base64url(tag)}`
//!
//! where `prefix` is the original id's own (`resp`, `video`, …) and `tag` is
//! HMAC-SHA256(secret, "openai-gateway id v1" \n key id \n backend \n original)
//! cut to 96 bits. A follow-up call by id needs no state: any replica with the
//! same secret decodes it, and only the key that created the object can open
//! it (another key's tag does not match: 404, as for ids the gateway never
//! issued). A client cannot point an id at another backend without the secret.

use crate::sha256::{sha256, Digest};

const TAG_BYTES: usize = 12;
const CONTEXT: &[u8] = b"openai-gateway id v1";

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Digest {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        for (dst, src) in block.iter_mut().zip(key) {
            *dst = *src;
        }
    }
    let mut inner = Vec::with_capacity(message.len().saturating_add(64));
    inner.extend(block.iter().map(|b| b ^ 0x36));
    inner.extend_from_slice(message);
    let inner_hash = sha256(&inner);
    let mut outer = Vec::with_capacity(64 + 32);
    outer.extend(block.iter().map(|b| b ^ 0x5c));
    outer.extend_from_slice(&inner_hash);
    sha256(&outer)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding. (Bit positions depend only on the index in a
/// chunk of at most 3 or 4 bytes: the shifts below cannot overflow.)
#[allow(clippy::arithmetic_side_effects)]
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(
                ALPHABET.get(index as usize).copied().unwrap_or(b'A'),
            ));
        }
    }
    out
}

/// Inverse of [`encode`]; None for anything it would not produce.
#[allow(clippy::arithmetic_side_effects)]
pub fn decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = ALPHABET.iter().position(|a| a == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(bytes.get(1..chunk.len())?);
        // Unused low bits must be zero (one encoding per id).
        let used_bits = 8 * (chunk.len() - 1);
        if n & ((1u32 << (24 - used_bits)) - 1) != 0 {
            return None;
        }
    }
    Some(out)
}

/// Issues and opens routed ids with one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdCodec {
    secret: Vec<u8>,
}

impl IdCodec {
    pub fn new(secret: &[u8]) -> Self {
        IdCodec {
            secret: secret.to_vec(),
        }
    }

    fn tag(&self, key_id: &str, backend: &str, original: &str) -> [u8; TAG_BYTES] {
        let mut message = Vec::with_capacity(
            [
                CONTEXT.len(),
                key_id.len(),
                backend.len(),
                original.len(),
                3,
            ]
            .iter()
            .fold(0, |a: usize, b| a.saturating_add(*b)),
        );
        for part in [
            CONTEXT,
            key_id.as_bytes(),
            backend.as_bytes(),
            original.as_bytes(),
        ] {
            if !message.is_empty() {
                message.push(b'\n');
            }
            message.extend_from_slice(part);
        }
        let mac = hmac_sha256(&self.secret, &message);
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(mac.get(..TAG_BYTES).unwrap_or(&[0u8; TAG_BYTES]));
        tag
    }

    /// The id the client gets for `original`, created on `backend` by `key_id`.
    pub fn issue(&self, key_id: &str, backend: &str, original: &str) -> String {
        let prefix = original
            .split_once('_')
            .map(|(p, _)| p)
            .filter(|p| !p.is_empty() && p.len() <= 16 && p.bytes().all(|b| b.is_ascii_lowercase()))
            .unwrap_or("gw");
        format!(
            "{prefix}_{}.{}.{}",
            encode(backend.as_bytes()),
            encode(original.as_bytes()),
            encode(&self.tag(key_id, backend, original))
        )
    }

    /// The (backend, original id) an id names, if this gateway issued it to `key_id`.
    pub fn open(&self, key_id: &str, id: &str) -> Option<(String, String)> {
        let (_, payload) = id.split_once('_')?;
        let mut parts = payload.split('.');
        let (backend, original, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || id.len() > 2048 {
            return None;
        }
        let backend = String::from_utf8(decode(backend)?).ok()?;
        let original = String::from_utf8(decode(original)?).ok()?;
        let tag = decode(tag)?;
        let expected = self.tag(key_id, &backend, &original);
        // Constant time: compare every byte whatever the first difference.
        let same = tag.len() == TAG_BYTES
            && std::hint::black_box(
                tag.iter()
                    .zip(expected.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b)),
            ) == 0;
        same.then_some((backend, original))
    }
}

/// `json` with every JSON string equal to `original` replaced by `issued`;
/// None if there is none. Only whole strings match: not text inside another
/// string, nor punctuation between two (an id such as `:` would otherwise
/// match the `":"` of a member). Also reads stream events: a line break ends
/// any string (JSON strings hold none), so a stray quote in an `event:` line
/// does not shift the data line.
pub fn replace_quoted(json: &[u8], original: &str, issued: &str) -> Option<Vec<u8>> {
    let needle = serde_json::to_vec(original).ok()?;
    let replacement = serde_json::to_vec(issued).ok()?;
    let mut out = Vec::new();
    let (mut copied, mut found) = (0, false);
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        if b == b'\n' || b == b'\r' {
            (in_string, escaped) = (false, false);
        } else if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            if json.get(i..).is_some_and(|rest| rest.starts_with(&needle)) {
                out.extend_from_slice(json.get(copied..i)?);
                out.extend_from_slice(&replacement);
                i = i.saturating_add(needle.len());
                (copied, found) = (i, true);
                continue;
            }
            in_string = true;
        }
        i = i.saturating_add(1);
    }
    if !found {
        return None;
    }
    out.extend_from_slice(json.get(copied..)?);
    Some(out)
}

/// An id as one URL path segment (percent-encoding all but unreserved characters).
pub fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: &[u8]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn base64url_round_trips_and_rejects() {
        for data in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0xff, 0xfe, 0x00],
        ] {
            assert_eq!(decode(&encode(data)).as_deref(), Some(data));
        }
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(
            decode("Zm9vYmF"),
            None,
            "length 7 mod 4 == 3 is fine only with zero low bits"
        );
        assert_eq!(decode("A"), None);
        assert_eq!(decode("Zm9v+"), None);
        assert_eq!(decode("Zh"), None, "non-zero unused bits");
    }

    #[test]
    fn ids_round_trip_for_their_key_only() {
        let codec = IdCodec::new(b"a secret of thirty-two bytes....");
        let id = codec.issue("demo", "backend-b", "resp_backend-b_3");
        assert!(id.starts_with("resp_"), "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "path-safe: {id}"
        );
        assert_eq!(
            codec.open("demo", &id),
            Some(("backend-b".into(), "resp_backend-b_3".into()))
        );
        // Another key, another secret, any tampering: not ours.
        assert_eq!(codec.open("other-key", &id), None);
        assert_eq!(
            IdCodec::new(b"another secret of 32 bytes......").open("demo", &id),
            None
        );
        let (head, tag) = id.rsplit_once('.').unwrap();
        let mut bad_tag = tag.to_string();
        bad_tag.replace_range(0..1, if tag.starts_with('A') { "B" } else { "A" });
        assert_eq!(codec.open("demo", &format!("{head}.{bad_tag}")), None);
        let forged = format!(
            "resp_{}.{}.{}",
            encode(b"backend-a"),
            encode(b"resp_backend-b_3"),
            tag
        );
        assert_eq!(
            codec.open("demo", &forged),
            None,
            "pointing the id at another backend"
        );
        for garbage in [
            "",
            "resp_",
            "resp_abc",
            "resp_a.b.c.d",
            "noprefix",
            "resp_!!.!!.!!",
            "resp_YQ.YQ",
        ] {
            assert_eq!(codec.open("demo", garbage), None, "{garbage}");
        }
    }

    #[test]
    fn quoted_replacement_and_path_segments() {
        let body = br#"{"id":"resp_1","output":[{"id":"msg_1"}],"previous_response_id":"resp_1","note":"resp_1x"}"#;
        let out = replace_quoted(body, "resp_1", "resp_GW").unwrap();
        assert_eq!(out, br#"{"id":"resp_GW","output":[{"id":"msg_1"}],"previous_response_id":"resp_GW","note":"resp_1x"}"#);
        assert_eq!(replace_quoted(body, "resp_2", "x"), None);
        assert_eq!(
            replace_quoted(b"[\"a\"]", "a", "b").as_deref(),
            Some(&b"[\"b\"]"[..])
        );
        assert_eq!(path_segment("resp_a-b.c~d"), "resp_a-b.c~d");
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
    }

    #[test]
    fn only_whole_strings_are_replaced() {
        // Found by fuzz/routed_ids: an id of JSON punctuation matched across
        // tokens and broke the body.
        assert_eq!(
            replace_quoted(br#"{"id":":"}"#, ":", "gw_1").as_deref(),
            Some(&br#"{"id":"gw_1"}"#[..])
        );
        assert_eq!(replace_quoted(br#"{"a":1,"b":2}"#, ":1,", "gw_1"), None);
        // The end of a string with an escaped quote is not an id.
        assert_eq!(
            replace_quoted(br#"{"text":"x \"resp_1"}"#, "resp_1", "gw_1"),
            None
        );
        let escaped = br#"{"text":"a\\","id":"resp_1"}"#;
        assert_eq!(
            replace_quoted(escaped, "resp_1", "gw_1").as_deref(),
            Some(&br#"{"text":"a\\","id":"gw_1"}"#[..])
        );
        // A stream event: the quote in the field line ends at its line.
        assert_eq!(
            replace_quoted(
                b"event: a\"b\ndata: {\"id\":\"resp_1\"}\n\n",
                "resp_1",
                "gw_1"
            )
            .as_deref(),
            Some(&b"event: a\"b\ndata: {\"id\":\"gw_1\"}\n\n"[..])
        );
    }

    #[test]
    fn prefixes_follow_the_original() {
        let codec = IdCodec::new(b"s");
        assert!(codec.issue("k", "b", "video_x_1").starts_with("video_"));
        assert!(codec.issue("k", "b", "0b6e7a52-uuid").starts_with("gw_"));
        assert!(codec.issue("k", "b", "Weird_1").starts_with("gw_"));
    }
}
