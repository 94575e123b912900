//! For the gateway's tests: a CRM hook whose configuration chooses what it
//! denies and changes.
//!
//! - `deny`: path prefixes refused with 403 (`deny_status` to choose);
//! - `rename`: `{from: to}` path prefixes replaced before forwarding;
//! - `set_headers`: headers set on every forwarded request;
//! - `add_to_body`: fields merged into a JSON object body;
//! - `redact`: fields removed from a JSON answer (an object, or an array of
//!   objects), and `x-redacted: <n>` added to it;
//! - `deny_answers_from`: an upstream status from which on the answer is
//!   replaced by a 502 denial;
//! - `header_for_key_kind`: a header set to the caller's key kind;
//! - `fail`: `"request"` or `"response"`, that call traps (`spin`: loops).
//!
//! With no configuration everything passes unchanged.

use std::collections::BTreeMap;

use serde::Deserialize;
use weir_plugin::{CrmContext, CrmHook, CrmRequest, CrmResponse, Denial, KeyKind, Value};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    deny: Vec<String>,
    deny_status: Option<u16>,
    rename: BTreeMap<String, String>,
    set_headers: BTreeMap<String, String>,
    add_to_body: serde_json::Map<String, Value>,
    redact: Vec<String>,
    deny_answers_from: Option<u16>,
    header_for_key_kind: Option<String>,
    fail: Option<String>,
    spin: bool,
}

impl Config {
    fn misbehave(&self, at: &str) {
        if self.fail.as_deref() != Some(at) {
            return;
        }
        if self.spin {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        panic!("the test CRM hook was told to fail on the {at}");
    }
}

pub struct TestCrmHook;

impl CrmHook for TestCrmHook {
    fn on_request(context: &CrmContext, request: &mut CrmRequest) -> Result<(), Denial> {
        let config: Config = weir_plugin::config_or_default();
        weir_plugin::log::info(&format!("{} {} for project {}", request.method, request.path, context.project));
        config.misbehave("request");
        if let Some(prefix) = config.deny.iter().find(|p| request.path.starts_with(p.as_str())) {
            return Err(Denial::new(config.deny_status.unwrap_or(403), format!("{prefix} is closed")));
        }
        if let Some(name) = &config.header_for_key_kind {
            let kind = match context.key_kind {
                KeyKind::Read => "read",
                KeyKind::Write => "write",
                KeyKind::Master => "master",
            };
            request.headers.set(name, kind);
        }
        if let Some((from, to)) = config.rename.iter().find(|(from, _)| request.path.starts_with(from.as_str())) {
            request.path = format!("{to}{}", &request.path[from.len()..]);
        }
        for (name, value) in &config.set_headers {
            request.headers.set(name, value.as_str());
        }
        if !config.add_to_body.is_empty()
            && let Ok(Value::Object(mut body)) = request.json::<Value>()
        {
            body.extend(config.add_to_body.clone());
            request.set_json(&Value::Object(body));
        }
        Ok(())
    }

    fn on_response(_context: &CrmContext, request: &CrmRequest, response: &mut CrmResponse) -> Result<(), Denial> {
        let config: Config = weir_plugin::config_or_default();
        config.misbehave("response");
        if config.deny_answers_from.is_some_and(|from| response.status >= from) {
            return Err(Denial::new(502, format!("the CRM answered {} to {}", response.status, request.path)));
        }
        if config.redact.is_empty() {
            return Ok(());
        }
        let Ok(mut body) = response.json::<Value>() else {
            return Ok(());
        };
        let mut removed = 0;
        let mut redact = |item: &mut Value| {
            if let Value::Object(fields) = item {
                for name in &config.redact {
                    removed += usize::from(fields.remove(name).is_some());
                }
            }
        };
        match &mut body {
            Value::Array(items) => items.iter_mut().for_each(&mut redact),
            item => redact(item),
        }
        response.set_json(&body);
        response.headers.set("x-redacted", removed.to_string());
        Ok(())
    }
}

weir_plugin::export_crm_hook!(TestCrmHook);
