//! Real-time reports (Rakam's v1): a continuous query of measures per time
//! bucket (and dimensions), read back over a window of buckets.

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sqlparser::ast::Ident;

use crate::query::rewrite;

/// Seconds per time bucket (Rakam's slide).
pub const SLIDE_S: i64 = 5;
/// The window a read covers by default, in seconds.
pub const WINDOW_S: i64 = 120;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measure {
    pub column: String,
    pub aggregation: String,
}

/// Rakam's `RealTimeReport`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealTimeReport {
    pub name: String,
    pub table_name: String,
    pub measures: Vec<Measure>,
    pub collections: Vec<String>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub dimensions: Option<Vec<String>>,
}

/// The aggregate function of an aggregation type Presto's Rakam allowed.
fn function(aggregation: &str) -> Result<&'static str, String> {
    match aggregation.to_ascii_uppercase().as_str() {
        "COUNT" => Ok("count"),
        "SUM" => Ok("sum"),
        "MINIMUM" => Ok("min"),
        "MAXIMUM" => Ok("max"),
        "APPROXIMATE_UNIQUE" => Ok("approx_distinct"),
        "AVERAGE" => Err("Average aggregation is not supported in realtime service.".to_owned()),
        other => Err(format!("Unsupported aggregation types: {other}")),
    }
}

impl Measure {
    /// The report's column of this measure: `<column>_<aggregation>`.
    pub fn column_name(&self) -> String {
        format!("{}_{}", self.column, self.aggregation.to_ascii_lowercase())
    }

    pub fn same(&self, other: &Measure) -> bool {
        self.column == other.column && self.aggregation.eq_ignore_ascii_case(&other.aggregation)
    }
}

impl RealTimeReport {
    pub fn dimensions(&self) -> &[String] {
        self.dimensions.as_deref().unwrap_or_default()
    }

    /// The continuous query of the report: per time bucket and dimension
    /// values, each measure. Unlike Rakam's, the filter goes in a WHERE
    /// and several collections are one union.
    pub fn query(&self) -> Result<String, String> {
        if self.measures.is_empty() {
            return Err("At least one measure is required".to_owned());
        }
        if self.collections.is_empty() {
            return Err("collections is empty".to_owned());
        }
        let quoted = |name: &str| Ident::with_quote('"', name).to_string();
        if let Some(m) = self.measures.iter().find(|m| self.dimensions().contains(&m.column)) {
            return Err(format!("{} cannot be both a dimension and a measure", m.column));
        }
        let mut columns = vec!["_time".to_owned()];
        for name in self.dimensions().iter().chain(self.measures.iter().map(|m| &m.column)) {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
        let inner: Vec<String> = columns.iter().map(|c| quoted(c)).collect();
        let branches: Vec<String> =
            self.collections.iter().map(|c| format!("SELECT {} FROM {}", inner.join(", "), quoted(c))).collect();
        let mut select = vec![format!("CAST(to_unixtime(_time) AS BIGINT) / {SLIDE_S} AS \"time\"")];
        select.extend(self.dimensions().iter().map(|d| quoted(d)));
        for m in &self.measures {
            select.push(format!(
                "{}({}) AS {}",
                function(&m.aggregation)?,
                quoted(&m.column),
                quoted(&m.column_name())
            ));
        }
        let filter = match self.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            Some(f) => format!(" WHERE ({})", rewrite::parse_expression(f).map_err(|e| format!("filter: {e}"))?),
            None => String::new(),
        };
        let groups: Vec<String> = (1..=1 + self.dimensions().len()).map(|i| i.to_string()).collect();
        Ok(format!(
            "SELECT {} FROM ({}) AS data{filter} GROUP BY {}",
            select.join(", "),
            branches.join(" UNION ALL "),
            groups.join(", ")
        ))
    }

    /// The options of its continuous query, as Rakam's list shows them.
    pub fn options(&self) -> serde_json::Map<String, Json> {
        let mut options = serde_json::Map::new();
        options.insert("realtime".into(), json!(true));
        options.insert("aggregation".into(), json!(self.measures));
        options.insert("report".into(), json!(self));
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(measures: &[(&str, &str)], dimensions: &[&str], collections: &[&str]) -> RealTimeReport {
        RealTimeReport {
            name: "r".into(),
            table_name: "r".into(),
            measures: measures.iter().map(|(c, a)| Measure { column: (*c).into(), aggregation: (*a).into() }).collect(),
            collections: collections.iter().map(|c| (*c).to_string()).collect(),
            filter: Some("amount > 1".into()),
            dimensions: Some(dimensions.iter().map(|d| (*d).to_string()).collect()),
        }
    }

    #[test]
    fn a_report_is_a_continuous_query_per_bucket() {
        let r = report(&[("amount", "sum"), ("_user", "APPROXIMATE_UNIQUE")], &["country"], &["buy", "refund"]);
        assert_eq!(
            r.query().as_deref(),
            Ok(concat!(
                r#"SELECT CAST(to_unixtime(_time) AS BIGINT) / 5 AS "time", "country", sum("amount") AS "amount_sum", "#,
                r#"approx_distinct("_user") AS "_user_approximate_unique" FROM (SELECT "_time", "country", "amount", "_user" FROM "buy" "#,
                r#"UNION ALL SELECT "_time", "country", "amount", "_user" FROM "refund") AS data WHERE (amount > 1) GROUP BY 1, 2"#
            ))
        );
        assert!(report(&[("amount", "AVERAGE")], &[], &["buy"]).query().is_err_and(|e| e.contains("Average")));
        assert!(report(&[("amount", "COUNT_UNIQUE")], &[], &["buy"]).query().is_err_and(|e| e.contains("Unsupported")));
        assert!(report(&[], &[], &["buy"]).query().is_err());
        assert!(report(&[("amount", "sum")], &["amount"], &["buy"]).query().is_err());
        let mut bad = report(&[("amount", "sum")], &[], &["buy"]);
        bad.filter = Some("1 = 1) UNION SELECT 1 --".into());
        assert!(bad.query().is_err_and(|e| e.contains("filter")));
    }
}
