//! `/user/*`: Rakam's user API over the project's user table.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::request::{json, key_from, read_body};
use super::{ApiError, ApiResult, AppState, json_response, success};
use crate::ingest::{Context, Event};
use crate::metadata::KeyKind;
use crate::schema::names;
use crate::users::search::{self, Search};
use crate::users::{Operation, OperationKind};

/// The `api` object of Rakam's user requests (`UserContext`).
#[derive(Debug, Default, Deserialize)]
struct UserContext {
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    library: Option<Json>,
    #[serde(default)]
    #[allow(dead_code)]
    api_library: Option<Json>,
    #[serde(default)]
    #[allow(dead_code)]
    api_version: Option<Json>,
    #[serde(default)]
    #[allow(dead_code)]
    upload_time: Option<Json>,
    #[serde(default)]
    #[allow(dead_code)]
    checksum: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    #[serde(default)]
    id: Json,
    #[serde(default)]
    api: Option<UserContext>,
    #[serde(default)]
    properties: Option<Map<String, Json>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsetBody {
    #[serde(default)]
    api: Option<UserContext>,
    #[serde(default)]
    id: Json,
    #[serde(default)]
    properties: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncrementBody {
    #[serde(default)]
    api: Option<UserContext>,
    #[serde(default)]
    id: Json,
    property: String,
    value: Json,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    #[serde(default)]
    id: Json,
    #[serde(default)]
    api: Option<UserContext>,
    data: Vec<Map<String, Json>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchOperationsBody {
    #[serde(default)]
    api: Option<UserContext>,
    data: Vec<Map<String, Json>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUsersBody {
    users: Vec<UserBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetBody {
    user: Json,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsBody {
    user: Json,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(default)]
    offset: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    #[serde(default)]
    id: Json,
    #[serde(default)]
    api: Option<UserContext>,
    #[serde(default)]
    anonymous_id: Json,
    #[serde(default)]
    created_at: Option<i64>,
    #[serde(default)]
    merged_at: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentBody {
    name: String,
    table_name: String,
    #[serde(default)]
    filter_expression: Option<String>,
    #[serde(default)]
    event_filters: Option<Vec<search::EventFilter>>,
    #[serde(default)]
    cache_eviction: Option<Json>,
}

async fn body<T: serde::de::DeserializeOwned>(app: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<T> {
    let http = &app.config.http;
    let bytes = read_body(headers, body, http.max_body_bytes, "", http.body_timeout_ms).await?;
    if !super::request::utf8(&bytes)?.trim_start().starts_with('{') {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    json(&bytes)
}

/// The project of a write: the body's `api.api_key`, else the `write_key`
/// header or parameter; a write key or the master key.
async fn writer(app: &AppState, api: Option<&UserContext>, headers: &HeaderMap, uri: &Uri) -> ApiResult<String> {
    let key = api.and_then(|a| a.api_key.clone()).or_else(|| key_from(headers, uri.query(), "write_key"));
    app.authorize_as(key, &[KeyKind::Write, KeyKind::Master], "api.api_key").await
}

async fn apply(app: &AppState, project: &str, ops: &[Operation]) -> ApiResult<Vec<Json>> {
    let ids = app.users.apply(project, ops, app.now_ms()).await?;
    Ok(ids.iter().map(|id| id.to_json()).collect())
}

fn one() -> Response {
    json_response(StatusCode::OK, &1)
}

fn properties_op(req: UserBody, once: bool) -> Operation {
    let map = req.properties.unwrap_or_default();
    Operation { id: req.id, kind: if once { OperationKind::SetOnce(map) } else { OperationKind::Set(map) } }
}

/// `POST /user/create`: creates a user, or sets the properties of one that
/// exists.
pub async fn create(State(app): State<AppState>, uri: Uri, headers: HeaderMap, b: Body) -> ApiResult<Response> {
    set(app, uri, headers, b, false).await
}

/// `POST /user/set_properties`.
pub async fn set_properties(State(app): State<AppState>, uri: Uri, headers: HeaderMap, b: Body) -> ApiResult<Response> {
    set(app, uri, headers, b, false).await
}

/// `POST /user/set_properties_once`: sets only the properties that are null.
pub async fn set_properties_once(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    b: Body,
) -> ApiResult<Response> {
    set(app, uri, headers, b, true).await
}

async fn set(app: AppState, uri: Uri, headers: HeaderMap, b: Body, once: bool) -> ApiResult<Response> {
    let req: UserBody = body(&app, &headers, b).await?;
    let project = writer(&app, req.api.as_ref(), &headers, &uri).await?;
    apply(&app, &project, &[properties_op(req, once)]).await?;
    Ok(one())
}

/// `POST /user/unset_properties`.
pub async fn unset_properties(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    b: Body,
) -> ApiResult<Response> {
    let req: UnsetBody = body(&app, &headers, b).await?;
    let project = writer(&app, req.api.as_ref(), &headers, &uri).await?;
    apply(&app, &project, &[Operation { id: req.id, kind: OperationKind::Unset(req.properties) }]).await?;
    Ok(success())
}

/// `POST /user/increment_property`: adds to one property of one user.
pub async fn increment_property(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    b: Body,
) -> ApiResult<Response> {
    let req: IncrementBody = body(&app, &headers, b).await?;
    let project = writer(&app, req.api.as_ref(), &headers, &uri).await?;
    let op = Operation { id: req.id, kind: OperationKind::Increment { property: req.property, value: req.value } };
    apply(&app, &project, &[op]).await?;
    Ok(success())
}

/// `POST /user/batch`: operations on one user, answered once durable.
pub async fn batch(State(app): State<AppState>, uri: Uri, headers: HeaderMap, b: Body) -> ApiResult<Response> {
    let req: BatchBody = body(&app, &headers, b).await?;
    let project = writer(&app, req.api.as_ref(), &headers, &uri).await?;
    let mut ops = Vec::new();
    for object in req.data {
        ops.extend(crate::users::from_object(req.id.clone(), object).map_err(ApiError::bad_request)?);
    }
    apply(&app, &project, &ops).await?;
    Ok(one())
}

/// `POST /user/batch_operations`: operations on many users, with the
/// master key.
pub async fn batch_operations(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    b: Body,
) -> ApiResult<Response> {
    let req: BatchOperationsBody = body(&app, &headers, b).await?;
    let key =
        req.api.as_ref().and_then(|a| a.api_key.clone()).or_else(|| key_from(&headers, uri.query(), "master_key"));
    let project = app.authorize_as(key, &[KeyKind::Master], "api.api_key").await?;
    let mut ops = Vec::new();
    for mut object in req.data {
        let id = object.remove("id").unwrap_or(Json::Null);
        ops.extend(crate::users::from_object(id, object).map_err(ApiError::bad_request)?);
    }
    apply(&app, &project, &ops).await?;
    Ok(one())
}

/// `POST /user/batch/create`: creates users, all or none; their ids.
pub async fn batch_create(State(app): State<AppState>, uri: Uri, headers: HeaderMap, b: Body) -> ApiResult<Response> {
    let project =
        app.authorize(key_from(&headers, uri.query(), "write_key"), &[KeyKind::Write, KeyKind::Master]).await?;
    let req: CreateUsersBody = body(&app, &headers, b).await?;
    if let Some(i) = req.users.iter().position(|u| u.api.is_some()) {
        return Err(ApiError::bad_request(format!(
            "users[{i}] has `api`: users of /user/batch/create take the write_key header instead"
        )));
    }
    let ops: Vec<Operation> = req.users.into_iter().map(|u| properties_op(u, false)).collect();
    let ids = apply(&app, &project, &ops).await?;
    Ok(json_response(StatusCode::OK, &ids))
}

async fn read_project(app: &AppState, uri: &Uri, headers: &HeaderMap) -> ApiResult<String> {
    app.authorize(key_from(headers, uri.query(), "read_key"), &[KeyKind::Read]).await
}

/// `POST /user/get`: a user's properties that are not null.
pub async fn get(State(app): State<AppState>, uri: Uri, headers: HeaderMap, b: Body) -> ApiResult<Response> {
    let project = read_project(&app, &uri, &headers).await?;
    let req: GetBody = body(&app, &headers, b).await?;
    match app.users.get(&project, &req.user).await? {
        Some((id, properties)) => Ok(json_response(StatusCode::OK, &json!({"id": id, "properties": properties}))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("there is no user {}", req.user))),
    }
}

/// `GET /user/metadata`: the user table's columns.
pub async fn metadata(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let project = read_project(&app, &uri, &headers).await?;
    let columns = app.users.columns(&project).await?;
    Ok(json_response(StatusCode::OK, &json!({"columns": columns, "identifierColumn": crate::users::ID_COLUMN})))
}

/// `POST /user/search`: users by a filter over their properties and by
/// what they did, a page at a time; `properties.totalResult` is how many
/// match in all.
pub async fn search(State(app): State<AppState>, uri: Uri, headers: HeaderMap, b: Body) -> ApiResult<Response> {
    let caller = super::query::reader(&app, &uri, &headers).await?;
    let req: Search = body(&app, &headers, b).await?;
    let columns = app.users.columns(&caller.project).await?;
    let collections = collections(&app, &caller.project).await?;
    let sql = search::search_sql(&req, &columns, &collections)?;
    let mut answer = super::query::query_result(&app, &caller, &sql.page, sql.limit).await?;
    let total = super::query::query_result(&app, &caller, &sql.count, 1).await?;
    answer["properties"] = json!({"totalResult": total["result"][0][0]});
    Ok(json_response(StatusCode::OK, &answer))
}

async fn collections(app: &AppState, project: &str) -> ApiResult<crate::query::Collections> {
    Ok(app.store.latest_schemas(project).await?.into_iter().map(|s| (s.collection, s.fields)).collect())
}

/// `POST /user/get_events`: a user's newest events over every collection
/// with `_user` and `_time`.
pub async fn get_events(State(app): State<AppState>, uri: Uri, headers: HeaderMap, b: Body) -> ApiResult<Response> {
    let caller = super::query::reader(&app, &uri, &headers).await?;
    let req: EventsBody = body(&app, &headers, b).await?;
    let limit = req.limit.unwrap_or(search::DEFAULT_EVENTS);
    if limit == 0 || limit > search::MAX_EVENTS {
        return Err(ApiError::bad_request(format!("limit must be 1 to {}", search::MAX_EVENTS)));
    }
    let Some(user_type) = app.store.user_type(&caller.project).await? else {
        return Ok(json_response(StatusCode::OK, &json!([])));
    };
    let user = search::user_literal(&req.user, user_type)?;
    let mut events: Vec<(String, Json)> = Vec::new();
    for (collection, fields) in collections(&app, &caller.project).await? {
        if collection.starts_with('$') {
            continue;
        }
        let Some(sql) =
            search::events_sql(&collection, &fields, &user, req.properties.as_deref(), req.offset.as_deref(), limit)?
        else {
            continue;
        };
        let answer = super::query::query_result(&app, &caller, &sql, limit).await?;
        let names: Vec<String> = answer["metadata"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        for row in answer["result"].as_array().into_iter().flatten() {
            let values = row.as_array().cloned().unwrap_or_default();
            let properties: Map<String, Json> = names.iter().cloned().zip(values).collect();
            let time = properties.get(crate::schema::TIME_FIELD).and_then(Json::as_str).unwrap_or_default().to_owned();
            events.push((time, json!({"collection": collection, "properties": properties})));
        }
    }
    events.sort_by(|a, b| b.0.cmp(&a.0));
    events.truncate(limit as usize);
    let events: Vec<Json> = events.into_iter().map(|(_, e)| e).collect();
    Ok(json_response(StatusCode::OK, &events))
}

/// `POST /user/merge`: maps an anonymous id to a user, as an event of
/// `$anonymous_id_mapping` (`id` the anonymous id, `_user` the user).
pub async fn merge(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    b: Body,
) -> ApiResult<Response> {
    let received = app.now_ms();
    let req: MergeBody = body(&app, &headers, b).await?;
    let project = writer(&app, req.api.as_ref(), &headers, &uri).await?;
    let text = |v: &Json, what: &str| match v {
        Json::String(s) if !s.is_empty() => Ok(Json::String(s.clone())),
        Json::Number(n) => Ok(Json::String(n.to_string())),
        _ => Err(ApiError::bad_request(format!("{what} must be a string or a number"))),
    };
    let anonymous = text(&req.anonymous_id, "anonymous_id")?;
    let user = text(&req.id, "id")?;
    let ms = |v: Option<i64>, what: &str| match v {
        None => Ok(received),
        Some(ms) if ms.checked_mul(1000).is_some_and(crate::schema::timefmt::representable) => Ok(ms),
        Some(_) => Err(ApiError::bad_request(format!("{what} must be milliseconds since the epoch"))),
    };
    let created_at = ms(req.created_at, "created_at")?;
    let merged_at = ms(req.merged_at, "merged_at")?;
    let user_type = app.ingest.registry().user_type(&project, first_kind(&req.id)).await?;
    let user = if user_type == crate::schema::types::FieldType::LONG {
        let n = user
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| ApiError::bad_request("id must be a number: this project's user ids are numbers"))?;
        json!(n)
    } else {
        user
    };
    let event = Event {
        collection: crate::ingest::sdk::ANONYMOUS_ID_MAPPING.to_owned(),
        properties: vec![
            ("id".to_owned(), anonymous),
            (crate::schema::USER_FIELD.to_owned(), user),
            ("created_at".to_owned(), json!(timestamp(created_at))),
            ("merged_at".to_owned(), json!(timestamp(merged_at))),
            (crate::schema::TIME_FIELD.to_owned(), json!(merged_at)),
        ],
    };
    let ctx = Context {
        project,
        received_ms: received,
        client_ip: Some(app.client_ip(&headers, peer)),
        ..Context::default()
    };
    app.ingest.append(&ctx, vec![event]).await?;
    Ok(one())
}

/// Milliseconds as a timestamp's text, so that the field is typed TIMESTAMP.
fn timestamp(ms: i64) -> String {
    crate::schema::timefmt::format_timestamp(ms * 1000)
}

fn first_kind(id: &Json) -> crate::schema::types::FieldType {
    if id.as_i64().is_some() { crate::schema::types::FieldType::LONG } else { crate::schema::types::FieldType::STRING }
}

/// `POST /user/create_segment`: as Rakam, a materialized view
/// `materialized.<table_name>` of the users the event filters select
/// (`SELECT DISTINCT _user AS id ...`), refreshed every `cache_eviction`.
pub async fn create_segment(State(app): State<AppState>, uri: Uri, headers: HeaderMap, b: Body) -> ApiResult<Response> {
    let project = app.authorize(key_from(&headers, uri.query(), "master_key"), &[KeyKind::Master]).await?;
    let req: SegmentBody = body(&app, &headers, b).await?;
    if req.name.trim().is_empty() {
        return Err(ApiError::bad_request("name is missing"));
    }
    names::collection_name(&req.table_name).map_err(|e| ApiError::bad_request(format!("table_name: {e}")))?;
    let filters = match &req.event_filters {
        Some(filters) if req.filter_expression.is_none() && !filters.is_empty() => filters,
        _ => return Err(ApiError::bad_request("User segment must have at least one event filter")),
    };
    let query = search::segment_sql(filters, &collections(&app, &project).await?)?;
    let view = json!({"table_name": req.table_name, "name": req.name, "query": query,
                      "update_interval": req.cache_eviction.unwrap_or(Json::Null)});
    let view = serde_json::from_value(view).map_err(|e| ApiError::bad_request(format!("cache_eviction: {e}")))?;
    super::materialized::create_view(&app, project, view).await?;
    Ok(success())
}
