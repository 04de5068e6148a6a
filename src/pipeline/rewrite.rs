//! The body to forward, as splices into the client's bytes.

use crate::catalog::Model;
use crate::error::ApiError;
use crate::json::{self, Json, JsonObject};
use crate::validate::Rewrite;
use std::ops::Range;

/// The body to forward: the client's, unless the model name or a rewrite
/// from validation changes it. Changes are spliced into the original bytes.
/// `document` is `body` parsed.
pub(super) fn rewrite_json(
    body: &[u8],
    document: &json::Members,
    requested: &str,
    model: &Model,
    rewrites: &[Rewrite],
) -> Result<Option<Vec<u8>>, ApiError> {
    let upstream = model.upstream_name();
    if requested == upstream && rewrites.is_empty() {
        return Ok(None);
    }
    let failed = || ApiError::with_status(500, "body rewrite failed");
    let mut edits: Vec<(Range<usize>, Vec<u8>)> =
        Vec::with_capacity(rewrites.len().saturating_add(1));
    if requested != upstream {
        let span = json::span_of_str(body, requested).ok_or_else(failed)?;
        // The span is the string's content: widen it to the quotes.
        let quoted = span.start.checked_sub(1).ok_or_else(failed)?..span.end.saturating_add(1);
        edits.push((quoted, serde_json::to_vec(upstream).map_err(|_| failed())?));
    }
    // Raw spans of members are needed only to replace one (rare): read them lazily.
    let mut raw: Option<JsonObject> = None;
    for rewrite in rewrites {
        match rewrite {
            Rewrite::ReplaceString { name, value } => {
                if raw.is_none() {
                    raw = Some(JsonObject::parse(body).map_err(|_| failed())?);
                }
                let current = raw.as_ref().and_then(|o| o.get(name)).ok_or_else(failed)?;
                let span = json::span_of_str(body, current.get()).ok_or_else(failed)?;
                edits.push((span, serde_json::to_vec(value).map_err(|_| failed())?));
            }
            Rewrite::Replace { name, json } => {
                if raw.is_none() {
                    raw = Some(JsonObject::parse(body).map_err(|_| failed())?);
                }
                let value = raw.as_ref().and_then(|o| o.get(name)).ok_or_else(failed)?;
                let span = json::span_of_str(body, value.get()).ok_or_else(failed)?;
                edits.push((span, json.as_bytes().to_vec()));
            }
            Rewrite::IncludeUsage => {
                edits.push(include_usage_edit(body, document).ok_or_else(failed)?)
            }
            Rewrite::Insert { name, json } => {
                let open = body
                    .iter()
                    .position(|b| *b == b'{')
                    .ok_or_else(failed)?
                    .saturating_add(1);
                edits.push((open..open, format!("\"{name}\":{json},").into_bytes()));
            }
        }
    }
    // One copy, in body order: the edits sorted from the end (a stable sort,
    // the same as `usage`'s), taken backwards. Insertions at the same offset
    // thus go in the reverse of the order they were made.
    edits.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let added = edits.iter().fold(0usize, |sum, (_, replacement)| {
        sum.saturating_add(replacement.len())
    });
    let mut out = Vec::with_capacity(body.len().saturating_add(added));
    let mut copied = 0;
    for (range, replacement) in edits.iter().rev() {
        out.extend_from_slice(body.get(copied..range.start).ok_or_else(failed)?);
        out.extend_from_slice(replacement);
        copied = range.end;
    }
    out.extend_from_slice(body.get(copied..).ok_or_else(failed)?);
    Ok(Some(out))
}

/// The splice that makes `stream_options.include_usage` true.
fn include_usage_edit(body: &[u8], document: &json::Members) -> Option<(Range<usize>, Vec<u8>)> {
    // Usually the client sent no `stream_options`: insert it, without
    // reading the body a second time for the raw span of a member it lacks.
    let member = json::member(document, "stream_options");
    if member.is_none() {
        let open = body.iter().position(|b| *b == b'{')?.saturating_add(1);
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
