//! A materialized view as Rakam's clients send and read it, and the checks
//! its query must pass.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sqlparser::ast::{Expr, LimitClause, SelectItem, SetExpr, Statement};

use crate::metadata::ViewRecord;
use crate::query::rewrite;

/// Rakam's `MaterializedView` bean. Durations and instants are seconds, as
/// Rakam's Jackson writes them; durations are read from seconds or
/// ISO-8601 (`"PT1H"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaterializedView {
    pub table_name: String,
    pub name: String,
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "duration_seconds")]
    pub update_interval: Option<f64>,
    #[serde(default)]
    pub incremental: bool,
    #[serde(default)]
    pub real_time: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Json>,
    /// When the snapshot was last refreshed; never read from a client.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<f64>,
}

impl MaterializedView {
    pub fn from_record(r: &ViewRecord) -> Self {
        MaterializedView {
            table_name: r.table_name.clone(),
            name: r.name.clone(),
            query: r.query.clone(),
            update_interval: r.update_interval_ms.map(|ms| ms as f64 / 1000.0),
            incremental: r.incremental,
            real_time: r.real_time,
            options: serde_json::from_str(&r.options).ok().filter(|o: &Json| !o.is_null()),
            last_update: r.last_update.map(|ms| ms as f64 / 1000.0),
        }
    }

    /// The interval in milliseconds; a negative one is refused.
    pub fn interval_ms(&self) -> Result<Option<i64>, String> {
        match self.update_interval {
            Some(s) if !s.is_finite() || s < 0.0 => Err(format!("update_interval {s} is not a duration")),
            Some(s) => Ok(Some((s * 1000.0).round() as i64)),
            None => Ok(None),
        }
    }
}

/// A duration in seconds from a number or an ISO-8601 text.
fn duration_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Json>::deserialize(d)? {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => Ok(n.as_f64()),
        Some(Json::String(s)) => iso_duration(&s).map(Some).map_err(serde::de::Error::custom),
        Some(other) => Err(serde::de::Error::custom(format!("{other} is not a duration"))),
    }
}

/// `PnDTnHnMn.nS` (Java's `Duration.parse`; days are 24 hours) in seconds.
pub fn iso_duration(text: &str) -> Result<f64, String> {
    let bad = || format!("{text:?} is not an ISO-8601 duration such as PT1H");
    let upper = text.trim().to_ascii_uppercase();
    let (negative, rest) = match upper.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, upper.strip_prefix('+').unwrap_or(&upper)),
    };
    let rest = rest.strip_prefix('P').ok_or_else(bad)?;
    let (days, time) = match rest.split_once('T') {
        Some((days, time)) => (days, Some(time)),
        None => (rest, None),
    };
    let mut seconds = 0.0;
    if !days.is_empty() {
        let n = days.strip_suffix('D').ok_or_else(bad)?;
        seconds += n.parse::<f64>().map_err(|_| bad())? * 86_400.0;
    }
    if let Some(time) = time {
        if time.is_empty() {
            return Err(bad());
        }
        let mut number = String::new();
        for c in time.chars() {
            let unit = match c {
                'H' => 3_600.0,
                'M' => 60.0,
                'S' => 1.0,
                c if c.is_ascii_digit() || c == '.' || c == '-' || c == ',' => {
                    number.push(if c == ',' { '.' } else { c });
                    continue;
                }
                _ => return Err(bad()),
            };
            seconds += std::mem::take(&mut number).parse::<f64>().map_err(|_| bad())? * unit;
        }
        if !number.is_empty() {
            return Err(bad());
        }
    } else if days.is_empty() {
        return Err(bad());
    }
    Ok(if negative { -seconds } else { seconds })
}

/// Rakam's table names: `^[A-Za-z]+[A-Za-z0-9_]*`, kept in lower case as
/// SQL compares unquoted names.
pub fn table_name(raw: &str) -> Result<String, String> {
    let mut chars = raw.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && raw.len() <= 100;
    if valid {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(format!("table_name {raw:?} must start with a letter and have only letters, digits and _"))
    }
}

