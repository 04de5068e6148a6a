//! POST /v1/chat/completions.

use super::checks::{self, *};
use super::{Ctx, Effects, Field, Path, Rewrite};
use crate::catalog::Capability;
use crate::error::{printable, ApiError};
use crate::json::{member, Json, Members};

pub const FIELDS: &[Field] = &[
    Field::routing("model", "a model id or alias from the catalog; picks the backend"),
    Field::required("messages", messages, "non-empty array; each message checked by `role` (developer, system, user, assistant, tool, function) with its required fields and content-part types; image parts only on `vision` models"),
    Field::forwarded("audio", "forwarded"),
    Field::validated("frequency_penalty", checks::penalty, "number from -2 to 2"),
    Field::forwarded("function_call", "forwarded (deprecated form of tool_choice)"),
    Field::validated("functions", functions, "deprecated form of tools: at most 128, names `^[a-zA-Z0-9_-]{1,64}$`; only on `tool_use` models"),
    Field::validated("logit_bias", checks::logit_bias, "token id → integer from -100 to 100"),
    Field::unsupported("logprobs", "logprobs is not supported by this gateway: its backends do not return token log probabilities. Remove 'logprobs' (and 'top_logprobs')."),
    Field::validated("max_completion_tokens", checks::token_limit, "positive integer"),
    Field::validated("max_tokens", checks::token_limit, "positive integer"),
    Field::validated("metadata", checks::metadata, "at most 16 pairs; keys ≤ 64 characters, values strings ≤ 512 characters"),
    Field::forwarded("modalities", "forwarded"),
    Field::validated("n", checks::n, "1 or absent: the gateway returns a single choice (n > 1 → 400)"),
    Field::validated("parallel_tool_calls", checks::optional_bool, "boolean"),
    Field::forwarded("prediction", "forwarded"),
    Field::validated("presence_penalty", checks::penalty, "number from -2 to 2"),
    Field::forwarded("prompt_cache_key", "forwarded"),
    Field::forwarded("reasoning_effort", "forwarded"),
    Field::validated("response_format", response_format, "`text`, `json_object`, or `json_schema` (`json_schema.name` required, `^[a-zA-Z0-9_-]{1,64}$`); json_schema on a model without the `json_schema` label is sent as `{\"type\": \"json_object\"}` and the response carries `x-gateway-response-format: json_object`"),
    Field::forwarded("safety_identifier", "forwarded"),
    Field::validated("seed", checks::seed, "integer"),
    Field::forwarded("service_tier", "forwarded"),
    Field::validated("stop", checks::stop, "a string or up to 4 strings"),
    Field::forwarded("store", "forwarded"),
    Field::validated("stream", checks::optional_bool, "boolean"),
    Field::validated("stream_options", checks::stream_options, "object, only with `stream: true`; `include_usage` boolean"),
    Field::validated("temperature", checks::temperature, "number from 0 to 2"),
    Field::validated("tool_choice", tool_choice, "`none`, `auto`, `required`, or an object naming a tool defined in `tools` (`function`, `custom`, `allowed_tools`)"),
    Field::validated("tools", tools, "1 to 128 function or custom tools, names `^[a-zA-Z0-9_-]{1,64}$`, `parameters` an object; only on `tool_use` models"),
    Field::unsupported("top_logprobs", "top_logprobs is not supported by this gateway: its backends do not return token log probabilities. Remove 'top_logprobs' (and 'logprobs')."),
    Field::validated("top_p", checks::top_p, "number from 0 to 1"),
    Field::validated("user", checks::user, "string"),
    Field::forwarded("verbosity", "forwarded"),
    Field::forwarded("web_search_options", "forwarded"),
];

const ROLES: &[&str] = &[
    "developer",
    "system",
    "user",
    "assistant",
    "tool",
    "function",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Text,
    Image,
    Audio,
    File,
    Refusal,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Text => "text",
            Part::Image => "image_url",
            Part::Audio => "input_audio",
            Part::File => "file",
            Part::Refusal => "refusal",
        }
    }
}

const TEXT_ONLY: &[Part] = &[Part::Text];
const USER_PARTS: &[Part] = &[Part::Text, Part::Image, Part::Audio, Part::File];
const ASSISTANT_PARTS: &[Part] = &[Part::Text, Part::Refusal];

