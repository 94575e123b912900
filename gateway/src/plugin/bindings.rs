//! Host bindings generated from `wit/plugin`, one module per world. The
//! other worlds' bindings reuse the enricher's `types` and `host`, so one
//! host implementation serves them all.

pub mod enricher {
    wasmtime::component::bindgen!({
        world: "enricher",
        path: "../wit/plugin",
        with: {
            "weir:plugin/host.asset": crate::plugin::assets::Asset,
        },
    });
}

pub mod rewriter {
    wasmtime::component::bindgen!({
        world: "query-rewriter",
        path: "../wit/plugin",
        with: {
            "weir:plugin/types": crate::plugin::bindings::enricher::weir::plugin::types,
            "weir:plugin/host": crate::plugin::bindings::enricher::weir::plugin::host,
        },
    });
}

pub mod crm_hook {
    wasmtime::component::bindgen!({
        world: "crm-hook",
        path: "../wit/plugin",
        with: {
            "weir:plugin/types": crate::plugin::bindings::enricher::weir::plugin::types,
            "weir:plugin/host": crate::plugin::bindings::enricher::weir::plugin::host,
        },
    });
}

pub use crm_hook::exports::weir::plugin::crm;
pub use enricher::weir::plugin::{host, types};
