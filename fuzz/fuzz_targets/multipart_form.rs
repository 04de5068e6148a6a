//! multipart/form-data parsing (src/multipart.rs).
//!
//! Input, raw mode: the content type on the first line, the body after it.
//! Invariants: a boundary is 1 to 70 characters; every part's value lies
//! inside the body and never contains the delimiter; a text `model` field
//! can be located in the body (the pipeline splices the upstream name there).
//!
//! Input starting with `#`: the rest drives `arbitrary` to build a form
//! (boundary, fields, preamble, quoting); parsing it gives back exactly its
//! fields, in order.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use openai_gateway::{json, multipart};

/// RFC 2046 boundary characters, minus `;` which ends a parameter, and
/// minus space, which may not end a boundary (kept inside by `Form`).
const BCHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'()+_,-./:=?";
const NAME_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz_-0123456789";

#[derive(Debug, Arbitrary)]
struct Form {
    boundary: Vec<u8>,
    quoted: bool,
    preamble: Option<Vec<u8>>,
    fields: Vec<(Vec<u8>, Vec<u8>, bool)>,
}

fn pick(bytes: &[u8], alphabet: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()])
        .collect()
}

fn round_trip(u: &mut Unstructured) -> arbitrary::Result<()> {
    let form = Form::arbitrary(u)?;
    let mut boundary = pick(&form.boundary, BCHARS);
    boundary.truncate(70);
    if boundary.is_empty() {
        boundary.push(b'B');
    }
    let boundary = String::from_utf8(boundary).expect("ASCII");
    let content_type = if form.quoted {
        format!("multipart/form-data; charset=utf-8; boundary=\"{boundary}\"")
    } else {
        format!("multipart/form-data; boundary={boundary}")
    };
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let mut body = Vec::new();
    if let Some(preamble) = &form.preamble {
        // A preamble holds no delimiter and does not start as one.
        if preamble.windows(delimiter.len()).any(|w| w == delimiter)
            || preamble.starts_with(&delimiter[2..])
        {
            return Ok(());
        }
        // The first delimiter then follows a CRLF, as after any part.
        body.extend_from_slice(preamble);
        body.extend_from_slice(b"\r\n");
    }
    let mut expected = Vec::new();
    for (name, value, file) in &form.fields {
        let mut name = pick(name, NAME_CHARS);
        name.truncate(20);
        if value.windows(delimiter.len()).any(|w| w == delimiter) {
            return Ok(());
        }
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        body.extend_from_slice(&name);
        body.extend_from_slice(b"\"");
        if *file {
            body.extend_from_slice(b"; filename=\"f.wav\"\r\nContent-Type: audio/wav");
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
        expected.push((name, value.clone()));
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");
    let parts = multipart::parts(&content_type, &body).expect("a well-formed form parses");
    let got: Vec<(Vec<u8>, Vec<u8>)> = parts
        .iter()
        .map(|p| (p.name.to_vec(), p.value.to_vec()))
        .collect();
    assert_eq!(got, expected);
    Ok(())
}

fn raw(data: &[u8]) {
    let (line, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let content_type = String::from_utf8_lossy(line);
    let boundary = multipart::boundary(&content_type);
    if let Some(b) = boundary {
        assert!((1..=70).contains(&b.len()));
    }
    let Ok(parts) = multipart::parts(&content_type, body) else {
        return;
    };
    let delimiter = [
        b"\r\n--",
        boundary.expect("parsed with a boundary").as_bytes(),
    ]
    .concat();
    let inside = |s: &[u8]| {
        let start = s.as_ptr() as usize;
        let body_start = body.as_ptr() as usize;
        start >= body_start && start + s.len() <= body_start + body.len()
    };
    for part in &parts {
        assert!(inside(part.name) && inside(part.value));
        assert!(!part.value.windows(delimiter.len()).any(|w| w == delimiter));
    }
    if let Ok(model) = multipart::text_field(&parts, "model") {
        let span = json::span_of_str(body, model).expect("the model is in the body");
        assert_eq!(&body[span], model.as_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b'#', rest)) => {
            let _ = round_trip(&mut Unstructured::new(rest));
        }
        _ => raw(data),
    }
});