fn messages(v: &Json, p: &Path, ctx: &Ctx, _: &mut Effects) -> Result {
    let items = array(v, p)?;
    if items.is_empty() {
        return Err(invalid(
            p,
            "empty array. Expected an array with at least one message.",
        ));
    }
    for (i, item) in items.iter().enumerate() {
        message(item, &p.index(i), ctx)?;
    }
    Ok(())
}

fn message(v: &Json, p: &Path, ctx: &Ctx) -> Result {
    let m = object(v, p)?;
    let role = one_of(required(m, "role", p)?, &p.field("role"), ROLES)?;
    if let Some(name) = member(m, "name") {
        string(name, &p.field("name"))?;
    }
    let content_path = p.field("content");
    match role {
        "developer" | "system" => content(
            required(m, "content", p)?,
            &content_path,
            role,
            TEXT_ONLY,
            ctx,
        ),
        "user" => content(
            required(m, "content", p)?,
            &content_path,
            role,
            USER_PARTS,
            ctx,
        ),
        "tool" => {
            string(required(m, "tool_call_id", p)?, &p.field("tool_call_id"))?;
            content(
                required(m, "content", p)?,
                &content_path,
                role,
                TEXT_ONLY,
                ctx,
            )
        }
        "function" => {
            string(required(m, "name", p)?, &p.field("name"))?;
            match required(m, "content", p)? {
                Json::Null | Json::String(_) => Ok(()),
                other => Err(type_error(&content_path, "a string or null", other)),
            }
        }
        _ => assistant(m, p, ctx),
    }
}

fn assistant(m: &Members, p: &Path, ctx: &Ctx) -> Result {
    let tool_calls = member(m, "tool_calls").filter(|v| !v.is_null());
    if let Some(calls) = tool_calls {
        let calls_path = p.field("tool_calls");
        for (i, call) in array(calls, &calls_path)?.iter().enumerate() {
            tool_call(call, &calls_path.index(i))?;
        }
    }
    let has_calls = matches!(tool_calls, Some(Json::Array(calls)) if !calls.is_empty())
        || member(m, "function_call").is_some_and(|v| !v.is_null());
    match member(m, "content") {
        None | Some(Json::Null) if !has_calls => Err(ApiError::bad_request(format!(
            "Invalid '{p}': an assistant message needs 'content' unless it has 'tool_calls' or 'function_call'."
        ))
        .with_param(p.field("content").to_string())),
        None | Some(Json::Null) => Ok(()),
        Some(c) => content(c, &p.field("content"), "assistant", ASSISTANT_PARTS, ctx),
    }?;
    if let Some(refusal) = member(m, "refusal") {
        nullable(refusal, || string(refusal, &p.field("refusal")).map(drop))?;
    }
    Ok(())
}

fn tool_call(v: &Json, p: &Path) -> Result {
    let call = object(v, p)?;
    string(required(call, "id", p)?, &p.field("id"))?;
    let kind = one_of(
        required(call, "type", p)?,
        &p.field("type"),
        &["function", "custom"],
    )?;
    // The call's body is the member named after its type.
    let (key, payload) = if kind == "function" {
        ("function", "arguments")
    } else {
        ("custom", "input")
    };
    let body_path = p.field(key);
    let body = object(required(call, key, p)?, &body_path)?;
    string(
        required(body, "name", &body_path)?,
        &body_path.field("name"),
    )?;
    string(
        required(body, payload, &body_path)?,
        &body_path.field(payload),
    )?;
    Ok(())
}

/// A message's `content`: a string, or a non-empty array of allowed parts.
fn content(v: &Json, p: &Path, role: &str, allowed: &[Part], ctx: &Ctx) -> Result {
    let parts = match v {
        Json::String(_) => return Ok(()),
        Json::Array(parts) => parts,
        other => {
            return Err(type_error(
                p,
                "a string or an array of content parts",
                other,
            ))
        }
    };
    if parts.is_empty() {
        return Err(invalid(
            p,
            "empty array. Expected a string or at least one content part.",
        ));
    }
    let names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
    for (i, part) in parts.iter().enumerate() {
        let pp = p.index(i);
        let members = object(part, &pp)?;
        let type_path = pp.field("type");
        let kind = string(required(members, "type", &pp)?, &type_path)?;
        let Some(kind) = allowed.iter().copied().find(|a| a.name() == kind) else {
            return Err(ApiError::bad_request(format!(
                "Invalid value for '{type_path}': '{}' parts are not allowed in {role} messages. Supported values are: {}.",
                printable(kind, 32),
                quoted_list(&names)
            ))
            .with_param(type_path.to_string()));
        };
        content_part(kind, members, &pp, ctx)?;
    }
    Ok(())
}

