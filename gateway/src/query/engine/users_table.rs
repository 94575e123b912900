//! `users` in SQL: the project's user table, read from the user database
//! when a query scans it, so that a query sees every write answered
//! before it started.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::batch::warehouse::{arrow_schema, record_batch};
use crate::schema::types::Field;
use crate::users::Users;

pub struct UserTable {
    users: Arc<Users>,
    project: String,
    columns: Vec<Field>,
    schema: SchemaRef,
}

impl std::fmt::Debug for UserTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTable").field("project", &self.project).finish()
    }
}

impl UserTable {
    pub fn new(users: Arc<Users>, project: &str, columns: Vec<Field>) -> Self {
        let schema = arrow_schema(&columns);
        UserTable { users, project: project.to_owned(), columns, schema }
    }
}

#[async_trait]
impl TableProvider for UserTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows =
            self.users.rows(&self.project, &self.columns).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        let batch = record_batch(&self.columns, &rows).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let plan = MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())?;
        Ok(plan)
    }
}
