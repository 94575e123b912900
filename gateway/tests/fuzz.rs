//! Generated input against what clients control: the collection API's body
//! parser and event names, the Avro encoder and decoder, and the SQL
//! rewrite. Each property runs a fixed number of cases (so the test
//! command's time stays bounded); none may panic, and what is accepted must
//! keep its promises.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use proptest::prelude::*;
use serde_json::{Value as Json, json};
use sqlparser::ast::{Ident, ObjectName, Visit as _, Visitor};
use weir_gateway::http::parse_batch;
use weir_gateway::ingest::Event;
use weir_gateway::query::rewrite::{self, Scope};
use weir_gateway::schema::avro;
use weir_gateway::schema::infer::coerce;
use weir_gateway::schema::types::{Field, FieldType, ScalarType};
use weir_gateway::schema::value::Value;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Json::String),
        Just(json!("2024-01-02T03:04:05Z")),
        Just(json!("2024-01-02")),
        Just(json!("12:30:00")),
        Just(json!("9999999999999999999999")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map("[a-zA-Z_$ -]{0,12}", inner, 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

fn property_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,12}",
        "[a-zA-Z0-9_ .$-]{0,14}",
        Just("_collection".to_owned()),
        Just("userId".to_owned()),
        Just("user_id".to_owned()),
        "\\PC{0,110}",
    ]
}

proptest! {
    #![proptest_config(config(400))]

    /// Any text: an answer, never a panic.
    #[test]
    fn any_text_is_a_batch_or_an_error(text in "\\PC{0,300}") {
        let _ = parse_batch(&text);
    }

    /// Well-formed batches: every event is either parsed or listed as
    /// refused, each exactly once, in order.
    #[test]
    fn batch_events_are_parsed_or_listed(
        events in prop::collection::vec(
            (prop_oneof!["[a-zA-Z0-9_-]{1,10}", "\\PC{0,12}"],
             prop::collection::btree_map(property_name(), json_value(), 0..6)),
            0..12,
        )
    ) {
        let items: Vec<Json> = events
            .iter()
            .map(|(c, p)| json!({"collection": c, "properties": Json::Object(p.clone().into_iter().collect())}))
            .collect();
        let body = json!({"api": {"api_key": "k"}, "events": items}).to_string();
        let parsed = parse_batch(&body).expect("a well-formed body parses");
        prop_assert_eq!(parsed.events.len() + parsed.failed.len(), events.len());
        prop_assert!(parsed.failed.windows(2).all(|w| w[0] < w[1]));
        for event in &parsed.events {
            let mut names: Vec<&str> = event.properties.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            prop_assert!(names.windows(2).all(|w| w[0] != w[1]), "two properties became one field");
            prop_assert!(!names.contains(&"_collection"));
            prop_assert!(names.iter().all(|n| n.len() <= 101 && !n.is_empty()));
        }
    }

    /// Name and value pairs (CSV rows, pixel parameters) normalize or are
    /// refused; no two survive as one field.
    #[test]
    fn pairs_normalize_or_are_refused(pairs in prop::collection::vec((property_name(), json_value()), 0..8)) {
        if let Ok(event) = Event::from_pairs("c", pairs) {
            let mut names: Vec<&str> = event.properties.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            prop_assert!(names.windows(2).all(|w| w[0] != w[1]));
        }
    }

    /// What the encoder writes, the decoder reads back as it was; the
    /// decoder answers garbage with an error.
    #[test]
    fn avro_round_trips(
        columns in prop::collection::vec((0usize..30, json_value()), 1..8),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let types: Vec<FieldType> = ScalarType::ALL
            .iter()
            .flat_map(|&t| [FieldType::Scalar(t), FieldType::Array(t), FieldType::Map(t)])
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, (t, _))| Field::new(format!("f{i}"), types[*t % types.len()]))
            .collect();
        let mut expected: Vec<Option<Value<'_>>> = Vec::new();
        let mut buf = Vec::new();
        for (field, (_, json)) in fields.iter().zip(&columns) {
            match coerce(json, field.field_type) {
                Ok(Some(value)) => {
                    avro::write_value(&mut buf, &value);
                    expected.push(Some(value));
                }
                _ => {
                    avro::write_null(&mut buf);
                    expected.push(None);
                }
            }
        }
        let decoded = avro::decode(&buf, &fields, &fields).expect("what was written decodes");
        prop_assert_eq!(decoded, expected);
        let _ = avro::decode(&garbage, &fields, &fields);
        let mut truncated = buf.clone();
        truncated.pop();
        let _ = avro::decode(&truncated, &fields, &fields);
    }
}

fn collections() -> BTreeMap<String, Vec<Field>> {
    let f = |n: &str| Field::new(n, FieldType::STRING);
    BTreeMap::from([
        ("pageview".to_owned(), vec![f("_time"), f("url"), f("_user")]),
        ("click".to_owned(), vec![f("_time"), f("button"), f("_user")]),
    ])
}

/// Every relation a rewritten statement names: the project's own tables
/// (`"p"."<collection>"`) or a single name (a CTE, or `_all`'s alias).
struct Relations(Vec<ObjectName>);

impl Visitor for Relations {
    type Break = ();
    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        self.0.push(relation.clone());
        ControlFlow::Continue(())
    }
}

