//! The per-project SQL rewrite, with sqlparser's `VisitorMut`.
//!
//! Only queries run (SELECT, WITH, VALUES, and EXPLAIN of a query). Every
//! table reference must resolve to something of the caller's project: a
//! collection (`x`, `collection.x`), `_all`, the project's user table
//! (`users`; a collection of that name is `collection.users`), or a CTE in
//! scope; it is then renamed to the engine's name for it. Anything else is denied, naming the
//! offending part: other schemas and catalogs, system tables, table
//! functions, `SELECT INTO`, and every statement that is not a query.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, LimitClause, ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableAlias, TableFactor, Value,
    VisitMut, VisitorMut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};

use crate::schema::types::Field;

/// Parentheses and subqueries nested deeper than this are refused by the
/// parser.
pub const RECURSION_LIMIT: usize = 64;

/// Expressions and set operations nested deeper than this are refused
/// (chains the parser reads in a loop: `a OR b OR …`, `… UNION ALL …`).
pub const MAX_NESTING: usize = 4_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("SQL syntax: {0}")]
    Syntax(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("query too deep: {0}")]
    TooDeep(String),
    #[error("the query is empty")]
    Empty,
}

/// What a query of one project may see.
pub struct Scope<'a> {
    /// The project's collections and their fields.
    pub collections: &'a super::Collections,
    /// The engine's name for a collection's table.
    pub table_name: &'a dyn Fn(&str) -> ObjectName,
    /// The engine's name for the project's user table.
    pub users_table: &'a ObjectName,
    /// The names of the Trino protocol, where it asks.
    pub catalog: Option<&'a Catalog<'a>>,
    /// What `materialized.x` names stand for in this query.
    pub derived: &'a DerivedNames,
}

/// What a derived table's name (`materialized.x`) stands for in one query:
/// a table of the engine's, or a query.
#[derive(Debug, Clone)]
pub enum Derived {
    Table(ObjectName),
    Query(Box<Query>),
}

/// Derived tables by schema (`materialized`) and name, as SQL compares
/// them (lower case unless quoted).
pub type DerivedNames = std::collections::BTreeMap<(String, String), Derived>;

/// The schema of materialized views' names.
pub const MATERIALIZED: &str = "materialized";
/// The schema of continuous queries' names.
pub const CONTINUOUS: &str = "continuous";

