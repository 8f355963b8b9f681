//! The JSON body extractor: OpenAI-shaped 400s that name the offending field
//! (axum's stock `Json` answers plain text), 413 past the body limit.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `Json<T>` with OpenAI-style rejections. Content-Type is not required:
/// `curl -d` sends form encoding by default and clients rarely mean that.
pub struct OpenAiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OpenAiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large()
            } else {
                ApiError::invalid(
                    format!("Could not read the request body: {}", e.body_text()),
                    None,
                )
            }
        })?;
        parse(&bytes).map(OpenAiJson)
    }
}

/// Deserialize; a failure names the JSON path of the offending field.
/// The path is tracked only when parsing fails: `serde_path_to_error` on
/// every request made parsing about 1.5× slower (bench/README.md).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(
                format!("We could not parse the JSON body of your request: {inner}"),
                None,
            );
        }
        // Missing fields are reported at their parent; name the field itself.
        let missing = inner
            .to_string()
            .split('`')
            .nth(1)
            .filter(|_| inner.to_string().starts_with("missing field"))
            .map(str::to_string);
        let param = match (path.as_str(), missing) {
            (".", Some(field)) => field,
            (p, Some(field)) => format!("{p}.{field}"),
            (p, None) => p.to_string(),
        };
        ApiError::invalid(format!("Invalid value for `{param}`: {inner}"), Some(param))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::ChatRequest;

    #[test]
    fn errors_name_the_field() {
        let e = parse::<ChatRequest>(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}"#,
        )
        .unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("max_tokens"), "{e:?}");
        let e = parse::<ChatRequest>(br#"{"model":7,"messages":[]}"#).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("model"), "{e:?}");
        let e = parse::<ChatRequest>(br#"{"model": "#).unwrap_err();
        assert!(e.body.message.contains("parse the JSON"), "{e:?}");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
