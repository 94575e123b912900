//! The metadata tables Trino clients read, for one project only:
//! `information_schema.{schemata, tables, columns}`,
//! `system.jdbc.{catalogs, schemas, tables, columns, table_types}` (what
//! JDBC's `DatabaseMetaData` reads) and `system.metadata.table_comments`. Each is a query of literal rows,
//! so that any engine runs it and it shows nothing of another project.

use sqlparser::ast::{Query, Statement};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::types::trino_type;
use crate::batch::warehouse::arrow_type;
use crate::query::Tables;
use crate::query::rewrite::{self, USERS};
use crate::schema::types::{Field, FieldType, ScalarType};

/// The catalog every project is a schema of.
pub const CATALOG: &str = "weir";
/// The schema of the metadata tables.
pub const INFORMATION_SCHEMA: &str = "information_schema";

/// A metadata table: its columns with their SQL types.
struct MetadataTable {
    name: &'static str,
    columns: &'static [(&'static str, &'static str)],
}

const SCHEMATA: MetadataTable =
    MetadataTable { name: "schemata", columns: &[("catalog_name", "VARCHAR"), ("schema_name", "VARCHAR")] };
const TABLES: MetadataTable = MetadataTable {
    name: "tables",
    columns: &[
        ("table_catalog", "VARCHAR"),
        ("table_schema", "VARCHAR"),
        ("table_name", "VARCHAR"),
        ("table_type", "VARCHAR"),
        ("table_comment", "VARCHAR"),
    ],
};
const COLUMNS: MetadataTable = MetadataTable {
    name: "columns",
    columns: &[
        ("table_catalog", "VARCHAR"),
        ("table_schema", "VARCHAR"),
        ("table_name", "VARCHAR"),
        ("column_name", "VARCHAR"),
        ("ordinal_position", "BIGINT"),
        ("column_default", "VARCHAR"),
        ("is_nullable", "VARCHAR"),
        ("data_type", "VARCHAR"),
        ("comment", "VARCHAR"),
    ],
};
const JDBC_CATALOGS: MetadataTable = MetadataTable { name: "catalogs", columns: &[("table_cat", "VARCHAR")] };
const JDBC_SCHEMAS: MetadataTable =
    MetadataTable { name: "schemas", columns: &[("table_schem", "VARCHAR"), ("table_catalog", "VARCHAR")] };
const JDBC_TABLE_TYPES: MetadataTable = MetadataTable { name: "table_types", columns: &[("table_type", "VARCHAR")] };
const JDBC_TABLES: MetadataTable = MetadataTable {
    name: "tables",
    columns: &[
        ("table_cat", "VARCHAR"),
        ("table_schem", "VARCHAR"),
        ("table_name", "VARCHAR"),
        ("table_type", "VARCHAR"),
        ("remarks", "VARCHAR"),
        ("type_cat", "VARCHAR"),
        ("type_schem", "VARCHAR"),
        ("type_name", "VARCHAR"),
        ("self_referencing_col_name", "VARCHAR"),
        ("ref_generation", "VARCHAR"),
    ],
};
const JDBC_COLUMNS: MetadataTable = MetadataTable {
    name: "columns",
    columns: &[
        ("table_cat", "VARCHAR"),
        ("table_schem", "VARCHAR"),
        ("table_name", "VARCHAR"),
        ("column_name", "VARCHAR"),
        ("data_type", "BIGINT"),
        ("type_name", "VARCHAR"),
        ("column_size", "BIGINT"),
        ("buffer_length", "BIGINT"),
        ("decimal_digits", "BIGINT"),
        ("num_prec_radix", "BIGINT"),
        ("nullable", "BIGINT"),
        ("remarks", "VARCHAR"),
        ("column_def", "VARCHAR"),
        ("sql_data_type", "BIGINT"),
        ("sql_datetime_sub", "BIGINT"),
        ("char_octet_length", "BIGINT"),
        ("ordinal_position", "BIGINT"),
        ("is_nullable", "VARCHAR"),
        ("scope_catalog", "VARCHAR"),
        ("scope_schema", "VARCHAR"),
        ("scope_table", "VARCHAR"),
        ("source_data_type", "BIGINT"),
        ("is_autoincrement", "VARCHAR"),
        ("is_generatedcolumn", "VARCHAR"),
    ],
};

/// The `java.sql.Types` code of a Trino type, as JDBC's metadata gives it.
fn jdbc_type(name: &str) -> i64 {
    let base = name.split('(').next().unwrap_or(name).trim();
    match base {
        "varchar" | "char" => 12,
        "bigint" => -5,
        "integer" => 4,
        "smallint" => 5,
        "tinyint" => -6,
        "double" => 8,
        "real" => 7,
        "boolean" => 16,
        "date" => 91,
        "time" => 92,
        "timestamp" if name.ends_with("with time zone") => 2014,
        "timestamp" => 93,
        "decimal" => 3,
        "varbinary" => -3,
        "array" => 2003,
        _ => 2000,
    }
}

