//! What a probe's answer means: a success (with the model ids a models
//! probe listed) or the reason it failed.

use crate::json::BorrowedStr;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// The probe path whose answer is a models list.
pub const MODELS_PATH: &str = "/v1/models";
/// The largest models list read, in bytes (1 MiB); a larger one is a failure.
pub const MAX_MODELS_BODY_BYTES: usize = 1024 * 1024;
/// The most model ids a models list may have; a longer list is a failure
/// (like a body over [`MAX_MODELS_BODY_BYTES`], which a list this long
/// nearly always is): a backend that lists more models must be probed on
/// another path. Ids past the limit are counted, never kept.
pub const MAX_LISTED_MODELS: usize = 10_000;
/// Longest parser message kept in a [`FailureReason`], in characters (the
/// parser may quote the body).
const MAX_MESSAGE_CHARS: usize = 160;

/// What a probe's answer must be, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Any 2xx status; the body is not read.
    Status,
    /// A 2xx models list, `{"data":[{"id":"…"},…]}`, whose ids are kept.
    Models,
}

impl ProbeKind {
    /// [`ProbeKind::Models`] for `/v1/models`, whatever its query string;
    /// [`ProbeKind::Status`] for every other path.
    pub fn of_path(path: &str) -> ProbeKind {
        let bare = path.split(['?', '#']).next().unwrap_or(path);
        if bare == MODELS_PATH {
            ProbeKind::Models
        } else {
            ProbeKind::Status
        }
    }
}

/// A probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered as it should. `listed`: the model ids of a
    /// models probe's answer, in body order; `None` for a status probe.
    Success { listed: Option<Vec<String>> },
    /// The probe failed.
    Failure(FailureReason),
}

/// Why a probe failed; `Display` gives the text for a log line (it never
/// quotes more than a short parser message from the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The call ended without a response status: Envoy's timeout, a
    /// connection failure, no healthy host, or a status that is not a number.
    NoResponse,
    /// A status outside 200-299.
    Status(u16),
    /// A models list over [`MAX_MODELS_BODY_BYTES`] (the announced or the
    /// actual size).
    TooLarge { size: usize },
    /// The host announced a models list but did not hand it over.
    BodyUnavailable,
    /// The models list is not JSON (or not UTF-8); the parser's message.
    NotJson(String),
    /// JSON, but not `{"data":[{"id":"…"},…]}`; the parser's message.
    NotAModelsList(String),
    /// A models list with more than [`MAX_LISTED_MODELS`] entries.
    TooManyModels { count: usize },
    /// No answer reached the gateway in time (the gateway gave up waiting
    /// after this many milliseconds).
    TimedOut { after_ms: u64 },
    /// The host refused to send the probe; its error.
    DispatchFailed(String),
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::NoResponse => f.write_str(
                "no response (Envoy's timeout, a connection failure or no healthy upstream host)",
            ),
            FailureReason::Status(status) => write!(f, "status {status}"),
            FailureReason::TooLarge { size } => write!(
                f,
                "models list too large ({size} bytes; the limit is {MAX_MODELS_BODY_BYTES})"
            ),
            FailureReason::BodyUnavailable => f.write_str("models list not readable from the host"),
            FailureReason::NotJson(message) => write!(f, "models list not JSON: {message}"),
            FailureReason::NotAModelsList(message) => {
                write!(
                    f,
                    "not a models list `{{\"data\":[{{\"id\":…}}]}}`: {message}"
                )
            }
            FailureReason::TooManyModels { count } => write!(
                f,
                "models list too long ({count} models; the limit is {MAX_LISTED_MODELS})"
            ),
            FailureReason::TimedOut { after_ms } => write!(f, "no answer within {after_ms} ms"),
            FailureReason::DispatchFailed(error) => write!(f, "dispatch failed: {error}"),
        }
    }
}

/// Whether the adapter should read the answer's body before
/// [`classify`]: only for a 2xx answer to a models probe whose announced
/// size is within [`MAX_MODELS_BODY_BYTES`] (a larger body is never read).
pub fn wants_body(kind: ProbeKind, status: Option<u16>, body_size: usize) -> bool {
    kind == ProbeKind::Models
        && status.is_some_and(is_success)
        && body_size <= MAX_MODELS_BODY_BYTES
}

