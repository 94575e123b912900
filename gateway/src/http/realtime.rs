//! `/realtime/*`: Rakam's real-time reports (v1, on continuous queries; see
//! [`crate::views::realtime`]).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{ApiError, ApiResult, AppState, body_or_empty as body, json_response, key_kind as project, success};
use crate::metadata::{ContinuousRecord, KeyKind};
use crate::query::result;
use crate::views::continuous::definition::ContinuousQuery;
use crate::views::realtime::{Measure, RealTimeReport, SLIDE_S, WINDOW_S};

#[derive(Deserialize)]
struct TableName {
    table_name: String,
}

#[derive(Deserialize)]
struct Get {
    table_name: String,
    measure: Measure,
    #[serde(default)]
    dimensions: Option<Vec<String>>,
    #[serde(default)]
    aggregate: Option<bool>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    date_start: Option<Json>,
    #[serde(default)]
    date_end: Option<Json>,
}

/// An instant from seconds or ISO-8601 text, in seconds.
fn instant(value: &Json) -> ApiResult<i64> {
    match value {
        Json::Number(n) => n.as_f64().map(|s| s.floor() as i64).ok_or_else(|| ApiError::bad_request("bad instant")),
        // With an offset, or without one (read as UTC), as clients write them.
        Json::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp())
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc().timestamp())
            })
            .map_err(|e| ApiError::bad_request(format!("{s:?} is not an instant: {e}"))),
        other => Err(ApiError::bad_request(format!("{other} is not an instant"))),
    }
}

/// The report behind a continuous query, if it is one.
fn report_of(query: &ContinuousRecord) -> Option<RealTimeReport> {
    let options: Json = serde_json::from_str(&query.options).ok()?;
    (options["realtime"] == json!(true)).then(|| serde_json::from_value(options["report"].clone()).ok())?
}

/// `POST /realtime/create` (master key): the body is the report.
pub async fn create(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Master).await?;
    let mut report: RealTimeReport = body(&app, &headers, raw).await?;
    report.table_name = crate::views::definition::table_name(&report.table_name).map_err(ApiError::bad_request)?;
    let sql = report.query().map_err(ApiError::bad_request)?;
    let cq = ContinuousQuery {
        table_name: report.table_name.clone(),
        name: report.name.clone(),
        query: sql,
        partition_keys: Vec::new(),
        options: report.options(),
        window_duration: None,
    };
    super::continuous::create_query(&app, &project, cq, true).await?;
    Ok(success())
}

/// `POST /realtime/list` (read key): the continuous queries of reports.
pub async fn list(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Read).await?;
    let reports: Vec<ContinuousQuery> = app
        .store
        .continuous_queries(Some(&project))
        .await?
        .iter()
        .filter(|q| report_of(q).is_some())
        .map(ContinuousQuery::from_record)
        .collect();
    Ok(json_response(StatusCode::OK, &reports))
}

/// `POST /realtime/delete` (master key).
pub async fn delete(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Master).await?;
    let req: TableName = body(&app, &headers, raw).await?;
    let table_name = req.table_name.to_ascii_lowercase();
    let gone = match app.store.continuous_query(&project, &table_name).await? {
        Some(query) if report_of(&query).is_some() => {
            app.store.delete_continuous(&project, &table_name, app.now_ms()).await?
        }
        _ => false,
    };
    if !gone {
        return Err(ApiError::bad_request("Couldn't delete report. It doesn't exist"));
    }
    Ok(success())
}

/// `POST /realtime/get` (read key): a measure over a window of time
/// buckets, current to the last load; `{start, end, result}` in Rakam's
/// four shapes.
pub async fn get(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Read).await?;
    let req: Get = body(&app, &headers, raw).await?;
    let table_name = req.table_name.to_ascii_lowercase();
    let query = app.store.continuous_query(&project, &table_name).await?;
    let (query, report) = match query.as_ref().and_then(|q| report_of(q).map(|r| (q, r))) {
        Some(found) => found,
        None => return Err(ApiError::new(StatusCode::NOT_FOUND, format!("Report {table_name} does not exist"))),
    };
    if req.filter.as_deref().is_some_and(|f| !f.trim().is_empty()) {
        return Err(ApiError::bad_request("a report's filter is set when it is created"));
    }
    let measure = report
        .measures
        .iter()
        .position(|m| m.same(&req.measure))
        .ok_or_else(|| ApiError::bad_request(format!("the report has no measure {}", req.measure.column_name())))?;
    let dimensions = req.dimensions.unwrap_or_default();
    let mut kept = Vec::new();
    for d in &dimensions {
        let at = report.dimensions().iter().position(|r| r == d);
        kept.push(1 + at.ok_or_else(|| ApiError::bad_request(format!("the report has no dimension {d}")))?);
    }
    let aggregate = req.aggregate.unwrap_or(false);
    let last = app.now_ms() / 1000 - 2 * SLIDE_S;
    let start = req.date_start.as_ref().map(instant).transpose()?.unwrap_or(last - WINDOW_S) / SLIDE_S;
    let end = req.date_end.as_ref().map(instant).transpose()?.unwrap_or(last) / SLIDE_S;
    let keep: Vec<usize> =
        if aggregate { kept.clone() } else { std::iter::once(0).chain(kept.iter().copied()).collect() };
    let (_, batches) = app.continuous.regrouped(query, &keep, start, end).await?;
    let mut rows = result::rows(&batches, app.config.query.max_result_bytes)
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
    let value_at = keep.len() + measure;
    let bucket_ms = |row: &[Json]| row[0].as_i64().unwrap_or_default() * SLIDE_S * 1000;
    let answer = match (aggregate, dimensions.is_empty()) {
        (false, true) => {
            let values: BTreeMap<i64, Json> = rows.iter().map(|r| (bucket_ms(r), r[value_at].clone())).collect();
            let dense: Vec<Json> = (start..end)
                .map(|b| b * SLIDE_S * 1000)
                .map(|ms| json!([ms, values.get(&ms).cloned().unwrap_or(json!(0))]))
                .collect();
            Json::Array(dense)
        }
        (false, false) => {
            rows.sort_by_key(|r| bucket_ms(r));
            rows.truncate(5000);
            let shaped: Vec<Json> = rows
                .iter()
                .map(|r| {
                    let mut row = vec![json!(bucket_ms(r))];
                    row.extend(r[1..keep.len()].iter().cloned());
                    row.push(r[value_at].clone());
                    Json::Array(row)
                })
                .collect();
            Json::Array(shaped)
        }
        (true, true) => rows.first().map(|r| r[value_at].clone()).filter(|v| !v.is_null()).unwrap_or(json!(0)),
        (true, false) => {
            let shaped: Vec<Json> = rows
                .iter()
                .map(|r| {
                    let mut row = vec![json!(end * SLIDE_S * 1000)];
                    row.extend(r[..keep.len()].iter().cloned());
                    row.push(r[value_at].clone());
                    Json::Array(row)
                })
                .collect();
            Json::Array(shaped)
        }
    };
    Ok(json_response(StatusCode::OK, &json!({"start": start * SLIDE_S, "end": end * SLIDE_S, "result": answer})))
}
