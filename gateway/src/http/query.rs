//! `/query/*`: SQL over the project's collections (Rakam's Analysis API).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use sqlparser::ast::Statement;

use super::request::{json, key_from, query_param, read_body};
use super::{ApiError, ApiResult, AppState, json_response};
use crate::app::App;
use crate::metadata::KeyKind;
use crate::plugin::rewrite::QueryCaller;
use crate::query::engine::{EngineError, QueryOutput};
use crate::query::rewrite::{self, RewriteError, Scope};
use crate::query::{Collections, result};

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

impl App {
    /// The project's collections, read once per query.
    async fn collections(&self, project: &str) -> ApiResult<Collections> {
        Ok(self.store.latest_schemas(project).await?.into_iter().map(|s| (s.collection, s.fields)).collect())
    }

    /// Rewrites a query for the project, capped at `limit` rows (none for
    /// EXPLAIN).
    fn rewritten(
        &self,
        project: &str,
        collections: &Collections,
        sql: &str,
        limit: Option<u64>,
    ) -> ApiResult<Statement> {
        let table_name = |collection: &str| self.engine.table_name(project, collection);
        let mut statement =
            rewrite::rewrite(sql, &Scope { collections, table_name: &table_name }).map_err(|e| match e {
                RewriteError::Denied(reason) => ApiError::forbidden(format!("denied: {reason}")),
                RewriteError::Syntax(message) => ApiError::query(StatusCode::BAD_REQUEST, message, sql),
            })?;
        let limits = &self.config.query;
        if let Some(limit) = limit {
            rewrite::apply_limit(&mut statement, limit.min(limits.max_limit));
        }
        Ok(statement)
    }

    async fn run_query(
        &self,
        project: &str,
        collections: &Collections,
        sql: &str,
        statement: Statement,
    ) -> ApiResult<QueryOutput> {
        self.engine.run(project, collections, statement, self.config.query.timeout_s).await.map_err(|e| match e {
            EngineError::Query(message) => ApiError::query(StatusCode::BAD_REQUEST, message, sql),
            EngineError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
            EngineError::Metadata(e) => e.into(),
            EngineError::Storage(m) => ApiError::unavailable(m),
        })
    }

    /// The user's SQL after the project's rewriter plugins.
    async fn user_sql(&self, caller: &QueryCaller, sql: &str) -> ApiResult<String> {
        self.plugins.rewrite_query(caller, sql.to_owned()).await.map_err(|e| ApiError::forbidden(e.to_string()))
    }

    /// Runs a query and answers Rakam's `{metadata, result, properties}`.
    async fn answer(&self, caller: &QueryCaller, req: &QueryRequest) -> ApiResult<Json> {
        let project = caller.project.as_str();
        let limit = req.limit.unwrap_or(self.config.query.default_limit);
        let sql = self.user_sql(caller, &req.query).await?;
        let collections = self.collections(project).await?;
        let statement = self.rewritten(project, &collections, &sql, Some(limit))?;
        let output = self.run_query(project, &collections, &sql, statement).await?;
        let rows = result::rows(&output.batches, self.config.query.max_result_bytes)
            .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
        Ok(json!({"metadata": metadata(&output), "result": rows, "properties": {}}))
    }
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
    let bytes = read_body(headers, body, app.config.http.max_body_bytes, "").await?;
    json(&bytes)
}

/// The caller of a query: a read key's project, and what rewriters are told.
async fn reader(app: &AppState, uri: &Uri, headers: &HeaderMap) -> ApiResult<QueryCaller> {
    let project = app.authorize(key_from(headers, uri.query(), "read_key"), &[KeyKind::Read]).await?;
    Ok(QueryCaller { project, key_kind: KeyKind::Read, attributes: super::plugin::attributes(headers) })
}

/// `POST /query/execute`.
pub async fn execute(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = reader(&app, &uri, &headers).await?;
    let req = read_request(&app, &headers, body).await?;
    Ok(json_response(StatusCode::OK, &app.answer(&caller, &req).await?))
}

/// `GET /query/execute?read_key=&data=<the same JSON>`: the answer as
/// server-sent events: one `result` event, or one `error` event.
pub async fn execute_stream(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let caller = reader(&app, &uri, &headers).await?;
    let data = query_param(uri.query(), "data").ok_or_else(|| ApiError::bad_request("data is missing"))?;
    let req: QueryRequest = json(data.as_bytes())?;
    let (event, payload) = match app.answer(&caller, &req).await {
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
    let sql = format!("EXPLAIN {}", app.user_sql(&caller, &req.query).await?.trim_start());
    let collections = app.collections(project).await?;
    let statement = app.rewritten(project, &collections, &sql, None)?;
    let output = app.run_query(project, &collections, &sql, statement).await?;
    let rows = result::rows(&output.batches, app.config.query.max_result_bytes)
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
    let plan: Vec<Json> = rows.into_iter().map(|r| json!({"plan_type": r[0], "plan": r[1]})).collect();
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
    let sql = app.user_sql(&caller, &req.query).await?;
    let collections = app.collections(project).await?;
    let statement = app.rewritten(project, &collections, &sql, Some(0))?;
    let output = app.run_query(project, &collections, &sql, statement).await?;
    Ok(json_response(StatusCode::OK, &metadata(&output)))
}

/// `POST /query/export`: the rows as CSV (with a header) or a JSON array of
/// objects, per `export_type`.
pub async fn export(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = reader(&app, &uri, &headers).await?;
    let req = read_request(&app, &headers, body).await?;
    let answer = app.answer(&caller, &req).await?;
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
/// that are not read keys are left out, as Rakam does.
pub async fn project_stats(State(app): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let bytes = read_body(&headers, body, app.config.http.max_body_bytes, "").await?;
    let keys: Vec<String> = json(&bytes)?;
    let mut answer = serde_json::Map::new();
    for key in keys {
        let Some(project) = app.keys.project_of(&key, &[KeyKind::Read]).await? else { continue };
        answer.insert(key, app.project_stats(&project).await?);
    }
    Ok(json_response(StatusCode::OK, &answer))
}

impl App {
    async fn project_stats(&self, project: &str) -> ApiResult<Json> {
        let collections = self.collections(project).await?;
        let visible = collections.keys().any(|c| !c.starts_with('_') && !c.starts_with('$'));
        if !visible {
            return Ok(json!({"allEvents": 0, "monthlyEvents": 0, "dailyEvents": 0}));
        }
        let sql = "SELECT count(*), \
                   count(CASE WHEN _time >= now() - INTERVAL '30 days' THEN 1 END), \
                   count(CASE WHEN _time >= now() - INTERVAL '1 day' THEN 1 END) FROM _all";
        let statement = self.rewritten(project, &collections, sql, None)?;
        let output = self.run_query(project, &collections, sql, statement).await?;
        let row = result::rows(&output.batches, 1 << 16)
            .ok()
            .and_then(|mut rows| rows.pop())
            .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no counts"))?;
        Ok(json!({"allEvents": row[0], "monthlyEvents": row[1], "dailyEvents": row[2]}))
    }
}
