//! Write Weir plugins in Rust.
//!
//! A Weir plugin is a WebAssembly component that implements one of the
//! worlds of the `weir:plugin` WIT package: an **enricher** sees every batch
//! of events of a project before they are typed and stored, and may change,
//! add or remove fields, drop events or reject them; a **query rewriter**
//! sees every query of a project as the user wrote it and answers the SQL to
//! run instead, or refuses it; a **CRM hook** sees every request of a
//! project to its CRM upstream, and the answer, and may change or deny
//! either.
//!
//! Implement [`Enricher`], [`QueryRewriter`] or [`CrmHook`] on a type,
//! export it with [`export_enricher!`], [`export_query_rewriter!`] or
//! [`export_crm_hook!`], and build the crate
//! as a `cdylib` for `wasm32-wasip2`:
//!
//! ```no_run
//! use weir_plugin::{Enricher, Event, RequestContext};
//!
//! /// Tags every event with the plan configured for the project, and drops
//! /// the events of internal test users.
//! struct TagPlan;
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     plan: String,
//! }
//!
//! impl Enricher for TagPlan {
//!     fn enrich(_context: &RequestContext, events: &mut [Event]) {
//!         let config: Config = match weir_plugin::config() {
//!             Ok(c) => c,
//!             Err(e) => {
//!                 // Refusing is safer than storing events without the tag.
//!                 for event in events.iter_mut() {
//!                     event.reject(format!("the plugin is misconfigured: {e}"));
//!                 }
//!                 return;
//!             }
//!         };
//!         for event in events.iter_mut() {
//!             if event.get_str("_user").is_some_and(|u| u.starts_with("test-")) {
//!                 event.discard();
//!                 continue;
//!             }
//!             event.set("plan", config.plan.as_str());
//!         }
//!         weir_plugin::log::info(&format!("tagged {} events", events.len()));
//!     }
//! }
//!
//! weir_plugin::export_enricher!(TagPlan);
//! ```
//!
//! A plugin is instantiated afresh for every call and has no filesystem,
//! network or environment: its configuration ([`config`]), a log
//! ([`log`]), a clock ([`now_millis`]) and read-only reference files
//! ([`Asset`]) are what the host offers. Memory
//! and time are capped per plugin (64 MiB and 20 ms per call unless the
//! project sets otherwise); a plugin past its cap is stopped, and its
//! events pass unchanged or are refused, as the project chose.

mod asset;
mod crm;
mod event;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings;
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::testing;

pub use asset::Asset;
pub use crm::{CrmContext, CrmHook, CrmRequest, CrmResponse, Denial, Headers};
pub use event::{Event, Verdict};
pub use serde_json::{Map, Value, json};

/// What the gateway knows about the request that carried a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The project the events belong to.
    pub project: String,
    /// The collections the batch's events go to, each named once.
    pub collection_names: Vec<String>,
    /// The client's address, when known.
    pub client_address: Option<String>,
    /// The request's `User-Agent` header.
    pub user_agent: Option<String>,
    /// The request's headers (lowercased names) in arrival order.
    pub headers: Vec<(String, String)>,
}

impl RequestContext {
    /// The first value of a header (`name` in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The kind of key a query was sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Read,
    Write,
    Master,
}

/// What the gateway knows about a query's caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryContext {
    /// The project the query runs in.
    pub project: String,
    /// The kind of key the caller used.
    pub key_kind: KeyKind,
    /// The request's `X-Weir-*` headers, prefix removed, names lowercased.
    pub attributes: Vec<(String, String)>,
}

