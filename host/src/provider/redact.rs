//! Keeping a provider's secrets out of what clients and logs see.
//!
//! A provider's credentials live in more places than `api-key`: Azure puts
//! one in `query`, proxies in `headers`, some deployments in the base URL's
//! userinfo; and an internal upstream's address is itself worth keeping. Transport errors quote the request URL, and an upstream's own
//! error body may echo the request back. So every error leaving this layer
//! passes [`Secrets::scrub_error`] (its messages lose every configured
//! secret value), clients are told the provider's name and a reason but
//! never its URL, and log lines get the URL through [`url_for_log`].

use url::Url;

use super::UpstreamError;
use super::config::ProviderConfig;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// `query` and `headers` values shorter than this are not treated as
/// secrets: they also carry settings (`api-version = "2024-10-21"`, a flag
/// header), and scrubbing those from every message would mangle it.
/// Credentials are longer. The API key and userinfo are always secret.
pub const MIN_SETTING_SECRET_LEN: usize = 16;

/// Shorter than this, even a known secret is left in place: replacing a
/// two-letter string everywhere would destroy the message.
const MIN_LEN: usize = 4;

/// The secret values of one provider, as sent and as they appear in a URL.
#[derive(Debug, Default)]
pub(crate) struct Secrets {
    /// Longest first, so a secret containing another is replaced whole.
    values: Vec<String>,
}

impl Secrets {
    pub(crate) fn of(cfg: &ProviderConfig) -> Self {
        let mut values: Vec<String> = Vec::new();
        let long = |v: &&String| v.len() >= MIN_SETTING_SECRET_LEN;
        values.extend(cfg.headers.values().filter(long).cloned());
        // Query values as configured and as they appear in the URL.
        for v in cfg.query.values().filter(long) {
            values.push(query_encoded(v));
            values.push(v.clone());
        }
        values.extend(cfg.api_key.iter().cloned());
        // Userinfo is written percent-encoded; messages may quote either
        // form, or the `Authorization: Basic` header made of it (`http::build_headers`).
        if let Ok(url) = Url::parse(&cfg.base_url) {
            // Where an internal upstream lives is not the client's business
            // either, should its error message quote its own address.
            if let Some(host) = url.host_str() {
                values.push(host.to_string());
                if let Some(port) = url.port() {
                    values.push(format!("{host}:{port}"));
                }
            }
            for v in [url.username(), url.password().unwrap_or("")] {
                values.push(percent_decoded(v));
                values.push(v.to_string());
            }
            if !url.username().is_empty() || url.password().is_some() {
                let pair = format!(
                    "{}:{}",
                    percent_decoded(url.username()),
                    percent_decoded(url.password().unwrap_or(""))
                );
                values.push(base64(pair.as_bytes()));
            }
        }
        values.retain(|v| v.len() >= MIN_LEN);
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Secrets { values }
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }

    /// The same error with every message scrubbed.
    pub(crate) fn scrub_error(&self, e: UpstreamError) -> UpstreamError {
        if self.values.is_empty() {
            return e;
        }
        use UpstreamError as U;
        match e {
            U::Client {
                provider,
                status,
                message,
                kind,
                code,
                param,
            } => U::Client {
                provider,
                status,
                message: self.scrub(&message),
                kind,
                code,
                param: param.map(|p| self.scrub(&p).into()),
            },
            U::RateLimited {
                provider,
                message,
                retry_after,
            } => U::RateLimited {
                provider,
                message: self.scrub(&message),
                retry_after,
            },
            U::Server {
                provider,
                status,
                message,
            } => U::Server {
                provider,
                status,
                message: self.scrub(&message),
            },
            U::Connect { provider, message } => U::Connect {
                provider,
                message: self.scrub(&message),
            },
            U::Protocol { provider, message } => U::Protocol {
                provider,
                message: self.scrub(&message),
            },
            other @ (U::Timeout { .. } | U::Truncated { .. } | U::Unavailable { .. }) => other,
        }
    }
}

fn query_encoded(v: &str) -> String {
    let mut u = Url::parse("http://x/").expect("a valid constant URL");
    u.query_pairs_mut().append_pair("k", v);
    u.query().unwrap_or_default()[2..].to_string()
}

/// Standard base64 with padding, as in `Authorization: Basic`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(ALPHABET[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `%XX` escapes decoded (RFC 3986; `+` is not a space here).
pub(crate) fn percent_decoded(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` for a log line: userinfo and every query value replaced by
/// [`REDACTED`] (query names stay: `api-version=[redacted]` still says
/// which parameter was sent).
pub(crate) fn url_for_log(url: &Url) -> String {
    let mut out = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        out.push_str(REDACTED);
        out.push('@');
    }
    out.push_str(url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    let names: Vec<String> = url
        .query_pairs()
        .map(|(k, _)| format!("{k}={REDACTED}"))
        .collect();
    if !names.is_empty() {
        out.push('?');
        out.push_str(&names.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderKind;

    #[test]
    fn every_configured_secret_is_scrubbed_in_every_form() {
        let mut cfg = ProviderConfig::new(
            "azure",
            ProviderKind::Openai,
            "https://svc:p%40ss-w0rd-123@x.example/v1",
        );
        cfg.api_key = Some("sk-key-0123456789".into());
        cfg.query.insert("sig".into(), "a b/c+d=e&f-long".into());
        cfg.query.insert("api-version".into(), "2024-10-21".into());
        cfg.headers
            .insert("x-token".into(), "tok-abcdefghijklm".into());
        cfg.headers.insert("x-mode".into(), "malformed".into());
        let s = Secrets::of(&cfg);
        let text = "GET /v1?sig=a+b%2Fc%2Bd%3De%26f-long (sig a b/c+d=e&f-long) \
                    key sk-key-0123456789 tok-abcdefghijklm p@ss-w0rd-123 p%40ss-w0rd-123 \
                    Basic c3ZjOnBAc3MtdzByZC0xMjM= at x.example: malformed 2024-10-21";
        let out = s.scrub(text);
        for secret in [
            "a+b%2Fc%2Bd%3De%26f-long",
            "a b/c+d=e&f-long",
            "sk-key-0123456789",
            "tok-abcdefghijklm",
            "p@ss-w0rd-123",
            "p%40ss-w0rd-123",
            "c3ZjOnBAc3MtdzByZC0xMjM=",
            "x.example",
        ] {
            assert!(!out.contains(secret), "{secret} survived: {out}");
        }
        assert!(
            out.ends_with(": malformed 2024-10-21"),
            "short settings are left alone: {out}"
        );
        let e = s.scrub_error(UpstreamError::Connect {
            provider: "azure".into(),
            message: "refused by tok-abcdefghijklm".into(),
        });
        assert_eq!(
            e.to_string(),
            "azure connection failed: refused by [redacted]"
        );
    }

    #[test]
    fn log_urls_keep_the_shape_but_no_values() {
        let url =
            Url::parse("https://u:pw@h.example:8443/v1/chat/completions?api-key=sk-1&v=2").unwrap();
        assert_eq!(
            url_for_log(&url),
            "https://[redacted]@h.example:8443/v1/chat/completions?api-key=[redacted]&v=[redacted]"
        );
        let plain = Url::parse("http://h/v1/messages").unwrap();
        assert_eq!(url_for_log(&plain), "http://h/v1/messages");
    }
}
