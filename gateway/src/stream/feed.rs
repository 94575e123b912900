//! A subscription's query of one collection, evaluated on each batch of the
//! collection's new events: the batch is the only table there is, under
//! the collection's name.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::execution::context::{SQLOptions, SessionContext};
use futures::StreamExt as _;
use serde_json::{Map, Value as Json};
use sqlparser::ast::{Expr, Query, SelectItem, SetExpr, Statement, Visit, Visitor};

use crate::batch::warehouse::{arrow_schema, record_batch};
use crate::query::result::cell;
use crate::schema::types::Field;
use crate::schema::value::Row;

/// The field every streamed object carries: its collection.
pub const COLLECTION_FIELD: &str = "_collection";

/// One collection's query, after the project's rewriters and the built-in
/// rewrite. Subscribers whose queries print the same share one feed.
#[derive(Debug, Clone)]
pub struct FeedQuery {
    pub collection: String,
    pub statement: Statement,
    /// Feeds are shared by this text (printed once: it is looked up on
    /// every delivery).
    key: String,
}

impl FeedQuery {
    pub fn new(collection: String, statement: Statement) -> FeedQuery {
        let key = format!("{collection}\u{0}{statement}");
        FeedQuery { collection, statement, key }
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The names a set of statements may read a field by, or `None` when one
/// of them may read every field (`*`, or a shape not looked into). Table
/// names and aliases come along; they cost nothing.
pub fn fields_read<'a>(statements: impl IntoIterator<Item = &'a Statement>) -> Option<HashSet<String>> {
    let mut names = Names::default();
    for statement in statements {
        if statement.visit(&mut names).is_break() {
            return None;
        }
    }
    Some(names.0)
}

#[derive(Default)]
struct Names(HashSet<String>);

impl Names {
    fn add(&mut self, name: &str) {
        // Unquoted names are folded to lower case by the planner.
        self.0.insert(name.to_ascii_lowercase());
        self.0.insert(name.to_owned());
    }
}

impl Visitor for Names {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_ref() else {
            return ControlFlow::Break(());
        };
        let every = |item: &SelectItem| matches!(item, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..));
        if select.projection.iter().any(every) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => self.add(&ident.value),
            Expr::CompoundIdentifier(parts) => parts.iter().for_each(|p| self.add(&p.value)),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Evaluates each statement over `rows` of `collection` (values in the
/// order of `fields`); per statement, its rows as flat objects with
/// `_collection`, or why it failed.
pub async fn evaluate(
    collection: &str,
    fields: &[Field],
    rows: &[Row],
    statements: &[&Statement],
) -> Vec<Result<Vec<Json>, String>> {
    let ctx = match session(collection, fields, rows) {
        Ok(ctx) => ctx,
        Err(e) => return statements.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut out = Vec::with_capacity(statements.len());
    for statement in statements {
        out.push(run(&ctx, collection, statement).await);
    }
    out
}

fn session(collection: &str, fields: &[Field], rows: &[Row]) -> Result<SessionContext, String> {
    let batch = record_batch(fields, rows).map_err(|e| e.to_string())?;
    let table = MemTable::try_new(arrow_schema(fields), vec![vec![batch]]).map_err(|e| e.to_string())?;
    let ctx = SessionContext::new();
    ctx.register_table(datafusion::common::TableReference::bare(collection), Arc::new(table))
        .map_err(|e| e.to_string())?;
    Ok(ctx)
}

async fn run(ctx: &SessionContext, collection: &str, statement: &Statement) -> Result<Vec<Json>, String> {
    let state = ctx.state();
    let plan = state
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(statement.clone())))
        .await
        .map_err(|e| e.to_string())?;
    let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    options.verify_plan(&plan).map_err(|e| e.to_string())?;
    let frame = ctx.execute_logical_plan(plan).await.map_err(|e| e.to_string())?;
    let mut stream = frame.execute_stream().await.map_err(|e| e.to_string())?;
    let mut objects = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| e.to_string())?;
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut object = Map::new();
            object.insert(COLLECTION_FIELD.to_owned(), Json::String(collection.to_owned()));
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                object.insert(field.name().clone(), cell(column.as_ref(), row));
            }
            objects.push(Json::Object(object));
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::types::FieldType;
    use crate::schema::value::{Scalar, Value};

    fn statement(sql: &str) -> Statement {
        crate::query::rewrite::parse(sql).expect("sql")
    }

    #[tokio::test]
    async fn a_feed_filters_and_picks_columns() {
        let fields = vec![Field::new("url", FieldType::STRING), Field::new("ms", FieldType::DOUBLE)];
        let row = |url: &str, ms: f64| -> Row {
            vec![Some(Value::Scalar(Scalar::String(url.to_owned().into()))), Some(Value::Scalar(Scalar::Double(ms)))]
        };
        let rows = vec![row("/a \"quoted\"", 5.0), row("/b", 50.0)];
        let all = statement(r#"SELECT * FROM "pageview""#);
        let slow = statement(r#"SELECT url FROM "pageview" WHERE ms > 10"#);
        let bad = statement(r#"SELECT nothing FROM "pageview""#);
        let out = evaluate("pageview", &fields, &rows, &[&all, &slow, &bad]).await;
        assert_eq!(
            out[0].as_ref().expect("all"),
            &vec![
                json!({"_collection": "pageview", "url": "/a \"quoted\"", "ms": 5.0}),
                json!({"_collection": "pageview", "url": "/b", "ms": 50.0})
            ]
        );
        assert_eq!(out[1].as_ref().expect("slow"), &vec![json!({"_collection": "pageview", "url": "/b"})]);
        assert!(out[2].as_ref().is_err_and(|e| e.contains("nothing")), "{:?}", out[2]);
    }

    #[test]
    fn the_fields_read_are_named_unless_a_star_reads_them_all() {
        let read = |sqls: &[&str]| {
            let statements: Vec<Statement> = sqls.iter().map(|s| statement(s)).collect();
            fields_read(&statements).map(|names| {
                let mut names: Vec<String> = names.into_iter().collect();
                names.sort();
                names
            })
        };
        assert_eq!(
            read(&[r#"SELECT url, "Ms" FROM "pageview" WHERE country = 'DE'"#, "SELECT p.price FROM pageview AS p"]),
            Some(["Ms", "country", "ms", "p", "price", "url"].map(String::from).to_vec())
        );
        assert_eq!(read(&["SELECT url FROM pageview", r#"SELECT * FROM "pageview" WHERE ms > 1"#]), None);
        assert_eq!(read(&["SELECT p.* FROM pageview p"]), None);
        assert_eq!(read(&["SELECT url FROM pageview UNION SELECT url FROM pageview"]), None);
    }
}
