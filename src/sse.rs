//! Incremental server-sent-events framing for streamed responses. Upstream
//! chunks can split an event anywhere and carry several events; the reader
//! hands back each complete event (its exact bytes, so untouched events pass
//! through byte for byte) and keeps only the unfinished tail, bounded.

/// Events longer than this are passed on unparsed rather than held.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// One complete event: its raw bytes, including the blank line ending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub raw: Vec<u8>,
}

impl Event {
    /// The event's data: its `data:` lines' values joined by `\n`, or None
    /// for events without data (comments, `event:`/`id:`/`retry:` only).
    pub fn data(&self) -> Option<Vec<u8>> {
        let mut data: Option<Vec<u8>> = None;
        for line in lines(&self.raw) {
            let value = match line.strip_prefix(b"data") {
                Some(rest) if rest.is_empty() => rest,
                Some(rest) => match rest.strip_prefix(b":") {
                    Some(v) => v.strip_prefix(b" ").unwrap_or(v),
                    None => continue, // a field named e.g. `database`
                },
                None => continue,
            };
            match &mut data {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(value);
                }
                None => data = Some(value.to_vec()),
            }
        }
        data
    }

    /// The data as a borrowed slice of `raw` when the event has exactly one
    /// `data:` line (the usual case), so it can be edited in place.
    pub fn single_data_span(&self) -> Option<std::ops::Range<usize>> {
        let mut found = None;
        for line in lines(&self.raw) {
            let Some(rest) = line.strip_prefix(b"data:") else {
                continue;
            };
            if found.is_some() {
                return None;
            }
            let start = (line.as_ptr() as usize).checked_sub(self.raw.as_ptr() as usize)?;
            let skip = if rest.starts_with(b" ") { 6 } else { 5 };
            found = Some(start.saturating_add(skip)..start.saturating_add(line.len()));
        }
        found
    }
}

/// Lines of an event, without their terminators (CRLF, LF or CR).
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .unwrap_or(rest.len());
        let line = rest.get(..end)?;
        let mut next = end;
        if rest.get(end) == Some(&b'\r') && rest.get(end.saturating_add(1)) == Some(&b'\n') {
            next = next.saturating_add(2);
        } else if end < rest.len() {
            next = next.saturating_add(1);
        }
        rest = rest.get(next..).unwrap_or_default();
        Some(line)
    })
}

/// Reassembles events across chunks.
#[derive(Debug, Default)]
pub struct Reader {
    pending: Vec<u8>,
    /// How far `pending` is known to hold no event end: the next chunk is
    /// scanned from there, not from the start, so an event arriving in many
    /// small chunks costs linear time, not quadratic.
    scanned: usize,
}

/// How far back the next scan starts: a line terminator (`\r\n`) and an
/// empty line split across chunks are at most this long.
const RESCAN: usize = 4;

