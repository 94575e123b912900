//! Running a project's query rewriters over a query, in order.

use super::bindings::types;
use super::registry::Plugins;
use super::runtime::Failure;
use crate::metadata::KeyKind;

/// What rewriters are told about a query's caller.
#[derive(Debug, Clone)]
pub struct QueryCaller {
    pub project: String,
    pub key_kind: KeyKind,
    /// `X-Weir-*` headers, prefix removed, lowercased names.
    pub attributes: Vec<(String, String)>,
}

/// Why a query was refused by a rewriter. Rewriters fail closed: a
/// rewriter that fails refuses the query.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RewriteRefusal {
    #[error("the query was denied by plugin {plugin}: {reason}")]
    Denied { plugin: String, reason: String },
    #[error("plugin {plugin} failed ({failure}); the query was refused")]
    Failed { plugin: String, failure: Failure },
}

impl Plugins {
    /// The SQL after every rewriter of the project, in order; each sees the
    /// one before it's answer.
    pub async fn rewrite_query(&self, caller: &QueryCaller, sql: String) -> Result<String, RewriteRefusal> {
        let Some(set) = self.project(&caller.project) else {
            return Ok(sql);
        };
        let mut sql = sql;
        for plugin in &set.rewriters {
            let called = self.call_rewrite(plugin, query_context(caller), sql).await;
            called.log.forward(&caller.project, &plugin.name);
            sql = match called.result {
                Ok(types::RewriteOutcome::Rewritten(next)) => next,
                Ok(types::RewriteOutcome::Denied(reason)) => {
                    return Err(RewriteRefusal::Denied { plugin: plugin.name.clone(), reason });
                }
                Err(failure) => return Err(RewriteRefusal::Failed { plugin: plugin.name.clone(), failure }),
            };
        }
        Ok(sql)
    }
}

pub fn query_context(caller: &QueryCaller) -> types::QueryContext {
    types::QueryContext {
        project: caller.project.clone(),
        key_kind: key_kind(caller.key_kind),
        attributes: caller
            .attributes
            .iter()
            .map(|(n, v)| types::Header { name: n.clone(), value: v.clone() })
            .collect(),
    }
}

pub fn key_kind(kind: KeyKind) -> types::KeyKind {
    match kind {
        KeyKind::Read => types::KeyKind::Read,
        KeyKind::Write => types::KeyKind::Write,
        KeyKind::Master => types::KeyKind::Master,
    }
}
