//! `/query/*`: SQL over the project's collections (Rakam's Analysis API).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::request::{json, key_from, query_param, read_body};
use super::{ApiError, ApiResult, AppState, json_response};
use crate::metadata::KeyKind;
use crate::plugin::rewrite::QueryCaller;
use crate::query::engine::QueryOutput;
use crate::query::result;
use crate::query::run::{self, QueryError, output, user_sql};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    query: String,
    #[serde(default)]
    limit: Option<u64>,
    /// Accepted for Rakam clients; collections need no schema.
    #[serde(default)]
    #[allow(dead_code)]
    default_schema: Option<String>,
    /// Accepted for Rakam clients; timestamps are answered in UTC.
    #[serde(default)]
    #[allow(dead_code)]
    timezone: Option<String>,
    /// Accepted for Rakam clients; queries read every row.
    #[serde(default)]
    #[allow(dead_code)]
    sampling: Option<Json>,
    /// `CSV` or `JSON`, for `/query/export`.
    #[serde(default)]
    export_type: Option<String>,
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid { message, sql } | QueryError::Syntax { message, sql } => {
                ApiError::query(StatusCode::BAD_REQUEST, message, &sql)
            }
            e @ QueryError::Denied(_) => ApiError::forbidden(e.to_string()),
            QueryError::NotFound(message) => ApiError::new(StatusCode::NOT_FOUND, message),
            QueryError::Plugin(message) => ApiError::forbidden(message),
            e @ QueryError::TimedOut(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
            QueryError::TooLarge(message) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message),
            QueryError::Busy(message) => {
                ApiError { retry_after: Some(1), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, message) }
            }
            QueryError::Unavailable(message) => ApiError::unavailable(message),
            QueryError::Failed(message) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message),
            QueryError::Metadata(e) => e.into(),
            QueryError::Users(e) => e.into(),
        }
    }
}

/// Runs a query and answers Rakam's `{metadata, result, properties}`.
async fn answer(app: &AppState, caller: &QueryCaller, req: &QueryRequest) -> ApiResult<Json> {
    let limit = req.limit.unwrap_or(app.config.query.default_limit);
    query_result(app, caller, &req.query, limit).await
}

/// Runs SQL for a caller (see [`run::query_rows`]); Rakam's `{metadata,
/// result, properties}`.
pub(super) async fn query_result(app: &AppState, caller: &QueryCaller, sql: &str, limit: u64) -> ApiResult<Json> {
    let (output, rows) = run::query_rows(app, caller, sql, limit).await?;
    let properties = match output.views.is_empty() {
        true => json!({}),
        false => json!({"materializedViews": output.views}),
    };
    Ok(json!({"metadata": metadata(&output), "result": rows, "properties": properties}))
}

fn metadata(output: &QueryOutput) -> Vec<Json> {
    output
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": result::rakam_type(f.data_type())}))
        .collect()
}

async fn read_request(app: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<QueryRequest> {
    let bytes = read_body(headers, body, app.config.http.max_body_bytes, "", app.config.http.body_timeout_ms).await?;
    json(&bytes)
}

/// The caller of a query: a read key's project, and what rewriters are told.
pub(super) async fn reader(app: &AppState, uri: &Uri, headers: &HeaderMap) -> ApiResult<QueryCaller> {
    let project = app.authorize(key_from(headers, uri.query(), "read_key"), &[KeyKind::Read]).await?;
    Ok(QueryCaller { project, key_kind: KeyKind::Read, attributes: super::plugin::attributes(headers) })
}

/// `POST /query/execute`.
pub async fn execute(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = reader(&app, &uri, &headers).await?;
    let req = read_request(&app, &headers, body).await?;
    Ok(json_response(StatusCode::OK, &answer(&app, &caller, &req).await?))
}

/// `GET /query/execute?read_key=&data=<the same JSON>`: the answer as
/// server-sent events: one `result` event, or one `error` event.
pub async fn execute_stream(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let caller = reader(&app, &uri, &headers).await?;
    let data = query_param(uri.query(), "data").ok_or_else(|| ApiError::bad_request("data is missing"))?;
    let req: QueryRequest = json(data.as_bytes())?;
    let (event, payload) = match answer(&app, &caller, &req).await {
        Ok(answer) => ("result", answer),
        Err(e) => ("error", json!({"error": e.message, "error_code": e.status.as_u16()})),
    };
    let mut response = (StatusCode::OK, format!("event: {event}\ndata: {payload}\n\n")).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `POST /query/explain`: the engine's plan of the rewritten query.
pub async fn explain(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = reader(&app, &uri, &headers).await?;
    let project = caller.project.as_str();
    let req = read_request(&app, &headers, body).await?;
    let sql = format!("EXPLAIN {}", user_sql(&app, &caller, &req.query).await?.trim_start());
    let output = output(&app, project, sql, None).await?;
    let rows = result::rows(&output.batches, app.config.query.max_result_bytes)
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
    // DataFusion answers (plan type, plan); Presto one "Query Plan" column.
    let plan: Vec<Json> = rows
        .into_iter()
        .map(|r| match r.as_slice() {
            [kind, plan, ..] => json!({"plan_type": kind, "plan": plan}),
            [plan] => json!({"plan_type": "plan", "plan": plan}),
            [] => json!({"plan_type": "plan", "plan": Json::Null}),
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"plans": plan})))
}

