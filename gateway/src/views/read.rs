//! What a query's `materialized.<x>` names stand for: each view's current
//! snapshot, refreshed first when Rakam's rules say so, and with
//! `real_time` the view's query over the collection files the snapshot has
//! not read yet.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use sqlparser::ast::Statement;

use super::{ViewError, newer_table, snapshot_table};
use crate::app::App;
use crate::metadata::ViewRecord;
use crate::query::rewrite::{self, CONTINUOUS, Derived, DerivedNames, MATERIALIZED};
use crate::query::run::{QueryError, on_lanes};
use crate::query::{DerivedTable, Tables};

/// The views a query names, ready for its rewrite and its engine.
#[derive(Default)]
pub struct PreparedViews {
    pub names: DerivedNames,
    pub tables: BTreeMap<String, DerivedTable>,
    /// Each view read, with when it was last refreshed (milliseconds).
    pub read: BTreeMap<String, i64>,
}

impl App {
    /// Finds the views `sql` names, refreshes those due, and gives what
    /// the query's rewrite and engine need of them.
    pub async fn prepare_views(self: &Arc<Self>, project: &str, sql: &str) -> Result<PreparedViews, QueryError> {
        let mut prepared = PreparedViews::default();
        let lower = sql.to_ascii_lowercase();
        if !lower.contains(MATERIALIZED) && !lower.contains(CONTINUOUS) {
            return Ok(prepared);
        }
        // Parsed on the query lanes, made for deep statements; a query
        // that does not parse is answered as such by its rewrite.
        let owned = sql.to_owned();
        let named = on_lanes(self, project, async move {
            rewrite::parse(&owned)
                .map(|s| rewrite::derived_references(&s, &[MATERIALIZED, CONTINUOUS]))
                .unwrap_or_default()
        })
        .await?;
        for (schema, table_name) in named {
            if schema == CONTINUOUS {
                let (name, table) = self.continuous_answer(project, &table_name).await?;
                let engine_name = self.engine.derived_table_name(project, &name);
                prepared.tables.insert(name, table);
                prepared.names.insert((CONTINUOUS.to_owned(), table_name), Derived::Table(engine_name));
                continue;
            }
            let view = self.ready_view(project, &table_name).await?;
            let snapshot = snapshot_table(&table_name);
            let files = self.snapshot_files(&view).await?;
            prepared.tables.insert(snapshot.clone(), DerivedTable { files, fields: None, answer: None });
            let table = self.engine.derived_table_name(project, &snapshot);
            let derived = if view.real_time {
                let (query, newer) = self.with_newer_rows(&view, &table).await?;
                prepared.tables.extend(newer);
                Derived::Query(query)
            } else {
                Derived::Table(table)
            };
            prepared.names.insert((MATERIALIZED.to_owned(), table_name.clone()), derived);
            prepared.read.insert(view.table_name.clone(), view.last_update.unwrap_or(0));
        }
        Ok(prepared)
    }

    /// A continuous query's answer over its stored states, computed on the
    /// project's query lanes, as a table of the query's session.
    async fn continuous_answer(
        self: &Arc<Self>,
        project: &str,
        table_name: &str,
    ) -> Result<(String, DerivedTable), QueryError> {
        let missing = || QueryError::NotFound(format!("Continuous query table continuous.{table_name} does not exist"));
        let query = self.store.continuous_query(project, table_name).await?.ok_or_else(missing)?;
        let continuous = self.continuous.clone();
        let answer = on_lanes(self, project, async move { continuous.answer(&query).await }).await?;
        let answer = answer.map_err(|e| self.continuous_query_error(e, table_name))?;
        let name = format!("$continuous:{table_name}");
        Ok((name, DerivedTable { files: Vec::new(), fields: None, answer: Some(answer) }))
    }