const TABLE_COMMENTS: MetadataTable = MetadataTable {
    name: "table_comments",
    columns: &[
        ("catalog_name", "VARCHAR"),
        ("schema_name", "VARCHAR"),
        ("table_name", "VARCHAR"),
        ("comment", "VARCHAR"),
    ],
};

/// A literal of a metadata row.
enum Literal {
    Text(String),
    Number(i64),
    Null,
}

fn text(s: &str) -> Literal {
    Literal::Text(s.to_owned())
}

/// A table of the project as the metadata tables list it.
struct Listed {
    schema: &'static str,
    name: String,
    kind: &'static str,
    /// Column names with Trino type names.
    columns: Vec<(String, String)>,
}

/// The metadata of one project's schema.
pub struct InformationSchema {
    project: String,
    tables: Vec<Listed>,
}

fn trino_columns(fields: &[Field]) -> Vec<(String, String)> {
    fields.iter().map(|f| (f.name.clone(), trino_type(&arrow_type(f.field_type)).name)).collect()
}

impl InformationSchema {
    pub fn new(project: &str, tables: &Tables) -> Self {
        let mut listed: Vec<Listed> = tables
            .collections
            .iter()
            .filter(|(name, _)| !name.starts_with('$'))
            .map(|(name, fields)| Listed {
                schema: "",
                name: name.clone(),
                kind: "BASE TABLE",
                columns: trino_columns(fields),
            })
            .collect();
        if rewrite::visible(&tables.collections).next().is_some() {
            let mut all = rewrite::common_fields(&tables.collections);
            all.push(Field::new("_collection", FieldType::Scalar(ScalarType::String)));
            listed.push(Listed { schema: "", name: "_all".to_owned(), kind: "VIEW", columns: trino_columns(&all) });
        }
        if !tables.users.is_empty() && !tables.collections.contains_key(USERS) {
            listed.push(Listed {
                schema: "",
                name: USERS.to_owned(),
                kind: "BASE TABLE",
                columns: trino_columns(&tables.users),
            });
        }
        for table in [&SCHEMATA, &TABLES, &COLUMNS] {
            listed.push(Listed {
                schema: INFORMATION_SCHEMA,
                name: table.name.to_owned(),
                kind: "BASE TABLE",
                columns: table.columns.iter().map(|(n, t)| ((*n).to_owned(), t.to_ascii_lowercase())).collect(),
            });
        }
        InformationSchema { project: project.to_owned(), tables: listed }
    }

    fn schema_of<'a>(&'a self, table: &'a Listed) -> &'a str {
        if table.schema.is_empty() { &self.project } else { table.schema }
    }

