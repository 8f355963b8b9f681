//! Incremental Server-Sent Events parser.
//!
//! Upstreams deliver SSE in arbitrary TCP-sized pieces: a line, a CRLF pair
//! or a UTF-8 character may be split across chunks. The parser keeps the
//! unfinished tail and emits whole events only (WHATWG `text/event-stream`
//! rules: LF, CRLF or CR line ends, `:` comments, multi-line `data`, a
//! single optional space after the colon). It depends on `std` only so the
//! fuzz crate can compile it on its own.

use std::fmt;

/// One dispatched event. `data` lines are joined with `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (Anthropic names every event; OpenAI none).
    pub event: Option<String>,
    pub data: String,
}

/// Why an event stream cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// The stream ended in the middle of a line or before the blank line
    /// that completes an event: the upstream went away mid-answer.
    Truncated,
    /// A single event grew past the parser's limit.
    TooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::Truncated => f.write_str("event stream ended mid-event"),
            SseError::TooLarge { limit } => write!(f, "event larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for SseError {}

/// Default cap on one event (line buffer plus accumulated data): far above
/// any real chunk, low enough that a hostile upstream cannot exhaust memory.
/// Providers set their own (`max-event-kb`, same default).
pub const DEFAULT_MAX_EVENT: usize = 1024 * 1024;

/// A line buffer grown past this by one long line is dropped instead of
/// reused, so a stream that once carried a huge event does not keep that
/// much memory for the rest of its life.
const KEEP_LINE_CAPACITY: usize = 64 * 1024;

/// Push bytes in, get whole events out.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    data: String,
    event: Option<String>,
    /// Whether any `data` field was seen for the pending event (an event
    /// with `data:` and an empty value still dispatches).
    has_data: bool,
    /// Whether anything (even a comment) of the pending event was seen.
    pending: bool,
    /// The previous chunk ended in CR: a leading LF belongs to that line end.
    skip_lf: bool,
    /// A UTF-8 BOM is only skipped on the first line of the stream.
    at_start: bool,
    max_event: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT)
    }

    pub fn with_limit(max_event: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            event: None,
            has_data: false,
            pending: false,
            skip_lf: false,
            at_start: true,
            max_event,
        }
    }

    /// Feeds one chunk; complete events are appended to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.skip_lf && !bytes.is_empty() {
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
            self.skip_lf = false;
        }
        while let Some(i) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&bytes[..i]);
            let was_cr = bytes[i] == b'\r';
            bytes = &bytes[i + 1..];
            if was_cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.skip_lf = true,
                    Some(_) => {}
                }
            }
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
            if line.capacity() <= KEEP_LINE_CAPACITY {
                self.line = line;
                self.line.clear();
            }
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() + self.data.len() > self.max_event {
            return Err(SseError::TooLarge {
                limit: self.max_event,
            });
        }
        Ok(())
    }

    /// Call at end of input. A stream must end on an event boundary;
    /// anything pending means the upstream was cut off.
    pub fn finish(&self) -> Result<(), SseError> {
        if self.line.is_empty() && !self.pending {
            Ok(())
        } else {
            Err(SseError::Truncated)
        }
    }

    fn process_line(&mut self, mut line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.at_start {
            // Checked on the first whole line so a BOM split across chunks
            // is still recognised.
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            self.at_start = false;
        }
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event = None;
            self.data.clear();
            self.has_data = false;
            self.pending = false;
            return Ok(());
        }
        if line[0] == b':' {
            // Comments (keep-alives) are not part of an event; they do not
            // make one pending either, so a stream may end right after one.
            return Ok(());
        }
        self.pending = true;
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
                if self.data.len() > self.max_event {
                    return Err(SseError::TooLarge {
                        limit: self.max_event,
                    });
                }
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            // `id` and `retry` matter for browser reconnection only.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> (Vec<SseEvent>, Result<(), SseError>) {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.push(input, &mut out).unwrap();
        (out, p.finish())
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_string),
            data: data.to_string(),
        }
    }

    #[test]
    fn openai_style_stream() {
        let (evs, end) = parse_all(b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(evs, vec![ev(None, "{\"a\":1}"), ev(None, "[DONE]")]);
        assert_eq!(end, Ok(()));
    }

    #[test]
    fn named_events_comments_and_multiline_data() {
        let input = b": keep-alive\nevent: message_start\ndata: line1\ndata:line2\nid: 7\n\n";
        let (evs, end) = parse_all(input);
        assert_eq!(evs, vec![ev(Some("message_start"), "line1\nline2")]);
        assert_eq!(end, Ok(()));
    }

    #[test]
    fn crlf_and_lone_cr_line_ends() {
        let (evs, _) = parse_all(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n");
        assert_eq!(evs, vec![ev(None, "a"), ev(None, "b"), ev(None, "c")]);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let input: &[u8] =
            b"event: x\r\ndata: h\xC3\xA9llo\r\ndata: two\r\n\r\n: c\r\ndata: [DONE]\r\n\r\n";
        let (whole, _) = parse_all(input);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].data, "héllo\ntwo");
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let mut p = SseParser::new();
                let mut out = Vec::new();
                for part in [&input[..i], &input[i..j], &input[j..]] {
                    p.push(part, &mut out).unwrap();
                }
                assert_eq!(out, whole, "split at {i},{j}");
                assert_eq!(p.finish(), Ok(()));
            }
        }
    }

    #[test]
    fn truncated_streams_are_errors() {
        assert_eq!(parse_all(b"data: {\"a\"").1, Err(SseError::Truncated));
        // A complete line but no blank line: the event never dispatched.
        assert_eq!(parse_all(b"data: x\n").1, Err(SseError::Truncated));
        assert_eq!(parse_all(b"data: x\n\n: ping\n").1, Ok(()));
    }

    #[test]
    fn empty_data_dispatches_but_fieldless_blank_lines_do_not() {
        let (evs, _) = parse_all(b"\n\ndata\n\nevent: e\n\n");
        assert_eq!(evs, vec![ev(None, "")]);
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut p = SseParser::with_limit(16);
        let mut out = Vec::new();
        let err = p.push(b"data: 0123456789abcdefghij", &mut out).unwrap_err();
        assert_eq!(err, SseError::TooLarge { limit: 16 });
    }

    #[test]
    fn bom_is_skipped_at_start_only() {
        let (evs, _) = parse_all(b"\xEF\xBB\xBFdata: x\n\n");
        assert_eq!(evs, vec![ev(None, "x")]);
    }
}