/// The outcome of an answer: `status` is the response's `:status` (`None`
/// when there is none or it is not a number), `body_size` the size the host
/// announced, `body` the body when [`wants_body`] asked for it.
pub fn classify(
    kind: ProbeKind,
    status: Option<u16>,
    body_size: usize,
    body: Option<&[u8]>,
) -> Outcome {
    let Some(status) = status else {
        return Outcome::Failure(FailureReason::NoResponse);
    };
    if !is_success(status) {
        return Outcome::Failure(FailureReason::Status(status));
    }
    if kind == ProbeKind::Status {
        return Outcome::Success { listed: None };
    }
    if body_size > MAX_MODELS_BODY_BYTES {
        return Outcome::Failure(FailureReason::TooLarge { size: body_size });
    }
    let body = match body {
        Some(body) => body,
        // Envoy hands over no buffer for an empty body.
        None if body_size == 0 => &[],
        None => return Outcome::Failure(FailureReason::BodyUnavailable),
    };
    if body.len() > MAX_MODELS_BODY_BYTES {
        return Outcome::Failure(FailureReason::TooLarge { size: body.len() });
    }
    match read_models_list(body) {
        Ok(listed) => Outcome::Success {
            listed: Some(listed),
        },
        Err(reason) => Outcome::Failure(reason),
    }
}

fn is_success(status: u16) -> bool {
    (200..=299).contains(&status)
}

/// The ids of `{"data":[{"id":"…"},…]}` (other members ignored).
fn read_models_list(body: &[u8]) -> Result<Vec<String>, FailureReason> {
    let list: ModelList<'_> = serde_json::from_slice(body).map_err(|e| {
        let message = shortened(&e.to_string());
        match e.classify() {
            serde_json::error::Category::Data => FailureReason::NotAModelsList(message),
            _ => FailureReason::NotJson(message),
        }
    })?;
    let Ids { kept, count } = list.data;
    if count > MAX_LISTED_MODELS {
        return Err(FailureReason::TooManyModels { count });
    }
    Ok(kept.into_iter().map(Cow::into_owned).collect())
}

fn shortened(message: &str) -> String {
    let mut out: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    if message.chars().nth(MAX_MESSAGE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// `{"data":[…],…}`: an object (never the array form serde also accepts
/// for structs), `data` once, other members skipped.
struct ModelList<'a> {
    data: Ids<'a>,
}

impl<'de> Deserialize<'de> for ModelList<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = ModelList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a models list object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut data = None;
                while let Some(BorrowedStr(name)) = map.next_key::<BorrowedStr<'de>>()? {
                    if name != "data" {
                        map.next_value::<IgnoredAny>()?;
                    } else if data.is_some() {
                        return Err(de::Error::duplicate_field("data"));
                    } else {
                        data = Some(map.next_value::<Ids<'de>>()?);
                    }
                }
                let data = data.ok_or_else(|| de::Error::missing_field("data"))?;
                Ok(ModelList { data })
            }
        }
        deserializer.deserialize_map(ListVisitor)
    }
}

/// One model object's `id` (other members skipped).
struct Entry<'a> {
    id: Cow<'a, str>,
}

impl<'de> Deserialize<'de> for Entry<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a model object with a string `id`")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut id = None;
                while let Some(BorrowedStr(name)) = map.next_key::<BorrowedStr<'de>>()? {
                    if name != "id" {
                        map.next_value::<IgnoredAny>()?;
                    } else if id.is_some() {
                        return Err(de::Error::duplicate_field("id"));
                    } else {
                        id = Some(map.next_value::<BorrowedStr<'de>>()?.0);
                    }
                }
                let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
                Ok(Entry { id })
            }
        }
        deserializer.deserialize_map(EntryVisitor)
    }
}

/// The ids of `data`: the first [`MAX_LISTED_MODELS`] kept, all counted.
struct Ids<'a> {
    kept: Vec<Cow<'a, str>>,
    count: usize,
}

impl<'de> Deserialize<'de> for Ids<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdsVisitor;
        impl<'de> Visitor<'de> for IdsVisitor {
            type Value = Ids<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of model objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut kept = Vec::new();
                while kept.len() < MAX_LISTED_MODELS {
                    match seq.next_element::<Entry<'de>>()? {
                        Some(entry) => kept.push(entry.id),
                        None => {
                            let count = kept.len();
                            return Ok(Ids { kept, count });
                        }
                    }
                }
                let mut count = kept.len();
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    count = count.saturating_add(1);
                }
                Ok(Ids { kept, count })
            }
        }
        deserializer.deserialize_seq(IdsVisitor)
    }
}
