//! `/materialized-view/*`: Rakam's materialized views (see
//! [`crate::views`]).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::request::{json, key_from, query_param};
use super::{ApiError, ApiResult, AppState, body_or_empty as body, json_response, key_kind as project, success};
use crate::metadata::{KeyKind, ViewRecord};
use crate::plugin::rewrite::QueryCaller;
use crate::query::rewrite::{self, MATERIALIZED};
use crate::query::run;
use crate::views::ViewError;
use crate::views::definition::{self, MaterializedView};

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> Self {
        match e {
            ViewError::NotFound => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            ViewError::Exists | ViewError::Invalid(_) | ViewError::Busy => ApiError::bad_request(e.to_string()),
            ViewError::Query(e) => e.into(),
            ViewError::Metadata(e) => e.into(),
            ViewError::Storage(_) | ViewError::Deposed(_) | ViewError::Conflict => ApiError::unavailable(e.to_string()),
        }
    }
}

#[derive(Deserialize)]
struct TableName {
    table_name: String,
}

#[derive(Deserialize)]
struct Change {
    table_name: String,
    real_time: bool,
}

#[derive(Deserialize, Default)]
struct Names {
    #[serde(default)]
    names: Option<Vec<String>>,
}

/// A view of the project by table name; 404 in Rakam's words.
async fn find(app: &AppState, project: &str, table_name: &str) -> ApiResult<ViewRecord> {
    let table_name = table_name.to_ascii_lowercase();
    app.store.view(project, &table_name).await?.ok_or_else(|| ViewError::NotFound.into())
}

/// `POST /materialized-view/create` (master key): the body is the view.
pub async fn create(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Master).await?;
    let view: MaterializedView = body(&app, &headers, raw).await?;
    create_view(&app, project, view).await?;
    Ok(success())
}

/// Checks a view as Rakam does, runs its query once for its columns, and
/// stores it.
pub(super) async fn create_view(app: &AppState, project: String, view: MaterializedView) -> ApiResult<()> {
    let table_name = definition::table_name(&view.table_name).map_err(ApiError::bad_request)?;
    let interval = view.interval_ms().map_err(ApiError::bad_request)?;
    definition::check_query(&view.query).map_err(ApiError::bad_request)?;
    if let Ok(statement) = rewrite::parse(&view.query)
        && !rewrite::derived_references(&statement, &[MATERIALIZED, "continuous"]).is_empty()
    {
        return Err(ApiError::bad_request("a materialized view reads collections, not other views"));
    }
    if app.store.view(&project, &table_name).await?.is_some() {
        return Err(ViewError::Exists.into());
    }
    // The query as its refreshes will run it, for its errors and columns.
    let caller = QueryCaller { project: project.clone(), key_kind: KeyKind::Master, attributes: Vec::new() };
    let sql = run::user_sql(app, &caller, &view.query).await?;
    let output = run::output(app, &project, sql, Some(0)).await?;
    let record = ViewRecord {
        project: project.clone(),
        table_name,
        name: view.name.clone(),
        query: view.query.clone(),
        update_interval_ms: interval,
        incremental: view.incremental,
        real_time: view.real_time,
        options: view.options.as_ref().map_or_else(|| "null".to_owned(), Json::to_string),
        fields: crate::views::fields_of(&output.schema),
        version: 0,
        last_update: None,
        created_at: app.now_ms(),
    };
    if !app.store.create_view(&record).await? {
        return Err(ViewError::Exists.into());
    }
    Ok(())
}

/// `POST /materialized-view/delete` (master key).
pub async fn delete(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Master).await?;
    let req: TableName = body(&app, &headers, raw).await?;
    let table_name = req.table_name.to_ascii_lowercase();
    if !app.store.delete_view(&project, &table_name, app.now_ms()).await? {
        return Err(ViewError::NotFound.into());
    }
    Ok(success())
}

/// `POST /materialized-view/list` (read key).
pub async fn list(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Read).await?;
    let views: Vec<MaterializedView> =
        app.store.views(Some(&project)).await?.iter().map(MaterializedView::from_record).collect();
    Ok(json_response(StatusCode::OK, &views))
}

