//! Rakam's user-agent enrichment as a Weir plugin.
//!
//! For every event with a `_user_agent` string (or `_user_agent: true`,
//! which the gateway replaces with the request's header), adds
//! `_user_agent_family`, `_user_agent_version`, `_os`, `_os_version` and
//! `_device_family`. Events from known crawlers are rejected (the client is
//! answered 403), unless the configuration says `{"reject_crawlers": false}`,
//! in which case they are kept with `_device_family` = `Spider`.
//!
//! The parser matches product tokens rather than running a regular
//! expression table: a plugin is instantiated per batch, and compiling
//! hundreds of expressions per batch would cost more than the batch.

mod parse;

pub use parse::{UserAgent, parse};

use serde::Deserialize;
use weir_plugin::{Enricher, Event, RequestContext};

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    reject_crawlers: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { reject_crawlers: true }
    }
}

pub struct UserAgentEnricher;

impl Enricher for UserAgentEnricher {
    fn enrich(_context: &RequestContext, events: &mut [Event]) {
        let config: Config = weir_plugin::config_or_default();
        for event in events.iter_mut() {
            enrich_one(event, &config);
        }
    }
}

fn enrich_one(event: &mut Event, config: &Config) {
    let Some(text) = event.get_str("_user_agent") else {
        return;
    };
    let ua = parse(text);
    if ua.crawler && config.reject_crawlers {
        event.reject(format!("{} is a known crawler", ua.family));
        return;
    }
    event.set("_user_agent_family", ua.family);
    if let Some(v) = ua.version {
        event.set("_user_agent_version", v);
    }
    event.set("_os", ua.os);
    if let Some(v) = ua.os_version {
        event.set("_os_version", v);
    }
    event.set("_device_family", ua.device);
}

weir_plugin::export_enricher!(UserAgentEnricher);
