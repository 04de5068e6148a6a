//! Images, speech, video and transcription requests: basic shape checks.

use super::checks::{self, *};
use super::{Ctx, Effects, Field, Path};
use crate::json::Json;

pub const IMAGE_FIELDS: &[Field] = &[
    Field::routing("model", "an image model from the catalog"),
    Field::required("prompt", prompt, "non-empty string"),
    Field::validated("n", image_count, "integer from 1 to 10"),
    Field::validated(
        "response_format",
        image_response_format,
        "`b64_json` only (`url` → 400); absent → sent as `b64_json`",
    )
    .with_default(r#""b64_json""#),
    Field::validated("user", checks::user, "string"),
];

pub const SPEECH_FIELDS: &[Field] = &[
    Field::routing("model", "an audio model from the catalog"),
    Field::required(
        "input",
        speech_input,
        "non-empty string of at most 4096 characters",
    ),
    Field::required("voice", voice, "non-empty string (voices differ per model)"),
    Field::validated(
        "response_format",
        speech_format,
        "`mp3`, `opus`, `aac`, `flac`, `wav` or `pcm`",
    ),
    Field::validated("speed", speed, "number from 0.25 to 4"),
];

pub const VIDEO_FIELDS: &[Field] = &[
    Field::routing("model", "a video model from the catalog"),
    Field::required("prompt", prompt, "non-empty string"),
];

/// multipart/form-data: only presence is checked; the rest is forwarded.
pub const TRANSCRIPTION_FIELDS: &[Field] = &[
    Field::routing("model", "form field: an audio model from the catalog"),
    Field::required_part("file", "form field: the audio file"),
];

fn prompt(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    non_empty_string(v, p).map(drop)
}

fn image_count(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    nullable(v, || {
        let n = positive_integer(v, p)?;
        if n > 10 {
            return Err(invalid(
                p,
                format!("{n} images were requested. Expected at most 10."),
            ));
        }
        Ok(())
    })
}

fn image_response_format(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    match v {
        Json::Null => Ok(()),
        Json::String(s) if s == "url" => Err(invalid(
            p,
            "this gateway returns images as base64 only. Set response_format to 'b64_json' (or leave it out).",
        )),
        _ => one_of(v, p, &["b64_json"]).map(drop),
    }
}

fn speech_input(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    let text = non_empty_string(v, p)?;
    let length = text.chars().count();
    if length > 4096 {
        return Err(invalid(
            p,
            format!("string too long. Expected at most 4096 characters, but got {length}."),
        ));
    }
    Ok(())
}

fn voice(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    non_empty_string(v, p).map(drop)
}

fn speech_format(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    one_of(v, p, &["mp3", "opus", "aac", "flac", "wav", "pcm"]).map(drop)
}

fn speed(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    nullable(v, || range(v, p, 0.25, 4.0))
}
