//! The WIT bindings and the glue between them and the SDK's types. Not part
//! of the API: the export macros use it.
#![allow(unsafe_code, missing_docs, clippy::all)]

/// The `enricher` world. Its `types` and `host` interfaces are shared with
/// the rewriter's bindings.
pub mod enricher {
    wit_bindgen::generate!({
        world: "enricher",
        path: "../../wit/plugin",
        pub_export_macro: true,
        export_macro_name: "export_enricher_bindings",
        default_bindings_module: "weir_plugin::bindings::enricher",
    });
}

/// The `query-rewriter` world.
pub mod rewriter {
    wit_bindgen::generate!({
        world: "query-rewriter",
        path: "../../wit/plugin",
        pub_export_macro: true,
        export_macro_name: "export_rewriter_bindings",
        default_bindings_module: "weir_plugin::bindings::rewriter",
        with: {
            "weir:plugin/types@0.1.0": crate::bindings::enricher::weir::plugin::types,
            "weir:plugin/host@0.1.0": crate::bindings::enricher::weir::plugin::host,
        },
    });
}

pub use enricher::weir::plugin::{host, types};

use crate::{Enricher, Event, KeyKind, QueryContext, QueryRewriter, RequestContext, Verdict};

/// Runs an [`Enricher`] over a batch as the host passed it.
pub fn run_enricher<E: Enricher>(context: types::RequestContext, events: Vec<types::Event>) -> Vec<types::Outcome> {
    let context = RequestContext {
        project: context.project,
        collection_names: context.collection_names,
        client_address: context.client_address,
        user_agent: context.user_agent,
        headers: context.headers.into_iter().map(|h| (h.name, h.value)).collect(),
    };
    let mut events: Vec<Event> = events.into_iter().map(|e| Event::from_json(e.collection, e.properties)).collect();
    E::enrich(&context, &mut events);
    events
        .into_iter()
        .map(|e| match e.into_verdict() {
            (Verdict::Keep, None) => types::Outcome::Keep,
            (Verdict::Keep, Some(json)) => types::Outcome::Replace(json),
            (Verdict::Discard, _) => types::Outcome::Drop,
            (Verdict::Reject(reason), _) => types::Outcome::Reject(reason),
        })
        .collect()
}

/// Runs a [`QueryRewriter`] over a query as the host passed it.
pub fn run_rewriter<R: QueryRewriter>(context: types::QueryContext, sql: String) -> types::RewriteOutcome {
    let context = QueryContext {
        project: context.project,
        key_kind: match context.key_kind {
            types::KeyKind::Read => KeyKind::Read,
            types::KeyKind::Write => KeyKind::Write,
            types::KeyKind::Master => KeyKind::Master,
        },
        attributes: context.attributes.into_iter().map(|h| (h.name, h.value)).collect(),
    };
    match R::rewrite(&context, &sql) {
        Ok(sql) => types::RewriteOutcome::Rewritten(sql),
        Err(reason) => types::RewriteOutcome::Denied(reason),
    }
}
