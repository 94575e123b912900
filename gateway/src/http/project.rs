//! `/project/*`: projects, their keys and schemas.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode, Uri};
use serde::Deserialize;

use super::request::{json, key_from, read_body};
use super::{ApiError, ApiResult, AppState, json_response, success};
use crate::metadata::KeyKind;
use crate::schema::DeclareError;
use crate::schema::avro_import;
use crate::schema::names;
use crate::schema::types::{Field, FieldType};

/// A JSON body within `http.max_body_bytes`.
pub(super) async fn body_of<T: serde::de::DeserializeOwned>(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<T> {
    let bytes = read_body(headers, body, app.config.http.max_body_bytes, "", app.config.http.body_timeout_ms).await?;
    json(&bytes)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    name: String,
    #[serde(default)]
    lock_key: Option<String>,
}

pub async fn create(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: CreateProject = body_of(&app, &headers, body).await?;
    app.check_lock_key(req.lock_key.as_deref(), peer)?;
    let name = names::project_name(&req.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let now = app.now_ms();
    if !app.store.create_project(&name, now).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, "the project already exists"));
    }
    let keys = app.keys.create_key_set(&name, now).await?;
    Ok(json_response(StatusCode::OK, &keys))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockKeyOnly {
    #[serde(default)]
    lock_key: Option<String>,
}

pub async fn list(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: LockKeyOnly = body_of(&app, &headers, body).await?;
    app.check_lock_key(req.lock_key.as_deref(), peer)?;
    Ok(json_response(StatusCode::OK, &app.store.projects().await?))
}

pub async fn delete(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let project = app.authorize(key_from(&headers, uri.query(), "master_key"), &[KeyKind::Master]).await?;
    if !app.config.projects.allow_deletion {
        return Err(ApiError::forbidden(
            "project deletion is disabled on this server; enable it with projects.allow_deletion",
        ));
    }
    app.delete_project(&project).await?;
    Ok(success())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SchemaRequest {
    #[serde(default)]
    names: Option<Vec<String>>,
}

pub async fn schema(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let project = app.authorize(key_from(&headers, uri.query(), "read_key"), &[KeyKind::Read]).await?;
    let req: SchemaRequest = body_of(&app, &headers, body).await?;
    let wanted: Option<Vec<String>> = req.names.map(|n| n.iter().map(|c| c.to_ascii_lowercase()).collect());
    let collections: Vec<serde_json::Value> = app
        .store
        .latest_schemas(&project)
        .await?
        .into_iter()
        .filter(|s| wanted.as_ref().is_none_or(|w| w.contains(&s.collection)))
        .map(|s| serde_json::json!({"name": s.collection, "fields": s.fields}))
        .collect();
    Ok(json_response(StatusCode::OK, &collections))
}

pub async fn collection(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let project = app.authorize(key_from(&headers, uri.query(), "read_key"), &[KeyKind::Read]).await?;
    let names: Vec<String> = app.store.latest_schemas(&project).await?.into_iter().map(|s| s.collection).collect();
    Ok(json_response(StatusCode::OK, &names))
}

pub async fn create_api_keys(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let project = app.authorize(key_from(&headers, uri.query(), "master_key"), &[KeyKind::Master]).await?;
    let keys = app.keys.create_key_set(&project, app.now_ms()).await?;
    Ok(json_response(StatusCode::OK, &keys))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySet {
    #[serde(default)]
    master_key: Option<String>,
    #[serde(default)]
    read_key: Option<String>,
    #[serde(default)]
    write_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckKeys {
    keys: Vec<KeySet>,
    project: String,
}

/// One answer per key set: whether every key given in it is a key of its
/// kind for the project.
pub async fn check_api_keys(State(app): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let req: CheckKeys = body_of(&app, &headers, body).await?;
    let project = req.project.to_ascii_lowercase();
    let mut answers = Vec::with_capacity(req.keys.len());
    for set in &req.keys {
        let mut valid = true;
        for (key, kind) in
            [(&set.master_key, KeyKind::Master), (&set.read_key, KeyKind::Read), (&set.write_key, KeyKind::Write)]
        {
            if let Some(key) = key {
                valid &= app.keys.project_of(key, &[kind]).await?.as_deref() == Some(project.as_str());
            }
        }
        answers.push(valid);
    }
    Ok(json_response(StatusCode::OK, &answers))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeKeys {
    project: String,
    master_key: String,
}

/// Deletes the key set that the given master key belongs to.
pub async fn revoke_api_keys(State(app): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let req: RevokeKeys = body_of(&app, &headers, body).await?;
    if !app.keys.revoke(&req.project.to_ascii_lowercase(), &req.master_key).await? {
        return Err(ApiError::forbidden("master_key is invalid"));
    }
    Ok(success())
}

#[derive(Deserialize)]
pub struct DeclaredField {
    name: String,
    #[serde(rename = "type")]
    field_type: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddFields {
    collection: String,
    fields: Vec<DeclaredField>,
}

/// Adds fields to a collection (creating it) ahead of any event.
pub async fn schema_add(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let project = app.authorize(key_from(&headers, uri.query(), "master_key"), &[KeyKind::Master]).await?;
    let req: AddFields = body_of(&app, &headers, body).await?;
    let fields = req
        .fields
        .iter()
        .map(|f| {
            let t = f.field_type.parse::<FieldType>().map_err(|e| ApiError::bad_request(format!("{}: {e}", f.name)))?;
            Ok(Field::new(f.name.clone(), t))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    declare(&app, &project, &req.collection, &fields).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCustom {
    collection: String,
    schema_type: String,
    schema: String,
}

/// Adds the fields of a schema in another format; `schema_type` `avro`
/// takes an Avro record schema.
pub async fn schema_add_custom(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let project = app.authorize(key_from(&headers, uri.query(), "master_key"), &[KeyKind::Master]).await?;
    let req: AddCustom = body_of(&app, &headers, body).await?;
    if !req.schema_type.eq_ignore_ascii_case("avro") {
        return Err(ApiError::bad_request(format!("schema_type {:?} is not supported; use avro", req.schema_type)));
    }
    let fields = avro_import::fields_of(&req.schema).map_err(|e| ApiError::bad_request(e.to_string()))?;
    declare(&app, &project, &req.collection, &fields).await
}

/// Declares fields and answers with the collection's fields.
async fn declare(app: &AppState, project: &str, collection: &str, fields: &[Field]) -> ApiResult<Response> {
    let collection = names::collection_name(collection).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let schema = app.ingest.registry().declare_fields(project, &collection, fields, app.now_ms()).await.map_err(
        |e| match e {
            DeclareError::Invalid(m) => ApiError::bad_request(m),
            DeclareError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            DeclareError::Metadata(e) => e.into(),
        },
    )?;
    Ok(json_response(StatusCode::OK, &schema.fields))
}
