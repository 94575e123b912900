//! Row-level security as a query rewriter.
//!
//! Configuration (per project):
//!
//! ```json
//! {"filters": {"pageview": "country = 'DE'", "orders": "tenant_id = {{tenant}}"}}
//! ```
//!
//! Every reference to a configured collection (`pageview`,
//! `collection.pageview`, quoted or not, in the main query, joins, CTE
//! bodies, subqueries and set operations) becomes
//! `(SELECT * FROM collection.pageview WHERE <predicate>) AS pageview`, so
//! the caller only ever reads the rows the predicate admits. `{{name}}` in
//! a predicate is the caller's `X-Weir-<name>` header as a SQL string; a
//! query whose caller lacks an attribute the filter needs is denied. A name
//! that a CTE of the query defines is the CTE, not the collection, and is
//! left alone (the CTE's own body is filtered). `_all` (every collection
//! at once) cannot be filtered per collection and is refused while any
//! filter is configured.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::Deserialize;
use sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableAlias, TableFactor, VisitMut, VisitorMut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use weir_plugin::{QueryContext, QueryRewriter};

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Config {
    filters: BTreeMap<String, String>,
}

/// Fills `{{name}}` placeholders with attributes as quoted SQL strings.
pub fn fill(predicate: &str, attribute: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(predicate.len());
    let mut rest = predicate;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").ok_or("a {{ placeholder is not closed")? + start;
        let name = rest[start + 2..end].trim().to_ascii_lowercase();
        let value =
            attribute(&name).ok_or_else(|| format!("the caller has no {name} attribute (X-Weir-{name} header)"))?;
        out.push_str(&rest[..start]);
        out.push('\'');
        out.push_str(&value.replace('\'', "''"));
        out.push('\'');
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Adds each collection's predicate to every reference of it in `sql`.
/// Collections are lowercase names; predicates are SQL boolean expressions.
pub fn add_filters(sql: &str, filters: &BTreeMap<String, String>) -> Result<String, String> {
    let mut statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| e.to_string())?;
    let mut filter = Filter { filters, ctes: Vec::new(), error: None };
    for statement in &mut statements {
        let _ = statement.visit(&mut filter);
    }
    if let Some(e) = filter.error {
        return Err(e);
    }
    Ok(statements.iter().map(Statement::to_string).collect::<Vec<_>>().join("; "))
}

struct Filter<'a> {
    filters: &'a BTreeMap<String, String>,
    /// The CTE names in scope, innermost query last.
    ctes: Vec<Vec<String>>,
    error: Option<String>,
}

fn part_name(part: &ObjectNamePart) -> Option<String> {
    part.as_ident().map(|i| i.value.to_ascii_lowercase())
}

impl Filter<'_> {
    /// The configured collection a table name refers to.
    fn collection(&self, name: &ObjectName) -> Option<String> {
        let parts: Vec<String> = name.0.iter().filter_map(part_name).collect();
        let collection = match parts.as_slice() {
            [one] if self.ctes.iter().flatten().any(|c| c == one) => return None,
            [one] => one.clone(),
            [schema, one] if schema == "collection" => one.clone(),
            _ => return None,
        };
        self.filters.contains_key(&collection).then_some(collection)
    }

    fn filtered(&self, collection: &str) -> Result<Query, String> {
        let predicate = &self.filters[collection];
        let quoted = Ident::with_quote('"', collection);
        let sql = format!("SELECT * FROM collection.{quoted} WHERE ({predicate})");
        match Parser::parse_sql(&GenericDialect {}, &sql).map_err(|e| format!("the filter of {collection}: {e}"))?.pop()
        {
            Some(Statement::Query(q)) if matches!(q.body.as_ref(), SetExpr::Select(_)) => Ok(*q),
            _ => Err(format!("the filter of {collection} is not a predicate")),
        }
    }
}

