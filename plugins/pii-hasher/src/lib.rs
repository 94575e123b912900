//! Hashes personal data before it is stored.
//!
//! Configuration (per project): `{"salt": "<secret>", "fields": ["email",
//! "phone"]}`. Each listed field's value is replaced by the lowercase hex
//! HMAC-SHA-256 of its text under the salt, so equal values still join and
//! count alike within the project while the values themselves never reach
//! storage. Each project sets its own salt, so hashes do not match across
//! projects. Strings are hashed as they are (after trimming; `lowercase:
//! true` lowercases them first, for emails); other values as their JSON
//! text; nulls stay null.
//!
//! Without a salt the plugin refuses every event that carries a listed
//! field rather than store it in the clear.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use weir_plugin::{Enricher, Event, RequestContext, Value};

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub salt: String,
    pub fields: Vec<String>,
    pub lowercase: bool,
}

/// HMAC-SHA-256 of `message` under `key`, as lowercase hex.
pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    let outer = Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash that replaces a value, or `None` for a null.
pub fn hash_value(config: &Config, value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) if config.lowercase => s.trim().to_lowercase(),
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    };
    Some(hmac_hex(config.salt.as_bytes(), text.as_bytes()))
}

pub struct PiiHasher;

impl Enricher for PiiHasher {
    fn enrich(_context: &RequestContext, events: &mut [Event]) {
        let config = match weir_plugin::config::<Option<Config>>() {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                for event in events.iter_mut() {
                    event.reject(format!("pii-hasher is misconfigured: {e}"));
                }
                return;
            }
        };
        for event in events.iter_mut() {
            let present: Vec<String> =
                config.fields.iter().filter(|f| event.get(f).is_some_and(|v| !v.is_null())).cloned().collect();
            if present.is_empty() {
                continue;
            }
            if config.salt.is_empty() {
                event.reject("pii-hasher has no salt configured, so personal data cannot be stored");
                continue;
            }
            for field in present {
                if let Some(hash) = event.get(&field).and_then(|v| hash_value(&config, v)) {
                    event.set(&field, hash);
                }
            }
        }
    }
}

weir_plugin::export_enricher!(PiiHasher);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn fields_are_hashed_with_the_salt() {
        weir_plugin::testing::set_config(
            &weir_plugin::json!({"salt": "s1", "fields": ["email", "age"], "lowercase": true}),
        );
        let mut events = vec![
            Event::from_json("signup", r#"{"email": " Ann@Example.com ", "age": 41, "plan": "pro"}"#),
            Event::from_json("signup", r#"{"email": "ann@example.com"}"#),
            Event::from_json("signup", r#"{"plan": "free", "email": null}"#),
        ];
        PiiHasher::enrich(&RequestContext::default(), &mut events);
        let first = events[0].get_str("email").map(str::to_owned);
        assert_eq!(first.as_deref(), events[1].get_str("email"), "equal values hash alike");
        assert_eq!(first.as_deref().map(str::len), Some(64));
        assert_eq!(events[0].get_str("plan"), Some("pro"));
        assert_eq!(events[0].get_str("age").map(str::len), Some(64));
        assert!(!events[2].is_changed(), "nothing to hash");

        weir_plugin::testing::set_config(&weir_plugin::json!({"salt": "s2", "fields": ["email"], "lowercase": true}));
        let mut other = vec![Event::from_json("signup", r#"{"email": "ann@example.com"}"#)];
        PiiHasher::enrich(&RequestContext::default(), &mut other);
        assert_ne!(other[0].get_str("email"), first.as_deref(), "another salt, another hash");

        weir_plugin::testing::set_config(&weir_plugin::json!({"fields": ["email"]}));
        let mut unsalted = vec![Event::from_json("signup", r#"{"email": "ann@example.com"}"#)];
        PiiHasher::enrich(&RequestContext::default(), &mut unsalted);
        assert!(matches!(unsalted[0].verdict(), weir_plugin::Verdict::Reject(_)));
    }
}
