//! What a request's headers say about its body, checked before the body is
//! read: its encoding, its content type and its announced length.

use crate::endpoints::BodyKind;
use crate::error::{printable, ApiError};
use crate::headers::Headers;
use crate::multipart;

/// The `content-length`, when the request announces one.
pub fn declared_length(headers: &Headers) -> Option<u64> {
    headers
        .first_str("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// A request body must reach the gateway as it is: the gateway reads it to
/// route the request and does not decompress.
pub fn check_encoding(headers: &Headers) -> Result<(), ApiError> {
    for value in headers.values("content-encoding") {
        let value = String::from_utf8_lossy(value);
        let compressed = value
            .split(',')
            .map(str::trim)
            .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
        if compressed {
            return Err(ApiError::with_status(
                415,
                format!(
                    "Compressed request bodies are not accepted (content-encoding: {}): the gateway reads \
                     the body to route the request and does not decompress it. Send the body uncompressed, \
                     without a Content-Encoding header.",
                    printable(&value, 64)
                ),
            ));
        }
    }
    Ok(())
}

/// JSON endpoints take `application/json` (parameters allowed, the charset
/// UTF-8 if given); the transcription endpoint takes multipart/form-data with
/// a boundary. Anything else is a 415 that says what to send.
pub fn check_type(value: Option<&[u8]>, kind: BodyKind) -> Result<(), ApiError> {
    let value = value.map(String::from_utf8_lossy);
    let value = value.as_deref().map(str::trim).filter(|v| !v.is_empty());
    let sent = || match value {
        Some(v) => format!("`{}`", printable(v, 100)),
        None => "no content type".to_string(),
    };
    match kind {
        BodyKind::Json => {
            let mut params = value.unwrap_or_default().split(';');
            let media_type = params.next().unwrap_or_default().trim();
            if !media_type.eq_ignore_ascii_case("application/json") {
                return Err(ApiError::with_status(
                    415,
                    format!(
                        "This endpoint takes a JSON body, and the request has {}. Send the body as JSON \
                         with `Content-Type: application/json` (the OpenAI SDKs do).",
                        sent()
                    ),
                ));
            }
            let charset = params.find_map(|p| {
                let (name, value) = p.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("charset")
                    .then(|| value.trim().trim_matches('"'))
            });
            match charset {
                Some(c) if !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("utf8") => {
                    Err(ApiError::with_status(
                        415,
                        format!(
                            "The request body must be UTF-8 JSON, and the request has {}. Send UTF-8 with \
                             `Content-Type: application/json`.",
                            sent()
                        ),
                    ))
                }
                _ => Ok(()),
            }
        }
        BodyKind::Multipart if value.and_then(multipart::boundary).is_none() => {
            Err(ApiError::with_status(
                415,
                format!(
                    "This endpoint takes multipart/form-data with `file` and `model` fields, and the request \
                     has {}. Send `Content-Type: multipart/form-data; boundary=…` with the form (the OpenAI \
                     SDKs do).",
                    sent()
                ),
            ))
        }
        BodyKind::Multipart | BodyKind::None => Ok(()),
    }
}
