//! Rakam's referrer enrichment as a Weir plugin.
//!
//! For every event with a `_referrer` URL (or `_referrer: true`, which the
//! gateway replaces with the request's `Referer` header), adds
//! `_referrer_medium` (`internal`, `search`, `social`, `email` or
//! `unknown`), `_referrer_source` (`Google`, `Facebook`...),
//! `_referrer_term` (the search words, when the URL carries them),
//! `_referrer_domain` and `_referrer_path`. A referrer whose host is the
//! event's `_host` (or one of the configured `internal_domains`) is
//! `internal`.
//!
//! Sources come from a bundled table (`table.rs`) of the search
//! engines, social networks and webmail services that send most traffic;
//! `{"extra": {"example.com": ["search", "Example", "q"]}}` adds more.

mod table;
mod url;

pub use table::lookup;
pub use url::Url;

use std::collections::BTreeMap;

use serde::Deserialize;
use weir_plugin::{Enricher, Event, RequestContext};

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Hosts (and their subdomains) that count as the site itself.
    internal_domains: Vec<String>,
    /// More sources: domain → [medium, source, query parameter of the term].
    extra: BTreeMap<String, Vec<String>>,
}

/// What a referrer says about where a visit came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub medium: String,
    pub source: Option<String>,
    pub term: Option<String>,
    pub domain: String,
    pub path: String,
}

/// Classifies a referrer URL seen on `host` (the site's own host).
pub fn classify(referrer: &str, host: Option<&str>, internal: &[String]) -> Option<Referrer> {
    classify_with(referrer, host, internal, &BTreeMap::new())
}

fn classify_with(
    referrer: &str,
    host: Option<&str>,
    internal: &[String],
    extra: &BTreeMap<String, Vec<String>>,
) -> Option<Referrer> {
    let url = Url::parse(referrer)?;
    let domain = url.host.to_ascii_lowercase();
    let mut out = Referrer { medium: "unknown".into(), source: None, term: None, domain, path: url.path.to_owned() };
    let own = host.map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
    let is_internal = own.as_deref().is_some_and(|h| same_site(&out.domain, h))
        || internal.iter().any(|d| same_site(&out.domain, &d.to_ascii_lowercase()));
    if is_internal {
        out.medium = "internal".into();
        return Some(out);
    }
    let custom = extra.iter().find(|(d, _)| same_site(&out.domain, d)).and_then(|(_, v)| match v.as_slice() {
        [medium, source, params @ ..] => Some((medium.clone(), source.clone(), params.to_vec())),
        _ => None,
    });
    let known = custom.or_else(|| {
        lookup(&out.domain)
            .map(|s| (s.medium.to_owned(), s.name.to_owned(), s.params.iter().map(|p| (*p).to_owned()).collect()))
    });
    if let Some((medium, source, params)) = known {
        out.term = params.iter().find_map(|p| url.query_value(p)).filter(|t| !t.is_empty());
        out.medium = medium;
        out.source = Some(source);
    }
    Some(out)
}

/// `host` is `site` or one of its subdomains.
fn same_site(host: &str, site: &str) -> bool {
    let site = site.trim_start_matches("www.");
    let host = host.trim_start_matches("www.");
    host == site || host.strip_suffix(site).is_some_and(|prefix| prefix.ends_with('.'))
}

pub struct ReferrerEnricher;

impl Enricher for ReferrerEnricher {
    fn enrich(_context: &RequestContext, events: &mut [Event]) {
        let config: Config = weir_plugin::config_or_default();
        for event in events.iter_mut() {
            let Some(text) = event.get_str("_referrer") else {
                continue;
            };
            let Some(r) = classify_with(text, event.get_str("_host"), &config.internal_domains, &config.extra) else {
                continue;
            };
            event.set("_referrer_medium", r.medium);
            if let Some(source) = r.source {
                event.set("_referrer_source", source);
            }
            if let Some(term) = r.term {
                event.set("_referrer_term", term);
            }
            event.set("_referrer_domain", r.domain);
            event.set("_referrer_path", r.path);
        }
    }
}

weir_plugin::export_enricher!(ReferrerEnricher);

#[cfg(test)]
mod tests {
    use super::*;

    fn medium_source_term(url: &str, host: Option<&str>) -> (String, Option<String>, Option<String>) {
        let r = classify(url, host, &[]).expect("a URL");
        (r.medium, r.source, r.term)
    }

    #[test]
    fn sources_are_classified() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            medium_source_term("https://www.google.com/search?q=weir+event%20gateway&hl=en", Some("shop.example")),
            ("search".into(), s("Google"), s("weir event gateway"))
        );
        assert_eq!(
            medium_source_term("https://www.google.co.uk/search?q=x", None),
            ("search".into(), s("Google"), s("x"))
        );
        assert_eq!(
            medium_source_term("https://duckduckgo.com/?q=rust", None),
            ("search".into(), s("DuckDuckGo"), s("rust"))
        );
        assert_eq!(
            medium_source_term("https://m.facebook.com/story.php", None),
            ("social".into(), s("Facebook"), None)
        );
        assert_eq!(medium_source_term("https://t.co/abc", None), ("social".into(), s("Twitter"), None));
        assert_eq!(medium_source_term("https://mail.google.com/mail/u/0/", None), ("email".into(), s("Gmail"), None));
        assert_eq!(medium_source_term("https://blog.example.org/post", None), ("unknown".into(), None, None));
        assert_eq!(medium_source_term("https://shop.example/cart", Some("shop.example:443")).0, "internal");
        assert_eq!(medium_source_term("https://www.shop.example/cart", Some("shop.example")).0, "internal");
        let r = classify("https://www.bing.com/search?q=a&form=QBLH", None, &[]).expect("url");
        assert_eq!((r.domain.as_str(), r.path.as_str()), ("www.bing.com", "/search"));
        assert!(classify("not a url", None, &[]).is_none());
    }

    #[test]
    fn extra_sources_and_internal_domains_from_config() {
        let mut extra = BTreeMap::new();
        extra.insert("search.example".to_owned(), vec!["search".to_owned(), "Example".to_owned(), "k".to_owned()]);
        let r = classify_with("https://search.example/?k=term", None, &[], &extra).expect("url");
        assert_eq!(
            (r.medium.as_str(), r.source.as_deref(), r.term.as_deref()),
            ("search", Some("Example"), Some("term"))
        );
        let r = classify_with("https://app.shop.example/x", None, &["shop.example".to_owned()], &extra).expect("url");
        assert_eq!(r.medium, "internal");
    }
}
