//! The endpoint matrix as one table: which `/v1` paths the gateway serves,
//! with which methods, and what it tells clients about the ones it does not
//! serve. The compatibility document renders the same table.

/// An endpoint the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    ListModels,
    RetrieveModel,
    Embeddings,
    ImageGenerations,
    VideoGenerations,
    Speech,
    Transcriptions,
    Responses,
    ResponseById,
    DeferredCompletion,
    VideoById,
}

/// How the request body carries the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body is read; the filter decides on headers alone.
    None,
    /// A JSON object with a `model` member.
    Json,
    /// multipart/form-data with a `model` field.
    Multipart,
}

impl Endpoint {
    pub const ALL: [Endpoint; 13] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::ListModels,
        Endpoint::RetrieveModel,
        Endpoint::Embeddings,
        Endpoint::ImageGenerations,
        Endpoint::VideoGenerations,
        Endpoint::Speech,
        Endpoint::Transcriptions,
        Endpoint::Responses,
        Endpoint::ResponseById,
        Endpoint::DeferredCompletion,
        Endpoint::VideoById,
    ];

    pub fn body_kind(self, method: &str) -> BodyKind {
        match self {
            Endpoint::Transcriptions => BodyKind::Multipart,
            Endpoint::ListModels
            | Endpoint::RetrieveModel
            | Endpoint::ResponseById
            | Endpoint::DeferredCompletion
            | Endpoint::VideoById => BodyKind::None,
            _ if method == "POST" => BodyKind::Json,
            _ => BodyKind::None,
        }
    }
}

/// What a path of the matrix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Supported(Endpoint),
    /// Not offered by this gateway; the text tells the client what to do instead.
    Unsupported(&'static str),
}

/// One row of the matrix. In `pattern`, `{id}` matches exactly one path
/// segment and a trailing `/*` matches any further segments.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub pattern: &'static str,
    pub methods: &'static [&'static str],
    pub support: Support,
    /// One line for the compatibility document.
    pub note: &'static str,
}

const ANY: &[&str] = &[];

