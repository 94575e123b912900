//! The statements of the Trino protocol beyond queries: `USE`, `PREPARE`,
//! `EXECUTE [IMMEDIATE] … USING`, `DEALLOCATE PREPARE`, `SHOW …` and
//! `DESCRIBE`; the parameters of a prepared statement bound in its text.

use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use super::TrinoError;
use super::metadata::{CATALOG, INFORMATION_SCHEMA};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// SQL for the rewrite (queries, and whatever it refuses).
    Query(String),
    Use {
        catalog: Option<String>,
        schema: String,
    },
    Prepare {
        name: String,
        sql: String,
    },
    /// `EXECUTE name USING …`; parameters as SQL expressions.
    Execute {
        name: String,
        parameters: Vec<String>,
    },
    ExecuteImmediate {
        sql: String,
        parameters: Vec<String>,
    },
    Deallocate {
        name: String,
    },
    ShowCatalogs {
        like: Option<String>,
    },
    ShowSchemas {
        catalog: Option<String>,
        like: Option<String>,
    },
    /// The schema as named (one or two parts), if named.
    ShowTables {
        schema: Vec<String>,
        like: Option<String>,
    },
    /// `SHOW COLUMNS FROM t` and `DESCRIBE t`; the table as named.
    ShowColumns {
        table: Vec<String>,
    },
}

fn syntax(e: ParserError) -> TrinoError {
    TrinoError::syntax(e.to_string())
}

/// The byte offset of a location (1-based line and character column).
fn offset(sql: &str, at: Location) -> usize {
    let mut line_start = 0;
    for _ in 1..at.line {
        match sql[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return sql.len(),
        }
    }
    let column = usize::try_from(at.column.saturating_sub(1)).unwrap_or(usize::MAX);
    sql[line_start..].char_indices().nth(column).map_or(sql.len(), |(i, _)| line_start + i)
}

fn names(parser: &mut Parser<'_>) -> Result<Vec<String>, TrinoError> {
    let name = parser.parse_object_name(false).map_err(syntax)?;
    Ok(name
        .0
        .iter()
        .map(|part| match part.as_ident() {
            Some(i) if i.quote_style.is_some() => i.value.clone(),
            Some(i) => i.value.to_ascii_lowercase(),
            None => part.to_string(),
        })
        .collect())
}

fn like(parser: &mut Parser<'_>) -> Result<Option<String>, TrinoError> {
    if parser.parse_keyword(Keyword::LIKE) { parser.parse_literal_string().map(Some).map_err(syntax) } else { Ok(None) }
}

fn end(parser: &mut Parser<'_>) -> Result<(), TrinoError> {
    let _ = parser.consume_token(&Token::SemiColon);
    match parser.peek_token().token {
        Token::EOF => Ok(()),
        other => Err(TrinoError::syntax(format!("unexpected {other} at the end of the statement"))),
    }
}

fn parameters(parser: &mut Parser<'_>) -> Result<Vec<String>, TrinoError> {
    if !parser.parse_keyword(Keyword::USING) {
        return Ok(Vec::new());
    }
    let exprs = parser.parse_comma_separated(Parser::parse_expr).map_err(syntax)?;
    Ok(exprs.iter().map(ToString::to_string).collect())
}

impl Command {
    pub fn parse(sql: &str) -> Result<Command, TrinoError> {
        let Ok(mut parser) = Parser::new(&GenericDialect {}).try_with_sql(sql) else {
            return Ok(Command::Query(sql.to_owned()));
        };
        let command = match parser.parse_one_of_keywords(&[
            Keyword::USE,
            Keyword::PREPARE,
            Keyword::EXECUTE,
            Keyword::DEALLOCATE,
            Keyword::SHOW,
            Keyword::DESCRIBE,
            Keyword::DESC,
        ]) {
            Some(Keyword::USE) => {
                let mut parts = names(&mut parser)?;
                let schema = parts.pop().unwrap_or_default();
                if parts.len() > 1 {
                    return Err(TrinoError::syntax("USE takes a schema or catalog.schema"));
                }
                Command::Use { catalog: parts.pop(), schema }
            }
            Some(Keyword::PREPARE) => {
                let name = parser.parse_identifier().map_err(syntax)?.value;
                parser.expect_keyword(Keyword::FROM).map_err(syntax)?;
                let start = offset(sql, parser.peek_token().span.start);
                let statement = sql[start..].trim().trim_end_matches(';').trim_end();
                if statement.is_empty() {
                    return Err(TrinoError::syntax("PREPARE needs a statement after FROM"));
                }
                return Ok(Command::Prepare { name, sql: statement.to_owned() });
            }
            Some(Keyword::EXECUTE) => {
                if parser.parse_keyword(Keyword::IMMEDIATE) {
                    let sql = parser.parse_literal_string().map_err(syntax)?;
                    Command::ExecuteImmediate { sql, parameters: parameters(&mut parser)? }
                } else {
                    let name = parser.parse_identifier().map_err(syntax)?.value;
                    Command::Execute { name, parameters: parameters(&mut parser)? }
                }
            }
            Some(Keyword::DEALLOCATE) => {
                let _ = parser.parse_keyword(Keyword::PREPARE);
                Command::Deallocate { name: parser.parse_identifier().map_err(syntax)?.value }
            }
            Some(Keyword::SHOW) => {
                match parser.parse_one_of_keywords(&[
                    Keyword::CATALOGS,
                    Keyword::SCHEMAS,
                    Keyword::TABLES,
                    Keyword::COLUMNS,
                ]) {
                    Some(Keyword::CATALOGS) => Command::ShowCatalogs { like: like(&mut parser)? },
                    Some(Keyword::SCHEMAS) => {
                        let catalog = if parser.parse_one_of_keywords(&[Keyword::FROM, Keyword::IN]).is_some() {
                            Some(names(&mut parser)?.join("."))
                        } else {
                            None
                        };
                        Command::ShowSchemas { catalog, like: like(&mut parser)? }
                    }
                    Some(Keyword::TABLES) => {
                        let schema = if parser.parse_one_of_keywords(&[Keyword::FROM, Keyword::IN]).is_some() {
                            names(&mut parser)?
                        } else {
                            Vec::new()
                        };
                        Command::ShowTables { schema, like: like(&mut parser)? }
                    }
                    Some(_) => {
                        if parser.parse_one_of_keywords(&[Keyword::FROM, Keyword::IN]).is_none() {
                            return Err(TrinoError::syntax("SHOW COLUMNS FROM <table>"));
                        }
                        Command::ShowColumns { table: names(&mut parser)? }
                    }
                    None => return Err(TrinoError::not_supported(format!("{} is not supported", first_words(sql)))),
                }
            }
            Some(_) => {
                if parser.parse_one_of_keywords(&[Keyword::INPUT, Keyword::OUTPUT]).is_some() {
                    return Err(TrinoError::not_supported(format!("{} is not supported", first_words(sql))));
                }
                Command::ShowColumns { table: names(&mut parser)? }
            }
            None => return Ok(Command::Query(sql.to_owned())),
        };
        end(&mut parser)?;
        Ok(command)
    }
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_ascii_uppercase()
}

