//! For the gateway's tests: a query rewriter whose configuration chooses its
//! answer.
//!
//! `{"replace_with": SQL}` answers SQL whatever was asked; `{"deny": R}`
//! refuses with reason R; `{"spin": true}` loops forever; `{"trap": true}`
//! panics; with no configuration the query passes unchanged.

use serde::Deserialize;
use weir_plugin::{QueryContext, QueryRewriter};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    replace_with: Option<String>,
    deny: Option<String>,
    spin: bool,
    trap: bool,
}

pub struct TestRewriter;

impl QueryRewriter for TestRewriter {
    fn rewrite(context: &QueryContext, sql: &str) -> Result<String, String> {
        let config: Config = weir_plugin::config_or_default();
        weir_plugin::log::info(&format!("query of project {}: {sql}", context.project));
        if config.spin {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if config.trap {
            panic!("the test rewriter was told to trap");
        }
        if let Some(reason) = config.deny {
            return Err(reason);
        }
        Ok(config.replace_with.unwrap_or_else(|| sql.to_owned()))
    }
}

weir_plugin::export_query_rewriter!(TestRewriter);
