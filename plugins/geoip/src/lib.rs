//! Rakam's GeoIP enrichment as a Weir plugin.
//!
//! For every event with an `_ip` address (or `_ip: true`, which the gateway
//! replaces with the client's address), looks the address up in a
//! MaxMind-format City database and adds `_country_code`, `_region`,
//! `_city`, `_latitude`, `_longitude` and `_timezone` (those the database
//! has for it; private and unknown addresses add nothing).
//!
//! Configuration: `{"database": "GeoLite2-City.mmdb", "language": "en"}`,
//! the database's path inside the gateway's asset folder
//! (`plugins.asset_dir`). The gateway loads the file once; each batch reads
//! only the tree nodes and records its lookups touch. A database that is
//! missing or unreadable makes the call fail, so the plugin's `on_error`
//! policy decides what becomes of the events.

pub mod mmdb;

use std::net::IpAddr;

use serde::Deserialize;
use weir_plugin::{Asset, Enricher, Event, Map, RequestContext, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    database: String,
    #[serde(default = "english")]
    language: String,
}

fn english() -> String {
    "en".to_owned()
}

/// The fields Rakam adds, from a City record.
pub fn fields(record: &Map<String, Value>, language: &str) -> Vec<(&'static str, Value)> {
    let at = |path: &[&str]| {
        let mut v = record.get(path[0])?;
        for key in &path[1..] {
            v = match key.parse::<usize>() {
                Ok(i) => v.get(i)?,
                Err(_) => v.get(key)?,
            };
        }
        Some(v.clone())
    };
    let mut out = Vec::new();
    let mut add = |name, value: Option<Value>| {
        if let Some(v) = value.filter(|v| !v.is_null()) {
            out.push((name, v));
        }
    };
    add("_country_code", at(&["country", "iso_code"]));
    add("_region", at(&["subdivisions", "0", "names", language]));
    add("_city", at(&["city", "names", language]));
    add("_latitude", at(&["location", "latitude"]));
    add("_longitude", at(&["location", "longitude"]));
    add("_timezone", at(&["location", "time_zone"]));
    out
}

pub struct GeoIp;

impl Enricher for GeoIp {
    fn enrich(_context: &RequestContext, events: &mut [Event]) {
        let wanted = events.iter().any(|e| e.get_str("_ip").is_some());
        if !wanted {
            return;
        }
        let config: Config = match weir_plugin::config::<Config>() {
            Ok(c) => c,
            Err(e) => panic!("geoip needs {{\"database\": \"<path in the asset folder>\"}}: {e}"),
        };
        let asset = Asset::open(&config.database).unwrap_or_else(|e| panic!("geoip database: {e}"));
        let mut reader = mmdb::Reader::open(asset).unwrap_or_else(|e| panic!("geoip database: {e}"));
        for event in events.iter_mut() {
            let Some(ip) = event.get_str("_ip").and_then(|t| t.trim().parse::<IpAddr>().ok()) else {
                continue;
            };
            match reader.lookup(ip) {
                Ok(Some(record)) => {
                    for (name, value) in fields(&record, &config.language) {
                        event.set(name, value);
                    }
                }
                Ok(None) => {}
                Err(e) => weir_plugin::log::warn(&format!("lookup of {ip}: {e}")),
            }
        }
    }
}

weir_plugin::export_enricher!(GeoIp);
