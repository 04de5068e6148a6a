//! Reads the fields of a multipart/form-data body, as the audio transcription
//! endpoint sends it: every part's name (the required ones must be there) and
//! a field's value as text (the `model`).

use crate::bytes::find;
/// Why the form field could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// The content type is not multipart/form-data with a boundary.
    NotMultipart,
    /// The body does not follow the multipart framing.
    Malformed,
    /// No part carries the field.
    Missing,
    /// The field's value is not UTF-8 text.
    NotText,
}

/// The boundary of a `multipart/form-data; boundary=…` content type.
pub fn boundary(content_type: &str) -> Option<&str> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        // RFC 2046: 1 to 70 characters.
        (!value.is_empty() && value.len() <= 70).then_some(value)
    })
}

/// One form field: its name and its raw value, both borrowed from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// Every named part of a multipart/form-data body, in order.
pub fn parts<'a>(content_type: &str, body: &'a [u8]) -> Result<Vec<Part<'a>>, MultipartError> {
    let boundary = boundary(content_type).ok_or(MultipartError::NotMultipart)?;
    let delimiter = [b"--", boundary.as_bytes()].concat();
    let next_delimiter = [b"\r\n--", boundary.as_bytes()].concat();

    let mut rest = body
        .strip_prefix(delimiter.as_slice())
        .or_else(|| {
            find(body, &next_delimiter, 0)
                .and_then(|at| body.get(at.saturating_add(next_delimiter.len())..))
        })
        .ok_or(MultipartError::Malformed)?;
    let mut found = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(found);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or(MultipartError::Malformed)?;
        let header_end = find(rest, b"\r\n\r\n", 0).ok_or(MultipartError::Malformed)?;
        let headers = rest.get(..header_end).ok_or(MultipartError::Malformed)?;
        let content = rest
            .get(header_end.saturating_add(4)..)
            .ok_or(MultipartError::Malformed)?;
        let content_end = find(content, &next_delimiter, 0).ok_or(MultipartError::Malformed)?;
        if let Some(name) = part_name(headers) {
            let value = content
                .get(..content_end)
                .ok_or(MultipartError::Malformed)?;
            found.push(Part { name, value });
        }
        rest = content
            .get(content_end.saturating_add(next_delimiter.len())..)
            .ok_or(MultipartError::Malformed)?;
    }
}

/// The value of the form field `name` among `parts`, as text.
pub fn text_field<'a>(parts: &[Part<'a>], name: &str) -> Result<&'a str, MultipartError> {
    let part = parts
        .iter()
        .find(|p| p.name == name.as_bytes())
        .ok_or(MultipartError::Missing)?;
    std::str::from_utf8(part.value).map_err(|_| MultipartError::NotText)
}

/// The `name` parameter of a part's Content-Disposition header.
fn part_name(headers: &[u8]) -> Option<&[u8]> {
    for line in headers.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|b| *b == b':')?;
        let (field, value) = (line.get(..colon)?, line.get(colon.saturating_add(1)..)?);
        if !field.eq_ignore_ascii_case(b"content-disposition") {
            continue;
        }
        for param in value.split(|b| *b == b';').skip(1) {
            let param = param.trim_ascii_start();
            if let Some(quoted) = param.strip_prefix(b"name=") {
                let unquoted = quoted
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(quoted);
                return Some(unquoted);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=XyZ";

    fn form(parts: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, value) in parts {
            body.extend_from_slice(b"--XyZ\r\n");
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"").as_bytes(),
            );
            if *name == "file" {
                body.extend_from_slice(b"; filename=\"a.wav\"\r\nContent-Type: audio/wav");
            }
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(value.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body
    }

    fn text_field(ct: &str, body: &[u8], name: &str) -> Result<String, MultipartError> {
        super::text_field(&parts(ct, body)?, name).map(str::to_string)
    }

    #[test]
    fn boundaries() {
        assert_eq!(boundary(CT), Some("XyZ"));
        assert_eq!(
            boundary("Multipart/Form-Data; charset=x; boundary=\"a b\""),
            Some("a b")
        );
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/form-data; boundary="), None);
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={}", "a".repeat(71))),
            None
        );
    }

    #[test]
    fn finds_the_field_wherever_it_is() {
        let body = form(&[
            ("file", "RIFF\r\n--Xy binary"),
            ("model", "whisper-1"),
            ("language", "en"),
        ]);
        assert_eq!(text_field(CT, &body, "model"), Ok("whisper-1".to_string()));
        let body = form(&[("model", "whisper-1"), ("file", "data")]);
        assert_eq!(text_field(CT, &body, "model"), Ok("whisper-1".to_string()));
    }

    #[test]
    fn errors() {
        let body = form(&[("file", "data")]);
        assert_eq!(text_field(CT, &body, "model"), Err(MultipartError::Missing));
        assert_eq!(
            text_field("application/json", &body, "model"),
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            text_field(CT, b"garbage", "model"),
            Err(MultipartError::Malformed)
        );
        assert_eq!(
            text_field(CT, b"--XyZ\r\nno header end", "model"),
            Err(MultipartError::Malformed)
        );
        assert_eq!(text_field(CT, b"", "model"), Err(MultipartError::Malformed));
        let mut bad =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n\xff\xfe\r\n--XyZ--"
                .to_vec();
        assert_eq!(text_field(CT, &bad, "model"), Err(MultipartError::NotText));
        bad.truncate(40);
        assert_eq!(
            text_field(CT, &bad, "model"),
            Err(MultipartError::Malformed)
        );
    }

    #[test]
    fn lists_every_part() {
        let body = form(&[("model", "m"), ("file", "data"), ("language", "en")]);
        let names: Vec<&[u8]> = parts(CT, &body).unwrap().iter().map(|p| p.name).collect();
        assert_eq!(names, [&b"model"[..], b"file", b"language"]);
    }

    #[test]
    fn a_preamble_is_skipped() {
        let mut body = b"preamble text\r\n".to_vec();
        body.extend(form(&[("model", "m")]));
        assert_eq!(text_field(CT, &body, "model"), Ok("m".to_string()));
    }
}
