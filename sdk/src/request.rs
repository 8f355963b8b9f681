//! [`Request`]: the request being served, as plugin code reads it.
//!
//! Inside the gateway the request stays on the host (a `request` resource
//! of the contract): each method asks the host for exactly that piece, so a
//! guardrail that reads only [`Request::last_user_text`] never pays for a
//! 50-message conversation. Natively (unit tests) a `Request` is a plain
//! [`RequestData`]; the methods behave the same.

use std::mem::ManuallyDrop;

use crate::__bindings::lifecycle::sluice::plugin::types as wit;
use crate::{Message, PromptRef};

/// Everything a request carries, as plain data: what [`Request`] reads from
/// natively, and how tests build one (`Request::from(RequestData { .. })`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestData {
    /// Gateway request id (`x-sluice-request-id`).
    pub id: String,
    /// End user: the OpenAI `user` field or the virtual key's owner.
    pub user: Option<String>,
    /// Id of the API key the request authenticated with.
    pub api_key_id: Option<String>,
    /// `x-sluice-feature`.
    pub feature: Option<String>,
    /// `x-sluice-tags`.
    pub tags: Vec<String>,
    /// The gateway model the client asked for.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// The client asked for a streamed answer.
    pub stream: bool,
    /// The registry prompt the messages were rendered from.
    pub prompt: Option<PromptRef>,
}

/// The request being served. Every method returns an owned value; inside
/// the gateway each call is one host call, so read a value once and keep
/// it rather than asking twice.
#[derive(Debug)]
pub struct Request {
    src: Source,
}

#[derive(Debug)]
enum Source {
    /// Boxed: a guest's requests are all `Host` (a handle).
    Data(Box<RequestData>),
    /// The host's request, borrowed for the current call. Never dropped
    /// here: the export glue owns the borrow and ends it after the call.
    Host(ManuallyDrop<wit::Request>),
}

impl From<RequestData> for Request {
    fn from(data: RequestData) -> Self {
        Request {
            src: Source::Data(Box::new(data)),
        }
    }
}

impl Default for Request {
    fn default() -> Self {
        RequestData::default().into()
    }
}

/// One accessor per field: the plain value natively, a host call in a guest.
macro_rules! accessors {
    ($($(#[$doc:meta])* $name:ident -> $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self) -> $ty {
            match &self.src {
                Source::Data(d) => d.$name.clone(),
                Source::Host(h) => h.$name(),
            }
        }
    )*};
}

impl Request {
    /// The request the host lent to the current call.
    ///
    /// # Safety
    /// The returned value must not outlive `borrowed` (the export glue
    /// builds it for one call and hands the plugin only a reference).
    pub(crate) unsafe fn lent(borrowed: &wit::Request) -> Self {
        // SAFETY: the same handle, wrapped so that it is never dropped here;
        // the caller keeps `borrowed` alive for as long as this value.
        let handle = unsafe { wit::Request::from_handle(borrowed.handle()) };
        Request {
            src: Source::Host(ManuallyDrop::new(handle)),
        }
    }

    /// A request for `model` with `(role, content)` messages; for tests.
    pub fn chat(model: &str, messages: &[(&str, &str)]) -> Self {
        RequestData {
            model: model.to_string(),
            messages: messages
                .iter()
                .map(|(role, content)| Message::text(role, content))
                .collect(),
            ..Default::default()
        }
        .into()
    }

    accessors! {
        /// Gateway request id.
        id -> String;
        /// End user, if known.
        user -> Option<String>;
        /// The authenticating key's id (never the secret).
        api_key_id -> Option<String>;
        /// `x-sluice-feature`.
        feature -> Option<String>;
        /// `x-sluice-tags`.
        tags -> Vec<String>;
        /// The gateway model asked for.
        model -> String;
        /// The completion limit, if any.
        max_tokens -> Option<u32>;
        /// The sampling temperature, if set.
        temperature -> Option<f32>;
        /// The registry prompt the messages were rendered from.
        prompt -> Option<PromptRef>;
        /// The whole conversation (a long one is a large copy: prefer
        /// [`Request::message`] or [`Request::last_user_text`]).
        messages -> Vec<Message>;
    }

    /// True when the client asked for a streamed answer.
    pub fn stream(&self) -> bool {
        match &self.src {
            Source::Data(d) => d.stream,
            Source::Host(h) => h.stream(),
        }
    }

    /// Number of messages in the conversation.
    pub fn message_count(&self) -> u32 {
        match &self.src {
            Source::Data(d) => u32::try_from(d.messages.len()).unwrap_or(u32::MAX),
            Source::Host(h) => h.message_count(),
        }
    }

    /// Message `index` (0 = first), `None` past the end.
    pub fn message(&self, index: u32) -> Option<Message> {
        match &self.src {
            Source::Data(d) => usize::try_from(index)
                .ok()
                .and_then(|i| d.messages.get(i))
                .cloned(),
            Source::Host(h) => h.message(index),
        }
    }

    /// Text of the last `user` message: the one an input transform replaces.
    pub fn last_user_text(&self) -> Option<String> {
        match &self.src {
            Source::Data(d) => d
                .messages
                .iter()
                .rev()
                .find(|m| m.role == "user")
                .map(|m| m.content.clone()),
            Source::Host(h) => h.last_user_text(),
        }
    }

    /// True when the request carries `tag` (`x-sluice-tags`).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().iter().any(|t| t == tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_requests_read_their_data() {
        let mut data = RequestData {
            id: "r1".into(),
            tags: vec!["beta".into()],
            max_tokens: Some(5),
            ..Default::default()
        };
        data.messages = vec![
            Message::text("user", "first"),
            Message::text("assistant", "reply"),
            Message::text("user", "second"),
            Message::text("tool", "result"),
        ];
        let req = Request::from(data);
        assert_eq!(req.id(), "r1");
        assert!(req.has_tag("beta") && !req.has_tag("alpha"));
        assert_eq!(req.max_tokens(), Some(5));
        assert_eq!(req.message_count(), 4);
        assert_eq!(req.message(1).unwrap().content, "reply");
        assert_eq!(req.message(4), None);
        assert_eq!(req.last_user_text().as_deref(), Some("second"));
        assert_eq!(
            Request::chat("m", &[("system", "s")]).last_user_text(),
            None
        );
    }
}
