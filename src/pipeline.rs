//! The per-request decisions, as plain functions of headers, body and the
//! compiled configuration. The host adapter only moves bytes between Envoy and
//! these functions and applies what they return.

use crate::auth::KeyIndex;
use crate::body_headers;
use crate::catalog::{self, Category, Model};
use crate::config::Gateway;
use crate::endpoints::{self, BodyKind, Endpoint, Lookup};
use crate::error::{printable, ApiError};
use crate::headers::Headers;
use crate::ids;
use crate::json::{self, Json, JsonError, JsonObject};
use crate::multipart::{self, MultipartError};
use crate::ratelimit;
use crate::tokens;
use crate::validate::{self, Rewrite};
use std::borrow::Cow;
use std::ops::Range;

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

/// Header changes to apply to the request before it goes on.
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
    /// name: re-pick the route.
    Route(ResponsePlan),
    /// Hold the headers until the whole body has arrived, then decide.
    ReadBody(PendingBody),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersOutcome {
    /// Applied whatever comes next.
    pub edits: HeaderEdits,
    pub next: AfterHeaders,
    /// The id of the authenticated key, if any.
    pub key_id: Option<String>,
    /// The request line, for the response stage.
    pub line: RequestLine,
}

/// What the body stage needs to know from the header stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBody {
    pub endpoint: Endpoint,
    pub kind: BodyKind,
    pub key: KeyIndex,
    pub content_type: String,
}

/// What to do once the body has arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterBody {
    Reply(Reply),
    /// Forward to `backend` with these header edits, and this body instead
    /// of the client's when `Some`; then re-pick the route. Add
    /// `response_headers` to the response.
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
    /// What the gateway charged the tokens limiter.
    pub token_cost: u64,
    /// Added to the response (e.g. to say a request was adapted).
    pub headers: Vec<(String, String)>,
    /// Drop the stream's usage-only chunk: the gateway asked for it, the
    /// client did not.
    pub hide_usage_chunk: bool,
    /// The response may carry usage and `system_fingerprint`: read and adjust it.
    pub adjust_body: bool,
    /// Ids in the response to give the client in the gateway's form.
    pub ids: Option<IdRewrite>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// Passed on as it comes.
    Untouched,
    /// One JSON object, read whole, adjusted (usage, `system_fingerprint`).
    Json,
    /// Server-sent events, adjusted event by event as they arrive.
    Events,
}

/// What the response stage needs to know about the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestLine {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Set once the request is forwarded.
    pub plan: ResponsePlan,
}

impl RequestLine {
    pub fn from_headers(headers: &Headers) -> Self {
        let text = |name| headers.text(name).unwrap_or_default().into_owned();
        let full_path = text(":path");
        let path = full_path
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string();
        RequestLine {
            method: text(":method"),
            path,
            plan: ResponsePlan::default(),
        }
    }
}

