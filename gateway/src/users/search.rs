//! The SQL behind `/user/search` and `/user/get_events`: built here from a
//! checked request, then run like any query of the caller (through the
//! project's rewriters and the built-in rewrite), so the same isolation and
//! row filters apply.

use serde::Deserialize;
use serde_json::Value as Json;
use sqlparser::ast::{Expr, Ident};

use super::{Error, Result};
use crate::query::{Collections, rewrite};
use crate::schema::names;
use crate::schema::timefmt;
use crate::schema::types::{Field, FieldType};
use crate::schema::{TIME_FIELD, USER_FIELD};

/// Rows a search answers unless it asks for fewer, and at most.
pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 5_000;
/// Events `/user/get_events` answers unless asked, and at most.
pub const DEFAULT_EVENTS: u64 = 15;
pub const MAX_EVENTS: u64 = 1_000;

/// Users who did something: Rakam's `EventFilter`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    pub collection: String,
    /// `filterExpression` in Rakam's generated clients.
    #[serde(default, alias = "filter_expression", alias = "filterExpression")]
    pub filter: Option<String>,
    #[serde(default)]
    pub timeframe: Option<Timeframe>,
    #[serde(default)]
    pub aggregation: Option<Aggregation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeframe {
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregation {
    pub aggregation: String,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub minimum: Option<i64>,
    #[serde(default)]
    pub maximum: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sorting {
    pub column: String,
    pub order: String,
}

/// `/user/search`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub event_filters: Option<Vec<EventFilter>>,
    #[serde(default)]
    pub sorting: Option<Sorting>,
    /// Rows to skip: a number, or its text (Rakam's type).
    #[serde(default)]
    pub offset: Option<Json>,
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A search's statements: the page of users, and how many match.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSql {
    pub page: String,
    pub count: String,
    pub limit: u64,
}

fn quoted(name: &str) -> String {
    Ident::with_quote('"', name).to_string()
}

/// A SQL expression, alone (see [`rewrite::parse_expression`]).
pub fn expression(text: &str, what: &str) -> Result<Expr> {
    rewrite::parse_expression(text).map_err(|e| Error::Invalid(format!("{what} is not a SQL expression: {e}")))
}

fn column<'a>(columns: &'a [Field], name: &str) -> Result<&'a Field> {
    columns
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::Invalid(format!("{name:?} is not a user property of this project")))
}

/// A timeframe bound as a timestamp literal.
fn instant(text: &str, what: &str) -> Result<String> {
    let micros = timefmt::parse_date_or_timestamp(text)
        .ok_or_else(|| Error::Invalid(format!("{what} {text:?} is not a date or timestamp")))?;
    Ok(format!("to_timestamp_micros({micros})"))
}

/// The users an event filter names, as a query of `_user`.
fn event_filter_sql(f: &EventFilter, collections: &Collections) -> Result<String> {
    let collection = names::collection_name(&f.collection).map_err(|e| Error::Invalid(e.to_string()))?;
    let fields = collections
        .get(&collection)
        .ok_or_else(|| Error::Invalid(format!("event filter: {collection:?} is not a collection of this project")))?;
    if !fields.iter().any(|f| f.name == USER_FIELD) {
        return Err(Error::Invalid(format!("event filter: collection {collection:?} has no {USER_FIELD}")));
    }
    let mut conditions = vec![format!("{USER_FIELD} IS NOT NULL")];
    if let Some(filter) = f.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        conditions.push(format!("({})", expression(filter, "the event filter")?));
    }
    if let Some(t) = &f.timeframe {
        if let Some(start) = &t.start {
            conditions.push(format!("{TIME_FIELD} >= {}", instant(start, "timeframe.start")?));
        }
        if let Some(end) = &t.end {
            conditions.push(format!("{TIME_FIELD} < {}", instant(end, "timeframe.end")?));
        }
    }
    let mut sql =
        format!("SELECT {USER_FIELD} FROM collection.{} WHERE {}", quoted(&collection), conditions.join(" AND "));
    if let Some(a) = &f.aggregation {
        let field = match &a.field {
            Some(name) => {
                let name = names::field_name(name).map_err(|e| Error::Invalid(e.to_string()))?;
                if !fields.iter().any(|f| f.name == name) {
                    return Err(Error::Invalid(format!("aggregation field {name:?} is not in {collection:?}")));
                }
                Some(quoted(&name))
            }
            None => None,
        };
        let needs_field =
            || field.clone().ok_or_else(|| Error::Invalid(format!("aggregation {} needs a field", a.aggregation)));
        let aggregate = match a.aggregation.to_ascii_uppercase().as_str() {
            "COUNT" => format!("count({})", field.clone().unwrap_or_else(|| "*".to_owned())),
            "COUNT_UNIQUE" | "APPROXIMATE_UNIQUE" => format!("count(DISTINCT {})", needs_field()?),
            "SUM" => format!("sum({})", needs_field()?),
            "MINIMUM" => format!("min({})", needs_field()?),
            "MAXIMUM" => format!("max({})", needs_field()?),
            "AVERAGE" => format!("avg({})", needs_field()?),
            other => {
                return Err(Error::Invalid(format!(
                    "aggregation {other:?} is not one of COUNT, COUNT_UNIQUE, SUM, MINIMUM, MAXIMUM, AVERAGE"
                )));
            }
        };
        let mut having = Vec::new();
        if let Some(min) = a.minimum {
            having.push(format!("{aggregate} >= {min}"));
        }
        if let Some(max) = a.maximum {
            having.push(format!("{aggregate} < {max}"));
        }
        sql.push_str(&format!(" GROUP BY {USER_FIELD}"));
        if !having.is_empty() {
            sql.push_str(&format!(" HAVING {}", having.join(" AND ")));
        }
    }
    Ok(sql)
}

