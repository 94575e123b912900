//! For the gateway's tests: an enricher whose configuration chooses how it
//! behaves, well or badly.
//!
//! `{"behavior": B, ...}` where B is one of
//! - `tag` (the default): sets `tagged_by` to `config.tag` (or `"test"`),
//!   drops events whose `action` is `"drop"`, rejects those whose `action` is
//!   `"reject"`, and logs one line per batch;
//! - `spin`: loops forever;
//! - `allocate`: allocates `config.mb` MiB and touches it, then tags;
//! - `trap`: panics;
//! - `short`: answers one outcome fewer than it was given events;
//! - `log_flood`: logs `config.lines` lines.

use serde::Deserialize;
use weir_plugin::{Enricher, Event, RequestContext};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    behavior: String,
    tag: Option<String>,
    mb: usize,
    lines: usize,
}

pub struct TestEnricher;

impl Enricher for TestEnricher {
    fn enrich(context: &RequestContext, events: &mut [Event]) {
        let config: Config = weir_plugin::config_or_default();
        match config.behavior.as_str() {
            "spin" => spin(),
            "allocate" => {
                let block = vec![1u8; config.mb << 20];
                weir_plugin::log::info(&format!("allocated {} bytes", std::hint::black_box(&block).len()));
            }
            "trap" => panic!("the test enricher was told to trap"),
            "log_flood" => {
                for i in 0..config.lines {
                    weir_plugin::log::info(&format!("line {i}"));
                }
            }
            _ => {}
        }
        let tag = config.tag.unwrap_or_else(|| "test".to_owned());
        for event in events.iter_mut() {
            match event.get_str("action") {
                Some("drop") => event.discard(),
                Some("reject") => event.reject("this event asked to be rejected"),
                _ => event.set("tagged_by", tag.as_str()),
            }
        }
        weir_plugin::log::info(&format!("{} events of project {}", events.len(), context.project));
    }
}

/// Loops until the host stops it.
fn spin() {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// The `short` behavior needs to answer fewer outcomes than events, which the
/// SDK never does; it is exported by hand.
#[cfg(target_arch = "wasm32")]
mod short {
    use weir_plugin::bindings::types;

    pub fn enrich(context: types::RequestContext, events: Vec<types::Event>) -> Vec<types::Outcome> {
        let short = weir_plugin::config_json().contains("\"short\"");
        let mut out = weir_plugin::bindings::run_enricher::<super::TestEnricher>(context, events);
        if short {
            out.pop();
        }
        out
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
const _: () = {
    struct Export;
    impl weir_plugin::bindings::enricher::exports::weir::plugin::enrich::Guest for Export {
        fn enrich(
            context: weir_plugin::bindings::types::RequestContext,
            events: Vec<weir_plugin::bindings::types::Event>,
        ) -> Vec<weir_plugin::bindings::types::Outcome> {
            short::enrich(context, events)
        }
    }
    weir_plugin::bindings::enricher::export_enricher_bindings!(Export with_types_in weir_plugin::bindings::enricher);
};
