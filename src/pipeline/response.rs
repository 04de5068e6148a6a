//! The response headers: Envoy's own error replies re-rendered as
//! envelopes, every other response's headers edited.

use super::{AfterResponseHeaders, BodyMode, HeaderEdits, Reply, RequestRecord};
use crate::config::Gateway;
use crate::error::{printable, ApiError};
use crate::headers::Headers;
use crate::ratelimit;

impl Gateway {
    /// Decides on the response headers: Envoy's own error replies become
    /// envelopes; every other response loses CORS grants, Envoy's draft
    /// rate-limit headers and the limiters' marker, gains OpenAI's
    /// `x-ratelimit-*`, and has its body handled as the plan says.
    pub fn on_response_headers(
        &self,
        status: u16,
        code_details: &str,
        request: &RequestRecord,
        headers: &Headers,
    ) -> AfterResponseHeaders {
        if let Some(reply) = self.rewrite_local_reply(status, code_details, request, headers) {
            return AfterResponseHeaders::Reply(reply);
        }
        let mut remove: Vec<String> = headers
            .iter()
            .filter(|(name, _)| {
                name.get(..15)
                    .is_some_and(|p| p.eq_ignore_ascii_case("access-control-"))
            })
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
    pub(super) fn rewrite_local_reply(
        &self,
        status: u16,
        code_details: &str,
        request: &RequestRecord,
        headers: &Headers,
    ) -> Option<Reply> {
        if status < 400 || code_details.is_empty() || code_details == "via_upstream" {
            return None;
        }
        if let (404, "route_not_found", Some(backend)) =
            (status, code_details, &request.plan.backend)
        {
            return Some(self.error_reply(&unrouted_backend(backend)));
        }
        if status == 429 {
            return Some(self.error_reply(&ratelimit::too_many_requests(
                headers,
                request.plan.token_cost,
            )));
        }
        let (status, message) = local_reply_message(status, code_details, request);
        let mut reply = self.error_reply(&ApiError::with_status(status, message));
        reply.headers.extend(retry_headers(headers));
        Some(reply)
    }
}

/// The catalog names a backend no Envoy route serves: an operator error
/// that retrying cannot fix.
fn unrouted_backend(backend: &str) -> ApiError {
    let mut error = ApiError::with_status(
        500,
        format!(
            "The model's backend `{backend}` has no route in the gateway's Envoy configuration. \
             This is a gateway configuration error: tell your platform team."
        ),
    );
    error.headers.push(("x-should-retry", "false".to_string()));
    error
}

/// What an Envoy local reply with this status means for the client, and
/// the status to tell it with. `code_details` is Envoy's
/// `response.code_details`.
fn local_reply_message(status: u16, code_details: &str, request: &RequestRecord) -> (u16, String) {
    let details = printable(code_details, 200);
    if status == 408 && request.plan.backend.is_some() {
        // The request was whole and forwarded: the backend, not the client,
        // was silent past the route's idle timeout (a stream's first bytes
        // are late). A gateway timeout, retried by the SDKs.
        return (
            504,
            format!(
                "The model backend sent nothing for longer than the gateway's idle timeout \
                 ({details}). Retry the request later."
            ),
        );
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
    (status, message)
}

/// What tells the client when to retry, in OpenAI's names: each
/// `retry-after` and the limiters' `x-ratelimit-*`.
fn retry_headers(headers: &Headers) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .values("retry-after")
        .filter_map(|value| std::str::from_utf8(value).ok())
        .map(|value| ("retry-after".to_string(), value.to_string()))
        .collect();
    out.extend(ratelimit::openai_headers(&ratelimit::read(headers)));
    out
}
