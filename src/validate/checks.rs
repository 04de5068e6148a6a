//! Checks shared by several tables, and the wording of their errors (modelled
//! on OpenAI's: what was wrong, what is allowed).

use super::{Ctx, Effects, Path};
use crate::error::{printable, ApiError};
use crate::json::{Json, Members};

pub type Result<T = ()> = std::result::Result<T, ApiError>;

pub fn type_error(path: &Path, expected: &str, got: &Json) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid type for '{path}': expected {expected}, but got {} instead.",
        got.type_name()
    ))
    .with_param(path.to_string())
}

pub fn invalid(path: &Path, detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Invalid '{path}': {detail}")).with_param(path.to_string())
}

pub fn number(value: &Json, path: &Path) -> Result<f64> {
    match value {
        Json::Number(n) => n
            .as_f64()
            .ok_or_else(|| type_error(path, "a number", value)),
        _ => Err(type_error(path, "a number", value)),
    }
}

pub fn range(value: &Json, path: &Path, min: f64, max: f64) -> Result {
    let x = number(value, path)?;
    if (min..=max).contains(&x) {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("{x} is out of range. Expected a value between {min} and {max}."),
        ))
    }
}

pub fn integer(value: &Json, path: &Path) -> Result<i64> {
    match value {
        Json::Number(n) => match n.as_i64() {
            Some(i) => Ok(i),
            // Integers past u64 (2^64 and up) are read as decimals: a whole
            // one that large is still an integer, out of range.
            None if n.is_u64()
                || n.as_f64()
                    .is_some_and(|x| x.fract() == 0.0 && x.abs() >= 2f64.powi(63)) =>
            {
                Err(invalid(path, format!("{n} is out of the integer range.")))
            }
            None => Err(type_error(path, "an integer", value)),
        },
        _ => Err(type_error(path, "an integer", value)),
    }
}

pub fn positive_integer(value: &Json, path: &Path) -> Result<i64> {
    let i = integer(value, path)?;
    if i >= 1 {
        Ok(i)
    } else {
        Err(invalid(
            path,
            format!("integer below minimum value. Expected a value >= 1, but got {i} instead."),
        ))
    }
}

pub fn string<'v>(value: &'v Json, path: &Path) -> Result<&'v str> {
    value
        .as_str()
        .ok_or_else(|| type_error(path, "a string", value))
}

pub fn non_empty_string<'v>(value: &'v Json, path: &Path) -> Result<&'v str> {
    let s = string(value, path)?;
    if s.is_empty() {
        Err(invalid(path, "empty string. Expected a non-empty string."))
    } else {
        Ok(s)
    }
}

pub fn boolean(value: &Json, path: &Path) -> Result<bool> {
    match value {
        Json::Bool(b) => Ok(*b),
        _ => Err(type_error(path, "a boolean", value)),
    }
}

pub fn object<'v, 'a>(value: &'v Json<'a>, path: &Path) -> Result<&'v Members<'a>> {
    match value {
        Json::Object(members) => Ok(members),
        _ => Err(type_error(path, "an object", value)),
    }
}

pub fn array<'v, 'a>(value: &'v Json<'a>, path: &Path) -> Result<&'v [Json<'a>]> {
    match value {
        Json::Array(items) => Ok(items),
        _ => Err(type_error(path, "an array", value)),
    }
}

/// At most `max` items (`noun` names them in the message).
pub fn at_most(path: &Path, count: usize, max: usize, noun: &str) -> Result {
    if count <= max {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("array too long. Expected at most {max} {noun}, but got {count}."),
        ))
    }
}

/// A string among `allowed`.
pub fn one_of<'v>(value: &'v Json, path: &Path, allowed: &[&str]) -> Result<&'v str> {
    let s = string(value, path)?;
    if allowed.contains(&s) {
        Ok(s)
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid value for '{path}': '{}'. Supported values are: {}.",
            printable(s, 64),
            quoted_list(allowed)
        ))
        .with_param(path.to_string()))
    }
}

pub fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

/// A required member of an object.
pub fn required<'v, 'a>(
    members: &'v Members<'a>,
    name: &'static str,
    path: &Path,
) -> Result<&'v Json<'a>> {
    crate::json::member(members, name).ok_or_else(|| super::missing(path.field(name)))
}

