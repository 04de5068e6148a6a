//! The body to forward, as splices into the client's bytes: a JSON body's
//! model name and rewrites, a form's model field.

use crate::error::ApiError;
use crate::json::{self, Json, JsonObject};
use crate::validate::Rewrite;
use serde_json::value::RawValue;
use std::ops::Range;

/// A change to a body: the bytes in the range give way to the new ones (an
/// empty range inserts them).
type Splice = (Range<usize>, Vec<u8>);

/// The JSON body to forward: the client's (`None`), unless the model name
/// or one of `rewrites` (validation's, `previous_response_id`,
/// `include_usage`) changes it. Changes are spliced into the original bytes.
/// `document` is `body` parsed.
pub(super) fn rewrite_json(
    body: &[u8],
    document: &json::Members,
    requested: &str,
    upstream: &str,
    rewrites: &[Rewrite],
) -> Result<Option<Vec<u8>>, ApiError> {
    if requested == upstream && rewrites.is_empty() {
        return Ok(None);
    }
    let failed = || ApiError::with_status(500, "body rewrite failed");
    let mut splices: Vec<Splice> = Vec::with_capacity(rewrites.len().saturating_add(1));
    if requested != upstream {
        splices.push(model_splice(body, requested, upstream).ok_or_else(failed)?);
    }
    // Raw spans of members are needed only to replace one (rare): read them lazily.
    let mut raw: Option<JsonObject> = None;
    for rewrite in rewrites {
        splices.push(rewrite_splice(body, document, rewrite, &mut raw).ok_or_else(failed)?);
    }
    apply_splices(body, splices).map(Some).ok_or_else(failed)
}

/// The model name `requested` (a JSON string in `body`) replaced by the
/// backend's name for the model, quotes included.
fn model_splice(body: &[u8], requested: &str, upstream: &str) -> Option<Splice> {
    let span = json::span_of_str(body, requested)?;
    // The span is the string's content: widen it to the quotes.
    let quoted = span.start.checked_sub(1)?..span.end.saturating_add(1);
    Some((quoted, serde_json::to_vec(upstream).ok()?))
}

/// The splice one rewrite makes. `raw` is the body's raw members, read on
/// first need.
fn rewrite_splice<'a>(
    body: &'a [u8],
    document: &json::Members,
    rewrite: &Rewrite,
    raw: &mut Option<JsonObject<'a>>,
) -> Option<Splice> {
    match rewrite {
        Rewrite::ReplaceString { name, value } => {
            let current = raw_member(body, raw, name)?;
            let span = json::span_of_str(body, current.get())?;
            Some((span, serde_json::to_vec(value).ok()?))
        }
        Rewrite::Replace { name, json } => {
            let value = raw_member(body, raw, name)?;
            let span = json::span_of_str(body, value.get())?;
            Some((span, json.as_bytes().to_vec()))
        }
        Rewrite::IncludeUsage => include_usage_splice(body, document),
        Rewrite::Insert { name, json } => {
            let open = after_open_brace(body)?;
            Some((open..open, format!("\"{name}\":{json},").into_bytes()))
        }
    }
}

/// Member `name` of `body` as raw JSON, parsing the raw members into `raw`
/// the first time.
fn raw_member<'a>(
    body: &'a [u8],
    raw: &mut Option<JsonObject<'a>>,
    name: &str,
) -> Option<&'a RawValue> {
    if raw.is_none() {
        *raw = Some(JsonObject::parse(body).ok()?);
    }
    raw.as_ref()?.get(name)
}

/// Where a member inserted first in the body's object goes: just after its `{`.
fn after_open_brace(body: &[u8]) -> Option<usize> {
    Some(body.iter().position(|b| *b == b'{')?.saturating_add(1))
}

/// One copy of `body` with the splices in body order: sorted from the end
/// (a stable sort, the same as `usage`'s), taken backwards. Insertions at
/// the same offset thus go in the reverse of the order they were made.
fn apply_splices(body: &[u8], mut splices: Vec<Splice>) -> Option<Vec<u8>> {
    splices.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let added = splices.iter().fold(0usize, |sum, (_, replacement)| {
        sum.saturating_add(replacement.len())
    });
    let mut out = Vec::with_capacity(body.len().saturating_add(added));
    let mut copied = 0;
    for (range, replacement) in splices.iter().rev() {
        out.extend_from_slice(body.get(copied..range.start)?);
        out.extend_from_slice(replacement);
        copied = range.end;
    }
    out.extend_from_slice(body.get(copied..)?);
    Some(out)
}

/// A multipart body whose `model` field names the model as `requested`,
/// with the backend's name for it, `upstream`, instead (`None`: the same
/// name).
pub(super) fn rewrite_form_model(
    body: &[u8],
    requested: &str,
    upstream: &str,
) -> Result<Option<Vec<u8>>, ApiError> {
    if requested == upstream {
        return Ok(None);
    }
    let span = json::span_of_str(body, requested)
        .ok_or_else(|| ApiError::with_status(500, "model span not found"))?;
    json::splice(body, span, upstream.as_bytes())
        .map(Some)
        .ok_or_else(|| ApiError::with_status(500, "model rewrite failed"))
}

/// The splice that makes `stream_options.include_usage` true.
fn include_usage_splice(body: &[u8], document: &json::Members) -> Option<Splice> {
    // Usually the client sent no `stream_options`: insert it, without
    // reading the body a second time for the raw span of a member it lacks.
    let member = json::member(document, "stream_options");
    if member.is_none() {
        let open = after_open_brace(body)?;
        return Some((
            open..open,
            br#""stream_options":{"include_usage":true},"#.to_vec(),
        ));
    }
    let object = JsonObject::parse(body).ok()?;
    let options = object.get("stream_options")?;
    let span = json::span_of_str(body, options.get())?;
    if member.is_some_and(Json::is_null) {
        // Replace the null: a second `stream_options` member would be a
        // duplicate key, and a backend keeping the last one would read null.
        return Some((span, br#"{"include_usage":true}"#.to_vec()));
    }
    let inner = JsonObject::parse(options.get().as_bytes()).ok()?;
    match inner.get("include_usage") {
        Some(value) => Some((json::span_of_str(body, value.get())?, b"true".to_vec())),
        None => {
            let open = span.start.saturating_add(1);
            let empty = inner.keys().next().is_none();
            let text: &[u8] = if empty {
                br#""include_usage":true"#
            } else {
                br#""include_usage":true,"#
            };
            Some((open..open, text.to_vec()))
        }
    }
}