/// A user segment's query: the users any of the event filters selects.
pub fn segment_sql(filters: &[EventFilter], collections: &Collections) -> Result<String> {
    let users = filters.iter().map(|f| event_filter_sql(f, collections)).collect::<Result<Vec<_>>>()?;
    Ok(format!("SELECT DISTINCT {USER_FIELD} AS id FROM ({}) AS segment", users.join(" UNION ALL ")))
}

/// The statements of a search over the user table's `columns`.
pub fn search_sql(s: &Search, columns: &[Field], collections: &Collections) -> Result<SearchSql> {
    let selected: Vec<String> = match &s.columns {
        None => columns.iter().map(|c| quoted(&c.name)).collect(),
        Some(names) if names.is_empty() => columns.iter().map(|c| quoted(&c.name)).collect(),
        Some(names) => names.iter().map(|n| column(columns, n).map(|c| quoted(&c.name))).collect::<Result<_>>()?,
    };
    let mut conditions = Vec::new();
    if let Some(filter) = s.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        conditions.push(format!("({})", expression(filter, "filter")?));
    }
    if let Some(filters) = s.event_filters.as_ref().filter(|f| !f.is_empty()) {
        let users = filters.iter().map(|f| event_filter_sql(f, collections)).collect::<Result<Vec<_>>>()?;
        conditions.push(format!("id IN ({})", users.join(" UNION ALL ")));
    }
    let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    let order = match &s.sorting {
        None => " ORDER BY id".to_owned(),
        Some(sorting) => {
            let c = column(columns, &sorting.column)?;
            let direction = match sorting.order.to_ascii_lowercase().as_str() {
                "asc" => "ASC",
                "desc" => "DESC",
                other => return Err(Error::Invalid(format!("sorting.order {other:?} is not asc or desc"))),
            };
            format!(" ORDER BY {} {direction}, id", quoted(&c.name))
        }
    };
    let limit = s.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::Invalid(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let offset = match &s.offset {
        None | Some(Json::Null) => 0,
        Some(Json::Number(n)) => n.as_u64().ok_or_else(|| Error::Invalid("offset must be a whole number".into()))?,
        Some(Json::String(t)) if t.is_empty() => 0,
        Some(Json::String(t)) => t.parse().map_err(|_| Error::Invalid("offset must be a whole number".into()))?,
        Some(_) => return Err(Error::Invalid("offset must be a whole number".into())),
    };
    Ok(SearchSql {
        page: format!("SELECT {} FROM users{filter}{order} LIMIT {limit} OFFSET {offset}", selected.join(", ")),
        count: format!("SELECT count(*) AS total FROM users{filter}"),
        limit,
    })
}

/// A user id as a literal of `_user`'s type.
pub fn user_literal(id: &Json, user_type: FieldType) -> Result<String> {
    match (id, user_type == FieldType::LONG) {
        (Json::Number(n), true) if n.is_i64() => Ok(n.to_string()),
        (Json::String(s), true) => {
            s.parse::<i64>().map(|n| n.to_string()).map_err(|_| Error::Invalid(format!("user {s:?} is not a number")))
        }
        (Json::String(s), false) => Ok(format!("'{}'", s.replace('\'', "''"))),
        (Json::Number(n), false) => Ok(format!("'{n}'")),
        _ => Err(Error::Invalid(format!("user {id} must be a string or a number"))),
    }
}

