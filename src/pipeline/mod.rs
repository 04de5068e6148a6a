//! The per-request decisions, as plain functions of headers, body and the
//! compiled configuration. The host adapter only moves bytes between Envoy and
//! these functions and applies what they return.
//!
//! A request goes through these stages, each in its own file:
//!
//! - `request_headers.rs`: [`Gateway::on_request_headers`] refuses browser
//!   preflights, authenticates the key, finds the endpoint, answers the
//!   models listing itself, and checks what the headers say about the body
//!   (encoding, content type, length) before it is read.
//! - `routed_ids.rs`: calls by id (`GET /v1/responses/{id}`, …) are routed by
//!   the gateway's id at the header stage; `previous_response_id` is checked
//!   at the body stage; [`Gateway::rewrite_ids`] gives the client the
//!   gateway's ids in responses.
//! - `request_body.rs`: [`Gateway::on_request_body`] parses the body,
//!   resolves the model the key asked for, validates the fields and decides
//!   where to forward it; [`Gateway::on_partial_body`] refuses a body that
//!   grows too large while it arrives.
//! - `rewrite.rs`: the body to forward, as splices into the client's bytes
//!   (the backend's name for the model, validation's rewrites,
//!   `previous_response_id`, `include_usage`).
//! - `response.rs`: [`Gateway::on_response_headers`] re-renders Envoy's own
//!   error replies as envelopes and edits every other response's headers.
//! - `errors.rs`: [`Gateway::error_reply`], the 413 of a body too large, and
//!   the wording of the body stage's refusals.
//!
//! This file holds the types the stages exchange.

use crate::auth::KeyIndex;
use crate::billing::Price;
#[cfg(doc)]
use crate::config::Gateway;
use crate::endpoints::{BodyKind, Endpoint};
use crate::headers::Headers;
use crate::model_names::Renames;
use std::rc::Rc;

mod errors;
mod request_body;
mod request_headers;
mod response;
mod rewrite;
mod routed_ids;
#[cfg(test)]
mod tests;

/// A complete local response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// OpenAI's `error.code` of an error reply, for the metrics.
    pub error_code: Option<&'static str>,
}

impl Reply {
    /// A 200 with a JSON body (the gateway's own answers, such as the
    /// models list); error replies come from [`Gateway::error_reply`].
    fn ok_json(body: Vec<u8>) -> Self {
        Reply {
            status: 200,
            headers: vec![("content-type".to_string(), "application/json".to_string())],
            body,
            error_code: None,
        }
    }
}

/// Header changes, removals first, then sets: to the request before it goes
/// on, or to the response before the client gets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

/// What to do after the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterHeaders {
    /// Answer locally; nothing reaches a backend.
    Reply(Reply),
    /// Let the request go on (after the edits) to the backend the edits
    /// name: re-pick the route. The plan is for its response.
    Route(ResponsePlan),
    /// Hold the headers until the whole body has arrived, then decide.
    ReadBody(PendingBody),
}

/// What the header stage decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersOutcome {
    /// Applied whatever comes next.
    pub edits: HeaderEdits,
    pub next: AfterHeaders,
    /// The id of the authenticated key, if any.
    pub key_id: Option<String>,
    /// What the rest of the exchange needs to know about the request.
    pub request: RequestRecord,
}

/// What the body stage needs to know from the header stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBody {
    pub endpoint: Endpoint,
    pub kind: BodyKind,
    /// The authenticated key, as its place in the key store.
    pub key_index: KeyIndex,
    /// The request's `content-type` (a form's boundary is in it).
    pub content_type: String,
}

/// What to do once the body has arrived.
// Made once per request and taken apart at once: boxing the larger variant
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterBody {
    /// Answer locally; nothing reaches a backend.
    Reply(Reply),
    /// Apply these header edits (they name the backend) and send this body
    /// instead of the client's when `Some`; then re-pick the route.
    /// `response` is the plan for the response.
    Forward {
        edits: HeaderEdits,
        new_body: Option<Vec<u8>>,
        response: ResponsePlan,
    },
}

/// What the response stage needs to know about a forwarded request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponsePlan {
    /// The backend the gateway routed the request to.
    pub backend: Option<String>,
    /// The canonical id of the model.
    pub model: Option<String>,
    /// What the gateway charged the tokens limiter up front.
    pub token_cost: u64,
    /// The request's estimated tokens (what `reserve` charges up front).
    pub estimate: u64,
    /// The endpoint's responses report usage.
    pub reports_usage: bool,
    /// The model's prices, when it has them: the spend charged up front,
    /// in micro-units, and the spend the estimate stands for.
    pub price: Option<Price>,
    pub spend_cost: u64,
    pub spend_estimate: u64,
    /// Added to the response (e.g. to say a request was adapted).
    pub headers: Vec<(String, String)>,
    /// Drop the stream's usage-only chunk: the gateway asked for it, the
    /// client did not.
    pub hide_usage_chunk: bool,
    /// Read and adjust the response body: it may carry usage,
    /// `system_fingerprint` or ids to give in the gateway's form.
    pub adjust_body: bool,
    /// Ids in the response to give the client in the gateway's form.
    pub ids: Option<IdRewrite>,
    /// The backend's names for models, to give the client as catalog ids.
    pub renames: Rc<Renames>,
    /// A stream of this endpoint ends with `data: [DONE]` (chat and legacy
    /// completions; the Responses API ends with `response.completed`).
    pub ends_with_done: bool,
}

/// How ids in a response are rewritten (see [`crate::ids`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdRewrite {
    /// Issue a routed id for the one the response carries here.
    pub issue: Option<IssueId>,
    /// (backend's id, gateway's id) pairs: the first is replaced by the second.
    pub known: Vec<(String, String)>,
}

/// Where the id to issue is and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueId {
    /// The member holding the id, at the top level or under `response` (stream events).
    pub field: &'static str,
    pub key_id: String,
    pub backend: String,
}

/// What to do with the response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterResponseHeaders {
    /// Replace the response with this one.
    Reply(Reply),
    /// Let it through with these edits, handling the body as `body` says.
    Edit { edits: HeaderEdits, body: BodyMode },
}

/// How the response body is handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyMode {
    /// Passed on as it comes.
    #[default]
    Untouched,
    /// One JSON object, read whole, adjusted (usage, `system_fingerprint`, ids).
    Json,
    /// Server-sent events, adjusted event by event as they arrive (the
    /// usage chunk, ids).
    Events,
}

/// What the gateway keeps of a request for the rest of its exchange: the
/// method and path (for messages and logs) and, once the request is
/// forwarded, the plan for its response. The header stage makes it
/// ([`HeadersOutcome::request`]); the host sets `plan` to the one that comes
/// with [`AfterHeaders::Route`] or [`AfterBody::Forward`] and hands the
/// record to [`Gateway::on_response_headers`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// The path, without the query string or fragment.
    pub path: String,
    /// The default until the request is forwarded.
    pub plan: ResponsePlan,
}

impl RequestRecord {
    /// The record of a request not yet forwarded, from its `:method` and
    /// `:path`.
    pub fn from_headers(headers: &Headers) -> Self {
        let text = |name| headers.text(name).unwrap_or_default().into_owned();
        let full_path = text(":path");
        let path = full_path
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string();
        RequestRecord {
            method: text(":method"),
            path,
            plan: ResponsePlan::default(),
        }
    }
}