fn content_part(kind: Part, m: &Members, p: &Path, ctx: &Ctx) -> Result {
    match kind {
        Part::Text => string(required(m, "text", p)?, &p.field("text")).map(drop),
        Part::Refusal => string(required(m, "refusal", p)?, &p.field("refusal")).map(drop),
        Part::Image => image_part(m, p, ctx),
        Part::Audio => audio_part(m, p),
        Part::File => file_part(m, p),
    }
}

/// An `image_url` part: only for `vision` models; an http(s) or `data:` URL.
fn image_part(m: &Members, p: &Path, ctx: &Ctx) -> Result {
    if !ctx.model.has(Capability::Vision) {
        return Err(ApiError::bad_request(format!(
            "Invalid '{p}': the model `{}` does not accept images. Use a model with the `vision` capability (a multimodal model from GET /v1/models).",
            ctx.model.id
        ))
        .with_param(p.to_string()));
    }
    let ip = p.field("image_url");
    let image = object(required(m, "image_url", p)?, &ip)?;
    let url = non_empty_string(required(image, "url", &ip)?, &ip.field("url"))?;
    if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("data:")) {
        return Err(invalid(
            &ip.field("url"),
            "expected an http(s) URL or a base64 `data:` URL.",
        ));
    }
    if let Some(detail) = member(image, "detail") {
        one_of(detail, &ip.field("detail"), &["auto", "low", "high"])?;
    }
    Ok(())
}

/// An `input_audio` part: base64 `data` in `wav` or `mp3`.
fn audio_part(m: &Members, p: &Path) -> Result {
    let ap = p.field("input_audio");
    let audio = object(required(m, "input_audio", p)?, &ap)?;
    string(required(audio, "data", &ap)?, &ap.field("data"))?;
    one_of(
        required(audio, "format", &ap)?,
        &ap.field("format"),
        &["wav", "mp3"],
    )?;
    Ok(())
}

/// A `file` part: inline `file_data` only (no Files API, so no `file_id`).
fn file_part(m: &Members, p: &Path) -> Result {
    let fp = p.field("file");
    let file = object(required(m, "file", p)?, &fp)?;
    if member(file, "file_id").is_some() {
        return Err(invalid(
            &fp.field("file_id"),
            "the Files API is not supported by this gateway. Send the file inline as 'file_data' (base64).",
        ));
    }
    string(required(file, "file_data", &fp)?, &fp.field("file_data"))?;
    if let Some(name) = member(file, "filename") {
        string(name, &fp.field("filename"))?;
    }
    Ok(())
}

fn require_tool_use(ctx: &Ctx, param: &'static str) -> Result {
    if ctx.model.has(Capability::ToolUse) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "The model `{}` does not support tools. Remove '{param}', or use a model with the `tool_use` capability.",
            ctx.model.id
        ))
        .with_param(param))
    }
}

fn tools(v: &Json, p: &Path, ctx: &Ctx, _: &mut Effects) -> Result {
    if v.is_null() {
        return Ok(());
    }
    let items = array(v, p)?;
    if items.is_empty() {
        return Err(invalid(
            p,
            "empty array. Expected at least one tool, or leave 'tools' out.",
        ));
    }
    at_most(p, items.len(), 128, "tools")?;
    require_tool_use(ctx, "tools")?;
    for (i, item) in items.iter().enumerate() {
        let tp = p.index(i);
        let tool = object(item, &tp)?;
        let kind = one_of(
            required(tool, "type", &tp)?,
            &tp.field("type"),
            &["function", "custom"],
        )?;
        if kind == "function" {
            let fp = tp.field("function");
            function_definition(object(required(tool, "function", &tp)?, &fp)?, &fp)?;
        } else {
            let cp = tp.field("custom");
            let custom = object(required(tool, "custom", &tp)?, &cp)?;
            name_rule(required(custom, "name", &cp)?, &cp.field("name"))?;
            if let Some(description) = member(custom, "description") {
                string(description, &cp.field("description"))?;
            }
        }
    }
    Ok(())
}

fn function_definition(f: &Members, p: &Path) -> Result {
    name_rule(required(f, "name", p)?, &p.field("name"))?;
    if let Some(description) = member(f, "description") {
        string(description, &p.field("description"))?;
    }
    if let Some(parameters) = member(f, "parameters") {
        object(parameters, &p.field("parameters"))?;
    }
    if let Some(strict) = member(f, "strict") {
        nullable(strict, || boolean(strict, &p.field("strict")).map(drop))?;
    }
    Ok(())
}