/// The `schema.name` table names of a statement under one of `schemas`, as
/// SQL compares them.
pub fn derived_references(statement: &Statement, schemas: &[&str]) -> std::collections::BTreeSet<(String, String)> {
    let mut found = std::collections::BTreeSet::new();
    let _ = sqlparser::ast::visit_relations(statement, |name| {
        if let Some([schema, table]) = parts(name).as_deref()
            && schemas.contains(&schema.as_str())
        {
            found.insert((schema.clone(), table.clone()));
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// A project as a Trino catalog's schema: `<catalog>.<schema>.<table>` and
/// `<schema>.<table>` name the project's tables, and metadata tables
/// (`information_schema.columns`, …) are queries of their own.
pub struct Catalog<'a> {
    /// The catalog's name.
    pub name: &'a str,
    /// The project's schema in it.
    pub schema: &'a str,
    /// The query standing for a metadata table, by its lower-cased name.
    pub metadata: &'a dyn Fn(&[String]) -> Option<Query>,
}

/// The collections `_all` unites: all but those starting with `_` (and the
/// gateway's `$` ones).
pub fn visible(collections: &super::Collections) -> impl Iterator<Item = (&String, &Vec<Field>)> {
    collections.iter().filter(|(name, _)| !name.starts_with('_') && !name.starts_with('$'))
}

/// The fields every collection of `_all` has, with the same type (`_all`
/// also has `_collection`).
pub fn common_fields(collections: &super::Collections) -> Vec<Field> {
    let visible: Vec<_> = visible(collections).collect();
    let Some((_, first)) = visible.first() else { return Vec::new() };
    first
        .iter()
        .filter(|f| {
            visible.iter().all(|(_, fields)| fields.iter().any(|g| g.name == f.name && g.field_type == f.field_type))
        })
        .cloned()
        .collect()
}

/// The user table's name in SQL.
pub const USERS: &str = "users";

/// Parses, checks and rewrites one statement.
pub fn rewrite(sql: &str, scope: &Scope<'_>) -> Result<Statement, RewriteError> {
    let mut statement = parse(sql)?;
    match &statement {
        Statement::Query(_) => {}
        Statement::Explain { statement: inner, .. } if matches!(**inner, Statement::Query(_)) => {}
        other => return Err(RewriteError::Denied(format!("only queries run, not {}", statement_kind(other)))),
    }
    let mut rewriter = Rewriter { scope, ctes: Vec::new(), in_table: false, denied: None };
    let _ = statement.visit(&mut rewriter);
    match rewriter.denied {
        Some(reason) => Err(RewriteError::Denied(reason)),
        None => Ok(statement),
    }
}

/// Parses one SQL expression, alone: anything after it is refused, so that
/// an expression put into a statement cannot close the statement around it.
pub fn parse_expression(text: &str) -> Result<Expr, RewriteError> {
    let mut parser = Parser::new(&GenericDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .map_err(|e| RewriteError::Syntax(e.to_string()))?;
    let expr = parser.parse_expr().map_err(|e| RewriteError::Syntax(e.to_string()))?;
    let next = parser.peek_token().token;
    if next != sqlparser::tokenizer::Token::EOF {
        return Err(RewriteError::Syntax(format!("unexpected {next} after the expression")));
    }
    Ok(expr)
}

/// Parses exactly one statement and checks how deeply it nests.
pub fn parse(sql: &str) -> Result<Statement, RewriteError> {
    let mut statements = Parser::new(&GenericDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| match (e, not_a_query(sql)) {
            (ParserError::RecursionLimitExceeded, _) => {
                RewriteError::TooDeep(format!("parentheses or subqueries nest more than {RECURSION_LIMIT} levels"))
            }
            // A statement this parser does not know (another engine's
            // syntax) is still refused as what it is.
            (_, Some(kind)) => RewriteError::Denied(format!("only queries run, not {kind}")),
            (e, None) => RewriteError::Syntax(e.to_string()),
        })?;
    if statements.is_empty() {
        return Err(RewriteError::Empty);
    }
    if statements.len() != 1 {
        return Err(RewriteError::Denied(format!("one statement per query, not {}", statements.len())));
    }
    let statement = statements.remove(0);
    if !super::nesting::within(&statement, MAX_NESTING) {
        return Err(RewriteError::TooDeep(format!(
            "expressions or set operations nest more than {MAX_NESTING} levels"
        )));
    }
    Ok(statement)
}

/// The first two words of a statement that starts with a keyword other
/// than a query's; `None` for a query or for words that are no keyword (a
/// misspelling is a syntax error, not another kind of statement).
fn not_a_query(sql: &str) -> Option<String> {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    let mut words = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_)));
    match words.next()? {
        Token::Word(w) if matches!(w.keyword, Keyword::SELECT | Keyword::WITH | Keyword::VALUES | Keyword::EXPLAIN) => {
            None
        }
        Token::Word(w) if w.keyword != Keyword::NoKeyword && w.quote_style.is_none() => {
            let second = match words.next() {
                Some(Token::Word(next)) => format!(" {}", next.value.to_ascii_uppercase()),
                _ => String::new(),
            };
            Some(format!("{}{second}", w.value.to_ascii_uppercase()))
        }
        _ => None,
    }
}

fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

struct Rewriter<'s, 'a> {
    scope: &'s Scope<'a>,
    /// CTE names visible in each enclosing query.
    ctes: Vec<Vec<String>>,
    /// Set while the name of a table factor is being visited.
    in_table: bool,
    denied: Option<String>,
}

/// An identifier as SQL compares it: unquoted ones fold to lower case.
fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_ascii_lowercase() }
}

