//! The request headers: browser preflights, the key, the endpoint, the
//! models listing, and what the headers say about the body.

use super::{
    AfterBody, AfterHeaders, HeaderEdits, HeadersOutcome, PendingBody, Reply, RequestRecord,
};
use crate::auth::{ApiKey, KeyIndex};
use crate::body_headers;
use crate::catalog;
use crate::config::Gateway;
use crate::endpoints::{self, BodyKind, Endpoint, Lookup};
use crate::error::{printable, ApiError};
use crate::headers::Headers;

impl Gateway {
    /// Decides on the request headers.
    pub fn on_request_headers(&self, headers: &Headers, end_of_stream: bool) -> HeadersOutcome {
        // Client-supplied copies of the gateway's own headers never go on.
        let mut edits = HeaderEdits {
            remove: self.headers.all().iter().map(|h| h.to_string()).collect(),
            set: Vec::new(),
        };
        let request = RequestRecord::from_headers(headers);
        let next = match self.route_headers(headers, &request, end_of_stream, &mut edits) {
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
            request,
        }
    }

    /// The header stage's steps, in order. An error is the reply; the edits
    /// made before it (the key's, once authenticated) still apply.
    fn route_headers(
        &self,
        headers: &Headers,
        request: &RequestRecord,
        end_of_stream: bool,
        edits: &mut HeaderEdits,
    ) -> Result<AfterHeaders, ApiError> {
        let method = request.method.as_str();
        refuse_browser_preflight(method, headers)?;
        let (key_index, key) = self.authenticate(headers, edits)?;
        let endpoint = find_endpoint(method, &request.path)?;
        if let Some(answer) = self.models_reply(endpoint, key, &request.path) {
            return answer.map(AfterHeaders::Reply);
        }
        let kind = endpoint.body_kind(method);
        if kind == BodyKind::None {
            return self.route_by_id(endpoint, headers, request, &key.id, edits);
        }
        self.check_body_headers(headers, kind, end_of_stream)?;
        let pending = PendingBody {
            endpoint,
            kind,
            key_index,
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

    /// The key the request's `Authorization` names. The client's key never
    /// reaches a backend: the edits take it off, and name the key (its id)
    /// and the request's least token cost (1; the body stage refines it) to
    /// the rest of Envoy.
    fn authenticate(
        &self,
        headers: &Headers,
        edits: &mut HeaderEdits,
    ) -> Result<(KeyIndex, &ApiKey), ApiError> {
        let authorization: Vec<&[u8]> = headers.values("authorization").collect();
        let key_index = self.keys.authenticate(&authorization)?;
        let key = self
            .keys
            .get(key_index)
            .ok_or_else(|| ApiError::with_status(500, "key lookup failed"))?;
        edits.remove.push("authorization".to_string());
        edits
            .set
            .push((self.headers.token_cost.clone(), "1".to_string()));
        edits
            .set
            .push((self.headers.key_id.clone(), key.id.clone()));
        Ok((key_index, key))
    }

    /// The models endpoints, answered from the catalog without a backend:
    /// only the models the key may use exist for it, and only those with a
    /// backend serving them are listed. `None` for every other endpoint.
    fn models_reply(
        &self,
        endpoint: Endpoint,
        key: &ApiKey,
        path: &str,
    ) -> Option<Result<Reply, ApiError>> {
        match endpoint {
            Endpoint::ListModels => {
                let visible = self
                    .catalog
                    .models()
                    .filter(|(i, m)| key.may_use(*i) && self.serving.first(*i, m).is_some())
                    .map(|(_, m)| m);
                Some(Ok(Reply::ok_json(catalog::list_body(visible))))
            }
            Endpoint::RetrieveModel => {
                let name = path.rsplit('/').next().unwrap_or_default();
                Some(match self.catalog.resolve(name) {
                    Some((index, model))
                        if key.may_use(index) && self.serving.first(index, model).is_some() =>
                    {
                        Ok(Reply::ok_json(catalog::model_body(model)))
                    }
                    _ => Err(ApiError::model_not_found(name)),
                })
            }
            _ => None,
        }
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
}

/// A browser's CORS preflight: refused, the API is not for web pages.
fn refuse_browser_preflight(method: &str, headers: &Headers) -> Result<(), ApiError> {
    if method == "OPTIONS"
        && headers.contains("origin")
        && headers.contains("access-control-request-method")
    {
        return Err(ApiError::forbidden(
            "Cross-origin browser requests are not allowed: this API is for server-to-server calls. \
             Call it from your backend, never from a web page (that would expose your API key).",
        ));
    }
    Ok(())
}

/// The endpoint the method and path name, or the 404/405 that says what
/// this gateway serves.
fn find_endpoint(method: &str, path: &str) -> Result<Endpoint, ApiError> {
    match endpoints::lookup(method, path) {
        Lookup::Endpoint(endpoint) => Ok(endpoint),
        Lookup::Unsupported(message) => Err(ApiError::not_found(message)),
        Lookup::MethodNotAllowed(allowed) => {
            Err(ApiError::method_not_allowed(method, path, allowed))
        }
        Lookup::Unknown => Err(ApiError::not_found(format!(
            "Invalid URL ({} {}). This gateway serves: {}.",
            printable(method, 16),
            printable(path, 256),
            endpoints::supported_summary()
        ))),
    }
}