fn functions(v: &Json, p: &Path, ctx: &Ctx, _: &mut Effects) -> Result {
    let items = array(v, p)?;
    at_most(p, items.len(), 128, "functions")?;
    require_tool_use(ctx, "functions")?;
    for (i, item) in items.iter().enumerate() {
        let fp = p.index(i);
        function_definition(object(item, &fp)?, &fp)?;
    }
    Ok(())
}

/// The names of the tools of kind `kind` defined in `tools`.
fn defined(ctx: &Ctx, kind: &str) -> Vec<String> {
    let Some(Json::Array(tools)) = ctx.sibling("tools") else {
        return Vec::new();
    };
    tools
        .iter()
        .filter(|t| t.get("type").and_then(Json::as_str) == Some(kind))
        .filter_map(|t| t.get(kind)?.get("name")?.as_str().map(str::to_string))
        .collect()
}

fn tool_choice(v: &Json, p: &Path, ctx: &Ctx, _: &mut Effects) -> Result {
    let has_tools = matches!(ctx.sibling("tools"), Some(Json::Array(t)) if !t.is_empty());
    let only_with_tools = || {
        ApiError::bad_request("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.")
            .with_param("tool_choice")
    };
    match v {
        Json::Null => Ok(()),
        Json::String(_) => {
            let choice = one_of(v, p, &["none", "auto", "required"])?;
            if choice != "none" && !has_tools {
                return Err(only_with_tools());
            }
            Ok(())
        }
        Json::Object(m) => {
            if !has_tools {
                return Err(only_with_tools());
            }
            tool_choice_object(m, p, ctx)
        }
        other => Err(type_error(p, "a string or an object", other)),
    }
}

/// `tool_choice` as an object: `allowed_tools`, or a function or custom
/// tool that `tools` defines, by name.
fn tool_choice_object(m: &Members, p: &Path, ctx: &Ctx) -> Result {
    let kind = one_of(
        required(m, "type", p)?,
        &p.field("type"),
        &["function", "custom", "allowed_tools"],
    )?;
    if kind == "allowed_tools" {
        let ap = p.field("allowed_tools");
        let allowed = object(required(m, "allowed_tools", p)?, &ap)?;
        one_of(
            required(allowed, "mode", &ap)?,
            &ap.field("mode"),
            &["auto", "required"],
        )?;
        array(required(allowed, "tools", &ap)?, &ap.field("tools"))?;
        return Ok(());
    }
    let key = if kind == "function" {
        "function"
    } else {
        "custom"
    };
    let kp = p.field(key);
    let named = object(required(m, key, p)?, &kp)?;
    let np = kp.field("name");
    let name = string(required(named, "name", &kp)?, &np)?;
    if !defined(ctx, kind).iter().any(|d| d == name) {
        return Err(invalid(
            &np,
            format!(
                "no {kind} tool named '{}' is defined in 'tools'.",
                printable(name, 64)
            ),
        ));
    }
    Ok(())
}

fn response_format(v: &Json, p: &Path, ctx: &Ctx, effects: &mut Effects) -> Result {
    if v.is_null() {
        return Ok(());
    }
    let format = object(v, p)?;
    let kind = one_of(
        required(format, "type", p)?,
        &p.field("type"),
        &["text", "json_object", "json_schema"],
    )?;
    if kind != "json_schema" {
        return Ok(());
    }
    let sp = p.field("json_schema");
    let schema = object(required(format, "json_schema", p)?, &sp)?;
    name_rule(required(schema, "name", &sp)?, &sp.field("name"))?;
    if let Some(description) = member(schema, "description") {
        string(description, &sp.field("description"))?;
    }
    if let Some(body) = member(schema, "schema") {
        object(body, &sp.field("schema"))?;
    }
    if let Some(strict) = member(schema, "strict") {
        nullable(strict, || boolean(strict, &sp.field("strict")).map(drop))?;
    }
    if !ctx.model.has(Capability::JsonSchema) {
        effects.rewrites.push(Rewrite::Replace {
            name: "response_format",
            json: r#"{"type":"json_object"}"#,
        });
        effects
            .response_headers
            .push((RESPONSE_FORMAT_HEADER, "json_object"));
    }
    Ok(())
}

/// Set on responses whose `json_schema` request was sent as `json_object`.
pub const RESPONSE_FORMAT_HEADER: &str = "x-gateway-response-format";
