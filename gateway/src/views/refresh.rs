//! Refreshing a view: its query over chosen collection files, the answer
//! written as a Parquet file, and the snapshot swapped in one transaction.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;

use super::{ViewError, source_table};
use crate::app::App;
use crate::batch::warehouse;
use crate::metadata::KeyKind;
use crate::metadata::{Commit, ViewFile, ViewRecord, ViewSwap};
use crate::plugin::rewrite::QueryCaller;
use crate::query::run::{QueryError, on_lanes, user_sql};
use crate::query::{DerivedTable, Tables, result};
use crate::schema::types::{Field, FieldType, ScalarType};

/// A refresh whose sources changed under it is tried this many times.
const ATTEMPTS: usize = 3;

/// What a refresh read and wrote.
struct Written {
    files: Vec<ViewFile>,
    sources: Vec<String>,
    fields: Vec<Field>,
}

impl App {
    /// Refreshes a view now, unless a refresh of it is in flight in this
    /// process ([`ViewError::Busy`]); its record afterwards. `epoch` fences
    /// master work.
    pub async fn try_refresh_view(
        self: &Arc<Self>,
        project: &str,
        table_name: &str,
        epoch: Option<i64>,
    ) -> Result<ViewRecord, ViewError> {
        let lock = self.views.lock(project, table_name);
        let Ok(_one_at_a_time) = lock.try_lock() else { return Err(ViewError::Busy) };
        self.refresh_locked(project, table_name, epoch).await
    }

    /// Refreshes a view when `due` says so of its current record, once:
    /// readers arriving while it runs wait for it instead of refreshing
    /// again.
    pub(super) async fn refresh_if(
        self: &Arc<Self>,
        project: &str,
        table_name: &str,
        epoch: Option<i64>,
        due: impl Fn(&ViewRecord) -> bool,
    ) -> Result<Option<ViewRecord>, ViewError> {
        let lock = self.views.lock(project, table_name);
        let _one_at_a_time = lock.lock().await;
        let view = self.store.view(project, table_name).await?.ok_or(ViewError::NotFound)?;
        if !due(&view) {
            return Ok(None);
        }
        self.refresh_locked(project, table_name, epoch).await.map(Some)
    }

    async fn refresh_locked(
        self: &Arc<Self>,
        project: &str,
        table_name: &str,
        epoch: Option<i64>,
    ) -> Result<ViewRecord, ViewError> {
        for _ in 0..ATTEMPTS {
            let view = self.store.view(project, table_name).await?.ok_or(ViewError::NotFound)?;
            let fold = view.incremental && view.version > 0;
            let written = self.write_snapshot(&view, fold).await?;
            let swap = ViewSwap {
                project,
                table_name,
                from_version: view.version,
                files: &written.files,
                keep: fold,
                sources: &written.sources,
                fields: &written.fields,
            };
            let outcome = self.store.swap_view(epoch, swap, self.now_ms()).await;
            if !matches!(outcome, Ok(Commit::Done)) {
                for f in &written.files {
                    if let Err(e) = self.loader.warehouse().delete(&f.path).await {
                        tracing::warn!(path = f.path, error = %e, "could not delete a refused view file");
                    }
                }
            }
            match outcome? {
                Commit::Done => {
                    return self.store.view(project, table_name).await?.ok_or(ViewError::NotFound);
                }
                Commit::Fenced => return Err(ViewError::Deposed(epoch.unwrap_or_default())),
                Commit::Conflict => {}
            }
        }
        Err(ViewError::Conflict)
    }

    /// Runs the view's query over the collection files it should read (all
    /// of them, or those not read yet with `fold`) and writes the answer.
    async fn write_snapshot(self: &Arc<Self>, view: &ViewRecord, fold: bool) -> Result<Written, ViewError> {
        let project = view.project.as_str();
        let read = if fold { self.store.view_sources(project, &view.table_name).await? } else { HashSet::new() };
        let sql = self.view_sql(view).await?;
        let with_users = sql.to_ascii_lowercase().contains(crate::query::rewrite::USERS);
        let mut tables = self.tables(project, with_users).await?;
        let (statement, collections) = self.over_sources(project, &tables, &sql)?;
        let mut sources = Vec::new();
        for collection in &collections {
            let files = super::unread_files(self.store.as_ref(), project, collection, &read).await?;
            sources.extend(files.iter().cloned());
            let fields = tables.collections.get(collection).cloned();
            tables.derived.insert(source_table(collection), DerivedTable { files, fields, answer: None });
        }
        if fold && sources.is_empty() {
            return Ok(Written { files: Vec::new(), sources, fields: view.fields.clone() });
        }
        let output = {
            let app = self.clone();
            let project = project.to_owned();
            on_lanes(self, &project.clone(), async move { app.run_rewritten(&project, &tables, &sql, statement).await })
                .await??
        };
        let fields = fields_of(&output.schema);
        let rows: usize = output.batches.iter().map(|b| b.num_rows()).sum();
        if fold && rows == 0 {
            return Ok(Written { files: Vec::new(), sources, fields });
        }
        let batch = datafusion::arrow::compute::concat_batches(&output.schema, &output.batches)
            .map_err(|e| ViewError::Storage(warehouse::Error::Arrow(e)))?;
        let bytes = warehouse::parquet_bytes(&batch)?;
        let path = format!(
            "{project}/$views/{}/{:010}-{}.parquet",
            view.table_name,
            view.version + 1,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let size = bytes.len() as u64;
        self.loader.warehouse().put_durable(&path, bytes).await?;
        Ok(Written { files: vec![ViewFile { path, rows: rows as u64, bytes: size }], sources, fields })
    }

    /// The view's query after the project's rewriter plugins, which see it
    /// as a master key's query.
    pub(super) async fn view_sql(self: &Arc<Self>, view: &ViewRecord) -> Result<String, QueryError> {
        let caller = QueryCaller { project: view.project.clone(), key_kind: KeyKind::Master, attributes: Vec::new() };
        user_sql(self, &caller, &view.query).await
    }

    /// The view's query rewritten with each collection it reads named as
    /// a table over chosen files; the collections, by name.
    pub(super) fn over_sources(
        &self,
        project: &str,
        tables: &Tables,
        sql: &str,
    ) -> Result<(sqlparser::ast::Statement, BTreeSet<String>), QueryError> {
        let named = RefCell::new(BTreeSet::new());
        let table_name = |collection: &str| {
            named.borrow_mut().insert(collection.to_owned());
            self.engine.derived_table_name(project, &source_table(collection))
        };
        let statement = self.rewritten_over(project, tables, sql, &table_name)?;
        Ok((statement, named.into_inner()))
    }
}

/// The Rakam fields of an answer's columns.
pub fn fields_of(schema: &SchemaRef) -> Vec<Field> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let field_type =
                result::rakam_type(f.data_type()).parse::<FieldType>().unwrap_or(FieldType::Scalar(ScalarType::String));
            Field::new(f.name().clone(), field_type)
        })
        .collect()
}
