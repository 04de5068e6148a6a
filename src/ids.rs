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

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::digest::InvalidLength;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

const TAG_BYTES: usize = 12;
const CONTEXT: &[u8] = b"openai-gateway id v1";

type HmacSha256 = Hmac<Sha256>;

/// base64url without padding, with one encoding per byte string: padding and
/// non-zero unused low bits are refused, so an id has a single spelling.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// base64url without padding (the parts of an id).
pub fn base64url_encode(data: &[u8]) -> String {
    BASE64URL.encode(data)
}

/// Inverse of [`base64url_encode`]; None for anything it would not produce.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    BASE64URL.decode(text).ok()
}

/// Issues and opens routed ids with one secret.
#[derive(Debug, Clone)]
pub struct IdCodec {
    /// HMAC-SHA256 keyed with the secret, ready for a message. (Its `Debug`
    /// shows no key material.)
    mac: HmacSha256,
}

impl IdCodec {
    /// A codec for `secret`. HMAC takes keys of any length, so this never
    /// fails in practice; the error is the HMAC crate's signature.
    pub fn new(secret: &[u8]) -> Result<Self, InvalidLength> {
        Ok(IdCodec {
            mac: HmacSha256::new_from_slice(secret)?,
        })
    }

    /// The HMAC over `CONTEXT \n key id \n backend \n original`, before finalising.
    fn mac(&self, key_id: &str, backend: &str, original: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(CONTEXT);
        for part in [key_id, backend, original] {
            mac.update(b"\n");
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The tag: the HMAC's first 96 bits.
    fn tag(&self, key_id: &str, backend: &str, original: &str) -> [u8; TAG_BYTES] {
        let mac = self.mac(key_id, backend, original).finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        for (dst, src) in tag.iter_mut().zip(mac) {
            *dst = src;
        }
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
            base64url_encode(backend.as_bytes()),
            base64url_encode(original.as_bytes()),
            base64url_encode(&self.tag(key_id, backend, original))
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
        let backend = String::from_utf8(base64url_decode(backend)?).ok()?;
        let original = String::from_utf8(base64url_decode(original)?).ok()?;
        let tag = base64url_decode(tag)?;
        // The tag is the HMAC's first TAG_BYTES bytes, compared in constant
        // time (hmac uses subtle): every byte whatever the first difference.
        // (The length is no secret; verify_truncated_left alone would take
        // any length from 1 to 32.)
        let same = tag.len() == TAG_BYTES
            && self
                .mac(key_id, &backend, &original)
                .verify_truncated_left(&tag)
                .is_ok();
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

    fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
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
            assert_eq!(
                base64url_decode(&base64url_encode(data)).as_deref(),
                Some(data)
            );
        }
        assert_eq!(base64url_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(
            base64url_decode("Zm9vYmF"),
            None,
            "length 7 mod 4 == 3 is fine only with zero low bits"
        );
        assert_eq!(base64url_decode("A"), None);
        assert_eq!(base64url_decode("Zm9v+"), None);
        assert_eq!(base64url_decode("Zh"), None, "non-zero unused bits");
        // Padding, the standard alphabet and white space are not base64url
        // as ids carry it: one spelling per id.
        for text in [
            "Zm8=",
            "Zg==",
            "Zm9v====",
            "Zm9v/",
            "Zm9v YmFy",
            "Zm9v\n",
            "=",
        ] {
            assert_eq!(base64url_decode(text), None, "{text:?}");
        }
    }

    #[test]
    fn ids_round_trip_for_their_key_only() {
        let codec = IdCodec::new(b"a secret of thirty-two bytes....").unwrap();
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
            IdCodec::new(b"another secret of 32 bytes......")
                .unwrap()
                .open("demo", &id),
            None
        );
        let (head, tag) = id.rsplit_once('.').unwrap();
        let mut bad_tag = tag.to_string();
        bad_tag.replace_range(0..1, if tag.starts_with('A') { "B" } else { "A" });
        assert_eq!(codec.open("demo", &format!("{head}.{bad_tag}")), None);
        let forged = format!(
            "resp_{}.{}.{}",
            base64url_encode(b"backend-a"),
            base64url_encode(b"resp_backend-b_3"),
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
    fn ids_issued_before_the_rustcrypto_change_still_open() {
        // Issued by the gateway's earlier, hand-written HMAC-SHA256 and base64url
        // (and checked against Python's hmac/base64): a deployed id must keep
        // opening, byte for byte, whatever implements the primitives.
        let cases: [(&[u8], &str, &str, &str, &str); 3] = [
            (
                b"a secret of thirty-two bytes....",
                "demo",
                "backend-b",
                "resp_backend-b_3",
                "resp_YmFja2VuZC1i.cmVzcF9iYWNrZW5kLWJfMw.37CsX6r-YoOXjomE",
            ),
            // A secret longer than SHA-256's block: HMAC hashes it first.
            (
                &[0x5a; 100],
                "team-a",
                "backend-é",
                "video_0b6e7a52",
                "video_YmFja2VuZC3DqQ.dmlkZW9fMGI2ZTdhNTI.BzZyP7Q8D1epVvuB",
            ),
            // Empty secret and backend.
            (b"", "k", "", "x", "gw_.eA.dsUM7JjbhQdmGPJZ"),
        ];
        for (secret, key_id, backend, original, id) in cases {
            let codec = IdCodec::new(secret).unwrap();
            assert_eq!(codec.issue(key_id, backend, original), id);
            assert_eq!(
                codec.open(key_id, id),
                Some((backend.to_string(), original.to_string())),
                "{id}"
            );
            assert_eq!(codec.open("another-key", id), None, "{id}");
        }
    }

    #[test]
    fn truncated_or_extended_tags_are_refused() {
        let codec = IdCodec::new(b"a secret of thirty-two bytes....").unwrap();
        let id = codec.issue("demo", "backend-b", "resp_backend-b_3");
        let (head, tag) = id.rsplit_once('.').unwrap();
        let tag = base64url_decode(tag).unwrap();
        let full = codec
            .mac("demo", "backend-b", "resp_backend-b_3")
            .finalize()
            .into_bytes();
        assert_eq!(
            tag,
            full[..TAG_BYTES],
            "the tag is the HMAC's first 96 bits"
        );
        // A prefix of the tag, or more of the HMAC than the tag: not an id.
        for len in [0, 1, TAG_BYTES - 1, TAG_BYTES + 1, full.len()] {
            let other = format!("{head}.{}", base64url_encode(&full[..len]));
            assert_eq!(codec.open("demo", &other), None, "{len} bytes of tag");
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
        let codec = IdCodec::new(b"s").unwrap();
        assert!(codec.issue("k", "b", "video_x_1").starts_with("video_"));
        assert!(codec.issue("k", "b", "0b6e7a52-uuid").starts_with("gw_"));
        assert!(codec.issue("k", "b", "Weird_1").starts_with("gw_"));
    }
}
