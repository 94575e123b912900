//! WebAssembly plugins: the tenants' enrichers, query rewriters and CRM
//! hooks.
//!
//! [`runtime`] runs components (one engine, pooling allocator, epoch
//! deadlines, a fresh store per call); [`registry`] keeps each project's
//! plugins loaded, ready and current with the metadata store; [`enrich`] and
//! [`rewrite`] are where the pipeline and the query path call them, [`crm`]
//! where the CRM pass-through does.

pub mod assets;
pub mod bindings;
pub mod config;
pub mod crm;
pub mod enrich;
pub mod host;
pub mod registry;
pub mod rewrite;
pub mod runtime;

pub use host::{CallLog, LogLine};
pub use registry::{LoadedPlugin, Plugins, ProjectPlugins};
pub use runtime::{Called, Failure};

use crate::metadata;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upload cannot be a plugin of its hook.
    #[error("{0}")]
    Invalid(String),
    /// The runtime itself could not be set up.
    #[error("plugin runtime: {0}")]
    Runtime(String),
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
    #[error("the stored component {0} is missing")]
    MissingComponent(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// On every batch of events, before schema inference.
    Enrich,
    /// On every query, before the gateway resolves its tables.
    Rewrite,
    /// On every request to the project's CRM upstream, and its answer.
    Crm,
}

impl Hook {
    pub fn parse(text: &str) -> Option<Hook> {
        match text {
            "enrich" => Some(Hook::Enrich),
            "rewrite" => Some(Hook::Rewrite),
            "crm" => Some(Hook::Crm),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hook::Enrich => "enrich",
            Hook::Rewrite => "rewrite",
            Hook::Crm => "crm",
        }
    }

    /// The WIT world a component of this hook implements.
    pub fn world(self) -> &'static str {
        match self {
            Hook::Enrich => "weir:plugin/enricher@0.1.0",
            Hook::Rewrite => "weir:plugin/query-rewriter@0.1.0",
            Hook::Crm => "weir:plugin/crm-hook@0.1.0",
        }
    }
}

/// What happens to the events (or the CRM request or answer) of a call that
/// failed (trap, deadline, memory cap, a wrong answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The events (request, answer) go on unchanged; the failure is counted.
    Pass,
    /// The events (request, answer) are refused, with an error naming the
    /// plugin.
    Reject,
}

impl OnError {
    pub fn parse(text: &str) -> Option<OnError> {
        match text {
            "pass" => Some(OnError::Pass),
            "reject" => Some(OnError::Reject),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OnError::Pass => "pass",
            OnError::Reject => "reject",
        }
    }
}
