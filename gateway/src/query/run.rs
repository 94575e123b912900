//! The way every query of a project runs, whichever API asked: the
//! project's rewriter plugins, the built-in rewrite, and the engine, on the
//! query lanes and within the query timeout.

use std::sync::Arc;

use sqlparser::ast::Statement;

use super::engine::{EngineError, QueryOutput};
use super::lanes::LaneError;
use super::rewrite::{self, Catalog, DerivedNames, RewriteError, Scope};
use super::trino::metadata::{CATALOG, InformationSchema};
use super::{Tables, result};
use crate::app::App;
use crate::plugin::rewrite::QueryCaller;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query itself is wrong (syntax, unknown names, types); `sql` is
    /// what was run, for the position of the error.
    #[error("{message}")]
    Invalid { message: String, sql: String },
    /// The query does not parse.
    #[error("{message}")]
    Syntax { message: String, sql: String },
    #[error("denied: {0}")]
    Denied(String),
    /// A name of the project's that it has nothing under (a materialized
    /// view).
    #[error("{0}")]
    NotFound(String),
    /// A rewriter plugin refused the query or failed.
    #[error("{0}")]
    Plugin(String),
    #[error("the query ran longer than {0} s (query.timeout_s)")]
    TimedOut(u64),
    /// Over the query's memory or the result's size.
    #[error("{0}")]
    TooLarge(String),
    /// The project has too many queries waiting; retry shortly.
    #[error("{0}")]
    Busy(String),
    /// The engine, the storage or the runtime cannot take the query now.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::Error),
    #[error(transparent)]
    Users(#[from] crate::users::Error),
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

impl QueryError {
    pub fn rewrite(e: RewriteError, sql: &str) -> Self {
        match e {
            RewriteError::Denied(reason) => QueryError::Denied(reason),
            RewriteError::Syntax(message) => QueryError::Syntax { message, sql: sql.to_owned() },
            e @ (RewriteError::TooDeep(_) | RewriteError::Empty) => {
                QueryError::Invalid { message: e.to_string(), sql: sql.to_owned() }
            }
        }
    }
}

/// `Line: L, Column: C` in a parser's or an engine's message.
pub fn error_position(message: &str) -> Option<(u64, u64)> {
    let number_after = |tag: &str| -> Option<u64> {
        let rest = &message[message.find(tag)? + tag.len()..];
        rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
    };
    Some((number_after("Line: ")?, number_after("Column: ")?))
}

impl App {
    /// The project's tables, read once per query; the user table's columns
    /// only when asked for.
    pub async fn tables(&self, project: &str, with_users: bool) -> Result<Tables> {
        let collections =
            self.store.latest_schemas(project).await?.into_iter().map(|s| (s.collection, s.fields)).collect();
        let users = if with_users { self.users.columns(project).await? } else { Vec::new() };
        Ok(Tables { collections, users, ..Default::default() })
    }

    /// Rewrites a query for the project, capped at `limit` rows (none for
    /// EXPLAIN); with the Trino protocol's names where `catalog` is set.
    pub fn rewritten(
        &self,
        project: &str,
        tables: &Tables,
        sql: &str,
        limit: Option<u64>,
        catalog: bool,
        derived: &DerivedNames,
    ) -> Result<Statement> {
        let table_name = |collection: &str| self.engine.table_name(project, collection);
        let users_table = self.engine.users_table_name(project);
        let information = catalog.then(|| InformationSchema::new(project, tables));
        let metadata = |parts: &[String]| information.as_ref().and_then(|i| i.query(parts));
        let names = Catalog { name: CATALOG, schema: project, metadata: &metadata };
        let scope = Scope {
            collections: &tables.collections,
            table_name: &table_name,
            users_table: &users_table,
            catalog: catalog.then_some(&names),
            derived,
        };
        let mut statement = rewrite::rewrite(sql, &scope).map_err(|e| QueryError::rewrite(e, sql))?;
        if let Some(limit) = limit {
            rewrite::apply_limit(&mut statement, limit.min(self.config.query.max_limit));
        }
        Ok(statement)
    }

    /// Rewrites a view's query with its collections under the names
    /// `table_name` gives them (tables over chosen files).
    pub fn rewritten_over(
        &self,
        project: &str,
        tables: &Tables,
        sql: &str,
        table_name: &dyn Fn(&str) -> sqlparser::ast::ObjectName,
    ) -> Result<Statement> {
        let users_table = self.engine.users_table_name(project);
        let derived = DerivedNames::new();
        let scope = Scope {
            collections: &tables.collections,
            table_name,
            users_table: &users_table,
            catalog: None,
            derived: &derived,
        };
        rewrite::rewrite(sql, &scope).map_err(|e| QueryError::rewrite(e, sql))
    }

    pub(crate) async fn run_rewritten(
        &self,
        project: &str,
        tables: &Tables,
        sql: &str,
        statement: Statement,
    ) -> Result<QueryOutput> {
        self.engine.run(project, tables, statement).await.map_err(|e| self.engine_error(e, sql))
    }

    /// An engine's failure of `sql` as a query's.
    pub(crate) fn engine_error(&self, e: EngineError, sql: &str) -> QueryError {
        match e {
            EngineError::Query(message) => QueryError::Invalid { message, sql: sql.to_owned() },
            EngineError::PastDeadline => QueryError::TimedOut(self.config.query.timeout_s),
            EngineError::TooMuchMemory(message) => QueryError::TooLarge(message),
            EngineError::Busy(message) | EngineError::Storage(message) => QueryError::Unavailable(message),
            EngineError::Metadata(e) => e.into(),
        }
    }

    /// A continuous query's failure as a query's.
    pub(crate) fn continuous_query_error(
        &self,
        e: crate::views::continuous::ContinuousError,
        table: &str,
    ) -> QueryError {
        use crate::views::continuous::ContinuousError;
        match e {
            ContinuousError::Engine(e) => self.engine_error(e, &format!("continuous.{table}")),
            ContinuousError::Metadata(e) => e.into(),
            ContinuousError::Denied(reason) => QueryError::Denied(reason),
            e => QueryError::Failed(format!("continuous.{table}: {e}")),
        }
    }
}

/// The user's SQL after the project's rewriter plugins. With plugins, the
/// user's SQL is parsed and checked first (on the query lanes, whose
/// threads are made for deep statements), so that a query too deep or
/// malformed is answered as such rather than as a plugin's failure.
pub async fn user_sql(app: &Arc<App>, caller: &QueryCaller, sql: &str) -> Result<String> {
    if app.plugins.has_rewriters(&caller.project) {
        let owned = sql.to_owned();
        let checked = async move { rewrite::parse(&owned).map(drop).map_err(|e| QueryError::rewrite(e, &owned)) };
        on_lanes(app, &caller.project, checked).await??;
    }
    app.plugins.rewrite_query(caller, sql.to_owned()).await.map_err(|e| QueryError::Plugin(e.to_string()))
}

/// A query's answer from the engine: the rewrite and the run, on the query
/// lanes and within the query timeout. `sql` has been through the
/// project's plugins already.
pub async fn output(app: &Arc<App>, project: &str, sql: String, limit: Option<u64>) -> Result<QueryOutput> {
    output_with(app, project, sql, limit, false).await
}

/// A query's answer as [`output`] gives it, with the names of the Trino
/// protocol (`weir.<project>.<table>`, `information_schema`, …) and no cap
/// on its rows.
pub async fn catalog_output(app: &Arc<App>, project: &str, sql: String) -> Result<QueryOutput> {
    output_with(app, project, sql, None, true).await
}

async fn output_with(
    app: &Arc<App>,
    project: &str,
    sql: String,
    limit: Option<u64>,
    catalog: bool,
) -> Result<QueryOutput> {
    let views = app.prepare_views(project, &sql).await?;
    let work = {
        let app = app.clone();
        let project = project.to_owned();
        async move {
            let with_users = catalog || sql.to_ascii_lowercase().contains(rewrite::USERS);
            let mut tables = app.tables(&project, with_users).await?;
            tables.derived = views.tables;
            let statement = app.rewritten(&project, &tables, &sql, limit, catalog, &views.names)?;
            let mut output = app.run_rewritten(&project, &tables, &sql, statement).await?;
            output.views = views.read;
            Ok(output)
        }
    };
    on_lanes(app, project, work).await?
}

/// Runs work of a project's query on the query lanes, within the query
/// timeout.
pub async fn on_lanes<T: Send + 'static>(
    app: &Arc<App>,
    project: &str,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T> {
    let timeout = std::time::Duration::from_secs(app.config.query.timeout_s);
    app.queries.run(project, timeout, work).await.map_err(|e| match e {
        LaneError::Busy { .. } => QueryError::Busy(e.to_string()),
        LaneError::Timeout(_) => QueryError::TimedOut(app.config.query.timeout_s),
        LaneError::Failed(_) => QueryError::Failed(e.to_string()),
        LaneError::Closed => QueryError::Unavailable(e.to_string()),
    })
}

/// Runs SQL for a caller, through the project's rewriter plugins and the
/// built-in rewrite, capped at `limit` rows; the rows as JSON. Endpoints
/// that build SQL for their callers (user search) answer through it, so
/// that what hides rows from a query hides them there too.
pub async fn query_rows(
    app: &Arc<App>,
    caller: &QueryCaller,
    sql: &str,
    limit: u64,
) -> Result<(QueryOutput, Vec<Vec<serde_json::Value>>)> {
    let sql = user_sql(app, caller, sql).await?;
    let output = output(app, &caller.project, sql, Some(limit)).await?;
    let rows = result::rows(&output.batches, app.config.query.max_result_bytes)
        .map_err(|e| QueryError::TooLarge(e.to_string()))?;
    Ok((output, rows))
}
