//! The response body's state machine: a JSON body is read whole and
//! adjusted once; a stream is adjusted event by event as it arrives, holding
//! back only an unfinished event, and ends with an error event when the
//! backend cut it short. Pure: the exchange reads and replaces the bytes.

use crate::config::Gateway;
use crate::ids;
use crate::latency;
use crate::pipeline::{BodyMode, IdRewrite, ResponsePlan};
use crate::sse;
use crate::usage::{self, Usage};

/// The response body's handling and what the stream has shown so far.
#[derive(Debug, Default)]
pub struct ResponseBody {
    mode: BodyMode,
    events: sse::Reader,
    /// The stream's `[DONE]` has passed.
    done_seen: bool,
}

/// What to do with the body chunk that has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyStep {
    /// Pass it on unread.
    Pass,
    /// Hold it: a JSON body is adjusted once it is whole.
    Wait,
    /// Read it and [`ResponseBody::adjust`] it.
    Read,
}

/// One chunk adjusted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Adjusted {
    /// The bytes to send instead of the chunk; None when they are the same.
    pub replacement: Option<Vec<u8>>,
    /// The usage the chunk reported (a stream may report it in any event).
    pub usage: Vec<Usage>,
    /// The stream ended without its `[DONE]`: an error event was added.
    pub ended_early: bool,
    /// The chunk carried at least one event of generated content (see
    /// [`crate::latency::carries_content`]).
    pub content: bool,
}

impl ResponseBody {
    pub fn new(mode: BodyMode) -> Self {
        ResponseBody {
            mode,
            ..ResponseBody::default()
        }
    }

    /// Whether the chunk that arrived is read now.
    pub fn before_read(&self, end_of_stream: bool) -> BodyStep {
        match self.mode {
            BodyMode::Untouched => BodyStep::Pass,
            BodyMode::Json if !end_of_stream => BodyStep::Wait,
            BodyMode::Json | BodyMode::Events => BodyStep::Read,
        }
    }

    /// Adjusts the chunk read after [`BodyStep::Read`] (for JSON, the whole
    /// body). `plan.ids` learns the id the response issues.
    pub fn adjust(
        &mut self,
        chunk: &[u8],
        end_of_stream: bool,
        gateway: Option<&Gateway>,
        plan: &mut ResponsePlan,
    ) -> Adjusted {
        match self.mode {
            BodyMode::Untouched => Adjusted::default(),
            BodyMode::Json => adjust_json(chunk, gateway, plan),
            BodyMode::Events => self.adjust_events(chunk, end_of_stream, gateway, plan),
        }
    }

    fn adjust_events(
        &mut self,
        chunk: &[u8],
        end_of_stream: bool,
        gateway: Option<&Gateway>,
        plan: &mut ResponsePlan,
    ) -> Adjusted {
        let mut adjusted = Adjusted::default();
        let (events, unparsed) = self.events.push(chunk);
        let mut out = Vec::with_capacity(chunk.len());
        for event in &events {
            let data = event.data();
            if data.as_deref() == Some(b"[DONE]") {
                self.done_seen = true;
            }
            if !adjusted.content {
                adjusted.content = data.as_deref().is_some_and(latency::carries_content);
            }
            let (kept, usage) = usage::adjust_event(event, plan.hide_usage_chunk);
            adjusted.usage.extend(usage);
            if let Some(bytes) = kept {
                let bytes = plan.renames.apply(&bytes).unwrap_or(bytes);
                out.extend_from_slice(&rewrite_event_ids(gateway, plan.ids.as_mut(), event, bytes));
            }
        }
        out.extend_from_slice(&unparsed);
        if end_of_stream {
            out.extend_from_slice(&self.events.finish());
            if plan.ends_with_done && !self.done_seen {
                out.extend_from_slice(&usage::stream_error_event());
                adjusted.ended_early = true;
            }
        }
        if out != chunk {
            adjusted.replacement = Some(out);
        }
        adjusted
    }
}

/// A whole JSON body: usage fields adjusted, the model named by its catalog
/// id, ids in the gateway's form.
fn adjust_json(body: &[u8], gateway: Option<&Gateway>, plan: &mut ResponsePlan) -> Adjusted {
    let adjusted = usage::adjust(body);
    let mut replacement = adjusted.bytes;
    if let Some(bytes) = plan.renames.apply(replacement.as_deref().unwrap_or(body)) {
        replacement = Some(bytes);
    }
    if let (Some(gateway), Some(ids)) = (gateway, plan.ids.as_mut()) {
        let current = replacement.as_deref().unwrap_or(body);
        if let Some(bytes) = gateway.rewrite_ids(ids, current) {
            replacement = Some(bytes);
        }
    }
    Adjusted {
        replacement,
        usage: adjusted.usage.into_iter().collect(),
        ended_early: false,
        content: false,
    }
}

/// A stream event with the gateway's ids: the first event naming the
/// object issues its id; every event then carries it.
fn rewrite_event_ids(
    gateway: Option<&Gateway>,
    ids: Option<&mut IdRewrite>,
    event: &sse::Event,
    bytes: Vec<u8>,
) -> Vec<u8> {
    let (Some(gateway), Some(ids)) = (gateway, ids) else {
        return bytes;
    };
    if ids.issue.is_some() {
        if let Some(data) = event.data() {
            let _ = gateway.rewrite_ids(ids, &data);
        }
    }
    let mut out = bytes;
    for (original, issued) in &ids.known {
        if let Some(next) = ids::replace_quoted(&out, original, issued) {
            out = next;
        }
    }
    out
}