    /// The view, refreshed first if it has no snapshot yet or a full view's
    /// is older than its interval; a stale incremental view is refreshed in
    /// the background and read as it is.
    async fn ready_view(self: &Arc<Self>, project: &str, table_name: &str) -> Result<ViewRecord, QueryError> {
        let missing = || QueryError::NotFound(format!("Referenced materialized table {table_name} does not exist"));
        let view = self.store.view(project, table_name).await?.ok_or_else(missing)?;
        let now = self.now_ms();
        let wait = |v: &ViewRecord| v.version == 0 || (!v.incremental && stale(v, now));
        if wait(&view) {
            return match self.refresh_if(project, table_name, None, wait).await {
                Ok(Some(view)) => Ok(view),
                Ok(None) => self.store.view(project, table_name).await?.ok_or_else(missing),
                Err(ViewError::NotFound) => Err(missing()),
                Err(ViewError::Query(e)) => Err(e),
                Err(e) => {
                    Err(QueryError::Failed(format!("Error while updating materialized table '{table_name}': {e}")))
                }
            };
        }
        if stale(&view, now) {
            let (app, project, table_name) = (self.clone(), project.to_owned(), table_name.to_owned());
            tokio::spawn(async move {
                if let Err(e) = app.refresh_if(&project, &table_name, None, |v| stale(v, now)).await {
                    tracing::warn!(project, table_name, error = %e, "an incremental view's refresh failed");
                }
            });
        }
        Ok(view)
    }

    /// The files of the view's snapshot as of its record (re-read when a
    /// refresh swapped it meanwhile).
    async fn snapshot_files(&self, view: &ViewRecord) -> Result<Vec<String>, QueryError> {
        let (project, table_name) = (view.project.as_str(), view.table_name.as_str());
        let mut version = view.version;
        loop {
            let files = self.store.view_files(project, table_name).await?;
            let now = self.store.view(project, table_name).await?.map_or(version, |v| v.version);
            if now == version {
                return Ok(files.into_iter().map(|f| f.path).collect());
            }
            version = now;
        }
    }

    /// `SELECT * FROM <snapshot> UNION ALL <the view's query over the
    /// collection files the snapshot has not read>`, and those files' tables.
    async fn with_newer_rows(
        self: &Arc<Self>,
        view: &ViewRecord,
        snapshot: &sqlparser::ast::ObjectName,
    ) -> Result<(Box<sqlparser::ast::Query>, BTreeMap<String, DerivedTable>), QueryError> {
        let project = view.project.as_str();
        let sql = self.view_sql(view).await?;
        let with_users = sql.to_ascii_lowercase().contains(rewrite::USERS);
        let tables: Tables = self.tables(project, with_users).await?;
        let (statement, named) = {
            let named = std::cell::RefCell::new(Vec::new());
            let recording = |collection: &str| {
                named.borrow_mut().push(collection.to_owned());
                self.engine.derived_table_name(project, &newer_table(&view.table_name, collection))
            };
            let statement = self.rewritten_over(project, &tables, &sql, &recording)?;
            (statement, named.into_inner())
        };
        // The sources read again after the files: a compaction between the
        // two reads would carry marks to a file listed as unread.
        let mut read: HashSet<String> = self.store.view_sources(project, &view.table_name).await?;
        let newer = loop {
            let mut newer = BTreeMap::new();
            for collection in &named {
                let files = super::unread_files(self.store.as_ref(), project, collection, &read).await?;
                let fields = tables.collections.get(collection).cloned();
                newer.insert(newer_table(&view.table_name, collection), DerivedTable { files, fields, answer: None });
            }
            let again = self.store.view_sources(project, &view.table_name).await?;
            if again == read {
                break newer;
            }
            read = again;
        };
        let sql = format!("SELECT * FROM {snapshot} UNION ALL {statement}");
        match rewrite::parse(&sql) {
            Ok(Statement::Query(query)) => Ok((query, newer)),
            other => Err(QueryError::Failed(format!(
                "the real-time read of {} could not be built: {other:?}",
                view.table_name
            ))),
        }
    }
}

/// Older than its interval; never, for a view without one.
pub(super) fn stale(view: &ViewRecord, now_ms: i64) -> bool {
    match (view.update_interval_ms, view.last_update) {
        (Some(interval), Some(last)) => now_ms - last > interval,
        _ => false,
    }
}
