//! The request being served, as plugins see it.
//!
//! The pipeline builds one [`RequestInfo`] per request and shares it as an
//! `Arc` with every plugin call. For a `0.2` guest a call pushes the `Arc`
//! into the store's resource table and lends it to the guest as a
//! `borrow<request>`; the guest pulls only what it reads (`last-user-text`,
//! one `message`, ...) through the methods below, and the entry is removed
//! when the call returns. A long conversation is therefore not copied into
//! every call and every stream window, as the `0.1` record was (that copy
//! is `compat::request`, paid only for `0.1` guests).

use std::sync::Arc;

use wasmtime::component::Resource;

use super::bindings::types::{HostRequest, Message, PromptRef};
use super::host_state::HostState;

/// One request as the pipeline describes it to plugins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestInfo {
    /// Gateway request id (`x-sluice-request-id`).
    pub id: String,
    /// End user: the OpenAI `user` field or the virtual key's owner.
    pub user: Option<String>,
    /// Id of the API key the request authenticated with (never the secret).
    pub api_key_id: Option<String>,
    /// `x-sluice-feature`.
    pub feature: Option<String>,
    /// `x-sluice-tags`.
    pub tags: Vec<String>,
    /// The gateway model the client asked for.
    pub model: String,
    /// The conversation, tool calls included.
    pub messages: Vec<Message>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// The client asked for a streamed answer.
    pub stream: bool,
    /// The registry prompt the messages were rendered from.
    pub prompt: Option<PromptRef>,
}

impl RequestInfo {
    /// Index of the last `user` message: the one an input transform rewrites.
    pub fn last_user(&self) -> Option<usize> {
        self.messages.iter().rposition(|m| m.role == "user")
    }

    /// Text of the last `user` message.
    pub fn last_user_text(&self) -> Option<&str> {
        self.last_user().map(|i| self.messages[i].content.as_str())
    }
}

/// The `request` resource's representation in a store's table (the
/// `with:` mapping in `bindings`).
pub type SharedRequest = Arc<RequestInfo>;

/// A request lent to one call: its table entry, removed by [`Lent::release`].
pub(crate) struct Lent(Resource<SharedRequest>);

impl Lent {
    /// Push `req` into the store's table for one call.
    pub fn new(state: &mut HostState, req: &Arc<RequestInfo>) -> wasmtime::Result<Lent> {
        Ok(Lent(state.table.push(req.clone())?))
    }

    /// The handle to pass as `borrow<request>`. A borrow (not the owning
    /// handle) lowers straight to the table index, with no entry in
    /// wasmtime's own host-resource table.
    pub fn borrow(&self) -> Resource<SharedRequest> {
        Resource::new_borrow(self.0.rep())
    }

    /// Remove the entry once the call returned (the guest's borrow has
    /// ended by then; the component model traps a guest that keeps one).
    pub fn release(self, state: &mut HostState) {
        // Only fails if the entry is gone already, which nothing here does.
        let _ = state.table.delete(self.0);
    }
}

impl HostState {
    fn request(&self, r: &Resource<SharedRequest>) -> wasmtime::Result<&RequestInfo> {
        Ok(self.table.get(r)?)
    }
}

impl HostRequest for HostState {
    fn id(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<String> {
        Ok(self.request(&r)?.id.clone())
    }
    fn user(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<Option<String>> {
        Ok(self.request(&r)?.user.clone())
    }
    fn api_key_id(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<Option<String>> {
        Ok(self.request(&r)?.api_key_id.clone())
    }
    fn feature(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<Option<String>> {
        Ok(self.request(&r)?.feature.clone())
    }
    fn tags(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<Vec<String>> {
        Ok(self.request(&r)?.tags.clone())
    }
    fn model(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<String> {
        Ok(self.request(&r)?.model.clone())
    }
    fn max_tokens(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<Option<u32>> {
        Ok(self.request(&r)?.max_tokens)
    }
    fn temperature(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<Option<f32>> {
        Ok(self.request(&r)?.temperature)
    }
    fn stream(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<bool> {
        Ok(self.request(&r)?.stream)
    }
    fn prompt(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<Option<PromptRef>> {
        Ok(self.request(&r)?.prompt.clone())
    }
    fn message_count(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<u32> {
        let n = self.request(&r)?.messages.len();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
    fn message(
        &mut self,
        r: Resource<SharedRequest>,
        index: u32,
    ) -> wasmtime::Result<Option<Message>> {
        let req = self.request(&r)?;
        Ok(usize::try_from(index)
            .ok()
            .and_then(|i| req.messages.get(i))
            .cloned())
    }
    fn messages(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<Vec<Message>> {
        Ok(self.request(&r)?.messages.clone())
    }
    fn last_user_text(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<Option<String>> {
        Ok(self.request(&r)?.last_user_text().map(str::to_owned))
    }
    /// Guests only ever get borrows (no constructor, no function returns an
    /// owned request), so this runs only for a forged handle: drop the entry
    /// if it exists.
    fn drop(&mut self, r: Resource<SharedRequest>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}
