//! Request-field rules, one table per endpoint: each member of the body is
//! validated, forwarded untouched, or rejected as unsupported. Members a table
//! does not name are forwarded untouched.

use crate::catalog::Model;
use crate::endpoints::Endpoint;
use crate::error::ApiError;
use crate::json::JsonObject;
use serde_json::value::RawValue;
use serde_json::Value;

/// Checks one member's raw JSON value.
pub type Check = fn(&RawValue, &Model) -> Result<(), ApiError>;

#[derive(Clone, Copy)]
pub enum Rule {
    /// Checked by the function; on success forwarded untouched.
    Validated(Check),
    /// Passed to the backend as sent.
    Forwarded,
    /// Refused with 400, `param` naming the field; the text says what to do.
    Unsupported(&'static str),
}

#[derive(Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub required: bool,
    pub rule: Rule,
}

const fn validated(name: &'static str, required: bool, check: Check) -> Field {
    Field {
        name,
        required,
        rule: Rule::Validated(check),
    }
}

/// POST /v1/chat/completions. `model` is read and resolved before the table runs.
pub const CHAT_COMPLETIONS: &[Field] = &[
    validated("messages", true, check_messages),
    validated("n", false, check_n),
];

/// The table of an endpoint that takes a JSON body.
pub fn table(endpoint: Endpoint) -> &'static [Field] {
    match endpoint {
        Endpoint::ChatCompletions => CHAT_COMPLETIONS,
        _ => &[],
    }
}

/// Applies `endpoint`'s table to `body`.
pub fn check(endpoint: Endpoint, body: &JsonObject<'_>, model: &Model) -> Result<(), ApiError> {
    let table = table(endpoint);
    for field in table {
        let Some(raw) = body.get(field.name) else {
            if field.required {
                return Err(ApiError::bad_request(format!(
                    "Missing required parameter: '{}'.",
                    field.name
                ))
                .with_param(field.name));
            }
            continue;
        };
        match field.rule {
            Rule::Validated(check) => check(raw, model)?,
            Rule::Forwarded => {}
            Rule::Unsupported(message) => {
                return Err(ApiError::bad_request(message).with_param(field.name))
            }
        }
    }
    Ok(())
}

fn parse(raw: &RawValue, param: &str) -> Result<Value, ApiError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        // The body already parsed as JSON, so this is a number out of range or
        // nesting deeper than the parser allows.
        let reason = e.to_string();
        let reason = reason
            .split(" at line")
            .next()
            .unwrap_or("unreadable value");
        ApiError::bad_request(format!("Invalid value for '{param}': {reason}.")).with_param(param)
    })
}

fn check_messages(raw: &RawValue, _: &Model) -> Result<(), ApiError> {
    let value = parse(raw, "messages")?;
    let Value::Array(messages) = value else {
        return Err(ApiError::bad_request(format!(
            "Invalid type for 'messages': expected an array of message objects, but got {} instead.",
            type_name(&value)
        ))
        .with_param("messages"));
    };
    if messages.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid 'messages': empty array. Expected an array with at least one message.",
        )
        .with_param("messages"));
    }
    for (i, message) in messages.iter().enumerate() {
        if !message.is_object() {
            return Err(ApiError::bad_request(format!(
                "Invalid type for 'messages[{i}]': expected a message object, but got {} instead.",
                type_name(message)
            ))
            .with_param(format!("messages[{i}]")));
        }
    }
    Ok(())
}

fn check_n(raw: &RawValue, _: &Model) -> Result<(), ApiError> {
    match parse(raw, "n")? {
        Value::Null => Ok(()),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Ok(()),
            Some(v) if v > 1 => Err(ApiError::bad_request(format!(
                "Invalid 'n': {v} choices were requested, but this gateway returns a single choice. \
                 Send n=1 (or omit n) and make several requests if you need several completions."
            ))
            .with_param("n")),
            Some(v) => Err(ApiError::bad_request(format!(
                "Invalid 'n': integer below minimum value. Expected a value >= 1, but got {v} instead."
            ))
            .with_param("n")),
            None => Err(ApiError::bad_request(format!(
                "Invalid type for 'n': expected an integer, but got a decimal number ({n}) instead."
            ))
            .with_param("n")),
        },
        other => Err(ApiError::bad_request(format!(
            "Invalid type for 'n': expected an integer, but got {} instead.",
            type_name(&other)
        ))
        .with_param("n")),
    }
}

/// How OpenAI's messages name a JSON type.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{test_model, Category};

    fn run(body: &str) -> Result<(), ApiError> {
        let obj = JsonObject::parse(body.as_bytes()).unwrap();
        check(
            Endpoint::ChatCompletions,
            &obj,
            &test_model("m", Category::Text, "a"),
        )
    }

    #[test]
    fn chat_table() {
        let ok = r#"[{"role":"user","content":"hi"}]"#;
        let cases: &[(String, Option<&str>)] = &[
            (format!(r#"{{"model":"m","messages":{ok}}}"#), None),
            (format!(r#"{{"model":"m","messages":{ok},"n":1}}"#), None),
            (format!(r#"{{"model":"m","messages":{ok},"n":null}}"#), None),
            (
                format!(r#"{{"model":"m","messages":{ok},"unknown_field":{{"x":1}}}}"#),
                None,
            ),
            (r#"{"model":"m"}"#.into(), Some("messages")),
            (r#"{"model":"m","messages":[]}"#.into(), Some("messages")),
            (r#"{"model":"m","messages":"hi"}"#.into(), Some("messages")),
            (r#"{"model":"m","messages":null}"#.into(), Some("messages")),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}, 5]}"#.into(),
                Some("messages[1]"),
            ),
            (
                format!(r#"{{"model":"m","messages":{ok},"n":2}}"#),
                Some("n"),
            ),
            (
                format!(r#"{{"model":"m","messages":{ok},"n":0}}"#),
                Some("n"),
            ),
            (
                format!(r#"{{"model":"m","messages":{ok},"n":-5}}"#),
                Some("n"),
            ),
            (
                format!(r#"{{"model":"m","messages":{ok},"n":1.5}}"#),
                Some("n"),
            ),
            (
                format!(r#"{{"model":"m","messages":{ok},"n":"2"}}"#),
                Some("n"),
            ),
            (
                format!(r#"{{"model":"m","messages":{ok},"n":1e400}}"#),
                Some("n"),
            ),
            (
                format!(r#"{{"model":"m","messages":{ok},"n":18446744073709551616}}"#),
                Some("n"),
            ),
        ];
        for (body, param) in cases {
            match (run(body), param) {
                (Ok(()), None) => {}
                (Err(e), Some(p)) => {
                    assert_eq!(e.status, 400, "{body}");
                    assert_eq!(e.param.as_deref(), Some(*p), "{body}: {}", e.message);
                }
                (got, want) => panic!("{body}: got {got:?}, want param {want:?}"),
            }
        }
    }

    #[test]
    fn n_message_says_what_to_do() {
        let e =
            run(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":3}"#).unwrap_err();
        assert!(
            e.message.contains("single choice") && e.message.contains("n=1"),
            "{}",
            e.message
        );
    }
}
