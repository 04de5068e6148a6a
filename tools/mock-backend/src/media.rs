//! Images, audio and video: `POST /v1/images/generations`,
//! `/v1/audio/speech`, `/v1/audio/transcriptions`, `/v1/videos/generations`
//! and `GET /v1/videos/{id}`.

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::body::MockBody;
use crate::common::{model_of, now_secs, set_field};
use crate::reply::{bytes_response, json_response, not_found};
use crate::state::{lock, State, VideoJob};

/// A valid 1x1 RGBA PNG, already base64-encoded.
const PNG_1X1_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// An ID3v2.4 tag header declaring 54 bytes of padding.
const ID3_HEADER: [u8; 10] = [b'I', b'D', b'3', 4, 0, 0, 0, 0, 0, 54];
/// The speech "audio": the ID3 header and its padding.
const SPEECH_BYTES: usize = 64;

/// `POST /v1/images/generations`: `n` (1 to 4) copies of the 1x1 PNG.
pub fn images(req: &Value) -> Response<MockBody> {
    let n = req
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 4);
    let prompt = req.get("prompt").cloned().unwrap_or(Value::Null);
    let data: Vec<Value> = (0..n)
        .map(|_| json!({"b64_json": PNG_1X1_B64, "revised_prompt": prompt}))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"created": now_secs(), "data": data}),
    )
}

/// `POST /v1/audio/speech`: an MP3 file that is only an ID3 tag.
pub fn speech() -> Response<MockBody> {
    let mut b = Vec::with_capacity(SPEECH_BYTES);
    b.extend_from_slice(&ID3_HEADER);
    b.resize(SPEECH_BYTES, 0);
    bytes_response(StatusCode::OK, "audio/mpeg", Bytes::from(b))
}

/// Whether a multipart transcription request asks for
/// `response_format=text`.
fn transcription_wants_text(body: &[u8]) -> bool {
    const KEY: &[u8] = b"name=\"response_format\"";
    let Some(pos) = body.windows(KEY.len()).position(|w| w == KEY) else {
        return false;
    };
    let rest = body.get(pos + KEY.len()..).unwrap_or_default();
    // Skip to the end of the part headers (blank line), then read the value.
    let Some(hdr_end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let value = rest.get(hdr_end + 4..).unwrap_or_default();
    value.starts_with(b"text") && !value.starts_with(b"text_")
}

/// `POST /v1/audio/transcriptions`: as JSON, or as plain text if asked.
pub fn transcriptions(state: &State, body: &[u8]) -> Response<MockBody> {
    let text = format!("Transcribed by {}.", state.name);
    if transcription_wants_text(body) {
        return bytes_response(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            Bytes::from(format!("{text}\n")),
        );
    }
    json_response(StatusCode::OK, &json!({"text": text}))
}

/// `POST /v1/videos/generations`: a `queued` job, kept for polling.
pub fn videos(state: &State, req: &Value) -> Response<MockBody> {
    let id = format!("video_{}_{}", state.name, state.next_id());
    let job = json!({
        "id": id,
        "object": "video.generation",
        "status": "queued",
        "model": model_of(req),
        "created": now_secs(),
    });
    let resp = json_response(StatusCode::OK, &job);
    lock(&state.videos).insert(id, VideoJob { polls: 0, job });
    resp
}

/// `GET /v1/videos/{id}`: `in_progress` the first time, `completed` (with a
/// `url`) after that.
pub fn video_job(state: &State, id: &str) -> Response<MockBody> {
    let job = {
        let mut videos = lock(&state.videos);
        let Some(entry) = videos.get_mut(id) else {
            drop(videos);
            return not_found(&format!("No video found with id '{id}'."), None);
        };
        entry.polls = entry.polls.saturating_add(1);
        let mut job = entry.job.clone();
        if entry.polls == 1 {
            set_field(&mut job, "status", json!("in_progress"));
        } else {
            set_field(&mut job, "status", json!("completed"));
            let url = format!("https://example.invalid/videos/{id}.mp4");
            set_field(&mut job, "url", json!(url));
        }
        job
    };
    json_response(StatusCode::OK, &job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcription_text_format_detection() {
        let body =
            b"--b\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\ntext\r\n--b--";
        assert!(transcription_wants_text(body));
        let body =
            b"--b\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\njson\r\n--b--";
        assert!(!transcription_wants_text(body));
        assert!(!transcription_wants_text(b"garbage"));
    }
}
