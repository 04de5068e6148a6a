//! Routed ids (src/ids.rs): opening what clients send, issuing and opening
//! round trips, base64url and path segments.
//!
//! Input: a key id line, an id line (opened with the demo's secret), then
//! bytes that drive `arbitrary` for a round trip with any secret.
//!
//! Invariants: an id opens only if it has the `a.b.c` form; what opens, and
//! is re-issued, gives the same payload (only the cosmetic prefix is free);
//! base64url decodes only canonical text; issue then open gives back the
//! backend and the original for that key only; a path segment is
//! unreserved characters and %XX escapes that decode to the id.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use gateway_fuzz::{debug, id_secret};
use libfuzzer_sys::fuzz_target;
use openai_gateway::ids::{self, IdCodec};
use std::sync::OnceLock;

#[derive(Debug, Arbitrary)]
struct RoundTrip {
    secret: Vec<u8>,
    key_id: String,
    other_key_id: String,
    backend: String,
    original: String,
    data: Vec<u8>,
}

fn demo_codec() -> &'static IdCodec {
    static CODEC: OnceLock<IdCodec> = OnceLock::new();
    CODEC.get_or_init(|| {
        IdCodec::new(id_secret().as_bytes()).expect("HMAC takes keys of any length")
    })
}

fn percent_decode(segment: &str) -> Vec<u8> {
    let bytes = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("two hex digits");
            assert!(hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            assert!(bytes[i].is_ascii_alphanumeric() || b"-._~".contains(&bytes[i]));
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn open_text(key_id: &str, text: &str) {
    let codec = demo_codec();
    let opened = codec.open(key_id, text);
    assert!(opened.is_none() || text.contains('.'));
    if let Some((backend, original)) = opened {
        let issued = codec.issue(key_id, &backend, &original);
        let payload = |id: &str| id.split_once('_').map(|(_, p)| p.to_string());
        assert_eq!(payload(&issued), payload(text), "the tag binds the payload");
    }
    if let Some(bytes) = ids::base64url_decode(text) {
        assert_eq!(
            ids::base64url_encode(&bytes),
            text,
            "one encoding per byte string"
        );
    }
    assert_eq!(percent_decode(&ids::path_segment(text)), text.as_bytes());
}

fn round_trip(t: &RoundTrip) {
    assert_eq!(
        ids::base64url_decode(&ids::base64url_encode(&t.data)).as_deref(),
        Some(t.data.as_slice())
    );
    let codec = IdCodec::new(&t.secret).expect("HMAC takes keys of any length");
    let id = codec.issue(&t.key_id, &t.backend, &t.original);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "{id}"
    );
    let opened = codec.open(&t.key_id, &id);
    if id.len() <= 2048 {
        assert_eq!(opened, Some((t.backend.clone(), t.original.clone())));
    } else {
        assert_eq!(opened, None, "over-long ids are refused");
    }
    if t.other_key_id != t.key_id {
        assert_eq!(codec.open(&t.other_key_id, &id), None, "another key's id");
    }
    let quoted = serde_json::to_vec(&t.original).expect("a JSON string");
    let body = [b"{\"id\":".as_slice(), &quoted, b"}"].concat();
    let replaced = ids::replace_quoted(&body, &t.original, &id).expect("the id is in the body");
    let v: serde_json::Value = serde_json::from_slice(&replaced).expect("still JSON");
    if t.original != "id" {
        assert_eq!(v["id"], id.as_str());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |b| *b == b'\n');
    let key_id = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let text = String::from_utf8_lossy(lines.next().unwrap_or_default());
    open_text(&key_id, &text);
    let rest = lines.next().unwrap_or_default();
    if let Ok(t) = RoundTrip::arbitrary(&mut Unstructured::new(rest)) {
        if debug() {
            eprintln!("{t:?}");
        }
        round_trip(&t);
    }
});