impl Gateway {
    /// An error as a local reply, in the one envelope.
    pub fn error_reply(&self, error: &ApiError) -> Reply {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        headers.extend(
            error
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone())),
        );
        Reply {
            status: error.status,
            headers,
            body: error.body(self.doc_url.as_deref()),
            error_code: error.code.map(crate::error::ErrorCode::as_str),
        }
    }

    fn json_reply(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".to_string(), "application/json".to_string())],
            body,
            error_code: None,
        }
    }

    /// Decides on the request headers.
    pub fn on_request_headers(&self, headers: &Headers, end_of_stream: bool) -> HeadersOutcome {
        // Client-supplied copies of the gateway's own headers never go on.
        let mut edits = HeaderEdits {
            remove: self.headers.all().iter().map(|h| h.to_string()).collect(),
            set: Vec::new(),
        };
        let line = RequestLine::from_headers(headers);
        let next = match self.route_headers(headers, &line, end_of_stream, &mut edits) {
            Ok(next) => next,
            Err(error) => AfterHeaders::Reply(self.error_reply(&error)),
        };
        let key_id = edits
            .set
            .iter()
            .find(|(name, _)| *name == self.headers.key_id)
            .map(|(_, id)| id.clone());
        HeadersOutcome {
            edits,
            next,
            key_id,
            line,
        }
    }

    fn route_headers(
        &self,
        headers: &Headers,
        line: &RequestLine,
        end_of_stream: bool,
        edits: &mut HeaderEdits,
    ) -> Result<AfterHeaders, ApiError> {
        let method = line.method.as_str();

        if method == "OPTIONS"
            && headers.contains("origin")
            && headers.contains("access-control-request-method")
        {
            return Err(ApiError::forbidden(
                "Cross-origin browser requests are not allowed: this API is for server-to-server calls. \
                 Call it from your backend, never from a web page (that would expose your API key).",
            ));
        }

        let authorization: Vec<&[u8]> = headers.values("authorization").collect();
        let key_index = self.keys.authenticate(&authorization)?;
        let key = self
            .keys
            .get(key_index)
            .ok_or_else(|| ApiError::with_status(500, "key lookup failed"))?;
        // The client's key never reaches a backend.
        edits.remove.push("authorization".to_string());
        // Every request costs at least one token; the body stage refines it.
        edits
            .set
            .push((self.headers.token_cost.clone(), "1".to_string()));
        edits
            .set
            .push((self.headers.key_id.clone(), key.id.clone()));

        let endpoint = match endpoints::lookup(method, &line.path) {
            Lookup::Endpoint(endpoint) => endpoint,
            Lookup::Unsupported(message) => return Err(ApiError::not_found(message)),
            Lookup::MethodNotAllowed(allowed) => {
                return Err(ApiError::method_not_allowed(method, &line.path, allowed))
            }
            Lookup::Unknown => {
                return Err(ApiError::not_found(format!(
                    "Invalid URL ({} {}). This gateway serves: {}.",
                    printable(method, 16),
                    printable(&line.path, 256),
                    endpoints::supported_summary()
                )))
            }
        };

        match endpoint {
            Endpoint::ListModels => {
                let visible = self
                    .catalog
                    .models()
                    .filter(|(i, _)| key.may_use(*i))
                    .map(|(_, m)| m);
                return Ok(AfterHeaders::Reply(Self::json_reply(catalog::list_body(
                    visible,
                ))));
            }
            Endpoint::RetrieveModel => {
                let name = line.path.rsplit('/').next().unwrap_or_default();
                return match self.catalog.resolve(name) {
                    Some((index, model)) if key.may_use(index) => Ok(AfterHeaders::Reply(
                        Self::json_reply(catalog::model_body(model)),
                    )),
                    _ => Err(ApiError::model_not_found(name)),
                };
            }
            _ => {}
        }

        let kind = endpoint.body_kind(method);
        if kind == BodyKind::None {
            return self.route_by_id(endpoint, headers, line, &key.id, edits);
        }
        self.check_body_headers(headers, kind, end_of_stream)?;
        let pending = PendingBody {
            endpoint,
            kind,
            key: key_index,
            content_type: headers
                .text("content-type")
                .unwrap_or_default()
                .into_owned(),
        };
        if end_of_stream {
            // No body will come: decide now, on an empty one.
            return match self.on_request_body(&pending, b"") {
                AfterBody::Reply(reply) => Ok(AfterHeaders::Reply(reply)),
                AfterBody::Forward { .. } => {
                    Err(ApiError::bad_request("The request body is empty."))
                }
            };
        }
        Ok(AfterHeaders::ReadBody(pending))
    }

    /// What the headers say about the body, checked before it is read: it
    /// must be uncompressed, of the endpoint's content type, and not announce
    /// more bytes than the gateway reads.
    fn check_body_headers(
        &self,
        headers: &Headers,
        kind: BodyKind,
        end_of_stream: bool,
    ) -> Result<(), ApiError> {
        let length = body_headers::declared_length(headers);
        if !end_of_stream && length != Some(0) {
            body_headers::check_encoding(headers)?;
        }
        body_headers::check_type(headers.first("content-type"), kind)?;
        match length {
            Some(length) if length > self.limits.max_request_bytes => Err(self.too_large()),
            _ => Ok(()),
        }
    }

    /// 413: the body is (or will be) larger than the gateway reads.
    fn too_large(&self) -> ApiError {
        let max = self.limits.max_request_bytes;
        let readable = if max.is_multiple_of(1024 * 1024) {
            format!(" ({} MiB)", max / (1024 * 1024))
        } else {
            String::new()
        };
        ApiError::with_status(
            413,
            format!(
                "The request body is larger than this gateway accepts: at most {max} bytes{readable}. \
                 Send a smaller request."
            ),
        )
    }

    /// A body still arriving (`received` bytes so far): refused once it is
    /// larger than the gateway reads, without waiting for the rest (chunked
    /// bodies announce no length).
    pub fn on_partial_body(&self, received: usize) -> Option<Reply> {
        let received = u64::try_from(received).unwrap_or(u64::MAX);
        (received > self.limits.max_request_bytes).then(|| self.error_reply(&self.too_large()))
    }

    /// Calls by id: the id says which backend holds the object, if this
    /// gateway issued it to this key.
    fn route_by_id(
        &self,
        endpoint: Endpoint,
        headers: &Headers,
        line: &RequestLine,
        key_id: &str,
        edits: &mut HeaderEdits,
    ) -> Result<AfterHeaders, ApiError> {
        let (dir, id) = line.path.rsplit_once('/').unwrap_or_default();
        let what = match endpoint {
            Endpoint::ResponseById => "response",
            Endpoint::DeferredCompletion => "deferred completion",
            _ => "video job",
        };
        let Some((backend, original)) = self.ids.as_ref().and_then(|codec| codec.open(key_id, id))
        else {
            return Err(ApiError::not_found(format!(
                "No {what} found with id '{}'. Ids are valid with the API key that created them.",
                printable(id, 200)
            )));
        };
        let query = headers
            .first(":path")
            .and_then(|p| p.iter().position(|b| *b == b'?').and_then(|at| p.get(at..)))
            .map(|q| String::from_utf8_lossy(q).into_owned())
            .unwrap_or_default();
        edits.set.push((
            ":path".to_string(),
            format!("{dir}/{}{query}", ids::path_segment(&original)),
        ));
        edits
            .set
            .push((self.headers.backend.clone(), backend.clone()));
        if let Some(credential) = self.backend_credentials.get(&backend) {
            edits
                .set
                .push(("authorization".to_string(), credential.clone()));
        }
        Ok(AfterHeaders::Route(ResponsePlan {
            backend: Some(backend),
            token_cost: 1,
            adjust_body: true,
            ids: Some(IdRewrite {
                issue: None,
                known: vec![(original, id.to_string())],
            }),
            ..ResponsePlan::default()
        }))
    }

    /// Ids in a response body (a JSON object or one stream event's data),
    /// as the client should see them. Updates `plan` once an id is issued.
    pub fn rewrite_ids(&self, ids: &mut IdRewrite, json: &[u8]) -> Option<Vec<u8>> {
        if let (Some(issue), Some(codec)) = (&ids.issue, &self.ids) {
            let original = json::parse_document(json).ok().and_then(|document| {
                json::member(&document, issue.field)
                    .or_else(|| {
                        json::member(&document, "response").and_then(|r| r.get(issue.field))
                    })
                    .and_then(Json::as_str)
                    .map(str::to_string)
            });
            if let Some(original) = original {
                let issued = codec.issue(&issue.key_id, &issue.backend, &original);
                ids.known.push((original, issued));
                ids.issue = None;
            }
        }
        let mut out: Option<Vec<u8>> = None;
        for (original, issued) in &ids.known {
            if let Some(next) =
                ids::replace_quoted(out.as_deref().unwrap_or(json), original, issued)
            {
                out = Some(next);
            }
        }
        out
    }

    /// Decides on the complete request body.
    pub fn on_request_body(&self, pending: &PendingBody, body: &[u8]) -> AfterBody {
        match self.route_body(pending, body) {
            Ok(forward) => forward,
            Err(error) => AfterBody::Reply(self.error_reply(&error)),
        }
    }

    fn route_body(&self, pending: &PendingBody, body: &[u8]) -> Result<AfterBody, ApiError> {
        if u64::try_from(body.len()).unwrap_or(u64::MAX) > self.limits.max_request_bytes {
            return Err(self.too_large());
        }
        let key = self
            .keys
            .get(pending.key)
            .ok_or_else(|| ApiError::with_status(500, "key lookup failed"))?;
        let resolve = |requested: &str| -> Result<&Model, ApiError> {
            let model = match self.catalog.resolve(requested) {
                Some((index, model)) if key.may_use(index) => model,
                _ => return Err(ApiError::model_not_found(requested)),
            };
            if !model.category.serves(pending.endpoint) {
                return Err(wrong_category(model, pending.endpoint));
            }
            Ok(model)
        };
        match pending.kind {
            BodyKind::Json => {
                let document = json::parse_document(body).map_err(json_error)?;
                let requested = model_member(&document)?;
                let model = resolve(requested)?;
                let mut effects = validate::check(pending.endpoint, &document, model)?;
                let previous = self.previous_response(&document, &key.id, model)?;
                if let Some((rewrite, _)) = &previous {
                    effects.rewrites.push(rewrite.clone());
                }
                // Streams always report usage to the gateway (billing); the
                // usage chunk is hidden from clients that did not ask for it.
                let hide_usage_chunk = streams_without_usage(pending.endpoint, &document);
                if hide_usage_chunk {
                    effects.rewrites.push(Rewrite::IncludeUsage);
                }
                let new_body = rewrite_json(body, &document, requested, model, &effects.rewrites)?;
                let headers = effects
                    .response_headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                let cost = tokens::estimate(
                    pending.endpoint,
                    &document,
                    self.token_limits.default_max_tokens,
                );
                let mut forward = self.forward(model, new_body, headers, cost);
                if let AfterBody::Forward { response, .. } = &mut forward {
                    response.hide_usage_chunk = hide_usage_chunk;
                    let issue = issued_id_field(pending.endpoint, &document).map(|field| IssueId {
                        field,
                        key_id: key.id.clone(),
                        backend: model.backend.clone(),
                    });
                    let known: Vec<(String, String)> =
                        previous.map(|(_, pair)| pair).into_iter().collect();
                    if issue.is_some() || !known.is_empty() {
                        response.ids = Some(IdRewrite { issue, known });
                    }
                    response.ends_with_done = matches!(
                        pending.endpoint,
                        Endpoint::ChatCompletions | Endpoint::Completions
                    );
                    response.adjust_body = has_usage(pending.endpoint) || response.ids.is_some();
                }
                Ok(forward)
            }
            BodyKind::Multipart => {
                let parts =
                    multipart::parts(&pending.content_type, body).map_err(multipart_error)?;
                let requested = multipart::text_field(&parts, "model").map_err(multipart_error)?;
                let model = resolve(requested)?;
                let names: Vec<&[u8]> = parts.iter().map(|p| p.name).collect();
                validate::check_form(pending.endpoint, &names)?;
                let new_body = if requested == model.upstream_name() {
                    None
                } else {
                    let span = json::span_of_str(body, requested)
                        .ok_or_else(|| ApiError::with_status(500, "model span not found"))?;
                    Some(
                        json::splice(body, span, model.upstream_name().as_bytes())
                            .ok_or_else(|| ApiError::with_status(500, "model rewrite failed"))?,
                    )
                };
                Ok(self.forward(model, new_body, Vec::new(), 1))
            }
            BodyKind::None => Err(ApiError::with_status(500, "no body expected")),
        }
    }

    fn forward(
        &self,
        model: &Model,
        new_body: Option<Vec<u8>>,
        response_headers: Vec<(String, String)>,
        token_cost: u64,
    ) -> AfterBody {
        let mut edits = HeaderEdits::default();
        edits
            .set
            .push((self.headers.token_cost.clone(), token_cost.to_string()));
        edits
            .set
            .push((self.headers.backend.clone(), model.backend.clone()));
        edits
            .set
            .push((self.headers.model.clone(), model.id.clone()));
        if let Some(credential) = self.backend_credentials.get(&model.backend) {
            edits
                .set
                .push(("authorization".to_string(), credential.clone()));
        }
        AfterBody::Forward {
            edits,
            new_body,
            response: ResponsePlan {
                backend: Some(model.backend.clone()),
                model: Some(model.id.clone()),
                token_cost,
                headers: response_headers,
                ..ResponsePlan::default()
            },
        }
    }

    /// `previous_response_id` names a stored response by the gateway's id:
    /// check it belongs to this key and to the model's backend, and give the
    /// backend its own id.
    /// Also returns the (backend's id, gateway's id) pair, for the response.
    fn previous_response(
        &self,
        document: &json::Members,
        key_id: &str,
        model: &Model,
    ) -> Result<Option<(Rewrite, (String, String))>, ApiError> {
        let Some(Json::String(id)) = json::member(document, "previous_response_id") else {
            return Ok(None);
        };
        let Some((backend, original)) = self.ids.as_ref().and_then(|codec| codec.open(key_id, id))
        else {
            return Err(ApiError::not_found(format!(
                "No response found with id '{}'. Ids are valid with the API key that created them.",
                printable(id, 200)
            ))
            .with_param("previous_response_id"));
        };
        if backend != model.backend {
            return Err(ApiError::bad_request(format!(
                "Invalid 'previous_response_id': that response was made by another model's backend; continue it with the model that created it (not `{}`).",
                model.id
            ))
            .with_param("previous_response_id"));
        }
        let rewrite = Rewrite::ReplaceString {
            name: "previous_response_id",
            value: original.clone(),
        };
        Ok(Some((rewrite, (original, id.to_string()))))
    }

    /// Decides on the response headers: Envoy's own error replies become
    /// envelopes; every other response loses CORS grants and Envoy's draft
    /// rate-limit headers and gains OpenAI's `x-ratelimit-*`.
    pub fn on_response_headers(
        &self,
        status: u16,
        code_details: &str,
        request: &RequestLine,
        headers: &Headers,
    ) -> AfterResponseHeaders {
        if let Some(reply) = self.rewrite_local_reply(status, code_details, request, headers) {
            return AfterResponseHeaders::Reply(reply);
        }
        let mut remove: Vec<String> = headers
            .iter()
            .filter(|(name, _)| name.to_ascii_lowercase().starts_with("access-control-"))
            .map(|(name, _)| name.to_string())
            .collect();
        remove.extend(ratelimit::headers_to_remove(headers));
        let content_type = headers.first("content-type").unwrap_or_default();
        let body = match (request.plan.adjust_body, status) {
            (true, 200..=299) if content_type.starts_with(b"text/event-stream") => BodyMode::Events,
            (true, 200..=299) if content_type.starts_with(b"application/json") => {
                // The adjusted body may differ in length: let Envoy re-frame it.
                remove.push("content-length".to_string());
                BodyMode::Json
            }
            _ => BodyMode::Untouched,
        };
        AfterResponseHeaders::Edit {
            edits: HeaderEdits {
                remove,
                set: ratelimit::openai_headers(&ratelimit::read(headers)),
            },
            body,
        }
    }

    /// Envoy's own local replies (no route, payload too large, upstream
    /// failure, …) re-rendered as envelopes. `code_details` is Envoy's
    /// `response.code_details`; responses that came from a backend
    /// (`via_upstream`) are left alone.
    fn rewrite_local_reply(
        &self,
        status: u16,
        code_details: &str,
        request: &RequestLine,
        headers: &Headers,
    ) -> Option<Reply> {
        if status < 400 || code_details.is_empty() || code_details == "via_upstream" {
            return None;
        }
        let details = printable(code_details, 200);
        if let (404, "route_not_found", Some(backend)) =
            (status, code_details, &request.plan.backend)
        {
            // The catalog names a backend no Envoy route serves: an operator
            // error that retrying cannot fix.
            let mut error = ApiError::with_status(
                500,
                format!(
                    "The model's backend `{backend}` has no route in the gateway's Envoy configuration. \
                     This is a gateway configuration error: tell your platform team."
                ),
            );
            error.headers.push(("x-should-retry", "false".to_string()));
            return Some(self.error_reply(&error));
        }
        if status == 429 {
            return Some(self.error_reply(&ratelimit::too_many_requests(
                headers,
                request.plan.token_cost,
            )));
        }
        let message = match status {
            _ if code_details.contains("rate_limiter_error") => {
                "The gateway's rate-limit service is unavailable, and the gateway is set to refuse \
                 requests it cannot count. Retry the request later."
                    .to_string()
            }
            404 => format!(
                "No backend route for {} {}. The gateway's Envoy configuration has no route for this request ({details}).",
                printable(&request.method, 16),
                printable(&request.path, 256)
            ),
            408 => format!(
                "The request was not received in time ({details}): the client stopped sending its \
                 headers or body. Send the whole request without pausing."
            ),
            413 => "The request body is larger than this gateway accepts. Send a smaller request.".to_string(),
            502..=504 => format!(
                "The model backend is unavailable or did not answer in time ({details}). Retry the request later."
            ),
            _ => format!("The gateway could not complete the request ({details})."),
        };
        let mut reply = self.error_reply(&ApiError::with_status(status, message));
        // Keep what tells the client when to retry, in OpenAI's names.
        for value in headers.values("retry-after") {
            if let Ok(value) = std::str::from_utf8(value) {
                reply
                    .headers
                    .push(("retry-after".to_string(), value.to_string()));
            }
        }
        reply
            .headers
            .extend(ratelimit::openai_headers(&ratelimit::read(headers)));
        Some(reply)
    }
}

