//! W3C Trace Context (`traceparent`, `tracestate`): parsed from the
//! client, formatted for each upstream attempt. Std-only; the
//! OpenTelemetry types are built from it in [`super`].

use std::fmt::Write as _;

/// The longest `tracestate` kept (W3C: at least 512 bytes must be
/// propagated; longer values may be dropped whole, which is what we do).
pub const MAX_TRACESTATE: usize = 512;

/// A valid `traceparent` (and the `tracestate` sent with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
    /// Forwarded as received when at most [`MAX_TRACESTATE`] bytes.
    pub state: Option<String>,
}

fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

impl TraceParent {
    /// `version-traceid-parentid-flags`, lowercase hex. Version `00` has
    /// exactly four fields; a later version may add fields after them (kept
    /// readable, as the spec asks); `ff` and all-zero ids are invalid.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let v = traceparent.trim();
        let mut parts = v.split('-');
        let version: [u8; 1] = hex(parts.next()?)?;
        let trace_id: [u8; 16] = hex(parts.next()?)?;
        let parent_id: [u8; 8] = hex(parts.next()?)?;
        let flags: [u8; 1] = hex(parts.next()?)?;
        let extra = parts.next().is_some();
        if version[0] == 0xff || (version[0] == 0 && extra) {
            return None;
        }
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        let state = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE)
            .map(str::to_string);
        Some(Self {
            trace_id,
            parent_id,
            flags: flags[0],
            state,
        })
    }

    /// The `traceparent` value (version `00`) for this parent.
    pub fn header(&self) -> String {
        format(&self.trace_id, &self.parent_id, self.flags)
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// `00-TRACE-SPAN-FLAGS`.
pub fn format(trace_id: &[u8; 16], span_id: &[u8; 8], flags: u8) -> String {
    let mut s = String::with_capacity(55);
    s.push_str("00-");
    for b in trace_id {
        let _ = write!(s, "{b:02x}");
    }
    s.push('-');
    for b in span_id {
        let _ = write!(s, "{b:02x}");
    }
    let _ = write!(s, "-{flags:02x}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_round_trips() {
        let tp = TraceParent::parse(GOOD, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(tp.header(), GOOD);
        assert!(tp.sampled());
        assert_eq!(tp.state.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(
            tp.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad, None), None, "{bad}");
        }
    }

    #[test]
    fn a_later_version_may_carry_more_fields() {
        let v = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
        let tp = TraceParent::parse(v, None).unwrap();
        assert!(!tp.sampled());
        assert!(tp.header().starts_with("00-4bf92f"));
    }

    #[test]
    fn an_oversized_tracestate_is_dropped() {
        let long = "k=".to_string() + &"v".repeat(MAX_TRACESTATE);
        let tp = TraceParent::parse(GOOD, Some(&long)).unwrap();
        assert_eq!(tp.state, None);
    }
}