/// `POST /materialized-view/schema` (read key): each view's columns,
/// filtered by `names` (which Rakam compared with its internal names, so
/// that a filter found nothing).
pub async fn schema(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Read).await?;
    let req: Names = body(&app, &headers, raw).await?;
    let wanted: Option<Vec<String>> = req.names.map(|n| n.iter().map(|n| n.to_ascii_lowercase()).collect());
    let answer: Vec<Json> = app
        .store
        .views(Some(&project))
        .await?
        .into_iter()
        .filter(|v| wanted.as_ref().is_none_or(|w| w.contains(&v.table_name)))
        .map(|v| json!({"name": v.table_name, "fields": v.fields}))
        .collect();
    Ok(json_response(StatusCode::OK, &answer))
}

/// `POST /materialized-view/get` (read key).
pub async fn get(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Read).await?;
    let req: TableName = body(&app, &headers, raw).await?;
    let view = find(&app, &project, &req.table_name).await?;
    Ok(json_response(StatusCode::OK, &MaterializedView::from_record(&view)))
}

/// `POST /materialized-view/change` (master key): turns `real_time` on or
/// off.
pub async fn change(State(app): State<AppState>, uri: Uri, headers: HeaderMap, raw: Body) -> ApiResult<Response> {
    let project = project(&app, &uri, &headers, KeyKind::Master).await?;
    let req: Change = body(&app, &headers, raw).await?;
    let table_name = req.table_name.to_ascii_lowercase();
    if !app.store.change_view(&project, &table_name, req.real_time).await? {
        return Err(ViewError::NotFound.into());
    }
    Ok(success())
}

#[derive(Deserialize)]
struct UpdateData {
    /// Rakam's name for the table name here.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    table_name: Option<String>,
}

/// `GET /materialized-view/update?read_key=…&data={"name":"<table_name>"}`
/// (`master_key` is taken too), as server-sent events: the view is
/// refreshed now, whatever its interval (Rakam refused a fresh view, which
/// left a view without an interval never refreshed again), and one
/// `result` event answers. A refresh of the view in flight in this process
/// is answered as Rakam did: "There is another process that updates
/// materialized view".
pub async fn update(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let accepts =
        headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("text/event-stream"));
    if !accepts {
        return Err(ApiError::new(StatusCode::NOT_ACCEPTABLE, "the request must accept text/event-stream"));
    }
    let key = |kind: KeyKind| query_param(uri.query(), kind.name()).or_else(|| key_from(&headers, None, kind.name()));
    let project = match key(KeyKind::Read) {
        Some(read) => app.authorize(Some(read), &[KeyKind::Read]).await?,
        None => app.authorize_as(key(KeyKind::Master), &[KeyKind::Master], "read_key").await?,
    };
    let data = query_param(uri.query(), "data").ok_or_else(|| ApiError::bad_request("data is missing"))?;
    let data: UpdateData = json(data.as_bytes())?;
    let table_name = data
        .name
        .or(data.table_name)
        .ok_or_else(|| ApiError::bad_request("data.name (the view's table_name) is missing"))?
        .to_ascii_lowercase();
    let payload = match app.try_refresh_view(&project, &table_name, None).await {
        Ok(view) => {
            let rows: u64 = app.store.view_files(&project, &table_name).await?.iter().map(|f| f.rows).sum();
            json!({
                "success": true,
                "metadata": [{"name": "rows", "type": "LONG"}],
                "result": [[rows]],
                "properties": {"materializedViews": {view.table_name: view.last_update.unwrap_or(0)}},
            })
        }
        Err(e) => {
            let e = ApiError::from(e);
            json!({"success": false, "error": {"message": e.message, "errorCode": e.status.as_u16()}, "properties": {}})
        }
    };
    let text = format!("retry:600000\n\nevent:result\ndata: {}\n\n", payload.to_string().replace('\n', "\ndata: "));
    let mut response = (StatusCode::OK, text).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
