//! The mock's fault vocabulary: a `;`-separated list of directives, given
//! per request in the `x-mock-fault` header or the body field `mock_fault`
//! (so faults survive a gateway that forwards bodies but not headers), or
//! for every request with `--fault`.
//!
//! | directive              | effect                                                        |
//! |------------------------|---------------------------------------------------------------|
//! | `status=CODE`          | answer CODE with a provider-shaped error body                 |
//! | `retry-after=SECS`     | add `Retry-After: SECS` (with `status`, typically 429/503)    |
//! | `retry-after-ms=MS`    | add `retry-after-ms: MS` (OpenAI's sub-second form)           |
//! | `timeout`              | never answer (the client's timeout fires)                     |
//! | `reset`                | drop the connection with a TCP reset, no response             |
//! | `truncate`             | stream: stop mid-event without `[DONE]`; non-stream: cut body |
//! | `malformed`            | 200 with invalid JSON (stream: an invalid chunk)              |
//! | `midstream-error`      | stream: an error event halfway, then end                      |
//! | `slow-first-token=MS`  | stream: headers at once, first chunk after MS                 |
//! | `latency=MS`           | wait MS before answering                                      |
//! | `fail-first=N`         | apply the other directives to the first N requests per key    |
//! | `single-event`         | stream: the whole answer text in one event                    |
//! | `html`                 | stream: 200 with an HTML page instead of events               |
//! | `error-after-start`    | Anthropic stream: an overload error right after `message_start` |
//! | `cache-read=N`         | Anthropic: usage reports N prompt tokens read from the cache  |
//! | `cache-write=N`        | Anthropic: usage reports N prompt tokens written to the cache |
//!
//! The key for `fail-first` is the `x-mock-key` header (or body `mock_key`),
//! else the fault text itself.

/// A parsed fault spec. The default is "no fault".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub retry_after_ms: Option<u64>,
    pub timeout: bool,
    pub reset: bool,
    pub truncate: bool,
    pub malformed: bool,
    pub midstream_error: bool,
    pub slow_first_token_ms: Option<u64>,
    pub latency_ms: Option<u64>,
    pub fail_first: Option<u32>,
    pub single_event: bool,
    pub html: bool,
    pub error_after_start: bool,
    pub cache_read: Option<u32>,
    pub cache_write: Option<u32>,
}

impl Fault {
    /// Parses a spec; an unknown directive is an error so a typo in a test
    /// fails loudly instead of silently testing the happy path.
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let mut f = Fault::default();
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (part, None),
            };
            let num = |v: Option<&str>| -> Result<u64, String> {
                v.ok_or_else(|| format!("`{key}` needs a value"))?
                    .parse::<u64>()
                    .map_err(|_| format!("`{key}` needs a number"))
            };
            match key {
                "status" => {
                    let s = num(value)?;
                    if !(100..=599).contains(&s) {
                        return Err(format!("status {s} out of range"));
                    }
                    f.status = Some(s as u16);
                }
                "retry-after" => {
                    f.retry_after = Some(value.ok_or("`retry-after` needs a value")?.to_string());
                }
                "retry-after-ms" => f.retry_after_ms = Some(num(value)?),
                "timeout" => f.timeout = true,
                "reset" => f.reset = true,
                "truncate" => f.truncate = true,
                "malformed" => f.malformed = true,
                "midstream-error" => f.midstream_error = true,
                "slow-first-token" => f.slow_first_token_ms = Some(num(value)?),
                "latency" => f.latency_ms = Some(num(value)?),
                "fail-first" => f.fail_first = Some(num(value)? as u32),
                "single-event" => f.single_event = true,
                "html" => f.html = true,
                "error-after-start" => f.error_after_start = true,
                "cache-read" => f.cache_read = Some(num(value)? as u32),
                "cache-write" => f.cache_write = Some(num(value)? as u32),
                other => return Err(format!("unknown fault directive `{other}`")),
            }
        }
        Ok(f)
    }

    /// Whether this fault changes anything about the answer.
    pub fn is_active(&self) -> bool {
        self.status.is_some()
            || self.timeout
            || self.reset
            || self.truncate
            || self.malformed
            || self.midstream_error
            || self.slow_first_token_ms.is_some()
            || self.latency_ms.is_some()
            || self.html
            || self.error_after_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_vocabulary() {
        let f = Fault::parse("status=429; retry-after=1;retry-after-ms=150;fail-first=2").unwrap();
        assert_eq!(f.status, Some(429));
        assert_eq!(f.retry_after.as_deref(), Some("1"));
        assert_eq!(f.retry_after_ms, Some(150));
        assert_eq!(f.fail_first, Some(2));
        let f = Fault::parse("truncate;slow-first-token=250;latency=5").unwrap();
        assert!(f.truncate && !f.reset);
        assert_eq!(f.slow_first_token_ms, Some(250));
        assert_eq!(f.latency_ms, Some(5));
        assert!(Fault::parse("").unwrap() == Fault::default());
        assert!(!Fault::parse("fail-first=3").unwrap().is_active());
    }

    #[test]
    fn refuses_typos_and_bad_values() {
        assert!(Fault::parse("stauts=500").unwrap_err().contains("stauts"));
        assert!(Fault::parse("status=abc").is_err());
        assert!(Fault::parse("status=99").is_err());
        assert!(Fault::parse("latency").is_err());
    }
}
