//! One error type renders every OpenAI error envelope the gateway produces.
//!
//! `{"error": {"message": "…", "type": "…", "param": null, "code": null}}`, plus an
//! optional `doc_url` extension. No other module builds an envelope by hand.

use serde::Serialize;

/// OpenAI's `error.type` values the gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The client sent something that can never succeed as it is (4xx).
    InvalidRequest,
    /// The gateway or a backend failed (5xx); retrying may help.
    Server,
    /// Request-count rate limit (429).
    Requests,
    /// Token rate limit (429).
    Tokens,
    /// A spend budget is exhausted (429): OpenAI's quota error.
    InsufficientQuota,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request_error",
            ErrorType::Server => "server_error",
            ErrorType::Requests => "requests",
            ErrorType::Tokens => "tokens",
            ErrorType::InsufficientQuota => "insufficient_quota",
        }
    }
}

/// The narrow set of `error.code` values OpenAI documents; everything else is null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidApiKey,
    ModelNotFound,
    RateLimitExceeded,
    ContextLengthExceeded,
    InsufficientQuota,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::RateLimitExceeded => "rate_limit_exceeded",
            ErrorCode::ContextLengthExceeded => "context_length_exceeded",
            ErrorCode::InsufficientQuota => "insufficient_quota",
        }
    }
}

/// An error answered to the client in OpenAI's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub error_type: ErrorType,
    pub message: String,
    /// Path of the offending field (`messages[1].content`, `n`), or None.
    pub param: Option<String>,
    pub code: Option<ErrorCode>,
    /// Extra response headers (e.g. `allow` on a 405).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: u16, error_type: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error_type,
            message: message.into(),
            param: None,
            code: None,
            headers: Vec::new(),
        }
    }

    /// 400: the request is malformed or asks for something unsupported.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, ErrorType::InvalidRequest, message)
    }

    /// 401 without a code: no usable credentials were sent.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, ErrorType::InvalidRequest, message)
    }

    /// 401 `invalid_api_key`: a bearer key was sent but is not known.
    pub fn invalid_api_key(message: impl Into<String>) -> Self {
        Self::new(401, ErrorType::InvalidRequest, message).with_code(ErrorCode::InvalidApiKey)
    }

    /// 403: the request is understood and refused.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, ErrorType::InvalidRequest, message)
    }

    /// 404 without a code: no such endpoint or resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, ErrorType::InvalidRequest, message)
    }

    /// 404 `model_not_found`, worded like OpenAI so it does not reveal whether
    /// the model exists for other keys.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            404,
            ErrorType::InvalidRequest,
            format!(
                "The model `{}` does not exist or you do not have access to it. \
                 GET /v1/models lists the models available to your key.",
                printable(model, 128)
            ),
        )
        .with_param("model")
        .with_code(ErrorCode::ModelNotFound)
    }

    /// 429 `insufficient_quota`: the key's spend budget is exhausted, OpenAI's
    /// quota error (openai-python raises `RateLimitError` with this code).
    pub fn insufficient_quota(message: impl Into<String>) -> Self {
        Self::new(429, ErrorType::InsufficientQuota, message)
            .with_code(ErrorCode::InsufficientQuota)
    }

    /// 405 with the `allow` header.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &[&str]) -> Self {
        let allow = allowed.join(", ");
        let mut err = Self::new(
            405,
            ErrorType::InvalidRequest,
            format!(
                "Method {} is not allowed on {}; use {}.",
                printable(method, 16),
                printable(path, 256),
                allow
            ),
        );
        err.headers.push(("allow", allow));
        err
    }

    /// Any status with the matching type: 429 as a request limit, 5xx as server
    /// errors, the rest as invalid requests.
    pub fn with_status(status: u16, message: impl Into<String>) -> Self {
        let error_type = match status {
            429 => ErrorType::Requests,
            500..=599 => ErrorType::Server,
            _ => ErrorType::InvalidRequest,
        };
        let err = Self::new(status, error_type, message);
        if status == 429 {
            err.with_code(ErrorCode::RateLimitExceeded)
        } else {
            err
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = Some(code);
        self
    }

    /// The JSON envelope, with `doc_url` when the operator configured one.
    pub fn body(&self, doc_url: Option<&str>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            error_type: &'a str,
            param: Option<&'a str>,
            code: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            doc_url: Option<&'a str>,
        }
        let envelope = Envelope {
            error: Inner {
                message: &self.message,
                error_type: self.error_type.as_str(),
                param: self.param.as_deref(),
                code: self.code.map(ErrorCode::as_str),
                doc_url,
            },
        };
        // Serialising plain strings cannot fail; fall back to a fixed envelope anyway.
        serde_json::to_vec(&envelope).unwrap_or_else(|_| {
            br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#
                .to_vec()
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Client-supplied text made safe to quote in a message: control characters
/// replaced, cut to `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parsed(err: &ApiError, doc_url: Option<&str>) -> Value {
        serde_json::from_slice(&err.body(doc_url)).unwrap()
    }

    #[test]
    fn envelope_has_openai_shape() {
        let err = ApiError::bad_request("n must be 1").with_param("n");
        let v = parsed(&err, None);
        assert_eq!(v["error"]["message"], "n must be 1");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "n");
        assert_eq!(v["error"]["code"], Value::Null);
        assert!(v["error"].get("doc_url").is_none());
        assert_eq!(v.as_object().unwrap().len(), 1);
    }

    #[test]
    fn doc_url_extension_is_optional() {
        let v = parsed(
            &ApiError::not_found("x"),
            Some("https://docs.example/errors"),
        );
        assert_eq!(v["error"]["doc_url"], "https://docs.example/errors");
    }

    #[test]
    fn codes_and_types_by_constructor() {
        let cases = [
            (
                ApiError::invalid_api_key("k"),
                401,
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            (
                ApiError::model_not_found("m"),
                404,
                "invalid_request_error",
                Some("model_not_found"),
            ),
            (
                ApiError::with_status(429, "slow"),
                429,
                "requests",
                Some("rate_limit_exceeded"),
            ),
            (
                ApiError::insufficient_quota("spent"),
                429,
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
            (
                ApiError::with_status(503, "down"),
                503,
                "server_error",
                None,
            ),
            (
                ApiError::with_status(413, "big"),
                413,
                "invalid_request_error",
                None,
            ),
            (
                ApiError::forbidden("no"),
                403,
                "invalid_request_error",
                None,
            ),
        ];
        for (err, status, ty, code) in cases {
            let v = parsed(&err, None);
            assert_eq!(err.status, status);
            assert_eq!(v["error"]["type"], ty);
            assert_eq!(v["error"]["code"].as_str(), code);
        }
    }

    #[test]
    fn method_not_allowed_sets_allow_header() {
        let err = ApiError::method_not_allowed("PUT", "/v1/models", &["GET"]);
        assert_eq!(err.status, 405);
        assert_eq!(err.headers, vec![("allow", "GET".to_string())]);
    }

    #[test]
    fn printable_strips_controls_and_truncates() {
        assert_eq!(printable("a\nb", 10), "a?b");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("abc", 3), "abc");
    }
}