    /// The query standing for a metadata table named by `parts` (lower
    /// case), if it is one.
    pub fn query(&self, parts: &[String]) -> Option<Query> {
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let table = match parts.as_slice() {
            [INFORMATION_SCHEMA, t] | [CATALOG, INFORMATION_SCHEMA, t] => *t,
            ["system", "jdbc", "catalogs"] => return Some(rows(&JDBC_CATALOGS, vec![vec![text(CATALOG)]])),
            ["system", "jdbc", "schemas"] => {
                let schemas = [INFORMATION_SCHEMA, self.project.as_str()];
                return Some(rows(&JDBC_SCHEMAS, schemas.iter().map(|s| vec![text(s), text(CATALOG)]).collect()));
            }
            ["system", "jdbc", "table_types"] => {
                return Some(rows(&JDBC_TABLE_TYPES, vec![vec![text("BASE TABLE")], vec![text("VIEW")]]));
            }
            ["system", "jdbc", "tables"] => {
                let listed = self.tables.iter().map(|t| {
                    let mut row = vec![text(CATALOG), text(self.schema_of(t)), text(&t.name), text(t.kind)];
                    row.extend((0..6).map(|_| Literal::Null));
                    row
                });
                return Some(rows(&JDBC_TABLES, listed.collect()));
            }
            ["system", "jdbc", "columns"] => {
                let listed = self.tables.iter().flat_map(|t| {
                    t.columns.iter().zip(1i64..).map(move |((name, kind), position)| {
                        let mut row = vec![
                            text(CATALOG),
                            text(self.schema_of(t)),
                            text(&t.name),
                            text(name),
                            Literal::Number(jdbc_type(kind)),
                            text(kind),
                        ];
                        row.extend((0..4).map(|_| Literal::Null));
                        row.push(Literal::Number(1));
                        row.extend((0..5).map(|_| Literal::Null));
                        row.push(Literal::Number(position));
                        row.push(text("YES"));
                        row.extend((0..4).map(|_| Literal::Null));
                        row.push(text("NO"));
                        row.push(text("NO"));
                        row
                    })
                });
                return Some(rows(&JDBC_COLUMNS, listed.collect()));
            }
            ["system", "metadata", "table_comments"] => {
                let listed = self.tables.iter().map(|t| {
                    vec![text(CATALOG), text(self.schema_of(t)), Literal::Text(t.name.clone()), Literal::Null]
                });
                return Some(rows(&TABLE_COMMENTS, listed.collect()));
            }
            _ => return None,
        };
        Some(match table {
            "schemata" => rows(
                &SCHEMATA,
                vec![vec![text(CATALOG), text(INFORMATION_SCHEMA)], vec![text(CATALOG), text(&self.project)]],
            ),
            "tables" => {
                let listed = self
                    .tables
                    .iter()
                    .map(|t| vec![text(CATALOG), text(self.schema_of(t)), text(&t.name), text(t.kind), Literal::Null]);
                rows(&TABLES, listed.collect())
            }
            "columns" => {
                let listed = self.tables.iter().flat_map(|t| {
                    t.columns.iter().zip(1i64..).map(move |((name, kind), position)| {
                        vec![
                            text(CATALOG),
                            text(self.schema_of(t)),
                            text(&t.name),
                            text(name),
                            Literal::Number(position),
                            Literal::Null,
                            text("YES"),
                            text(kind),
                            Literal::Null,
                        ]
                    })
                });
                rows(&COLUMNS, listed.collect())
            }
            _ => return None,
        })
    }
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A query of literal rows with the table's columns and types.
fn rows(table: &MetadataTable, rows: Vec<Vec<Literal>>) -> Query {
    let names: Vec<String> = table.columns.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let sql = if rows.is_empty() {
        let nulls: Vec<String> = table.columns.iter().map(|(n, t)| format!("CAST(NULL AS {t}) AS \"{n}\"")).collect();
        format!("SELECT {} WHERE 1 = 0", nulls.join(", "))
    } else {
        let values: Vec<String> = rows
            .iter()
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .zip(table.columns)
                    .map(|(value, (_, t))| match value {
                        Literal::Text(s) => quoted(s),
                        Literal::Number(n) => format!("CAST({n} AS {t})"),
                        Literal::Null => format!("CAST(NULL AS {t})"),
                    })
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        format!("SELECT * FROM (VALUES {}) AS \"{}\"({})", values.join(", "), table.name, names.join(", "))
    };
    match Parser::new(&GenericDialect {}).try_with_sql(&sql).and_then(|mut p| p.parse_statement()) {
        Ok(Statement::Query(query)) => *query,
        other => unreachable!("a metadata table's query parses: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn schema() -> InformationSchema {
        let f = |n: &str, t: &str| Field::new(n, t.parse().expect("type"));
        let collections = BTreeMap::from([
            ("pageview".to_owned(), vec![f("_time", "TIMESTAMP"), f("url", "STRING")]),
            ("it's".to_owned(), vec![f("_time", "TIMESTAMP"), f("n", "LONG")]),
            ("$invalid_schema".to_owned(), vec![f("_time", "TIMESTAMP")]),
        ]);
        InformationSchema::new("shop", &Tables { collections, ..Default::default() })
    }

    fn sql(parts: &[&str]) -> Option<String> {
        let parts: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
        schema().query(&parts).map(|q| q.to_string())
    }

    #[test]
    fn metadata_tables_are_literal_rows_of_the_project() {
        let tables = sql(&["information_schema", "tables"]).expect("tables");
        assert!(tables.contains("('weir', 'shop', 'pageview', 'BASE TABLE', CAST(NULL AS VARCHAR))"), "{tables}");
        assert!(tables.contains("'it''s'"), "{tables}");
        assert!(tables.contains("('weir', 'shop', '_all', 'VIEW'"), "{tables}");
        assert!(!tables.contains("invalid_schema"), "{tables}");
        let columns = sql(&["weir", "information_schema", "columns"]).expect("columns");
        assert!(
            columns.contains(
                "('weir', 'shop', 'pageview', '_time', CAST(1 AS BIGINT), CAST(NULL AS VARCHAR), 'YES', 'timestamp(6) with time zone', CAST(NULL AS VARCHAR))"
            ),
            "{columns}"
        );
        assert!(columns.contains("'_all', '_collection', CAST(2 AS BIGINT)"), "{columns}");
        assert_eq!(
            sql(&["system", "jdbc", "catalogs"]).as_deref(),
            Some(r#"SELECT * FROM (VALUES ('weir')) AS "catalogs" ("table_cat")"#)
        );
        let jdbc = sql(&["system", "jdbc", "columns"]).expect("jdbc columns");
        assert!(jdbc.contains("('weir', 'shop', 'pageview', 'url', CAST(12 AS BIGINT), 'varchar'"), "{jdbc}");
        assert!(jdbc.contains("'_time', CAST(2014 AS BIGINT), 'timestamp(6) with time zone'"), "{jdbc}");
        let tables = sql(&["system", "jdbc", "tables"]).expect("jdbc tables");
        assert!(tables.contains("('weir', 'shop', 'pageview', 'BASE TABLE', CAST(NULL AS VARCHAR)"), "{tables}");
        assert!(sql(&["system", "jdbc", "schemas"]).is_some_and(|s| s.contains("('shop', 'weir')")));
        assert_eq!(sql(&["other", "information_schema", "tables"]), None);
        assert_eq!(sql(&["information_schema", "views"]), None);
    }
}