const WORDS: &[&str] = &[
    "SELECT",
    "*",
    "FROM",
    "pageview",
    "click",
    "_all",
    "users",
    "\"$users\"",
    "other.secret",
    "information_schema.tables",
    "collection.click",
    "\"p\".\"click\"",
    "p.pageview",
    "datafusion.public.pageview",
    "(",
    ")",
    "UNION ALL",
    "WITH",
    "x",
    "AS",
    "JOIN",
    "ON",
    "1",
    "=",
    ",",
    "WHERE",
    "IN",
    "LATERAL",
    "read_parquet('/etc/passwd')",
    "generate_series(1, 3)",
    "url",
    "count(*)",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "EXPLAIN",
    "INSERT INTO",
    "VALUES",
    "DROP TABLE",
    ";",
    "CREATE TABLE",
    "COPY",
    "TO",
    "'/tmp/x'",
    "EXISTS",
    "NOT",
    "OR",
    "+",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "materialized.v",
    "continuous.c",
    "\"other\".\"pageview\"",
];

proptest! {
    #![proptest_config(config(2000))]

    /// Whatever is sent, the rewrite answers, and what it lets through
    /// names nothing but the project's own tables.
    #[test]
    fn the_rewrite_lets_through_only_the_projects_tables(
        words in prop::collection::vec(prop::sample::select(WORDS), 1..40),
        noise in "\\PC{0,40}",
    ) {
        let collections = collections();
        let name = |c: &str| ObjectName::from(vec![Ident::with_quote('"', "p"), Ident::with_quote('"', c)]);
        let users = ObjectName::from(vec![Ident::with_quote('"', "p"), Ident::with_quote('"', "$users")]);
        let derived = weir_gateway::query::rewrite::DerivedNames::new();
        let scope =
            Scope { collections: &collections, table_name: &name, users_table: &users, catalog: None, derived: &derived };
        let _ = rewrite::rewrite(&noise, &scope);
        let sql = words.join(" ");
        if let Ok(statement) = rewrite::rewrite(&sql, &scope) {
            let mut relations = Relations(Vec::new());
            let _ = statement.visit(&mut relations);
            for relation in relations.0 {
                let parts: Vec<String> = relation.0.iter().map(|p| p.to_string()).collect();
                let table = parts.get(1).map(|t| t.trim_matches('"'));
                let own = parts.len() == 2
                    && parts[0] == "\"p\""
                    && table.is_some_and(|t| t == "$users" || collections.contains_key(t));
                prop_assert!(own || parts.len() == 1, "{sql} -> {statement} names {relation}");
            }
        }
    }
}

const OWN: &[&str] = &["pageview", "click", "collection.click", "\"pageview\"", "_all", "users"];
const FOREIGN: &[&str] = &[
    "other.pageview",
    "\"other\".\"pageview\"",
    "information_schema.tables",
    "datafusion.public.pageview",
    "secret",
    "\"PageView\"",
    "pg_catalog.pg_tables",
    "read_parquet('/etc/passwd')",
    "materialized.v",
];

/// A query over `tables`, nested in one of several ways.
fn query_over(tables: &[&str], shape: usize) -> String {
    let t = |i: usize| tables[i % tables.len()];
    match shape % 6 {
        0 => format!("SELECT * FROM {} CROSS JOIN {}", t(0), t(1)),
        1 => format!("SELECT a._user FROM {} a JOIN {} b ON a._user = b._user", t(0), t(1)),
        2 => format!("SELECT count(*) FROM {} WHERE _user IN (SELECT _user FROM {})", t(0), t(1)),
        3 => format!("WITH w AS (SELECT * FROM {}) SELECT * FROM w, {}", t(0), t(1)),
        4 => format!("SELECT * FROM {} UNION ALL SELECT * FROM (SELECT * FROM {}) x", t(0), t(1)),
        _ => format!("SELECT (SELECT max(_time) FROM {}) FROM {} LEFT JOIN LATERAL (SELECT 1) z ON true", t(0), t(1)),
    }
}

proptest! {
    #![proptest_config(config(600))]

    /// However it is nested, a query that names anything but the project's
    /// own tables is refused, and one that names only those is let through.
    #[test]
    fn foreign_tables_are_refused_wherever_they_hide(
        own in prop::collection::vec(prop::sample::select(OWN), 2),
        foreign in prop::sample::select(FOREIGN),
        slot in 0usize..2,
        shape in 0usize..6,
    ) {
        let collections = collections();
        let name = |c: &str| ObjectName::from(vec![Ident::with_quote('"', "p"), Ident::with_quote('"', c)]);
        let users = ObjectName::from(vec![Ident::with_quote('"', "p"), Ident::with_quote('"', "$users")]);
        let derived = weir_gateway::query::rewrite::DerivedNames::new();
        let scope =
            Scope { collections: &collections, table_name: &name, users_table: &users, catalog: None, derived: &derived };
        let clean = query_over(&own, shape);
        prop_assert!(rewrite::rewrite(&clean, &scope).is_ok(), "{} was refused", clean);
        let mut mixed = own.clone();
        mixed[slot] = foreign;
        let sql = query_over(&mixed, shape);
        let refused = rewrite::rewrite(&sql, &scope);
        prop_assert!(refused.is_err(), "{} was let through: {:?}", sql, refused.map(|s| s.to_string()));
    }
}