// One row per line, however long (rustfmt would break the short ones only).
#[rustfmt::skip]
pub const MATRIX: &[Row] = &[
    Row { pattern: "/v1/chat/completions", methods: &["POST"], support: Support::Supported(Endpoint::ChatCompletions), note: "streaming, tools, vision (multimodal models), seed, response_format" },
    Row { pattern: "/v1/completions", methods: &["POST"], support: Support::Supported(Endpoint::Completions), note: "legacy completions" },
    Row { pattern: "/v1/models", methods: &["GET"], support: Support::Supported(Endpoint::ListModels), note: "answered by the gateway from its catalog; each model carries `category`" },
    Row { pattern: "/v1/models/{id}", methods: &["GET"], support: Support::Supported(Endpoint::RetrieveModel), note: "answered by the gateway from its catalog" },
    Row { pattern: "/v1/embeddings", methods: &["POST"], support: Support::Supported(Endpoint::Embeddings), note: "`encoding_format` float (default) or base64" },
    Row { pattern: "/v1/images/generations", methods: &["POST"], support: Support::Supported(Endpoint::ImageGenerations), note: "b64_json only" },
    Row { pattern: "/v1/videos/generations", methods: &["POST"], support: Support::Supported(Endpoint::VideoGenerations), note: "asynchronous job" },
    Row { pattern: "/v1/audio/speech", methods: &["POST"], support: Support::Supported(Endpoint::Speech), note: "text to speech; voices differ per model" },
    Row { pattern: "/v1/audio/transcriptions", methods: &["POST"], support: Support::Supported(Endpoint::Transcriptions), note: "multipart/form-data; the model is a form field" },
    Row { pattern: "/v1/responses", methods: &["POST"], support: Support::Supported(Endpoint::Responses), note: "create a stored response" },
    Row { pattern: "/v1/responses/{id}", methods: &["GET", "DELETE"], support: Support::Supported(Endpoint::ResponseById), note: "retrieve / delete a stored response" },
    Row { pattern: "/v1/chat/deferred-completion/{id}", methods: &["GET"], support: Support::Supported(Endpoint::DeferredCompletion), note: "200 with the completion when done, 202 while pending" },
    Row { pattern: "/v1/videos/{id}", methods: &["GET"], support: Support::Supported(Endpoint::VideoById), note: "the state of a video job, by the id its creation returned" },
    Row { pattern: "/v1/audio/translations", methods: ANY, support: Support::Unsupported("Audio translations are not supported by this gateway. Transcribe with POST /v1/audio/transcriptions, then translate the text with POST /v1/chat/completions."), note: "" },
    Row { pattern: "/v1/fine_tuning/*", methods: ANY, support: Support::Unsupported("Fine-tuning is not offered by this API; it is a separate fine-tuning product. Ask your platform team for access."), note: "" },
    Row { pattern: "/v1/fine-tuning/*", methods: ANY, support: Support::Unsupported("Fine-tuning is not offered by this API; it is a separate fine-tuning product. Ask your platform team for access."), note: "" },
    Row { pattern: "/v1/assistants/*", methods: ANY, support: Support::Unsupported("The Assistants API is not supported and not planned. Use POST /v1/chat/completions or POST /v1/responses."), note: "" },
    Row { pattern: "/v1/threads/*", methods: ANY, support: Support::Unsupported("Threads (Assistants API) are not supported and not planned. Use POST /v1/chat/completions or POST /v1/responses."), note: "" },
    Row { pattern: "/v1/runs/*", methods: ANY, support: Support::Unsupported("Runs (Assistants API) are not supported and not planned. Use POST /v1/chat/completions or POST /v1/responses."), note: "" },
    Row { pattern: "/v1/images/edits", methods: ANY, support: Support::Unsupported("Image edits are not supported yet: the endpoint is reserved for a future image-editing model. Use POST /v1/images/generations."), note: "" },
    Row { pattern: "/v1/images/variations", methods: ANY, support: Support::Unsupported("Image variations are not supported yet: the endpoint is reserved for a future image-editing model. Use POST /v1/images/generations."), note: "" },
    Row { pattern: "/v1/batches/*", methods: ANY, support: Support::Unsupported("The Batch API is not supported. Fan out from the client instead: send the requests concurrently to the synchronous endpoints."), note: "" },
    Row { pattern: "/v1/files/*", methods: ANY, support: Support::Unsupported("The Files API is not supported. Send payloads inline in the request instead (for example images as base64 data URLs, audio as multipart form data)."), note: "" },
];

/// The result of looking a request up in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Endpoint(Endpoint),
    Unsupported(&'static str),
    MethodNotAllowed(&'static [&'static str]),
    Unknown,
}

