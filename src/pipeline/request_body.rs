//! The request body: the model, the fields, and where the request goes.

use super::errors::{json_error, multipart_error, wrong_category};
use super::rewrite::{rewrite_form_model, rewrite_json};
use super::routed_ids::ids_to_rewrite;
use super::{AfterBody, HeaderEdits, PendingBody, Reply, ResponsePlan};
use crate::auth::ApiKey;
use crate::billing;
use crate::catalog::{Model, ModelIndex, ModelRoute};
use crate::config::Gateway;
use crate::context;
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

    /// The body stage's steps: the size, the key, then the body by its kind.
    fn route_body(&self, pending: &PendingBody, body: &[u8]) -> Result<AfterBody, ApiError> {
        if u64::try_from(body.len()).unwrap_or(u64::MAX) > self.limits.max_request_bytes {
            return Err(self.too_large());
        }
        let key = self
            .keys
            .get(pending.key_index)
            .ok_or_else(|| ApiError::with_status(500, "key lookup failed"))?;
        match pending.kind {
            BodyKind::Json => self.route_json(pending.endpoint, key, body),
            BodyKind::Multipart => self.route_form(pending, key, body),
            BodyKind::None => Err(ApiError::with_status(500, "no body expected")),
        }
    }

    /// The model named `requested`, with its place in the catalog, if it
    /// exists for the key and serves the endpoint.
    fn resolve_model(
        &self,
        key: &ApiKey,
        endpoint: Endpoint,
        requested: &str,
    ) -> Result<(ModelIndex, &Model), ApiError> {
        let (index, model) = match self.catalog.resolve(requested) {
            Some((index, model)) if key.may_use(index) => (index, model),
            _ => return Err(ApiError::model_not_found(requested)),
        };
        if !model.category.serves(endpoint) {
            return Err(wrong_category(model, endpoint));
        }
        Ok((index, model))
    }

    /// The backend the request goes to: the one `pinned` (the backend
    /// holding a previous response), else the first serving the model. A
    /// 503 the SDKs retry when it is not serving.
    fn pick_route<'a>(
        &self,
        index: ModelIndex,
        model: &'a Model,
        pinned: Option<usize>,
    ) -> Result<(usize, &'a ModelRoute), ApiError> {
        let picked = match pinned {
            Some(route) => self
                .serving
                .is_serving(index, route)
                .then(|| model.route_at(route).map(|r| (route, r)))
                .flatten(),
            None => self.serving.first(index, model),
        };
        picked.ok_or_else(|| self.unavailable(model))
    }

    /// A JSON body: validated, rewritten for the backend, its token cost
    /// estimated, and the response planned (usage, ids).
    fn route_json(
        &self,
        endpoint: Endpoint,
        key: &ApiKey,
        body: &[u8],
    ) -> Result<AfterBody, ApiError> {
        let document = json::parse_document(body).map_err(json_error)?;
        let requested = model_member(&document)?;
        let (index, model) = self.resolve_model(key, endpoint, requested)?;
        let mut effects = validate::check(endpoint, &document, model)?;
        context::check(endpoint, &document, model)?;
        let previous = self.previous_response(&document, &key.id, model)?;
        let picked = self.pick_route(index, model, previous.as_ref().map(|p| p.route))?;
        let route = picked.1;
        if let Some(previous) = &previous {
            effects.rewrites.push(previous.rewrite.clone());
        }
        // Streams always report usage to the gateway (billing); the
        // usage chunk is hidden from clients that did not ask for it.
        let hide_usage_chunk = streams_without_usage(endpoint, &document);
        if hide_usage_chunk {
            effects.rewrites.push(Rewrite::IncludeUsage);
        }
        let upstream = model.upstream_name(route);
        let new_body = rewrite_json(body, &document, requested, upstream, &effects.rewrites)?;
        let cost = tokens::estimate(endpoint, &document, self.token_limits.default_max_tokens);
        let (mut edits, mut response) = self.forward_to(index, model, picked, cost);
        response.estimate = cost;
        if matches!(json::member(&document, "stream"), Some(Json::Bool(true))) {
            edits
                .set
                .push((self.headers.stream.clone(), "true".to_string()));
        }
        response.headers = effects
            .response_headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        response.hide_usage_chunk = hide_usage_chunk;
        response.ids = ids_to_rewrite(
            endpoint,
            &document,
            &key.id,
            &route.backend,
            previous.map(|p| p.ids),
        );
        response.ends_with_done =
            matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions);
        response.reports_usage = reports_usage(endpoint);
        response.adjust_body =
            response.reports_usage || response.ids.is_some() || !response.renames.is_empty();
        Ok(AfterBody::Forward {
            edits,
            new_body,
            response,
        })
    }

    /// A multipart form (transcriptions): its `model` field resolved and,
    /// if the backend knows the model by another name, rewritten.
    fn route_form(
        &self,
        pending: &PendingBody,
        key: &ApiKey,
        body: &[u8],
    ) -> Result<AfterBody, ApiError> {
        let parts = multipart::parts(&pending.content_type, body).map_err(multipart_error)?;
        let requested = multipart::text_field(&parts, "model").map_err(multipart_error)?;
        let (index, model) = self.resolve_model(key, pending.endpoint, requested)?;
        let names: Vec<&[u8]> = parts.iter().map(|p| p.name).collect();
        validate::check_form(pending.endpoint, &names)?;
        let picked = self.pick_route(index, model, None)?;
        let route = picked.1;
        let new_body = rewrite_form_model(body, requested, model.upstream_name(route))?;
        let (edits, response) = self.forward_to(index, model, picked, 1);
        Ok(AfterBody::Forward {
            edits,
            new_body,
            response,
        })
    }

    /// The header edits that send the request to the route's backend (with
    /// its credential, if it has one) for `estimate` tokens (charged up
    /// front as the settlement mode says), and the response plan they start.
    /// `(route_index, route)` is what [`Gateway::pick_route`] picked for
    /// model `index`.
    fn forward_to(
        &self,
        index: ModelIndex,
        model: &Model,
        (route_index, route): (usize, &ModelRoute),
        estimate: u64,
    ) -> (HeaderEdits, ResponsePlan) {
        let mode = self.token_limits.settlement;
        let token_cost = billing::up_front(mode, estimate);
        let mut edits = HeaderEdits::default();
        let spend_estimate = model.price.map_or(0, |price| price.estimate(estimate));
        let spend_cost = billing::up_front(mode, spend_estimate);
        if model.price.is_some() {
            edits
                .set
                .push((self.headers.spend_cost.clone(), spend_cost.to_string()));
        }
        edits
            .set
            .push((self.headers.token_cost.clone(), token_cost.to_string()));
        edits
            .set
            .push((self.headers.backend.clone(), route.backend.clone()));
        edits
            .set
            .push((self.headers.model.clone(), model.id.clone()));
        if let Some(credential) = self.backend_credentials.get(&route.backend) {
            edits
                .set
                .push(("authorization".to_string(), credential.clone()));
        }
        let response = ResponsePlan {
            backend: Some(route.backend.clone()),
            model: Some(model.id.clone()),
            token_cost,
            estimate,
            price: model.price,
            spend_cost: if model.price.is_some() { spend_cost } else { 0 },
            spend_estimate,
            renames: self.catalog.route_renames(index, route_index),
            ..ResponsePlan::default()
        };
        (edits, response)
    }
}

/// The `model` member, borrowed from the body: the rewrite to the backend's
/// name finds it there by address, so a name with escapes is refused.
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
fn reports_usage(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::ChatCompletions
            | Endpoint::Completions
            | Endpoint::Embeddings
            | Endpoint::Responses
    )
}
