//! An enricher that keeps every event as it came. It measures what the
//! plugin machinery itself costs per batch.

use weir_plugin::{Enricher, Event, RequestContext};

pub struct Identity;

impl Enricher for Identity {
    fn enrich(_context: &RequestContext, _events: &mut [Event]) {}
}

weir_plugin::export_enricher!(Identity);