/// Looks up `method` and `path` (query string already removed).
pub fn lookup(method: &str, path: &str) -> Lookup {
    let mut method_mismatch = None;
    for row in MATRIX {
        if !matches(row.pattern, path) {
            continue;
        }
        match row.support {
            Support::Unsupported(message) => return Lookup::Unsupported(message),
            Support::Supported(endpoint) => {
                if row.methods.contains(&method) {
                    return Lookup::Endpoint(endpoint);
                }
                method_mismatch.get_or_insert(row.methods);
            }
        }
    }
    method_mismatch.map_or(Lookup::Unknown, Lookup::MethodNotAllowed)
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return true,
            // A trailing `/*` also matches the bare prefix (`/v1/files`).
            (Some("*"), _) => return true,
            (Some("{id}"), Some(segment)) if !segment.is_empty() => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// The supported rows, for messages that list what the gateway serves.
pub fn supported_summary() -> String {
    let mut parts: Vec<String> = Vec::new();
    for row in MATRIX {
        if let Support::Supported(_) = row.support {
            parts.push(format!("{} {}", row.methods.join("/"), row.pattern));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookups() {
        let cases: &[(&str, &str, Lookup)] = &[
            (
                "POST",
                "/v1/chat/completions",
                Lookup::Endpoint(Endpoint::ChatCompletions),
            ),
            (
                "POST",
                "/v1/completions",
                Lookup::Endpoint(Endpoint::Completions),
            ),
            ("GET", "/v1/models", Lookup::Endpoint(Endpoint::ListModels)),
            (
                "GET",
                "/v1/models/llama",
                Lookup::Endpoint(Endpoint::RetrieveModel),
            ),
            (
                "POST",
                "/v1/embeddings",
                Lookup::Endpoint(Endpoint::Embeddings),
            ),
            (
                "POST",
                "/v1/images/generations",
                Lookup::Endpoint(Endpoint::ImageGenerations),
            ),
            (
                "POST",
                "/v1/videos/generations",
                Lookup::Endpoint(Endpoint::VideoGenerations),
            ),
            (
                "POST",
                "/v1/audio/speech",
                Lookup::Endpoint(Endpoint::Speech),
            ),
            (
                "POST",
                "/v1/audio/transcriptions",
                Lookup::Endpoint(Endpoint::Transcriptions),
            ),
            (
                "POST",
                "/v1/responses",
                Lookup::Endpoint(Endpoint::Responses),
            ),
            (
                "GET",
                "/v1/responses/resp_1",
                Lookup::Endpoint(Endpoint::ResponseById),
            ),
            (
                "DELETE",
                "/v1/responses/resp_1",
                Lookup::Endpoint(Endpoint::ResponseById),
            ),
            (
                "GET",
                "/v1/chat/deferred-completion/abc",
                Lookup::Endpoint(Endpoint::DeferredCompletion),
            ),
            (
                "GET",
                "/v1/chat/completions",
                Lookup::MethodNotAllowed(&["POST"]),
            ),
            ("POST", "/v1/models", Lookup::MethodNotAllowed(&["GET"])),
            (
                "PUT",
                "/v1/responses/x",
                Lookup::MethodNotAllowed(&["GET", "DELETE"]),
            ),
            ("GET", "/v1/models/", Lookup::Unknown),
            ("GET", "/v1/responses/x/input_items", Lookup::Unknown),
            ("POST", "/v1/moderations", Lookup::Unknown),
            ("GET", "/", Lookup::Unknown),
            ("POST", "/v1/chat/completions/", Lookup::Unknown),
            ("POST", "/v2/chat/completions", Lookup::Unknown),
        ];
        for (method, path, expected) in cases {
            assert_eq!(lookup(method, path), *expected, "{method} {path}");
        }
    }

    #[test]
    fn unsupported_endpoints_name_the_alternative() {
        let cases: &[(&str, &str, &str)] = &[
            ("POST", "/v1/audio/translations", "transcriptions"),
            ("POST", "/v1/fine_tuning/jobs", "fine-tuning product"),
            (
                "GET",
                "/v1/fine_tuning/jobs/ftjob-1/events",
                "fine-tuning product",
            ),
            ("POST", "/v1/assistants", "not planned"),
            ("POST", "/v1/threads/t1/runs", "not planned"),
            ("POST", "/v1/images/edits", "future image-editing model"),
            (
                "POST",
                "/v1/images/variations",
                "future image-editing model",
            ),
            ("POST", "/v1/batches", "client"),
            ("GET", "/v1/batches/b1", "client"),
            ("POST", "/v1/files", "inline"),
            ("GET", "/v1/files/file-1/content", "inline"),
        ];
        for (method, path, needle) in cases {
            match lookup(method, path) {
                Lookup::Unsupported(message) => {
                    assert!(message.contains(needle), "{path}: {message}")
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_endpoint_has_a_row() {
        for endpoint in Endpoint::ALL {
            assert!(
                MATRIX
                    .iter()
                    .any(|r| r.support == Support::Supported(endpoint)),
                "{endpoint:?}"
            );
        }
    }

    #[test]
    fn body_kinds() {
        assert_eq!(Endpoint::ChatCompletions.body_kind("POST"), BodyKind::Json);
        assert_eq!(
            Endpoint::Transcriptions.body_kind("POST"),
            BodyKind::Multipart
        );
        assert_eq!(Endpoint::ListModels.body_kind("GET"), BodyKind::None);
        assert_eq!(Endpoint::ResponseById.body_kind("DELETE"), BodyKind::None);
    }
}
