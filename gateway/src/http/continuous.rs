//! `/continuous-query/*`: Rakam's continuous queries (see
//! [`crate::views::continuous`]).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::request::{json, key_from, query_param};
use super::{ApiError, ApiResult, AppState, body_or_empty as body, json_response, key_kind as project, success};
use crate::metadata::{ContinuousRecord, KeyKind};
use crate::query::rewrite;
use crate::views::continuous::ContinuousError;
use crate::views::continuous::definition::{self, ContinuousQuery};

impl From<ContinuousError> for ApiError {
    fn from(e: ContinuousError) -> Self {
        match e {
            ContinuousError::Invalid(_) | ContinuousError::Denied(_) => ApiError::bad_request(e.to_string()),
            ContinuousError::Engine(crate::query::engine::EngineError::Query(message)) => {
                ApiError::bad_request(message)
            }
            ContinuousError::Metadata(e) => e.into(),
            e => ApiError::unavailable(e.to_string()),
        }
    }
}

/// A replay that compaction keeps overtaking is tried this many times
/// before the creation fails (the master replays it later).
const REPLAY_ATTEMPTS: u64 = 20;

/// Rakam's server takes the query wrapped with `replay`; Rakam's generated
/// clients send the query alone (then without replay).
#[derive(Deserialize)]
#[serde(untagged)]
enum Create {
    Wrapped {
        continuous_query: ContinuousQuery,
        #[serde(default)]
        replay: Option<bool>,
    },
    Bare(ContinuousQuery),
}

#[derive(Deserialize)]
struct TableName {
    table_name: String,
}

#[derive(Deserialize)]
struct Names {
    #[serde(default)]
    names: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Test {
    query: String,
}

fn missing(table_name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Continuous query table continuous.{table_name} does not exist"))
}

/// Rakam's checks, then whether the query can be kept current: `Ok` with
/// its columns, or the reason.
async fn checked(
    app: &AppState,
    project: &str,
    sql: &str,
    keys: &[String],
) -> ApiResult<Vec<crate::schema::types::Field>> {
    definition::check_query(sql).map_err(ApiError::bad_request)?;
    let planned = app.continuous.plan(project, sql, keys, &BTreeMap::new()).await?;
    Ok(crate::views::fields_of(&planned.planned.physical.schema()))
}

/// `POST /continuous-query/create` (master key):
/// `{"continuous_query": {…}, "replay": bool}`.
pub async fn create(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Master).await?;
    let (query, replay) = match body(&app, &headers, raw).await? {
        Create::Wrapped { continuous_query, replay } => (continuous_query, replay.unwrap_or(false)),
        Create::Bare(query) => (query, false),
    };
    create_query(&app, &project, query, replay).await?;
    Ok(success())
}

/// Creates a continuous query of the project (and folds in its history
/// with `replay`).
pub(super) async fn create_query(app: &AppState, project: &str, cq: ContinuousQuery, replay: bool) -> ApiResult<()> {
    let project = project.to_owned();
    let table_name = crate::views::definition::table_name(&cq.table_name).map_err(ApiError::bad_request)?;
    if cq.window_duration.is_some() && !cq.partition_keys.is_empty() {
        return Err(ApiError::bad_request("windowDuration cannot be combined with partition keys"));
    }
    let outputs = definition::output_columns(&cq.query);
    let keys: Vec<String> = cq.partition_keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    if keys.iter().any(|k| !outputs.contains(k)) {
        return Err(ApiError::bad_request("Partition keys are not valid."));
    }
    let fields = checked(app, &project, &cq.query, &keys).await?;
    if app.store.continuous_query(&project, &table_name).await?.is_some() {
        return Err(ApiError::bad_request("Continuous query already exists"));
    }
    let replayed: Vec<String> = match replay {
        true => app.continuous.plan(&project, &cq.query, &keys, &BTreeMap::new()).await?.reads.into_iter().collect(),
        false => Vec::new(),
    };
    let record = ContinuousRecord {
        project: project.clone(),
        table_name: table_name.clone(),
        name: cq.name.clone(),
        query: cq.query.clone(),
        partition_keys: keys,
        options: Json::Object(cq.options.clone()).to_string(),
        fields,
        replaying: replay,
        created_at: app.now_ms(),
    };
    if !app.store.create_continuous(&record, &replayed).await? {
        return Err(ApiError::bad_request("Continuous query already exists"));
    }
    if replay {
        // The history is in when the creation is answered; a replay cut
        // short here is done again by the master.
        for attempt in 1.. {
            match app.continuous.replay(&record, None, app.now_ms()).await {
                // Compaction merged history files meanwhile.
                Err(ContinuousError::Conflict) if attempt < REPLAY_ATTEMPTS => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(ApiError::from(e)),
                Ok(()) => break,
            }
        }
    }
    Ok(())
}

