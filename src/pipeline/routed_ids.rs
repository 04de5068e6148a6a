//! Ids that route themselves (see [`crate::ids`]) in the pipeline: calls by
//! id, `previous_response_id`, and the ids the client sees in responses.

use super::{AfterHeaders, HeaderEdits, IdRewrite, IssueId, RequestRecord, ResponsePlan};
use crate::catalog::Model;
use crate::config::Gateway;
use crate::endpoints::Endpoint;
use crate::error::{printable, ApiError};
use crate::headers::Headers;
use crate::ids;
use crate::json::{self, Json};
use crate::validate::Rewrite;

impl Gateway {
    /// Calls by id: the id says which backend holds the object, if this
    /// gateway issued it to this key.
    pub(super) fn route_by_id(
        &self,
        endpoint: Endpoint,
        headers: &Headers,
        request: &RequestRecord,
        key_id: &str,
        edits: &mut HeaderEdits,
    ) -> Result<AfterHeaders, ApiError> {
        let (dir, id) = request.path.rsplit_once('/').unwrap_or_default();
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
        if streams(&query) {
            edits
                .set
                .push((self.headers.stream.clone(), "true".to_string()));
        }
        // The object names the model as its backend knows it.
        let renames = self.catalog.backend_renames(&backend);
        Ok(AfterHeaders::Route(ResponsePlan {
            backend: Some(backend),
            token_cost: 1,
            adjust_body: true,
            renames,
            ids: Some(IdRewrite {
                issue: None,
                known: vec![(original, id.to_string())],
            }),
            ..ResponsePlan::default()
        }))
    }

    /// Ids in a response body (a JSON object or one stream event's data),
    /// as the client should see them; `None` when nothing changes. The
    /// first body that carries the id to issue issues it: `ids` then holds
    /// it among the known pairs, for the rest of the response.
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

    /// `previous_response_id` names a stored response by the gateway's id:
    /// check it belongs to this key and to one of the model's backends, and
    /// give that backend its own id.
    pub(super) fn previous_response(
        &self,
        document: &json::Members,
        key_id: &str,
        model: &Model,
    ) -> Result<Option<Previous>, ApiError> {
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
        let Some(route) = model.routes().position(|route| route.backend == backend) else {
            return Err(ApiError::bad_request(format!(
                "Invalid 'previous_response_id': that response was made by another model's backend; continue it with the model that created it (not `{}`).",
                model.id
            ))
            .with_param("previous_response_id"));
        };
        let rewrite = Rewrite::ReplaceString {
            name: "previous_response_id",
            value: original.clone(),
        };
        Ok(Some(Previous {
            rewrite,
            ids: (original, id.to_string()),
            route,
        }))
    }
}

/// A previous response the request continues (`previous_response_id`).
pub(super) struct Previous {
    /// Gives the backend its own id.
    pub rewrite: Rewrite,
    /// (backend's id, gateway's id), for the response.
    pub ids: (String, String),
    /// The model's route to the backend holding it: the request must go there.
    pub route: usize,
}

/// The ids to rewrite in a response to this request: the one it will carry
/// (issued for this key and the backend it goes to), and the previous
/// response's (backend's id, gateway's id), given back in the gateway's form.
pub(super) fn ids_to_rewrite(
    endpoint: Endpoint,
    document: &json::Members,
    key_id: &str,
    backend: &str,
    previous: Option<(String, String)>,
) -> Option<IdRewrite> {
    let issue = issued_id_field(endpoint, document).map(|field| IssueId {
        field,
        key_id: key_id.to_string(),
        backend: backend.to_string(),
    });
    let known: Vec<(String, String)> = previous.into_iter().collect();
    (issue.is_some() || !known.is_empty()).then_some(IdRewrite { issue, known })
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

/// Whether a query string (`?…`, or empty) asks for a stream (`stream=true`,
/// as `GET /v1/responses/{id}?stream=true` does).
fn streams(query: &str) -> bool {
    query
        .trim_start_matches('?')
        .split('&')
        .any(|pair| pair == "stream=true")
}
