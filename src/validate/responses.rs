//! POST /v1/responses.

use super::checks::{self, *};
use super::{Ctx, Effects, Field, Path};
use crate::catalog::Capability;
use crate::error::ApiError;
use crate::json::{member, Json};

pub const FIELDS: &[Field] = &[
    Field::routing("model", "a model id or alias from the catalog; picks the backend"),
    Field::required("input", input, "a non-empty string or a non-empty array of input items"),
    Field::validated("background", checks::optional_bool, "boolean"),
    Field::forwarded("conversation", "forwarded"),
    Field::unsupported("frequency_penalty", "frequency_penalty is not supported in the Responses API. Remove it, or use POST /v1/chat/completions."),
    Field::forwarded("include", "forwarded"),
    Field::validated("instructions", instructions, "string"),
    Field::validated("max_output_tokens", checks::token_limit, "positive integer"),
    Field::validated("max_tool_calls", checks::token_limit, "positive integer"),
    Field::validated("metadata", checks::metadata, "at most 16 pairs; keys ≤ 64 characters, values strings ≤ 512 characters"),
    Field::validated("parallel_tool_calls", checks::optional_bool, "boolean"),
    Field::unsupported("presence_penalty", "presence_penalty is not supported in the Responses API. Remove it, or use POST /v1/chat/completions."),
    Field::validated("previous_response_id", previous_response_id, "an id this gateway issued to the same key, on the model's backend"),
    Field::forwarded("prompt", "forwarded"),
    Field::forwarded("prompt_cache_key", "forwarded"),
    Field::forwarded("reasoning", "forwarded"),
    Field::forwarded("safety_identifier", "forwarded"),
    Field::forwarded("service_tier", "forwarded"),
    Field::validated("store", checks::optional_bool, "boolean (default true: the response can be retrieved by id)"),
    Field::validated("stream", checks::optional_bool, "boolean"),
    Field::validated("stream_options", checks::stream_options, "object, only with `stream: true`"),
    Field::validated("temperature", checks::temperature, "number from 0 to 2"),
    Field::validated("text", text, "object (`format`, `verbosity`)"),
    Field::validated("tool_choice", tool_choice, "`none`, `auto`, `required`, or an object with a `type`"),
    Field::validated("tools", tools, "at most 128 function and web search tools, function names `^[a-zA-Z0-9_-]{1,64}$`; only on `tool_use` models"),
    Field::validated("top_logprobs", top_logprobs, "integer from 0 to 8"),
    Field::validated("top_p", checks::top_p, "number from 0 to 1"),
    Field::validated("truncation", truncation, "`auto` or `disabled`"),
    Field::validated("user", checks::user, "string"),
];

fn input(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    match v {
        Json::String(_) => non_empty_string(v, p).map(drop),
        Json::Array(items) if items.is_empty() => {
            Err(invalid(p, "empty array. Expected at least one input item."))
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if !matches!(item, Json::Object(_) | Json::String(_)) {
                    return Err(type_error(&p.index(i), "an input item object", item));
                }
            }
            Ok(())
        }
        other => Err(type_error(p, "a string or an array of input items", other)),
    }
}

fn instructions(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    nullable(v, || string(v, p).map(drop))
}

fn previous_response_id(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    // Its routing is checked by the pipeline, which knows the key.
    nullable(v, || non_empty_string(v, p).map(drop))
}

fn text(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    nullable(v, || {
        let t = object(v, p)?;
        if let Some(format) = member(t, "format") {
            let fp = p.field("format");
            let f = object(format, &fp)?;
            one_of(
                required(f, "type", &fp)?,
                &fp.field("type"),
                &["text", "json_object", "json_schema"],
            )?;
        }
        Ok(())
    })
}

fn tool_choice(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    match v {
        Json::Null => Ok(()),
        Json::String(_) => one_of(v, p, &["none", "auto", "required"]).map(drop),
        Json::Object(m) => string(required(m, "type", p)?, &p.field("type")).map(drop),
        other => Err(type_error(p, "a string or an object", other)),
    }
}

const TOOL_TYPES: &[&str] = &["function", "web_search", "web_search_preview"];

fn tools(v: &Json, p: &Path, ctx: &Ctx, _: &mut Effects) -> Result {
    if v.is_null() {
        return Ok(());
    }
    let items = array(v, p)?;
    at_most(p, items.len(), 128, "tools")?;
    if !items.is_empty() && !ctx.model.has(Capability::ToolUse) {
        return Err(ApiError::bad_request(format!(
            "The model `{}` does not support tools. Remove 'tools', or use a model with the `tool_use` capability.",
            ctx.model.id
        ))
        .with_param("tools"));
    }
    for (i, item) in items.iter().enumerate() {
        let tp = p.index(i);
        let tool = object(item, &tp)?;
        let kind = one_of(required(tool, "type", &tp)?, &tp.field("type"), TOOL_TYPES)?;
        if kind == "function" {
            name_rule(required(tool, "name", &tp)?, &tp.field("name"))?;
            if let Some(parameters) = member(tool, "parameters") {
                nullable(parameters, || {
                    object(parameters, &tp.field("parameters")).map(drop)
                })?;
            }
        }
    }
    Ok(())
}

fn top_logprobs(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    nullable(v, || {
        let n = integer(v, p)?;
        if (0..=8).contains(&n) {
            Ok(())
        } else {
            Err(invalid(
                p,
                format!("{n} is out of range. Expected an integer between 0 and 8."),
            ))
        }
    })
}

fn truncation(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    nullable(v, || one_of(v, p, &["auto", "disabled"]).map(drop))
}
