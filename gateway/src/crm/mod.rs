//! CRM pass-through (`/crm/…`). Rakam's deployment kept no CRM of its own
//! and pointed at an external one; here each project's master key
//! configures an upstream, and a request to `/crm/<path>` with one of the
//! project's keys is forwarded to `<url>/<path>`: method, query and body as
//! sent (the project's key taken out), the configured headers added, the
//! answer streamed back.

//!
//! A project's CRM hooks (plugins of `hook=crm`) see the request before it
//! is forwarded and the answer before it goes back, each whole: a hooked
//! request's bodies are read into memory within `crm.hook_body_bytes`.

mod forward;
mod hooked;

use serde::{Deserialize, Serialize};

pub use forward::{Answer, Crm, CrmError, Forward, Outgoing};
pub use hooked::Arrived;

/// The CRM pass-through's settings (`[crm]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    /// Bytes a forwarded request's body, or an upstream's answer, may have.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Milliseconds an upstream may take to start answering, unless its
    /// configuration says less.
    #[serde(default = "default_timeout_ms")]
    pub max_timeout_ms: u64,
    /// Bytes a request's body, or an upstream's answer, may have when the
    /// project has CRM hooks: hooks see bodies whole, so these are held in
    /// memory.
    #[serde(default = "default_hook_body_bytes")]
    pub hook_body_bytes: usize,
}

fn default_max_body_bytes() -> usize {
    10 << 20
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_hook_body_bytes() -> usize {
    1 << 20
}

impl Default for CrmConfig {
    fn default() -> Self {
        CrmConfig {
            max_body_bytes: default_max_body_bytes(),
            max_timeout_ms: default_timeout_ms(),
            hook_body_bytes: default_hook_body_bytes(),
        }
    }
}