/// `POST /continuous-query/delete` (master key).
pub async fn delete(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Master).await?;
    let req: TableName = body(&app, &headers, raw).await?;
    let table_name = req.table_name.to_ascii_lowercase();
    if !app.store.delete_continuous(&project, &table_name, app.now_ms()).await? {
        return Err(ApiError::bad_request(format!(
            "Error while deleting continuous query: continuous.{table_name} does not exist"
        )));
    }
    Ok(success())
}

/// `POST /continuous-query/list` (read key).
pub async fn list(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Read).await?;
    let queries: Vec<ContinuousQuery> =
        app.store.continuous_queries(Some(&project)).await?.iter().map(ContinuousQuery::from_record).collect();
    Ok(json_response(StatusCode::OK, &queries))
}

/// `POST /continuous-query/schema` (read key).
pub async fn schema(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Read).await?;
    let req: Names = body(&app, &headers, raw).await?;
    let wanted: Option<Vec<String>> = req.names.map(|n| n.iter().map(|n| n.to_ascii_lowercase()).collect());
    let answer: Vec<Json> = app
        .store
        .continuous_queries(Some(&project))
        .await?
        .into_iter()
        .filter(|q| wanted.as_ref().is_none_or(|w| w.contains(&q.table_name)))
        .map(|q| json!({"name": q.table_name, "fields": q.fields}))
        .collect();
    Ok(json_response(StatusCode::OK, &answer))
}

/// `POST /continuous-query/get` (read key).
pub async fn get(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Read).await?;
    let req: TableName = body(&app, &headers, raw).await?;
    let table_name = req.table_name.to_ascii_lowercase();
    let query = app.store.continuous_query(&project, &table_name).await?.ok_or_else(|| missing(&table_name))?;
    Ok(json_response(StatusCode::OK, &ContinuousQuery::from_record(&query)))
}

/// `POST /continuous-query/test` (read key): `true`, or 400 with the
/// reason the query cannot be a continuous query.
pub async fn test(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Read).await?;
    let req: Test = body(&app, &headers, raw).await?;
    if let Ok(statement) = rewrite::parse(&req.query)
        && !rewrite::derived_references(&statement, &[rewrite::MATERIALIZED, rewrite::CONTINUOUS]).is_empty()
    {
        return Err(ApiError::bad_request("a continuous query reads collections, not views"));
    }
    checked(&app, &project, &req.query, &[]).await.map_err(|e| ApiError::bad_request(e.message))?;
    Ok(json_response(StatusCode::OK, &true))
}

/// `GET /continuous-query/refresh?master_key=…&data={"table_name":…}`
/// (server-sent events). The state is exact after every load, so there is
/// nothing to recompute (Rakam's streaming recomputed its in-memory
/// state): one `result` event answers the query's current rows.
pub async fn refresh(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let key = query_param(uri.query(), "master_key").or_else(|| key_from(&headers, None, "master_key"));
    let project = app.authorize(key, &[KeyKind::Master]).await?;
    let data = query_param(uri.query(), "data").ok_or_else(|| ApiError::bad_request("data is missing"))?;
    let req: TableName = json(data.as_bytes())?;
    let table_name = req.table_name.to_ascii_lowercase();
    let payload = match app.store.continuous_query(&project, &table_name).await? {
        None => json!({"success": false, "error": {"message": missing(&table_name).message}, "properties": {}}),
        Some(query) => match app.continuous.answer(&query).await {
            Ok((schema, batches)) => {
                let rows = crate::query::result::rows(&batches, app.config.query.max_result_bytes)
                    .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
                let metadata: Vec<Json> = schema
                    .fields()
                    .iter()
                    .map(|f| json!({"name": f.name(), "type": crate::query::result::rakam_type(f.data_type())}))
                    .collect();
                json!({"success": true, "metadata": metadata, "result": rows, "properties": {}})
            }
            Err(e) => json!({"success": false, "error": {"message": e.to_string()}, "properties": {}}),
        },
    };
    let text = format!("retry:600000\n\nevent:result\ndata: {}\n\n", payload);
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    Ok(response)
}
