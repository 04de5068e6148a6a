//! Request-field rules, one table per endpoint. Every member of a request body
//! is validated, forwarded untouched, or rejected as unsupported; members a
//! table does not name are forwarded untouched. The compatibility document is
//! rendered from these same tables (see [`crate::compat`]).

mod chat;
mod checks;
mod completions;
mod embeddings;
mod media;
mod path;
mod responses;

pub use path::Path;

use crate::catalog::Model;
use crate::endpoints::Endpoint;
use crate::error::ApiError;
use crate::json::{member, Json, Members};

/// Checks one member's value. `ctx` gives the rest of the body and the model.
pub type Check = fn(&Json, &Path, &Ctx, &mut Effects) -> Result<(), ApiError>;

#[derive(Clone, Copy)]
pub enum Rule {
    /// Resolved against the catalog by the pipeline (the `model` member).
    Routing,
    /// Checked by the function, then forwarded as sent (unless the check
    /// asks for a rewrite).
    Validated(Check),
    /// Passed to the backend as sent.
    Forwarded,
    /// Refused with 400 (`param` naming the field) unless null or false.
    Unsupported(&'static str),
}

#[derive(Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub required: bool,
    pub rule: Rule,
    /// JSON sent to the backend when the client leaves the field out.
    pub default: Option<&'static str>,
    /// The rule in words, for the compatibility document.
    pub doc: &'static str,
}

impl Field {
    pub const fn routing(name: &'static str, doc: &'static str) -> Self {
        Field {
            name,
            required: true,
            rule: Rule::Routing,
            default: None,
            doc,
        }
    }
    pub const fn validated(name: &'static str, check: Check, doc: &'static str) -> Self {
        Field {
            name,
            required: false,
            rule: Rule::Validated(check),
            default: None,
            doc,
        }
    }
    pub const fn required(name: &'static str, check: Check, doc: &'static str) -> Self {
        Field {
            name,
            required: true,
            rule: Rule::Validated(check),
            default: None,
            doc,
        }
    }
    /// A required multipart form field, forwarded as sent.
    pub const fn required_part(name: &'static str, doc: &'static str) -> Self {
        Field {
            name,
            required: true,
            rule: Rule::Forwarded,
            default: None,
            doc,
        }
    }
    pub const fn forwarded(name: &'static str, doc: &'static str) -> Self {
        Field {
            name,
            required: false,
            rule: Rule::Forwarded,
            default: None,
            doc,
        }
    }
    pub const fn unsupported(name: &'static str, message: &'static str) -> Self {
        Field {
            name,
            required: false,
            rule: Rule::Unsupported(message),
            default: None,
            doc: message,
        }
    }
    pub const fn with_default(mut self, json: &'static str) -> Self {
        self.default = Some(json);
        self
    }
}

/// What a check can see besides the value it checks.
pub struct Ctx<'b, 'a> {
    pub body: &'b Members<'a>,
    pub model: &'b Model,
}

impl<'b, 'a> Ctx<'b, 'a> {
    /// Another member of the body.
    pub fn sibling(&self, name: &str) -> Option<&'b Json<'a>> {
        member(self.body, name)
    }
}

/// A change to the body before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Replace the value of top-level member `name` with `json`.
    Replace {
        name: &'static str,
        json: &'static str,
    },
    /// Add top-level member `name` with value `json`.
    Insert {
        name: &'static str,
        json: &'static str,
    },
    /// Make `stream_options.include_usage` true, keeping the other options.
    IncludeUsage,
    /// Replace the value of top-level member `name` with the string `value`.
    ReplaceString { name: &'static str, value: String },
}

/// What validation asks the gateway to do besides forwarding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    pub rewrites: Vec<Rewrite>,
    /// Headers added to the response the client receives.
    pub response_headers: Vec<(&'static str, &'static str)>,
}

/// The table of an endpoint that takes a JSON body.
pub fn table(endpoint: Endpoint) -> &'static [Field] {
    match endpoint {
        Endpoint::ChatCompletions => chat::FIELDS,
        Endpoint::Completions => completions::FIELDS,
        Endpoint::Embeddings => embeddings::FIELDS,
        Endpoint::ImageGenerations => media::IMAGE_FIELDS,
        Endpoint::Speech => media::SPEECH_FIELDS,
        Endpoint::VideoGenerations => media::VIDEO_FIELDS,
        Endpoint::Transcriptions => media::TRANSCRIPTION_FIELDS,
        Endpoint::Responses => responses::FIELDS,
        _ => &[],
    }
}

/// Applies `endpoint`'s table to a JSON body.
pub fn check(endpoint: Endpoint, body: &Members, model: &Model) -> Result<Effects, ApiError> {
    let table = table(endpoint);
    let ctx = Ctx { body, model };
    let mut effects = Effects::default();
    for field in table {
        let Some(value) = member(body, field.name) else {
            if field.required {
                return Err(missing(field.name));
            }
            if let Some(json) = field.default {
                effects.rewrites.push(Rewrite::Insert {
                    name: field.name,
                    json,
                });
            }
            continue;
        };
        let path = Path::root(field.name);
        match field.rule {
            Rule::Routing | Rule::Forwarded => {}
            Rule::Validated(check) => check(value, &path, &ctx, &mut effects)?,
            Rule::Unsupported(message) => {
                if !matches!(value, Json::Null | Json::Bool(false)) {
                    return Err(ApiError::bad_request(message).with_param(field.name));
                }
            }
        }
    }
    Ok(effects)
}

/// Checks that a multipart form has every required field of `endpoint`'s table.
pub fn check_form(endpoint: Endpoint, present: &[&[u8]]) -> Result<(), ApiError> {
    for field in table(endpoint).iter().filter(|f| f.required) {
        if !present.contains(&field.name.as_bytes()) {
            return Err(missing(field.name));
        }
    }
    Ok(())
}

/// 400 for a missing required field.
pub fn missing(path: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Missing required parameter: '{path}'."))
        .with_param(path.to_string())
}

#[cfg(test)]
mod tests;
