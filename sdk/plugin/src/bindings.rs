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

/// The `crm-hook` world.
pub mod crm_hook {
    wit_bindgen::generate!({
        world: "crm-hook",
        path: "../../wit/plugin",
        pub_export_macro: true,
        export_macro_name: "export_crm_hook_bindings",
        default_bindings_module: "weir_plugin::bindings::crm_hook",
        with: {
            "weir:plugin/types@0.1.0": crate::bindings::enricher::weir::plugin::types,
            "weir:plugin/host@0.1.0": crate::bindings::enricher::weir::plugin::host,
        },
    });
}

pub use crm_hook::exports::weir::plugin::crm;
pub use enricher::weir::plugin::{host, types};

use crate::crm::{CrmContext, CrmHook, CrmRequest, CrmResponse, Denial, Headers};
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
        key_kind: key_kind(context.key_kind),
        attributes: context.attributes.into_iter().map(|h| (h.name, h.value)).collect(),
    };
    match R::rewrite(&context, &sql) {
        Ok(sql) => types::RewriteOutcome::Rewritten(sql),
        Err(reason) => types::RewriteOutcome::Denied(reason),
    }
}

fn key_kind(kind: types::KeyKind) -> KeyKind {
    match kind {
        types::KeyKind::Read => KeyKind::Read,
        types::KeyKind::Write => KeyKind::Write,
        types::KeyKind::Master => KeyKind::Master,
    }
}

fn crm_context(context: crm::CrmContext) -> CrmContext {
    CrmContext {
        project: context.project,
        key_kind: key_kind(context.key_kind),
        client_address: context.client_address,
    }
}

fn headers_in(headers: Vec<types::Header>) -> Headers {
    Headers::from(headers.into_iter().map(|h| (h.name, h.value)).collect::<Vec<_>>())
}

fn headers_out(headers: Headers) -> Vec<types::Header> {
    headers.into_pairs().into_iter().map(|(name, value)| types::Header { name, value }).collect()
}

fn request_in(r: crm::CrmRequest) -> CrmRequest {
    CrmRequest { method: r.method, path: r.path, query: r.query, headers: headers_in(r.headers), body: r.body }
}

fn request_out(r: CrmRequest) -> crm::CrmRequest {
    crm::CrmRequest { method: r.method, path: r.path, query: r.query, headers: headers_out(r.headers), body: r.body }
}

fn denial_out(d: Denial) -> crm::Denial {
    crm::Denial { status: d.status, message: d.message }
}

/// Runs a [`CrmHook`]'s `on_request` as the host called it; a request the
/// hook left as it was goes back as `forward`, not copied.
pub fn run_crm_request<H: CrmHook>(context: crm::CrmContext, request: crm::CrmRequest) -> crm::RequestOutcome {
    let context = crm_context(context);
    let given = request_in(request);
    let mut request = given.clone();
    match H::on_request(&context, &mut request) {
        Err(denial) => crm::RequestOutcome::Deny(denial_out(denial)),
        Ok(()) if request == given => crm::RequestOutcome::Forward,
        Ok(()) => crm::RequestOutcome::ForwardChanged(request_out(request)),
    }
}

/// Runs a [`CrmHook`]'s `on_response` as the host called it.
pub fn run_crm_response<H: CrmHook>(
    context: crm::CrmContext,
    request: crm::CrmRequest,
    response: crm::CrmResponse,
) -> crm::ResponseOutcome {
    let context = crm_context(context);
    let request = request_in(request);
    let given = CrmResponse { status: response.status, headers: headers_in(response.headers), body: response.body };
    let mut response = given.clone();
    match H::on_response(&context, &request, &mut response) {
        Err(denial) => crm::ResponseOutcome::Deny(denial_out(denial)),
        Ok(()) if response == given => crm::ResponseOutcome::Answer,
        Ok(()) => crm::ResponseOutcome::AnswerChanged(crm::CrmResponse {
            status: response.status,
            headers: headers_out(response.headers),
            body: response.body,
        }),
    }
}
