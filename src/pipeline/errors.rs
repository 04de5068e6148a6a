//! Refusals: the error reply every stage sends, the 413 of a body too
//! large (at the header stage or while it arrives), and the wording of the
//! body stage's refusals: a body that does not parse, a model of the wrong
//! category.

use super::Reply;
use crate::catalog::{Category, Model};
use crate::config::Gateway;
use crate::endpoints::Endpoint;
use crate::error::{printable, ApiError};
use crate::json::JsonError;
use crate::multipart::MultipartError;

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

    /// 503: none of the model's backends is serving it (the health probes
    /// took them out of service). The SDKs retry it after `retry-after`.
    pub(super) fn unavailable(&self, model: &Model) -> ApiError {
        let mut error = ApiError::with_status(
            503,
            format!(
                "The model `{}` is temporarily unavailable: none of its backends is serving it \
                 right now. Retry the request later.",
                model.id
            ),
        );
        let retry_after = self.unavailable_retry_after_s(model);
        error.headers.push(("retry-after", retry_after.to_string()));
        error
    }

    /// When a model without a serving backend may have one again: its
    /// backends' shortest probe interval, in whole seconds (at least 1).
    fn unavailable_retry_after_s(&self, model: &Model) -> u64 {
        model
            .routes()
            .filter_map(|route| self.probe_interval_ms(&route.backend))
            .min()
            .map_or(1, |ms| ms.div_ceil(1000).max(1))
    }

    /// 413: the body is (or will be) larger than the gateway reads.
    pub(super) fn too_large(&self) -> ApiError {
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
}

/// A model the key may use whose category does not serve the endpoint (a
/// text model on the embeddings endpoint): says which categories it takes.
pub(super) fn wrong_category(model: &Model, endpoint: Endpoint) -> ApiError {
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

/// A JSON body that does not parse, in the client's terms.
pub(super) fn json_error(error: JsonError) -> ApiError {
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

/// A form that does not parse or lacks its `model`, in the client's terms.
pub(super) fn multipart_error(error: MultipartError) -> ApiError {
    match error {
        MultipartError::NotMultipart => ApiError::bad_request(
            "This endpoint expects multipart/form-data with `file` and `model` fields (the OpenAI SDKs send this).",
        ),
        MultipartError::Malformed => ApiError::bad_request("The multipart/form-data body is malformed."),
        MultipartError::Missing => ApiError::bad_request("You must provide a model parameter.").with_param("model"),
        MultipartError::NotText => ApiError::bad_request("Invalid 'model': expected text.").with_param("model"),
    }
}