fn parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(normalize(i)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

fn alias_named(name: Ident) -> TableAlias {
    TableAlias { explicit: true, at: None, name, columns: vec![] }
}

enum Resolved {
    Cte,
    Collection(String),
    All,
    Users,
    /// A metadata table, and the query standing for it.
    Metadata(Box<Query>),
    Derived(Derived),
}

impl Rewriter<'_, '_> {
    fn deny(&mut self, reason: String) -> ControlFlow<()> {
        self.denied.get_or_insert(reason);
        ControlFlow::Break(())
    }

    fn resolve(&self, name: &ObjectName) -> Result<Resolved, String> {
        let shown = name.to_string();
        let mut parts = parts(name).ok_or_else(|| format!("{shown} is not a table of this project"))?;
        if let Some(catalog) = self.scope.catalog {
            if let Some(query) = (catalog.metadata)(&parts) {
                return Ok(Resolved::Metadata(Box::new(query)));
            }
            let own = match parts.as_slice() {
                [c, s, _] => c == catalog.name && s == catalog.schema,
                [s, _] => s == catalog.schema,
                _ => false,
            };
            if own {
                parts.drain(..parts.len() - 1);
                if self.ctes.iter().any(|scope| scope.contains(&parts[0])) {
                    // A CTE does not hide the project's table named with
                    // its schema.
                    parts.insert(0, "collection".to_owned());
                }
            }
        }
        match parts.as_slice() {
            [one] if self.ctes.iter().any(|scope| scope.contains(one)) => Ok(Resolved::Cte),
            [one] if one == "_all" => Ok(Resolved::All),
            [one] if one == USERS => Ok(Resolved::Users),
            [one] | [_, one] if parts.len() == 1 || parts[0] == "collection" => {
                if self.scope.collections.contains_key(one) {
                    Ok(Resolved::Collection(one.clone()))
                } else {
                    Err(format!("{shown} is not a collection of this project"))
                }
            }
            [schema, table] if schema == MATERIALIZED || schema == "continuous" => {
                match self.scope.derived.get(&(schema.clone(), table.clone())) {
                    Some(derived) => Ok(Resolved::Derived(derived.clone())),
                    None if schema == MATERIALIZED => {
                        Err(format!("{shown} is not a materialized view of this project"))
                    }
                    None => Err(format!("{shown}: {schema} tables are not available yet")),
                }
            }
            _ => Err(format!("{shown} is not a table of this project")),
        }
    }

    /// `_all`: every collection not starting with `_` (nor the gateway's
    /// `$` ones), over the columns they all have, plus `_collection`.
    fn all_collections(&self) -> Result<Query, String> {
        let visible: Vec<(&String, &Vec<Field>)> = visible(self.scope.collections).collect();
        if visible.is_empty() {
            return Err("_all: the project has no collections".to_owned());
        }
        let common = common_fields(self.scope.collections);
        let branches: Vec<String> = visible
            .iter()
            .map(|(name, _)| {
                let mut columns: Vec<String> =
                    common.iter().map(|f| Ident::with_quote('"', &f.name).to_string()).collect();
                columns.push(format!("'{}' AS _collection", name.replace('\'', "''")));
                format!("SELECT {} FROM {}", columns.join(", "), (self.scope.table_name)(name))
            })
            .collect();
        let sql = branches.join(" UNION ALL ");
        let statement = Parser::new(&GenericDialect {}).try_with_sql(&sql).and_then(|mut p| p.parse_statement());
        match statement {
            Ok(Statement::Query(query)) => Ok(*query),
            other => Err(format!("_all could not be built: {other:?}")),
        }
    }
}

impl VisitorMut for Rewriter<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let names = query
            .with
            .as_ref()
            .map_or_else(Vec::new, |with| with.cte_tables.iter().map(|cte| normalize(&cte.alias.name)).collect());
        self.ctes.push(names);
        if let SetExpr::Select(select) = query.body.as_ref()
            && select.into.is_some()
        {
            return self.deny("SELECT INTO".to_owned());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut sqlparser::ast::Select) -> ControlFlow<()> {
        if select.into.is_some() {
            return self.deny("SELECT INTO".to_owned());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { name, args: Some(_), .. } => self.deny(format!("table function {name}")),
            TableFactor::Table { .. } => {
                self.in_table = true;
                ControlFlow::Continue(())
            }
            TableFactor::Function { name, .. } => self.deny(format!("table function {name}")),
            TableFactor::TableFunction { expr, .. } => self.deny(format!("table function {expr}")),
            TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::Pivot { .. }
            | TableFactor::Unpivot { .. } => ControlFlow::Continue(()),
            other => self.deny(format!("{other}")),
        }
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        if !std::mem::take(&mut self.in_table) {
            return self.deny(format!("{relation}"));
        }
        ControlFlow::Continue(())
    }

    /// Names are replaced after their factor was visited, so that what is
    /// put in their place is not visited (and resolved) again.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, alias, .. } = factor else { return ControlFlow::Continue(()) };
        match self.resolve(name) {
            Err(reason) => self.deny(reason),
            Ok(Resolved::Cte) => ControlFlow::Continue(()),
            Ok(Resolved::Users) => {
                if alias.is_none() {
                    *alias = Some(alias_named(Ident::new(USERS)));
                }
                *name = self.scope.users_table.clone();
                ControlFlow::Continue(())
            }
            Ok(Resolved::Collection(collection)) => {
                if alias.is_none() {
                    // Keep `x.column` working after `x` is renamed.
                    *alias = Some(alias_named(Ident::with_quote('"', &collection)));
                }
                *name = (self.scope.table_name)(&collection);
                ControlFlow::Continue(())
            }
            Ok(Resolved::Metadata(query) | Resolved::Derived(Derived::Query(query))) => {
                let last = parts(name).and_then(|p| p.last().cloned()).unwrap_or_default();
                let alias = alias.take().unwrap_or(alias_named(Ident::with_quote('"', last)));
                *factor = TableFactor::Derived { lateral: false, subquery: query, alias: Some(alias), sample: None };
                ControlFlow::Continue(())
            }
            Ok(Resolved::Derived(Derived::Table(table))) => {
                if alias.is_none() {
                    let last = parts(name).and_then(|p| p.last().cloned()).unwrap_or_default();
                    *alias = Some(alias_named(Ident::with_quote('"', last)));
                }
                *name = table;
                ControlFlow::Continue(())
            }
            Ok(Resolved::All) => match self.all_collections() {
                Err(reason) => self.deny(reason),
                Ok(query) => {
                    let alias = alias.take().unwrap_or(alias_named(Ident::new("_all")));
                    *factor = TableFactor::Derived {
                        lateral: false,
                        subquery: Box::new(query),
                        alias: Some(alias),
                        sample: None,
                    };
                    ControlFlow::Continue(())
                }
            },
        }
    }
}