/// `POST /query/metadata`: the columns a query would answer, without rows.
pub async fn query_metadata(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let caller = reader(&app, &uri, &headers).await?;
    let project = caller.project.as_str();
    let req = read_request(&app, &headers, body).await?;
    let sql = user_sql(&app, &caller, &req.query).await?;
    let output = output(&app, project, sql, Some(0)).await?;
    Ok(json_response(StatusCode::OK, &metadata(&output)))
}

/// `POST /query/export`: the rows as CSV (with a header) or a JSON array of
/// objects, per `export_type`.
pub async fn export(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = reader(&app, &uri, &headers).await?;
    let req = read_request(&app, &headers, body).await?;
    let answer = answer(&app, &caller, &req).await?;
    let names: Vec<String> = answer["metadata"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let rows = answer["result"].as_array().cloned().unwrap_or_default();
    match req.export_type.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("CSV") | None => {
            let mut out = csv::Writer::from_writer(Vec::new());
            let text = |v: &Json| match v {
                Json::Null => String::new(),
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut write = |record: Vec<String>| {
                out.write_record(record).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
            };
            write(names.clone())?;
            for row in &rows {
                write(row.as_array().into_iter().flatten().map(text).collect())?;
            }
            let bytes =
                out.into_inner().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let mut response = (StatusCode::OK, bytes).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
            Ok(response)
        }
        Some("JSON") => {
            let objects: Vec<Json> = rows
                .iter()
                .map(|row| {
                    let values = row.as_array().cloned().unwrap_or_default();
                    Json::Object(names.iter().cloned().zip(values).collect())
                })
                .collect();
            Ok(json_response(StatusCode::OK, &objects))
        }
        Some(other) => Err(ApiError::bad_request(format!("export_type {other:?} is not CSV or JSON"))),
    }
}

/// `POST /project/stats` with a JSON array of read keys: per key, the
/// project's event counts (all, last 30 days, last day) over `_all`. Keys
/// that are not read keys are left out, as Rakam does, and so are keys
/// whose counts failed: one project's trouble does not fail the others'.
pub async fn project_stats(State(app): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let bytes = read_body(&headers, body, app.config.http.max_body_bytes, "", app.config.http.body_timeout_ms).await?;
    let keys: Vec<String> = json(&bytes)?;
    let mut answer = serde_json::Map::new();
    for key in keys {
        let Some(project) = app.keys.project_of(&key, &[KeyKind::Read]).await? else { continue };
        match project_stats_of(&app, &project).await {
            Ok(stats) => {
                answer.insert(key, stats);
            }
            Err(e) => tracing::warn!(project, error = %e.message, "the counts of a project failed"),
        }
    }
    Ok(json_response(StatusCode::OK, &answer))
}

async fn project_stats_of(app: &AppState, project: &str) -> ApiResult<Json> {
    let tables = app.tables(project, false).await?;
    let visible = tables.collections.keys().any(|c| !c.starts_with('_') && !c.starts_with('$'));
    if !visible {
        return Ok(json!({"allEvents": 0, "monthlyEvents": 0, "dailyEvents": 0}));
    }
    let sql = "SELECT count(*), \
               count(CASE WHEN _time >= now() - INTERVAL '30 days' THEN 1 END), \
               count(CASE WHEN _time >= now() - INTERVAL '1 day' THEN 1 END) FROM _all";
    let output = output(app, project, sql.to_owned(), None).await?;
    let row = result::rows(&output.batches, 1 << 16)
        .ok()
        .and_then(|mut rows| rows.pop())
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no counts"))?;
    Ok(json!({"allEvents": row[0], "monthlyEvents": row[1], "dailyEvents": row[2]}))
}
