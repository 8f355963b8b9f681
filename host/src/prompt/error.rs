//! Why a request's `prompt` extension could not be served. The status and
//! OpenAI error body for each is the server's decision
//! (`crate::server::error`); the `param` each names is here, so the message
//! and the field it blames never drift apart.

/// A failure to render a request from the registry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromptError {
    /// `[prompts] dir` is not configured.
    #[error("this gateway has no prompt registry ([prompts] dir is not set)")]
    Disabled,
    /// The extension is not `{"id", "version"?, "variables"?}`.
    #[error("invalid `prompt`: {0}")]
    Invalid(String),
    #[error("the prompt `{0}` does not exist")]
    NotFound(String),
    #[error("the prompt `{id}` has no version {version} (versions: {available})")]
    VersionNotFound {
        id: String,
        version: u32,
        available: String,
    },
    /// Required variables the request did not supply, all of them.
    #[error("missing variable(s) for prompt `{id}` version {version}: {}", .names.join(", "))]
    MissingVariables {
        id: String,
        version: u32,
        names: Vec<String>,
    },
    /// A supplied variable lacks something the template reads (`user.name`
    /// when `user` has no `name`), or rendering failed otherwise.
    #[error("rendering prompt `{id}` version {version}: {reason}")]
    Render {
        id: String,
        version: u32,
        reason: String,
    },
}

impl PromptError {
    /// The request field the error is about, OpenAI-style.
    pub fn param(&self) -> &'static str {
        match self {
            PromptError::Disabled | PromptError::Invalid(_) => "prompt",
            PromptError::NotFound(_) => "prompt.id",
            PromptError::VersionNotFound { .. } => "prompt.version",
            PromptError::MissingVariables { .. } | PromptError::Render { .. } => "prompt.variables",
        }
    }

    /// A stable machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            PromptError::Disabled => "prompts_disabled",
            PromptError::Invalid(_) => "invalid_prompt",
            PromptError::NotFound(_) => "prompt_not_found",
            PromptError::VersionNotFound { .. } => "prompt_version_not_found",
            PromptError::MissingVariables { .. } => "missing_variables",
            PromptError::Render { .. } => "invalid_variables",
        }
    }

    /// The version that failed to render, when one was chosen (the error
    /// answer names it in `x-sluice-prompt` too).
    pub fn prompt_ref(&self) -> Option<super::PromptRef> {
        match self {
            PromptError::MissingVariables { id, version, .. }
            | PromptError::Render { id, version, .. } => Some(super::PromptRef {
                id: id.clone(),
                version: *version,
            }),
            _ => None,
        }
    }

    /// Not found (404) rather than a malformed request (400).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            PromptError::NotFound(_) | PromptError::VersionNotFound { .. }
        )
    }
}
