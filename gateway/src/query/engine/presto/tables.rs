//! The cluster's tables over the warehouse, one per collection, kept
//! current after each load and compaction: Hive external tables
//! partitioned by `_day` (Trino's and Presto's Hive connector), or views
//! over the manifest's files (DuckDB behind the Presto protocol).

use serde::{Deserialize, Serialize};

use crate::batch::warehouse::arrow_type;
use crate::query::trino::types::trino_type;
use crate::schema::types::Field;

/// How the cluster's tables are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableDdl {
    /// `CREATE TABLE … WITH (external_location, format = 'PARQUET',
    /// partitioned_by = ARRAY['_day'])`, new fields added, partitions
    /// synced with `system.sync_partition_metadata`.
    Hive,
    /// `CREATE OR REPLACE VIEW … AS SELECT … FROM read_parquet([files])`:
    /// exactly the files the manifest names.
    Duckdb,
}

/// A quoted SQL identifier.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Where a collection's table is, on the cluster and in the warehouse.
pub struct TablePlace<'a> {
    pub catalog: &'a str,
    pub schema: &'a str,
    pub table: &'a str,
    /// The collection's folder, as the cluster reads it.
    pub location: &'a str,
    /// The collection's files, as the cluster reads them.
    pub files: &'a [String],
}

impl TablePlace<'_> {
    fn name(&self) -> String {
        format!("{}.{}.{}", quoted(self.catalog), quoted(self.schema), quoted(self.table))
    }
}

/// The Trino type a field's Parquet column is read as. The Hive connector
/// reads timestamps as `timestamp(6)` (no zone).
fn column_type(field: &Field, ddl: TableDdl) -> String {
    let name = trino_type(&arrow_type(field.field_type)).name;
    match ddl {
        TableDdl::Hive => name.replace(" with time zone", ""),
        TableDdl::Duckdb => name,
    }
}

/// The statements that make the table current, in order.
pub fn statements(ddl: TableDdl, place: &TablePlace<'_>, fields: &[Field]) -> Vec<String> {
    let schema = format!("CREATE SCHEMA IF NOT EXISTS {}.{}", quoted(place.catalog), quoted(place.schema));
    match ddl {
        TableDdl::Hive => {
            let mut columns: Vec<String> =
                fields.iter().map(|f| format!("{} {}", quoted(&f.name), column_type(f, ddl))).collect();
            columns.push(format!("{} varchar", quoted("_day")));
            let create = format!(
                "CREATE TABLE IF NOT EXISTS {} ({}) WITH (external_location = {}, format = 'PARQUET', \
                 partitioned_by = ARRAY['_day'])",
                place.name(),
                columns.join(", "),
                literal(place.location)
            );
            let mut out = vec![schema, create];
            out.extend(fields.iter().map(|f| {
                format!(
                    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
                    place.name(),
                    quoted(&f.name),
                    column_type(f, ddl)
                )
            }));
            out.push(format!(
                "CALL {}.system.sync_partition_metadata({}, {}, 'FULL')",
                quoted(place.catalog),
                literal(place.schema),
                literal(place.table)
            ));
            out
        }
        TableDdl::Duckdb => {
            let columns = fields.iter().map(|f| (quoted(&f.name), column_type(f, ddl)));
            let select = if place.files.is_empty() {
                let nulls: Vec<String> = columns.map(|(n, t)| format!("CAST(NULL AS {t}) AS {n}")).collect();
                format!("SELECT {} WHERE 1 = 0", nulls.join(", "))
            } else {
                let casts: Vec<String> = columns.map(|(n, t)| format!("CAST({n} AS {t}) AS {n}")).collect();
                let files: Vec<String> = place.files.iter().map(|f| literal(f)).collect();
                format!(
                    "SELECT {} FROM read_parquet(ARRAY[{}], union_by_name = true)",
                    casts.join(", "),
                    files.join(", ")
                )
            };
            vec![schema, format!("CREATE OR REPLACE VIEW {} AS {select}", place.name())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<Field> {
        vec![
            Field::new("_time", "TIMESTAMP".parse().expect("type")),
            Field::new("url", "STRING".parse().expect("type")),
        ]
    }

    #[test]
    fn hive_tables_are_external_and_partitioned_by_day() {
        let files = vec!["s3://b/w/shop/pageview/_day=2024-01-02/0-1-2.parquet".to_owned()];
        let place = TablePlace {
            catalog: "hive",
            schema: "shop",
            table: "pageview",
            location: "s3://b/w/shop/pageview",
            files: &files,
        };
        assert_eq!(statements(TableDdl::Hive, &place, &fields()), vec![
            r#"CREATE SCHEMA IF NOT EXISTS "hive"."shop""#.to_owned(),
            r#"CREATE TABLE IF NOT EXISTS "hive"."shop"."pageview" ("_time" timestamp(6), "url" varchar, "_day" varchar) WITH (external_location = 's3://b/w/shop/pageview', format = 'PARQUET', partitioned_by = ARRAY['_day'])"#.to_owned(),
            r#"ALTER TABLE "hive"."shop"."pageview" ADD COLUMN IF NOT EXISTS "_time" timestamp(6)"#.to_owned(),
            r#"ALTER TABLE "hive"."shop"."pageview" ADD COLUMN IF NOT EXISTS "url" varchar"#.to_owned(),
            r#"CALL "hive".system.sync_partition_metadata('shop', 'pageview', 'FULL')"#.to_owned(),
        ]);
    }

    #[test]
    fn duckdb_views_read_exactly_the_manifest_s_files() {
        let files = vec!["/w/shop/pageview/_day=2024-01-02/a.parquet".to_owned(), "/w/it's.parquet".to_owned()];
        let place = TablePlace { catalog: "memory", schema: "shop", table: "pageview", location: "/w", files: &files };
        let view = &statements(TableDdl::Duckdb, &place, &fields())[1];
        assert_eq!(
            view,
            r#"CREATE OR REPLACE VIEW "memory"."shop"."pageview" AS SELECT CAST("_time" AS timestamp(6) with time zone) AS "_time", CAST("url" AS varchar) AS "url" FROM read_parquet(ARRAY['/w/shop/pageview/_day=2024-01-02/a.parquet', '/w/it''s.parquet'], union_by_name = true)"#
        );
        let empty = TablePlace { files: &[], ..place };
        assert!(statements(TableDdl::Duckdb, &empty, &fields())[1].ends_with("AS \"url\" WHERE 1 = 0"));
    }
}