/// Caps a query's result at `limit` rows: a missing or larger LIMIT
/// becomes `limit`; EXPLAIN is left alone.
pub fn apply_limit(statement: &mut Statement, limit: u64) {
    let Statement::Query(query) = statement else { return };
    let capped = || Expr::value(Value::Number(limit.to_string(), false));
    match &mut query.limit_clause {
        None => {
            query.limit_clause =
                Some(LimitClause::LimitOffset { limit: Some(capped()), offset: None, limit_by: vec![] });
        }
        Some(LimitClause::LimitOffset { limit: given, .. }) => {
            let keep = matches!(given, Some(Expr::Value(v)) if matches!(&v.value, Value::Number(n, _) if n.parse::<u64>().is_ok_and(|n| n <= limit)));
            if !keep {
                *given = Some(capped());
            }
        }
        Some(LimitClause::OffsetCommaLimit { limit: given, .. }) => {
            let keep = matches!(given, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n.parse::<u64>().is_ok_and(|n| n <= limit)));
            if !keep {
                *given = capped();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn collections() -> BTreeMap<String, Vec<Field>> {
        let f = |n: &str, t: &str| Field::new(n, t.parse().expect("type"));
        BTreeMap::from([
            ("pageview".to_owned(), vec![f("_time", "TIMESTAMP"), f("url", "STRING"), f("_user", "STRING")]),
            ("click".to_owned(), vec![f("_time", "TIMESTAMP"), f("button", "STRING"), f("_user", "STRING")]),
            ("_internal".to_owned(), vec![f("_time", "TIMESTAMP")]),
            ("$invalid_schema".to_owned(), vec![f("_time", "TIMESTAMP")]),
        ])
    }

    fn run(sql: &str) -> Result<String, RewriteError> {
        let collections = collections();
        let name = |c: &str| ObjectName::from(vec![Ident::with_quote('"', "p"), Ident::with_quote('"', c)]);
        let users = ObjectName::from(vec![Ident::with_quote('"', "p"), Ident::with_quote('"', "$users")]);
        rewrite(
            sql,
            &Scope {
                collections: &collections,
                table_name: &name,
                users_table: &users,
                catalog: None,
                derived: &DerivedNames::new(),
            },
        )
        .map(|s| s.to_string())
    }

    fn ok(sql: &str, expected: &str) {
        assert_eq!(run(sql).as_deref(), Ok(expected), "{sql}");
    }

    fn denied(sql: &str, naming: &str) {
        match run(sql) {
            Err(RewriteError::Denied(reason)) => {
                assert!(reason.contains(naming), "{sql}: {reason:?} should name {naming:?}")
            }
            other => panic!("{sql} was not denied: {other:?}"),
        }
    }

    fn run_in_catalog(sql: &str) -> Result<String, RewriteError> {
        let collections = collections();
        let name = |c: &str| ObjectName::from(vec![Ident::with_quote('"', "p"), Ident::with_quote('"', c)]);
        let users = ObjectName::from(vec![Ident::with_quote('"', "p"), Ident::with_quote('"', "$users")]);
        let metadata = |parts: &[String]| {
            (parts == ["information_schema", "tables"]).then(|| match parse("SELECT 'pageview' AS table_name") {
                Ok(Statement::Query(q)) => *q,
                other => panic!("{other:?}"),
            })
        };
        let catalog = Catalog { name: "weir", schema: "shop", metadata: &metadata };
        let derived = DerivedNames::new();
        let scope = Scope {
            collections: &collections,
            table_name: &name,
            users_table: &users,
            catalog: Some(&catalog),
            derived: &derived,
        };
        rewrite(sql, &scope).map(|s| s.to_string())
    }

    #[test]
    fn a_catalog_names_the_project_s_tables_and_metadata_only() {
        for sql in ["SELECT 1 FROM weir.shop.pageview", "SELECT 1 FROM Shop.PageView", "SELECT 1 FROM pageview"] {
            assert_eq!(run_in_catalog(sql).as_deref(), Ok(r#"SELECT 1 FROM "p"."pageview" AS "pageview""#), "{sql}");
        }
        assert_eq!(
            run_in_catalog("WITH pageview AS (SELECT 2) SELECT * FROM shop.pageview, pageview").as_deref(),
            Ok(r#"WITH pageview AS (SELECT 2) SELECT * FROM "p"."pageview" AS "pageview", pageview"#),
            "the schema-qualified name is the table, not the CTE"
        );
        assert_eq!(
            run_in_catalog("SELECT table_name FROM information_schema.tables").as_deref(),
            Ok(r#"SELECT table_name FROM (SELECT 'pageview' AS table_name) AS "tables""#)
        );
        for sql in [
            "SELECT 1 FROM weir.other.pageview",
            "SELECT 1 FROM other.pageview",
            "SELECT 1 FROM hive.shop.pageview",
            "SELECT 1 FROM information_schema.views",
        ] {
            assert!(matches!(run_in_catalog(sql), Err(RewriteError::Denied(_))), "{sql}");
        }
        assert!(
            matches!(run("SELECT 1 FROM shop.pageview"), Err(RewriteError::Denied(_))),
            "no catalog, no schema names"
        );
    }

    #[test]
    fn derived_names_resolve_to_what_the_query_was_given() {
        let collections = collections();
        let name = |c: &str| ObjectName::from(vec![Ident::with_quote('"', c)]);
        let users = ObjectName::from(vec![Ident::with_quote('"', "$users")]);
        let live = match parse("SELECT * FROM \"$view:live\" UNION ALL SELECT url FROM \"$newer:live:pageview\"") {
            Ok(Statement::Query(q)) => q,
            other => panic!("{other:?}"),
        };
        let derived = DerivedNames::from([
            (("materialized".to_owned(), "daily".to_owned()), Derived::Table(name("$view:daily"))),
            (("materialized".to_owned(), "live".to_owned()), Derived::Query(live)),
        ]);
        let scope = Scope {
            collections: &collections,
            table_name: &name,
            users_table: &users,
            catalog: None,
            derived: &derived,
        };
        let run = |sql: &str| rewrite(sql, &scope).map(|s| s.to_string());
        for sql in [
            "SELECT url FROM materialized.daily",
            "SELECT url FROM Materialized.DAILY",
            r#"SELECT url FROM "materialized"."daily""#,
        ] {
            assert_eq!(run(sql).as_deref(), Ok(r#"SELECT url FROM "$view:daily" AS "daily""#), "{sql}");
        }
        assert_eq!(
            run("SELECT d.url FROM materialized.daily d JOIN pageview p ON p.url = d.url").as_deref(),
            Ok(r#"SELECT d.url FROM "$view:daily" d JOIN "pageview" p ON p.url = d.url"#)
        );
        assert_eq!(
            run("SELECT count(*) FROM materialized.live").as_deref(),
            Ok(
                r#"SELECT count(*) FROM (SELECT * FROM "$view:live" UNION ALL SELECT url FROM "$newer:live:pageview") AS "live""#
            )
        );
        for sql in [
            r#"SELECT * FROM "Materialized"."daily""#,
            "SELECT * FROM materialized.weekly",
            "SELECT * FROM other.materialized.daily",
            r#"SELECT * FROM "$view:daily""#,
            "SELECT * FROM (SELECT * FROM materialized.secret) x",
            "WITH x AS (SELECT * FROM materialized.secret) SELECT * FROM x",
        ] {
            assert!(matches!(run(sql), Err(RewriteError::Denied(_))), "{sql}");
        }
        let statement =
            parse("SELECT * FROM materialized.a, (SELECT 1 FROM MATERIALIZED.b) x, continuous.c, d.e").expect("parse");
        let found: Vec<(String, String)> = derived_references(&statement, &[MATERIALIZED]).into_iter().collect();
        assert_eq!(found, [("materialized".to_owned(), "a".to_owned()), ("materialized".to_owned(), "b".to_owned())]);
    }

    #[test]
    fn collections_resolve_however_written() {
        ok("SELECT count(*) FROM pageview", r#"SELECT count(*) FROM "p"."pageview" AS "pageview""#);
        ok("select url from PageView", r#"SELECT url FROM "p"."pageview" AS "pageview""#);
        ok(r#"SELECT 1 FROM "pageview""#, r#"SELECT 1 FROM "p"."pageview" AS "pageview""#);
        ok("SELECT 1 FROM collection.pageview", r#"SELECT 1 FROM "p"."pageview" AS "pageview""#);
        ok("SELECT v.url FROM pageview v", r#"SELECT v.url FROM "p"."pageview" v"#);
        ok(
            "SELECT pageview.url FROM pageview JOIN click c ON pageview._user = c._user",
            r#"SELECT pageview.url FROM "p"."pageview" AS "pageview" JOIN "p"."click" c ON pageview._user = c._user"#,
        );
        ok(
            "SELECT * FROM pageview WHERE _user IN (SELECT _user FROM click) UNION ALL SELECT * FROM pageview",
            r#"SELECT * FROM "p"."pageview" AS "pageview" WHERE _user IN (SELECT _user FROM "p"."click" AS "click") UNION ALL SELECT * FROM "p"."pageview" AS "pageview""#,
        );
        ok(
            "SELECT * FROM pageview p, LATERAL (SELECT * FROM click c WHERE c._user = p._user) x",
            r#"SELECT * FROM "p"."pageview" p, LATERAL (SELECT * FROM "p"."click" c WHERE c._user = p._user) x"#,
        );
        ok("VALUES (1, 2)", "VALUES (1, 2)");
        ok("EXPLAIN SELECT 1 FROM click", r#"EXPLAIN SELECT 1 FROM "p"."click" AS "click""#);
        ok("SELECT 1 /* other.secret */ FROM click -- x", r#"SELECT 1 FROM "p"."click" AS "click""#);
    }

    #[test]
    fn users_is_the_projects_user_table() {
        ok("SELECT count(*) FROM users", r#"SELECT count(*) FROM "p"."$users" AS users"#);
        ok("SELECT u.plan FROM Users u", r#"SELECT u.plan FROM "p"."$users" u"#);
        ok(
            "SELECT u.plan, count(*) FROM pageview e JOIN users u ON u.id = e._user GROUP BY 1",
            r#"SELECT u.plan, count(*) FROM "p"."pageview" e JOIN "p"."$users" u ON u.id = e._user GROUP BY 1"#,
        );
        ok(
            "WITH users AS (SELECT 1 AS id) SELECT id FROM users",
            "WITH users AS (SELECT 1 AS id) SELECT id FROM users",
        );
        denied("SELECT * FROM other.users", "other.users");
        denied(r#"SELECT * FROM "$users""#, "$users");
        denied("SELECT * FROM users.other", "users.other");
    }

    #[test]
    fn cte_names_shadow_collections() {
        ok(
            "WITH pageview AS (SELECT 1 AS x) SELECT x FROM pageview",
            "WITH pageview AS (SELECT 1 AS x) SELECT x FROM pageview",
        );
        ok(
            "WITH recent AS (SELECT * FROM click) SELECT * FROM recent JOIN pageview USING (_user)",
            r#"WITH recent AS (SELECT * FROM "p"."click" AS "click") SELECT * FROM recent JOIN "p"."pageview" AS "pageview" USING(_user)"#,
        );
        denied("SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) x JOIN t ON true", "t is not a collection");
    }

    #[test]
    fn all_is_the_union_of_visible_collections_over_common_columns() {
        ok(
            "SELECT _collection, count(*) FROM _all GROUP BY 1",
            concat!(
                r#"SELECT _collection, count(*) FROM (SELECT "_time", "_user", 'click' AS _collection FROM "p"."click" "#,
                r#"UNION ALL SELECT "_time", "_user", 'pageview' AS _collection FROM "p"."pageview") AS _all GROUP BY 1"#
            ),
        );
    }

    #[test]
    fn nothing_else_resolves() {
        denied("SELECT * FROM other.pageview", "other.pageview");
        denied(r#"SELECT * FROM "other"."pageview""#, "pageview");
        denied("SELECT * FROM secret", "secret is not a collection");
        denied(r#"SELECT * FROM "PageView""#, "PageView");
        denied("SELECT * FROM information_schema.tables", "information_schema.tables");
        denied("SELECT * FROM pg_catalog.pg_tables", "pg_catalog");
        denied("SELECT * FROM datafusion.public.pageview", "datafusion.public.pageview");
        denied("SELECT * FROM materialized.daily", "materialized");
        denied("SELECT * FROM continuous.totals", "continuous");
        denied("SELECT * FROM read_parquet('/etc/passwd')", "read_parquet");
        denied("SELECT * FROM generate_series(1, 10)", "generate_series");
        denied("SELECT * FROM (SELECT * FROM (SELECT * FROM other.t) a) b", "other.t");
        denied("SELECT * FROM pageview WHERE url IN (SELECT x FROM other.t)", "other.t");
        denied("WITH x AS (SELECT * FROM other.t) SELECT * FROM x", "other.t");
        denied("SELECT * INTO copy FROM pageview", "INTO");
        denied("SELECT 1; SELECT 2", "one statement");
        for (sql, kind) in [
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            ("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/tmp'", "CREATE EXTERNAL"),
            ("INSERT INTO pageview VALUES (1)", "INSERT INTO"),
            ("DELETE FROM pageview", "DELETE FROM"),
            ("DROP TABLE pageview", "DROP TABLE"),
            ("SET x = 1", "SET"),
            ("COPY pageview TO '/tmp/x'", "COPY"),
            ("EXPLAIN DELETE FROM pageview", "EXPLAIN"),
            ("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'", "CREATE EXTERNAL"),
            ("COPY (SELECT 1) TO '/tmp/x' STORED AS CSV", "COPY"),
            ("  -- comment\n  LOAD DATA INPATH 'x'", "LOAD DATA"),
        ] {
            denied(sql, kind);
        }
    }

    #[test]
    fn a_query_with_a_syntax_error_stays_a_syntax_error() {
        assert!(matches!(run("SELECT 1 +"), Err(RewriteError::Syntax(_))));
        assert!(matches!(run("SELECT * FROM click WHERE"), Err(RewriteError::Syntax(_))));
        assert!(matches!(run("(SELECT"), Err(RewriteError::Syntax(_))));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
        assert!(matches!(run(&deep), Err(RewriteError::TooDeep(m)) if m.contains("parentheses")));
        let long = format!("SELECT {}", vec!["1"; MAX_NESTING + 10].join("+"));
        assert!(matches!(run(&long), Err(RewriteError::TooDeep(m)) if m.contains("expressions")));
        let unions = vec!["SELECT 1"; MAX_NESTING + 10].join(" UNION ALL ");
        assert!(matches!(run(&unions), Err(RewriteError::TooDeep(_))));
        let filter = (0..1000).map(|i| format!("url = '/p{i}'")).collect::<Vec<_>>().join(" OR ");
        assert!(run(&format!("SELECT count(*) FROM pageview WHERE {filter}")).is_ok());
    }

    #[test]
    fn misspelt_and_empty_queries_are_syntax_errors() {
        assert!(matches!(run("SELEC 1"), Err(RewriteError::Syntax(_))));
        assert!(matches!(run("frobnicate the table"), Err(RewriteError::Syntax(_))));
        assert_eq!(run(""), Err(RewriteError::Empty));
        assert_eq!(run("  -- nothing\n ;"), Err(RewriteError::Empty));
        denied("TRUNCATE pageview", "TRUNCATE");
        denied("GRANT ALL ON pageview TO x", "GRANT");
    }

    #[test]
    fn limits_are_applied_and_capped() {
        let collections = collections();
        let name = |c: &str| ObjectName::from(vec![Ident::new(c)]);
        let users = ObjectName::from(vec![Ident::new("users")]);
        let derived = DerivedNames::new();
        let scope = Scope {
            collections: &collections,
            table_name: &name,
            users_table: &users,
            catalog: None,
            derived: &derived,
        };
        let limited = |sql: &str| {
            let mut s = rewrite(sql, &scope).expect("rewrite");
            apply_limit(&mut s, 100);
            s.to_string()
        };
        assert_eq!(limited("SELECT 1 FROM click"), "SELECT 1 FROM click AS \"click\" LIMIT 100");
        assert_eq!(limited("SELECT 1 FROM click LIMIT 5"), "SELECT 1 FROM click AS \"click\" LIMIT 5");
        assert_eq!(limited("SELECT 1 FROM click LIMIT 5000"), "SELECT 1 FROM click AS \"click\" LIMIT 100");
        assert_eq!(
            limited("SELECT 1 FROM click LIMIT 5 OFFSET 3"),
            "SELECT 1 FROM click AS \"click\" LIMIT 5 OFFSET 3"
        );
        assert_eq!(limited("EXPLAIN SELECT 1"), "EXPLAIN SELECT 1");
    }
}