impl VisitorMut for Filter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let names = query.with.as_ref().map_or_else(Vec::new, |with| {
            with.cte_tables.iter().map(|cte| cte.alias.name.value.to_ascii_lowercase()).collect()
        });
        self.ctes.push(names);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    /// Replaced after the factor was visited, so the subquery put in its
    /// place is not filtered again.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, alias, args: None, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let last = name.0.last().and_then(part_name);
        if last.as_deref() == Some("_all") && !self.ctes.iter().flatten().any(|c| c == "_all") {
            self.error = Some("_all is not available: rows of this project are filtered per collection".to_owned());
            return ControlFlow::Break(());
        }
        let Some(collection) = self.collection(name) else {
            return ControlFlow::Continue(());
        };
        match self.filtered(&collection) {
            Ok(query) => {
                let alias = alias.take().unwrap_or(TableAlias {
                    explicit: true,
                    at: None,
                    name: Ident::with_quote('"', &collection),
                    columns: vec![],
                });
                *factor = TableFactor::Derived {
                    lateral: false,
                    subquery: Box::new(query),
                    alias: Some(alias),
                    sample: None,
                };
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

pub struct RowFilter;

impl QueryRewriter for RowFilter {
    fn rewrite(context: &QueryContext, sql: &str) -> Result<String, String> {
        let config: Config = weir_plugin::config::<Option<Config>>()?.unwrap_or_default();
        let mut filters = BTreeMap::new();
        for (collection, predicate) in &config.filters {
            let predicate = fill(predicate, |name| context.attribute(name).map(str::to_owned))?;
            filters.insert(collection.to_ascii_lowercase(), predicate);
        }
        if filters.is_empty() {
            return Ok(sql.to_owned());
        }
        add_filters(sql, &filters)
    }
}

weir_plugin::export_query_rewriter!(RowFilter);

#[cfg(test)]
mod tests {
    use super::*;

    fn filters() -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        f.insert("pageview".to_owned(), "country = 'DE'".to_owned());
        f
    }

    fn rewritten(sql: &str) -> String {
        add_filters(sql, &filters()).expect("rewrite")
    }

    const F: &str = "(SELECT * FROM collection.\"pageview\" WHERE (country = 'DE'))";

    #[test]
    fn every_reference_is_filtered() {
        assert_eq!(rewritten("SELECT count(*) FROM pageview"), format!("SELECT count(*) FROM {F} AS \"pageview\""));
        assert_eq!(
            rewritten("SELECT p.url FROM collection.pageview p JOIN purchase b ON p._user = b._user"),
            format!("SELECT p.url FROM {F} p JOIN purchase b ON p._user = b._user")
        );
        assert_eq!(
            rewritten("WITH v AS (SELECT * FROM \"PageView\") SELECT count(*) FROM v"),
            format!("WITH v AS (SELECT * FROM {F} AS \"pageview\") SELECT count(*) FROM v")
        );
        assert_eq!(
            rewritten("SELECT * FROM purchase WHERE _user IN (SELECT _user FROM pageview)"),
            format!("SELECT * FROM purchase WHERE _user IN (SELECT _user FROM {F} AS \"pageview\")")
        );
        assert_eq!(
            rewritten("SELECT 1 FROM pageview UNION ALL SELECT 2 FROM (SELECT * FROM pageview) t"),
            format!("SELECT 1 FROM {F} AS \"pageview\" UNION ALL SELECT 2 FROM (SELECT * FROM {F} AS \"pageview\") t")
        );
    }

    #[test]
    fn ctes_of_the_same_name_and_other_tables_are_left_alone() {
        assert_eq!(
            rewritten("WITH pageview AS (SELECT 1 AS x) SELECT * FROM pageview"),
            "WITH pageview AS (SELECT 1 AS x) SELECT * FROM pageview"
        );
        assert_eq!(rewritten("SELECT * FROM purchase"), "SELECT * FROM purchase");
    }

    #[test]
    fn placeholders_take_quoted_attributes() {
        let attr = |name: &str| (name == "tenant").then(|| "o'neil".to_owned());
        assert_eq!(fill("tenant = {{tenant}}", attr), Ok("tenant = 'o''neil'".to_owned()));
        assert!(fill("org = {{org}}", attr).is_err());
        assert!(add_filters("SELECT", &filters()).is_err());
        assert!(add_filters("SELECT count(*) FROM _all", &filters()).is_err());
        assert!(add_filters("SELECT count(*) FROM collection._all", &filters()).is_err());
    }
}