impl QueryContext {
    /// The value of a caller attribute (`x-weir-<name>` header).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// An enricher: sees each batch of a project's events before they are typed
/// and stored.
pub trait Enricher {
    /// Changes, drops or rejects events in place; an event left alone is
    /// stored as it came.
    fn enrich(context: &RequestContext, events: &mut [Event]);
}

/// A query rewriter: sees each query of a project as the user wrote it.
pub trait QueryRewriter {
    /// The SQL to run instead, or the reason the query is refused. The
    /// answer is parsed and checked again by the gateway: a rewriter cannot
    /// widen what the caller may read.
    fn rewrite(context: &QueryContext, sql: &str) -> Result<String, String>;
}

/// The plugin's configuration for the calling project, deserialized.
pub fn config<T: serde::de::DeserializeOwned>() -> Result<T, String> {
    serde_json::from_str(&config_json()).map_err(|e| format!("invalid plugin configuration: {e}"))
}

/// The plugin's configuration, or `T::default()` when none is set. A
/// configuration that does not fit `T` is logged as an error and the
/// default is used.
pub fn config_or_default<T: serde::de::DeserializeOwned + Default>() -> T {
    match config::<Option<T>>() {
        Ok(config) => config.unwrap_or_default(),
        Err(e) => {
            log::error(&e);
            T::default()
        }
    }
}

/// The plugin's configuration for the calling project as JSON text (`null`
/// when none was set).
pub fn config_json() -> String {
    #[cfg(target_arch = "wasm32")]
    return bindings::host::config();
    #[cfg(not(target_arch = "wasm32"))]
    return native::config();
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return bindings::host::now_millis();
    #[cfg(not(target_arch = "wasm32"))]
    return native::now_millis();
}

/// The call's log: `/plugin/test` answers it; in production it goes to the
/// gateway's log at debug level. A call's log is capped.
pub mod log {
    #[cfg(target_arch = "wasm32")]
    use crate::bindings::host::{Level, log as write};
    #[cfg(not(target_arch = "wasm32"))]
    use crate::native::{Level, log as write};

    pub fn debug(message: &str) {
        write(Level::Debug, message);
    }
    pub fn info(message: &str) {
        write(Level::Info, message);
    }
    pub fn warn(message: &str) {
        write(Level::Warn, message);
    }
    pub fn error(message: &str) {
        write(Level::Error, message);
    }
}

/// Exports a type implementing [`Enricher`] as the component's `enrich`.
#[macro_export]
macro_rules! export_enricher {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            struct WeirEnricherExport;
            impl $crate::bindings::enricher::exports::weir::plugin::enrich::Guest for WeirEnricherExport {
                fn enrich(
                    context: $crate::bindings::types::RequestContext,
                    events: ::std::vec::Vec<$crate::bindings::types::Event>,
                ) -> ::std::vec::Vec<$crate::bindings::types::Outcome> {
                    $crate::bindings::run_enricher::<$ty>(context, events)
                }
            }
            $crate::bindings::enricher::export_enricher_bindings!(WeirEnricherExport with_types_in $crate::bindings::enricher);
        };
    };
}

/// Exports a type implementing [`QueryRewriter`] as the component's
/// `rewrite`.
#[macro_export]
macro_rules! export_query_rewriter {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            struct WeirRewriterExport;
            impl $crate::bindings::rewriter::exports::weir::plugin::rewrite::Guest for WeirRewriterExport {
                fn rewrite(
                    context: $crate::bindings::types::QueryContext,
                    sql: ::std::string::String,
                ) -> $crate::bindings::types::RewriteOutcome {
                    $crate::bindings::run_rewriter::<$ty>(context, sql)
                }
            }
            $crate::bindings::rewriter::export_rewriter_bindings!(WeirRewriterExport with_types_in $crate::bindings::rewriter);
        };
    };
}

/// Exports a type implementing [`CrmHook`] as the component's `crm`
/// interface.
#[macro_export]
macro_rules! export_crm_hook {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            struct WeirCrmHookExport;
            impl $crate::bindings::crm::Guest for WeirCrmHookExport {
                fn on_request(
                    context: $crate::bindings::crm::CrmContext,
                    request: $crate::bindings::crm::CrmRequest,
                ) -> $crate::bindings::crm::RequestOutcome {
                    $crate::bindings::run_crm_request::<$ty>(context, request)
                }
                fn on_response(
                    context: $crate::bindings::crm::CrmContext,
                    request: $crate::bindings::crm::CrmRequest,
                    response: $crate::bindings::crm::CrmResponse,
                ) -> $crate::bindings::crm::ResponseOutcome {
                    $crate::bindings::run_crm_response::<$ty>(context, request, response)
                }
            }
            $crate::bindings::crm_hook::export_crm_hook_bindings!(WeirCrmHookExport with_types_in $crate::bindings::crm_hook);
        };
    };
}