/// `^[a-zA-Z0-9_-]{1,64}$`: OpenAI's rule for function, tool and schema names.
pub fn name_rule(value: &Json, path: &Path) -> Result {
    let name = string(value, path)?;
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!(
                "'{}' does not match '^[a-zA-Z0-9_-]{{1,64}}$': use 1 to 64 letters, digits, underscores or dashes.",
                printable(name, 80)
            ),
        ))
    }
}

// --- checks used directly as table rules (null means "not set") -----------------

type R = Result;

pub fn temperature(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    nullable(v, || range(v, p, 0.0, 2.0))
}

pub fn top_p(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    nullable(v, || range(v, p, 0.0, 1.0))
}

pub fn penalty(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    nullable(v, || range(v, p, -2.0, 2.0))
}

pub fn token_limit(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    nullable(v, || positive_integer(v, p).map(drop))
}

pub fn seed(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    nullable(v, || integer(v, p).map(drop))
}

pub fn user(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    string(v, p).map(drop)
}

pub fn optional_bool(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    nullable(v, || boolean(v, p).map(drop))
}

/// A string, or an array of at most 4 strings.
pub fn stop(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    match v {
        Json::Null | Json::String(_) => Ok(()),
        Json::Array(items) => {
            at_most(p, items.len(), 4, "stop sequences")?;
            for (i, item) in items.iter().enumerate() {
                string(item, &p.index(i))?;
            }
            Ok(())
        }
        _ => Err(type_error(p, "a string or an array of strings", v)),
    }
}

/// Only with `stream: true`; `include_usage` a boolean.
pub fn stream_options(v: &Json, p: &Path, ctx: &Ctx, _: &mut Effects) -> R {
    if v.is_null() {
        return Ok(());
    }
    let options = object(v, p)?;
    if !matches!(ctx.sibling("stream"), Some(Json::Bool(true))) {
        return Err(ApiError::bad_request(
            "Invalid value for 'stream_options': stream_options is only allowed when 'stream' is true.",
        )
        .with_param("stream_options"));
    }
    if let Some(include) = crate::json::member(options, "include_usage") {
        nullable(include, || {
            boolean(include, &p.field("include_usage")).map(drop)
        })?;
    }
    Ok(())
}

/// At most 16 pairs; keys up to 64 characters, values strings up to 512.
pub fn metadata(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    if v.is_null() {
        return Ok(());
    }
    let pairs = object(v, p)?;
    if pairs.len() > 16 {
        return Err(invalid(
            p,
            format!(
                "too many pairs. Expected at most 16, but got {}.",
                pairs.len()
            ),
        ));
    }
    for (key, value) in pairs {
        if key.chars().count() > 64 {
            return Err(invalid(
                p,
                format!(
                    "key '{}…' is longer than 64 characters.",
                    printable(key, 32)
                ),
            ));
        }
        let Some(text) = value.as_str() else {
            return Err(invalid(
                p,
                format!(
                    "the value of '{}' must be a string, but got {}.",
                    printable(key, 64),
                    value.type_name()
                ),
            ));
        };
        if text.chars().count() > 512 {
            return Err(invalid(
                p,
                format!(
                    "the value of '{}' is longer than 512 characters.",
                    printable(key, 64)
                ),
            ));
        }
    }
    Ok(())
}

/// Token id (as a string) → bias between -100 and 100.
pub fn logit_bias(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    if v.is_null() {
        return Ok(());
    }
    for (token, bias) in object(v, p)? {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(p, format!("key '{}' is not a token id. Expected string representations of integer token ids.", printable(token, 32))));
        }
        let x = number(bias, p)?;
        if !(-100.0..=100.0).contains(&x) {
            return Err(invalid(
                p,
                format!("the bias of token {token} is {x}. Expected a value between -100 and 100."),
            ));
        }
    }
    Ok(())
}

/// 1 (or null): the gateway returns a single choice.
pub fn n(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> R {
    if v.is_null() {
        return Ok(());
    }
    match integer(v, p) {
        Ok(1) => Ok(()),
        Ok(k) if k > 1 => Err(invalid(
            p,
            format!(
                "{k} choices were requested, but this gateway returns a single choice. \
                 Send n=1 (or omit n) and make several requests if you need several completions."
            ),
        )),
        Ok(k) => Err(invalid(
            p,
            format!("integer below minimum value. Expected a value >= 1, but got {k} instead."),
        )),
        Err(e) => Err(e),
    }
}

pub fn nullable(v: &Json, check: impl FnOnce() -> Result) -> Result {
    if v.is_null() {
        Ok(())
    } else {
        check()
    }
}
