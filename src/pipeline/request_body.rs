//! The request body: the model, the fields, and where the request goes.

use super::errors::{json_error, multipart_error, wrong_category};
use super::rewrite::rewrite_json;
use super::routed_ids::issued_id_field;
use super::{AfterBody, HeaderEdits, IdRewrite, IssueId, PendingBody, Reply, ResponsePlan};
use crate::catalog::Model;
use crate::config::Gateway;
use crate::endpoints::{BodyKind, Endpoint};
use crate::error::ApiError;
use crate::json::{self, Json};
use crate::multipart;
use crate::tokens;
use crate::validate::{self, Rewrite};
use std::borrow::Cow;

impl Gateway {
    /// A body still arriving (`received` bytes so far): refused once it is
    /// larger than the gateway reads, without waiting for the rest (chunked
    /// bodies announce no length).
    pub fn on_partial_body(&self, received: usize) -> Option<Reply> {
        let received = u64::try_from(received).unwrap_or(u64::MAX);
        (received > self.limits.max_request_bytes).then(|| self.error_reply(&self.too_large()))
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
}

pub(super) fn model_member<'a>(document: &json::Members<'a>) -> Result<&'a str, ApiError> {
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