/// A user's newest events in one collection: `properties` (those the
/// collection has; all when none are asked for) and `_time`, newest first,
/// before `before` when given.
pub fn events_sql(
    collection: &str,
    fields: &[Field],
    user: &str,
    properties: Option<&[String]>,
    before: Option<&str>,
    limit: u64,
) -> Result<Option<String>> {
    if !fields.iter().any(|f| f.name == USER_FIELD) || !fields.iter().any(|f| f.name == TIME_FIELD) {
        return Ok(None);
    }
    let mut selected: Vec<String> = match properties {
        None | Some([]) => fields.iter().map(|f| quoted(&f.name)).collect(),
        Some(names) => names
            .iter()
            .filter_map(|n| names::field_name(n).ok())
            .filter(|n| fields.iter().any(|f| &f.name == n))
            .map(|n| quoted(&n))
            .collect(),
    };
    if !selected.contains(&quoted(TIME_FIELD)) {
        selected.push(quoted(TIME_FIELD));
    }
    let mut sql =
        format!("SELECT {} FROM collection.{} WHERE {USER_FIELD} = {user}", selected.join(", "), quoted(collection));
    if let Some(before) = before {
        sql.push_str(&format!(" AND {TIME_FIELD} < {}", instant(before, "offset")?));
    }
    sql.push_str(&format!(" ORDER BY {TIME_FIELD} DESC LIMIT {limit}"));
    Ok(Some(sql))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn columns() -> Vec<Field> {
        vec![
            Field::new("id", FieldType::STRING),
            Field::new("created_at", FieldType::TIMESTAMP),
            Field::new("plan", FieldType::STRING),
            Field::new("seats", FieldType::DOUBLE),
        ]
    }

    fn collections() -> Collections {
        BTreeMap::from([(
            "purchase".to_owned(),
            vec![
                Field::new("_time", FieldType::TIMESTAMP),
                Field::new("_user", FieldType::STRING),
                Field::new("amount", FieldType::DOUBLE),
            ],
        )])
    }

    fn search(v: Json) -> Result<SearchSql> {
        search_sql(&serde_json::from_value(v).expect("search"), &columns(), &collections())
    }

    #[test]
    fn a_filter_only_search_filters_and_pages() {
        let s = search(json!({"filter": "plan = 'pro'", "columns": ["id", "seats"], "offset": "20", "limit": 10}))
            .expect("sql");
        assert_eq!(s.page, r#"SELECT "id", "seats" FROM users WHERE (plan = 'pro') ORDER BY id LIMIT 10 OFFSET 20"#);
        assert_eq!(s.count, "SELECT count(*) AS total FROM users WHERE (plan = 'pro')");
    }

    #[test]
    fn event_filters_select_users_by_what_they_did() {
        let s = search(json!({
            "event_filters": [{"collection": "purchase", "filter": "amount > 10",
                               "timeframe": {"start": "2024-01-01", "end": "2024-02-01"},
                               "aggregation": {"aggregation": "SUM", "field": "amount", "minimum": 100}}],
            "sorting": {"column": "seats", "order": "desc"}
        }))
        .expect("sql");
        assert_eq!(
            s.page,
            concat!(
                r#"SELECT "id", "created_at", "plan", "seats" FROM users WHERE id IN (SELECT _user FROM collection."purchase" "#,
                "WHERE _user IS NOT NULL AND (amount > 10) AND _time >= to_timestamp_micros(1704067200000000) ",
                "AND _time < to_timestamp_micros(1706745600000000) GROUP BY _user HAVING sum(\"amount\") >= 100) ",
                r#"ORDER BY "seats" DESC, id LIMIT 100 OFFSET 0"#
            )
        );
    }

    #[test]
    fn bad_searches_are_refused() {
        for bad in [
            json!({"filter": "plan = 'pro') UNION SELECT 1 --"}),
            json!({"filter": "plan = 'pro'; DROP TABLE users"}),
            json!({"columns": ["secret"]}),
            json!({"sorting": {"column": "plan", "order": "sideways"}}),
            json!({"limit": 5001}),
            json!({"offset": "ten"}),
            json!({"event_filters": [{"collection": "nothing"}]}),
            json!({"event_filters": [{"collection": "purchase", "aggregation": {"aggregation": "SUM"}}]}),
        ] {
            assert!(matches!(search(bad.clone()), Err(Error::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn user_ids_are_literals_of_the_users_type() {
        assert_eq!(user_literal(&json!("o'neil"), FieldType::STRING).expect("lit"), "'o''neil'");
        assert_eq!(user_literal(&json!(7), FieldType::LONG).expect("lit"), "7");
        assert_eq!(user_literal(&json!("7"), FieldType::LONG).expect("lit"), "7");
        assert!(user_literal(&json!("7; DROP"), FieldType::LONG).is_err());
    }
}