/// Rakam's checks of a view's query: one query, without LIMIT, without
/// `*`, with an alias on every column that is not a plain column.
pub fn check_query(sql: &str) -> Result<(), String> {
    let statement = rewrite::parse(sql).map_err(|e| e.to_string())?;
    let Statement::Query(query) = statement else {
        return Err("the query of a materialized view must be a SELECT".to_owned());
    };
    if query.limit_clause.as_ref().is_some_and(has_limit) || query.fetch.is_some() {
        return Err("The query of materialized view can't contain LIMIT statement".to_owned());
    }
    let mut body = query.body.as_ref();
    while let SetExpr::Query(inner) = body {
        body = inner.body.as_ref();
    }
    let selects: Vec<&sqlparser::ast::Select> = selects(body);
    for select in selects {
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    return Err("Wildcard in select items is not supported in materialized views.".to_owned());
                }
                SelectItem::UnnamedExpr(Expr::Identifier(_) | Expr::CompoundIdentifier(_)) => {}
                SelectItem::UnnamedExpr(expr) => return Err(format!("Column '{expr}' must have alias")),
                SelectItem::ExprWithAlias { .. } | SelectItem::ExprWithAliases { .. } => {}
            }
        }
    }
    Ok(())
}

fn has_limit(clause: &LimitClause) -> bool {
    match clause {
        LimitClause::LimitOffset { limit, .. } => limit.is_some(),
        LimitClause::OffsetCommaLimit { .. } => true,
    }
}

/// The SELECTs whose columns a set expression answers.
fn selects(body: &SetExpr) -> Vec<&sqlparser::ast::Select> {
    match body {
        SetExpr::Select(select) => vec![select.as_ref()],
        SetExpr::Query(query) => selects(&query.body),
        SetExpr::SetOperation { left, right, .. } => {
            let mut all = selects(left);
            all.extend(selects(right));
            all
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_java_reads_them() {
        assert_eq!(iso_duration("PT1H"), Ok(3600.0));
        assert_eq!(iso_duration("pt30m"), Ok(1800.0));
        assert_eq!(iso_duration("P1DT0.5S"), Ok(86_400.5));
        assert_eq!(iso_duration("P2D"), Ok(172_800.0));
        for bad in ["", "P", "PT", "1H", "PT1X", "PT1", "P1H"] {
            assert!(iso_duration(bad).is_err(), "{bad}");
        }
        let view: MaterializedView =
            serde_json::from_str(r#"{"table_name":"a","name":"A","query":"SELECT 1 AS x","update_interval":"PT5M"}"#)
                .expect("bean");
        assert_eq!(view.update_interval, Some(300.0));
        let view: MaterializedView =
            serde_json::from_str(r#"{"table_name":"a","name":"A","query":"q","update_interval":90}"#).expect("bean");
        assert_eq!(view.interval_ms(), Ok(Some(90_000)));
    }

    #[test]
    fn table_names_are_rakam_s() {
        assert_eq!(table_name("Daily_2").as_deref(), Ok("daily_2"));
        for bad in ["", "2daily", "_daily", "da-ily", "da ily", "d\"x"] {
            assert!(table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queries_are_checked_as_rakam_checks_them() {
        assert_eq!(check_query("SELECT url, count(*) AS hits FROM pageview GROUP BY url"), Ok(()));
        assert_eq!(check_query("SELECT p.url FROM pageview p"), Ok(()));
        assert!(check_query("SELECT url FROM pageview LIMIT 10").is_err_and(|e| e.contains("LIMIT")));
        assert!(check_query("SELECT * FROM pageview").is_err_and(|e| e.contains("Wildcard")));
        assert!(check_query("SELECT p.* FROM pageview p").is_err_and(|e| e.contains("Wildcard")));
        assert!(check_query("SELECT count(*) FROM pageview").is_err_and(|e| e.contains("must have alias")));
        assert!(
            check_query("SELECT url FROM a UNION ALL SELECT lower(url) FROM b").is_err_and(|e| e.contains("alias"))
        );
        assert!(check_query("DELETE FROM pageview").is_err());
        assert!(check_query("SELECT 1 AS x; SELECT 2 AS y").is_err());
    }
}
