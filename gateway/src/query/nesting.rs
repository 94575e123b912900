//! How deeply a parsed statement nests. The parser bounds what it parses
//! recursively (parentheses, subqueries), but chains it parses in a loop
//! (`1+1+…`, `a OR b OR …`, `… UNION ALL …`) become trees as deep as they
//! are long, and every later walk (the rewrite, printing, planning,
//! evaluation) recurses through them. Statements deeper than a limit are
//! refused before any such walk.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, SetExpr, Statement, Visit, Visitor};

/// Whether `statement` nests at most `limit` levels of expressions and set
/// operations. Stops at the first level past the limit, so the check's own
/// recursion stays within it.
pub fn within(statement: &Statement, limit: usize) -> bool {
    let mut meter = Meter { depth: 0, limit, query_levels: Vec::new() };
    statement.visit(&mut meter).is_continue()
}

struct Meter {
    depth: usize,
    limit: usize,
    /// The levels each enclosing query added.
    query_levels: Vec<usize>,
}

impl Meter {
    fn enter(&mut self, levels: usize) -> ControlFlow<()> {
        self.depth += levels;
        if self.depth > self.limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }
}

impl Visitor for Meter {
    type Break = ();

    /// A query's set operations are checked here, before the visit walks
    /// down their chain.
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let levels = set_depth(&query.body, self.limit.saturating_sub(self.depth) + 1) + 1;
        self.query_levels.push(levels);
        self.enter(levels)
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth -= self.query_levels.pop().unwrap_or(0);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.enter(1)
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// The depth of a tree of set operations, counted without recursion and
/// given up past `cap`.
fn set_depth(body: &SetExpr, cap: usize) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(body, 0usize)];
    while let Some((node, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        if deepest > cap {
            break;
        }
        if let SetExpr::SetOperation { left, right, .. } = node {
            pending.push((left, depth + 1));
            pending.push((right, depth + 1));
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    use super::*;

    fn parse(sql: &str) -> Statement {
        Parser::new(&GenericDialect {}).try_with_sql(sql).and_then(|mut p| p.parse_statement()).expect("parse")
    }

    #[test]
    fn chains_count_as_deep_as_they_are_long() {
        let sum = |n: usize| format!("SELECT {}", vec!["1"; n].join("+"));
        assert!(within(&parse(&sum(90)), 100));
        assert!(!within(&parse(&sum(120)), 100));
        let unions = |n: usize| vec!["SELECT 1"; n].join(" UNION ALL ");
        assert!(within(&parse(&unions(50)), 100));
        assert!(!within(&parse(&unions(150)), 100));
        let ors = |n: usize| format!("SELECT 1 FROM t WHERE {}", vec!["u = 'x'"; n].join(" OR "));
        assert!(within(&parse(&ors(40)), 100));
        assert!(!within(&parse(&ors(200)), 100));
    }

    #[test]
    fn wide_is_not_deep() {
        let columns = vec!["a + 1"; 5000].join(", ");
        assert!(within(&parse(&format!("SELECT {columns} FROM t")), 10));
        let list = (0..5000).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        assert!(within(&parse(&format!("SELECT 1 FROM t WHERE a IN ({list})")), 10));
        // Siblings do not add up: the check counts levels, not nodes.
        let siblings = vec!["(SELECT 1 UNION ALL SELECT 2)"; 50].join(", ");
        assert!(within(&parse(&format!("SELECT {siblings}")), 10));
    }
}