impl Reader {
    /// Feeds one chunk; returns the events it completes, in order, and the
    /// bytes to pass on unparsed (an over-long unfinished event).
    pub fn push(&mut self, chunk: &[u8]) -> (Vec<Event>, Vec<u8>) {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0usize;
        let mut i = self.scanned.min(self.pending.len());
        // An event ends at an empty line: two line terminators in a row.
        while let Some(&b) = self.pending.get(i) {
            let terminator = match (b, self.pending.get(i.saturating_add(1))) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => break, // maybe CRLF split across chunks
                (b'\n' | b'\r', _) => 1,
                _ => {
                    i = i.saturating_add(1);
                    continue;
                }
            };
            let after = i.saturating_add(terminator);
            let empty_line = match self.pending.get(after) {
                Some(b'\n') => Some(after.saturating_add(1)),
                Some(b'\r') => match self.pending.get(after.saturating_add(1)) {
                    Some(b'\n') => Some(after.saturating_add(2)),
                    Some(_) => Some(after.saturating_add(1)),
                    None => break, // wait: may be CRLF
                },
                _ => None,
            };
            match empty_line {
                Some(end) => {
                    if let Some(raw) = self.pending.get(start..end) {
                        events.push(Event { raw: raw.to_vec() });
                    }
                    start = end;
                    i = end;
                }
                None => i = after,
            }
        }
        self.pending.drain(..start.min(self.pending.len()));
        self.scanned = i.saturating_sub(start).saturating_sub(RESCAN);
        if self.pending.len() > MAX_EVENT_BYTES {
            self.scanned = 0;
            return (events, std::mem::take(&mut self.pending));
        }
        (events, Vec::new())
    }

    /// What is left at the end of the stream (an unterminated last event).
    pub fn finish(&mut self) -> Vec<u8> {
        self.scanned = 0;
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datas(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| e.data())
            .map(|d| String::from_utf8(d).unwrap())
            .collect()
    }

    #[test]
    fn whole_and_multi_event_chunks() {
        let mut r = Reader::default();
        let (events, pass) = r.push(b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n");
        assert_eq!(datas(&events), ["{\"a\":1}", "{\"b\":2}", "[DONE]"]);
        assert!(pass.is_empty());
        assert!(r.finish().is_empty());
    }

    /// The reader resumes its scan where the last chunk ended: every way of
    /// splitting terminators across chunks (CR, LF, CRLF, the empty line)
    /// still ends the event exactly where a whole-stream read does.
    #[test]
    fn resumed_scans_find_every_event_end() {
        let stream: &[u8] =
            b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\n\r\ndata: e\r\n\ndata: [DONE]\n\n";
        let whole = Reader::default().push(stream).0;
        for size in 1..=stream.len() {
            let mut r = Reader::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(size) {
                let (events, pass) = r.push(chunk);
                assert!(pass.is_empty());
                got.extend(events);
            }
            assert!(r.finish().is_empty(), "size {size}");
            let raw = |e: &[Event]| e.iter().map(|e| e.raw.clone()).collect::<Vec<_>>();
            assert_eq!(raw(&got), raw(&whole), "size {size}");
        }
        assert_eq!(datas(&whole), ["a", "b", "c", "d", "e", "[DONE]"]);
    }

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let stream = b"data: {\"a\":1}\r\n\r\n: keep-alive comment\n\nevent: x\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut r = Reader::default();
            let (mut events, _) = r.push(&stream[..split]);
            let (more, _) = r.push(&stream[split..]);
            events.extend(more);
            assert_eq!(
                datas(&events),
                ["{\"a\":1}", "line1\nline2", "[DONE]"],
                "split at {split}"
            );
            let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
            assert_eq!(raw, stream, "bytes kept at split {split}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let stream = b"data: {\"x\":\"\xc3\xa9\"}\r\n\r\ndata: [DONE]\r\n\r\n";
        let mut r = Reader::default();
        let mut events = Vec::new();
        for b in stream {
            events.extend(r.push(&[*b]).0);
        }
        assert_eq!(datas(&events), ["{\"x\":\"é\"}", "[DONE]"]);
    }

    #[test]
    fn comments_and_fields_without_data() {
        let mut r = Reader::default();
        let (events, _) = r.push(b": ping\n\nretry: 10\n\ndatabase: no\n\n");
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.data().is_none()));
    }

    #[test]
    fn single_data_span_points_into_raw() {
        let e = Event {
            raw: b"id: 1\ndata: {\"a\":1}\n\n".to_vec(),
        };
        let span = e.single_data_span().unwrap();
        assert_eq!(&e.raw[span], b"{\"a\":1}");
        let two = Event {
            raw: b"data: a\ndata: b\n\n".to_vec(),
        };
        assert_eq!(two.single_data_span(), None);
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = Reader::default();
        let big = vec![b'x'; MAX_EVENT_BYTES + 10];
        let (events, pass) = r.push(&big);
        assert!(events.is_empty());
        assert_eq!(pass.len(), big.len());
        assert!(r.finish().is_empty());
    }
}
