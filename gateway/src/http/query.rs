//! `/query/execute`: SQL over the project's collections.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::request::{json, key_from, read_body};
use super::{ApiError, ApiResult, AppState, json_response};
use crate::metadata::KeyKind;
use crate::query::engine::EngineError;
use crate::query::result;
use crate::query::rewrite::{self, RewriteError, Scope};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    query: String,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    default_schema: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    timezone: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    sampling: Option<Json>,
    #[serde(default)]
    #[allow(dead_code)]
    export_type: Option<String>,
}

pub async fn execute(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let project = app.authorize(key_from(&headers, uri.query(), "read_key"), &[KeyKind::Read]).await?;
    let bytes = read_body(&headers, body, app.config.http.max_body_bytes, "").await?;
    let req: QueryRequest = json(&bytes)?;
    let collections: BTreeMap<String, Vec<crate::types::Field>> =
        app.store.latest_schemas(&project).await?.into_iter().map(|s| (s.collection, s.fields)).collect();
    let engine = app.engine.clone();
    let table_name = |collection: &str| engine.table_name(&project, collection);
    let mut statement = rewrite::rewrite(&req.query, &Scope { collections: &collections, table_name: &table_name })
        .map_err(|e| match e {
            RewriteError::Denied(reason) => ApiError::forbidden(format!("denied: {reason}")),
            RewriteError::Syntax(message) => ApiError::query(StatusCode::BAD_REQUEST, message, &req.query),
        })?;
    let limits = &app.config.query;
    rewrite::apply_limit(&mut statement, req.limit.unwrap_or(limits.default_limit).min(limits.max_limit));
    let output = app.engine.run(&project, statement, limits.timeout_s).await.map_err(|e| match e {
        EngineError::Query(message) => ApiError::query(StatusCode::BAD_REQUEST, message, &req.query),
        EngineError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
        EngineError::Metadata(e) => e.into(),
        EngineError::Storage(m) => ApiError::unavailable(m),
    })?;
    let rows = result::rows(&output.batches, limits.max_result_bytes)
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
    let metadata: Vec<Json> = output
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": result::rakam_type(f.data_type())}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"metadata": metadata, "result": rows, "properties": {}})))
}
