//! A continuous query as Rakam's clients send and read it, and Rakam's
//! checks of its query.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sqlparser::ast::{Expr, SelectItem, SetExpr, Statement};

use crate::metadata::ContinuousRecord;
use crate::query::rewrite;

/// Rakam's `ContinuousQuery` bean.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContinuousQuery {
    /// Rakam's generated clients write `tableName` and `partitionKeys`.
    #[serde(alias = "tableName")]
    pub table_name: String,
    pub name: String,
    pub query: String,
    #[serde(default, alias = "partitionKeys")]
    pub partition_keys: Vec<String>,
    #[serde(default)]
    pub options: serde_json::Map<String, Json>,
    /// Accepted and ignored, as Rakam did (400 with partition keys).
    #[serde(default, rename = "windowDuration", skip_serializing)]
    pub window_duration: Option<Json>,
}

impl ContinuousQuery {
    pub fn from_record(r: &ContinuousRecord) -> Self {
        ContinuousQuery {
            table_name: r.table_name.clone(),
            name: r.name.clone(),
            query: r.query.clone(),
            partition_keys: r.partition_keys.clone(),
            options: serde_json::from_str(&r.options).unwrap_or_default(),
            window_duration: None,
        }
    }
}

/// Rakam's checks (`PrestoContinuousQueryService.test`): one SELECT, not a
/// set operation at the top, no `*`, an alias on every computed column.
pub fn check_query(sql: &str) -> Result<(), String> {
    let statement = rewrite::parse(sql).map_err(|e| e.to_string())?;
    let Statement::Query(query) = statement else { return Err("The query must be SELECT.".to_owned()) };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err("The query must be a simple SELECT (no UNION, INTERSECT or EXCEPT at the top).".to_owned());
    };
    for item in &select.projection {
        match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                return Err("Wildcard in SELECT is not supported.".to_owned());
            }
            SelectItem::UnnamedExpr(Expr::Identifier(_) | Expr::CompoundIdentifier(_)) => {}
            SelectItem::UnnamedExpr(expr) => return Err(format!("Alias for {expr} is missing")),
            SelectItem::ExprWithAlias { .. } | SelectItem::ExprWithAliases { .. } => {}
        }
    }
    Ok(())
}

/// The output column names of a checked query, as SQL compares them.
pub fn output_columns(sql: &str) -> Vec<String> {
    let Ok(Statement::Query(query)) = rewrite::parse(sql) else { return Vec::new() };
    let SetExpr::Select(select) = query.body.as_ref() else { return Vec::new() };
    let name = |i: &sqlparser::ast::Ident| {
        if i.quote_style.is_some() { i.value.clone() } else { i.value.to_ascii_lowercase() }
    };
    select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(name(i)),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts.last().map(name),
            SelectItem::ExprWithAlias { alias, .. } => Some(name(alias)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked_as_rakam_checks_them() {
        assert_eq!(check_query("SELECT url, count(*) AS n FROM pageview GROUP BY url"), Ok(()));
        assert_eq!(check_query("DELETE FROM pageview"), Err("The query must be SELECT.".to_owned()));
        assert!(check_query("SELECT * FROM pageview").is_err_and(|e| e.contains("Wildcard")));
        assert!(check_query("SELECT count(*) FROM pageview").is_err_and(|e| e.contains("Alias for count(*)")));
        assert!(check_query("SELECT a AS x FROM p UNION SELECT b AS x FROM q").is_err_and(|e| e.contains("UNION")));
        assert_eq!(
            output_columns(
                "SELECT p.url, date_trunc('day', _time) AS Day, count(*) AS \"N\" FROM pageview p GROUP BY 1, 2"
            ),
            ["url", "day", "N"]
        );
    }
}