fn model_member<'a>(document: &json::Members<'a>) -> Result<&'a str, ApiError> {
    match json::member(document, "model") {
        None => {
            Err(ApiError::bad_request("You must provide a model parameter.").with_param("model"))
        }
        Some(Json::String(Cow::Borrowed(name))) => Ok(name),
        Some(Json::String(Cow::Owned(_))) => Err(ApiError::bad_request(
            "Invalid 'model': escape sequences are not allowed in model names.",
        )
        .with_param("model")),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid type for 'model': expected a string, but got {} instead.",
            other.type_name()
        ))
        .with_param("model")),
    }
}

/// The body to forward: the client's, unless the model name or a rewrite
/// from validation changes it. Changes are spliced into the original bytes.
/// `document` is `body` parsed.
fn rewrite_json(
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

/// The response field holding an id a later call will use, if any.
fn issued_id_field(endpoint: Endpoint, document: &json::Members) -> Option<&'static str> {
    match endpoint {
        Endpoint::Responses | Endpoint::VideoGenerations => Some("id"),
        Endpoint::ChatCompletions
            if matches!(json::member(document, "deferred"), Some(Json::Bool(true))) =>
        {
            Some("request_id")
        }
        _ => None,
    }
}

/// A streamed chat or legacy completion whose client did not ask for usage.
fn streams_without_usage(endpoint: Endpoint, document: &json::Members) -> bool {
    let streamed = matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions)
        && matches!(json::member(document, "stream"), Some(Json::Bool(true)));
    let asked = json::member(document, "stream_options")
        .and_then(|o| o.get("include_usage"))
        .is_some_and(|v| matches!(v, Json::Bool(true)));
    streamed && !asked
}

