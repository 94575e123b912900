//! What a statement does: a query through the project's plugins and the
//! rewrite, or one of the protocol's own statements.

use std::sync::Arc;

use super::TrinoError;
use super::command::{self, Command};
use super::metadata::{CATALOG, INFORMATION_SCHEMA};
use super::statements::{Outcome, Session};
use crate::app::App;
use crate::plugin::rewrite::QueryCaller;
use crate::query::run;

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn like(column: &str, pattern: Option<&String>) -> String {
    pattern.map_or_else(String::new, |p| format!(" AND {column} LIKE {}", literal(p)))
}

fn form_encoded(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn execute(
    app: &Arc<App>,
    caller: &QueryCaller,
    session: &Session,
    sql: &str,
) -> Result<Outcome, TrinoError> {
    let command = Command::parse(sql)?;
    let bound = match command {
        Command::Execute { name, parameters } => {
            let prepared = session
                .prepared
                .get(&name)
                .ok_or_else(|| TrinoError::not_found(format!("Prepared statement not found: {name}")))?;
            Some(command::bind(prepared, &parameters)?)
        }
        Command::ExecuteImmediate { sql, parameters } => Some(command::bind(&sql, &parameters)?),
        other => return run_command(app, caller, other).await,
    };
    match bound.map(|sql| Command::parse(&sql)).transpose()? {
        Some(
            Command::Execute { .. }
            | Command::ExecuteImmediate { .. }
            | Command::Prepare { .. }
            | Command::Deallocate { .. },
        ) => Err(TrinoError::not_supported("a prepared statement cannot prepare or execute another")),
        Some(command) => run_command(app, caller, command).await,
        None => Err(TrinoError::not_supported("nothing to execute")),
    }
}

async fn run_command(app: &Arc<App>, caller: &QueryCaller, command: Command) -> Result<Outcome, TrinoError> {
    let project = caller.project.as_str();
    match command {
        Command::Query(sql) => {
            let sql = run::user_sql(app, caller, &sql).await?;
            Ok(Outcome::Rows(run::catalog_output(app, project, sql).await?))
        }
        Command::Use { catalog, schema } => {
            let catalog = catalog.unwrap_or_else(|| CATALOG.to_owned());
            let schema = command::schema_named(&[catalog.clone(), schema], project)?;
            Ok(Outcome::Update { kind: "USE", headers: vec![("Set-Catalog", catalog), ("Set-Schema", schema)] })
        }
        Command::Prepare { name, sql } => {
            Command::parse(&sql)?;
            let value = format!("{}={}", form_encoded(&name), form_encoded(&sql));
            Ok(Outcome::Update { kind: "PREPARE", headers: vec![("Added-Prepare", value)] })
        }
        Command::Deallocate { name } => {
            Ok(Outcome::Update { kind: "DEALLOCATE", headers: vec![("Deallocated-Prepare", form_encoded(&name))] })
        }
        Command::ShowCatalogs { like: pattern } => {
            let sql = format!(
                "SELECT DISTINCT catalog_name AS \"Catalog\" FROM information_schema.schemata WHERE true{} ORDER BY 1",
                like("catalog_name", pattern.as_ref())
            );
            metadata_rows(app, project, sql).await
        }
        Command::ShowSchemas { catalog, like: pattern } => {
            if let Some(catalog) = catalog.filter(|c| c != CATALOG) {
                return Err(TrinoError::catalog_not_found(&catalog));
            }
            let sql = format!(
                "SELECT schema_name AS \"Schema\" FROM information_schema.schemata WHERE true{} ORDER BY 1",
                like("schema_name", pattern.as_ref())
            );
            metadata_rows(app, project, sql).await
        }
        Command::ShowTables { schema, like: pattern } => {
            let schema = command::schema_named(&schema, project)?;
            let sql = format!(
                "SELECT table_name AS \"Table\" FROM information_schema.tables WHERE table_schema = {}{} ORDER BY 1",
                literal(&schema),
                like("table_name", pattern.as_ref())
            );
            metadata_rows(app, project, sql).await
        }
        Command::ShowColumns { table } => {
            let (schema, name) = match table.as_slice() {
                [name] => (project.to_owned(), name.clone()),
                [schema_parts @ .., name] => (command::schema_named(schema_parts, project)?, name.clone()),
                [] => return Err(TrinoError::syntax("a table name is missing")),
            };
            let sql = format!(
                "SELECT column_name AS \"Column\", data_type AS \"Type\", '' AS \"Extra\", comment AS \"Comment\" \
                 FROM information_schema.columns WHERE table_schema = {} AND table_name = {} ORDER BY ordinal_position",
                literal(&schema),
                literal(&name)
            );
            let outcome = metadata_rows(app, project, sql).await?;
            match &outcome {
                Outcome::Rows(output) if output.batches.iter().all(|b| b.num_rows() == 0) => {
                    Err(TrinoError::table_not_found(&format!("{CATALOG}.{schema}.{name}")))
                }
                _ => Ok(outcome),
            }
        }
        Command::Execute { .. } | Command::ExecuteImmediate { .. } => {
            Err(TrinoError::not_supported("a prepared statement cannot prepare or execute another"))
        }
    }
}

/// Rows of the metadata tables; SQL of the gateway's own making, so not
/// through the project's plugins.
async fn metadata_rows(app: &Arc<App>, project: &str, sql: String) -> Result<Outcome, TrinoError> {
    debug_assert!(sql.contains(INFORMATION_SCHEMA));
    Ok(Outcome::Rows(run::catalog_output(app, project, sql).await?))
}