/// A statement's text with each `?` replaced by the next parameter, in
/// order; the counts must agree.
pub fn bind(sql: &str, parameters: &[String]) -> Result<String, TrinoError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| TrinoError::syntax(e.to_string()))?;
    let places: Vec<usize> = tokens
        .iter()
        .filter(|t| matches!(&t.token, Token::Placeholder(p) if p == "?"))
        .map(|t| offset(sql, t.span.start))
        .collect();
    if places.len() != parameters.len() {
        return Err(TrinoError::invalid_parameters(format!(
            "Incorrect number of parameters: expected {} but found {}",
            places.len(),
            parameters.len()
        )));
    }
    let mut bound = String::with_capacity(sql.len());
    let mut from = 0;
    for (at, parameter) in places.iter().zip(parameters) {
        bound.push_str(&sql[from..*at]);
        bound.push_str(parameter);
        from = at + 1;
    }
    bound.push_str(&sql[from..]);
    Ok(bound)
}

/// The schema a `SHOW TABLES FROM` names, if it is this project's or the
/// metadata schema.
pub fn schema_named(parts: &[String], project: &str) -> Result<String, TrinoError> {
    let (catalog, schema) = match parts {
        [] => (CATALOG, project),
        [s] => (CATALOG, s.as_str()),
        [c, s] => (c.as_str(), s.as_str()),
        _ => return Err(TrinoError::syntax(format!("{} is not a schema name", parts.join(".")))),
    };
    if catalog != CATALOG {
        return Err(TrinoError::catalog_not_found(catalog));
    }
    if schema != project && schema != INFORMATION_SCHEMA {
        return Err(TrinoError::schema_not_found(schema));
    }
    Ok(schema.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> Command {
        Command::parse(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    #[test]
    fn protocol_statements_are_told_from_queries() {
        assert_eq!(parsed("SELECT 1"), Command::Query("SELECT 1".into()));
        assert_eq!(parsed("use weir.Shop"), Command::Use { catalog: Some("weir".into()), schema: "shop".into() });
        assert_eq!(
            parsed("PREPARE st_1 FROM\n  SELECT * FROM t WHERE a = ? ;"),
            Command::Prepare { name: "st_1".into(), sql: "SELECT * FROM t WHERE a = ?".into() }
        );
        assert_eq!(
            parsed("EXECUTE IMMEDIATE 'SELECT ''x'' = ?' USING 'it''s'"),
            Command::ExecuteImmediate { sql: "SELECT 'x' = ?".into(), parameters: vec!["'it''s'".into()] }
        );
        assert_eq!(
            parsed("EXECUTE st_1 USING 1, DATE '2024-01-02', NULL"),
            Command::Execute {
                name: "st_1".into(),
                parameters: vec!["1".into(), "DATE '2024-01-02'".into(), "NULL".into()]
            }
        );
        assert_eq!(parsed("DEALLOCATE PREPARE st_1"), Command::Deallocate { name: "st_1".into() });
        assert_eq!(
            parsed("SHOW TABLES FROM weir.shop LIKE 'p%'"),
            Command::ShowTables { schema: vec!["weir".into(), "shop".into()], like: Some("p%".into()) }
        );
        assert_eq!(parsed("SHOW SCHEMAS"), Command::ShowSchemas { catalog: None, like: None });
        assert_eq!(parsed("DESCRIBE \"PageView\""), Command::ShowColumns { table: vec!["PageView".into()] });
        assert_eq!(
            parsed("SHOW COLUMNS IN shop.pageview"),
            Command::ShowColumns { table: vec!["shop".into(), "pageview".into()] }
        );
        assert!(Command::parse("SHOW TABLES garbage").is_err());
    }

    #[test]
    fn parameters_are_bound_in_order() {
        let bound = bind("SELECT '?', a FROM t WHERE b = ? AND c IN (?)", &["'x'".into(), "2".into()]);
        assert_eq!(bound.as_ref().map(String::as_str), Ok("SELECT '?', a FROM t WHERE b = 'x' AND c IN (2)"));
        let wrong = bind("SELECT ?", &[]).expect_err("a parameter is missing");
        assert_eq!(wrong.name, "INVALID_PARAMETER_USAGE");
        assert_eq!(bind("SELECT 1", &[]).as_deref().ok(), Some("SELECT 1"));
    }
}