/// Endpoints whose responses report usage (and may carry `system_fingerprint`).
fn has_usage(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::ChatCompletions
            | Endpoint::Completions
            | Endpoint::Embeddings
            | Endpoint::Responses
    )
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

fn wrong_category(model: &Model, endpoint: Endpoint) -> ApiError {
    let wanted: Vec<&str> = Category::for_endpoint(endpoint)
        .iter()
        .map(|c| c.as_str())
        .collect();
    ApiError::bad_request(format!(
        "The model `{}` is a{} {} model and cannot be used with this endpoint, which takes {} models. \
         GET /v1/models lists each model's category.",
        model.id,
        if model.category.as_str().starts_with(['a', 'e', 'i', 'o', 'u']) { "n" } else { "" },
        model.category.as_str(),
        wanted.join(", ")
    ))
    .with_param("model")
}

fn json_error(error: JsonError) -> ApiError {
    match error {
        JsonError::Empty => ApiError::bad_request(
            "The request body is empty. This endpoint expects a JSON object with at least a `model`.",
        ),
        JsonError::Syntax(detail) => ApiError::bad_request(format!(
            "We could not parse the JSON body of your request ({detail}). The API expects a JSON object: \
             check that the body is valid JSON and sent with `content-type: application/json`."
        )),
        JsonError::NotAnObject => ApiError::bad_request("The request body must be a JSON object."),
        JsonError::DuplicateKey(name) => ApiError::bad_request(format!(
            "The JSON body has the member '{}' more than once. Send each parameter once.",
            printable(&name, 64)
        ))
        .with_param(name),
    }
}

fn multipart_error(error: MultipartError) -> ApiError {
    match error {
        MultipartError::NotMultipart => ApiError::bad_request(
            "This endpoint expects multipart/form-data with `file` and `model` fields (the OpenAI SDKs send this).",
        ),
        MultipartError::Malformed => ApiError::bad_request("The multipart/form-data body is malformed."),
        MultipartError::Missing => ApiError::bad_request("You must provide a model parameter.").with_param("model"),
        MultipartError::NotText => ApiError::bad_request("Invalid 'model': expected text.").with_param("model"),
    }
}
