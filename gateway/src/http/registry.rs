//! A read-only Schema Registry API over the metadata store, in Confluent's
//! shapes, so that Confluent-style consumers decode Weir's records: each
//! record starts with the id of the schema version that wrote it, and
//! `/schemas/ids/{id}` answers that schema.
//!
//! Subjects are `<topic>-value`, with the topic as the log's readers see it
//! (`<prefix><project>.<collection>` on Kafka, `<project>.<collection>` on
//! the file log); versions are the collection's schema versions, ids the
//! global schema ids.
//!
//! Who may read: a project's read key (the `read_key` header, or HTTP Basic
//! auth with the key as the password, as Confluent clients send
//! `basic.auth.user.info`) sees that project's subjects; a client on
//! loopback without a key sees every project's, unless
//! `schema_registry.open_on_loopback` is off.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value as Json, json};

use super::{ApiError, ApiResult, AppState};
use crate::metadata::{KeyKind, SchemaVersion};
use crate::schema::names::{split_topic, topic_name};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Confluent's error shape (`error_code` is Confluent's code, such as 40401),
/// with Rakam's `error` beside it.
fn registry_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({"error_code": code, "message": message, "error": message});
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn subject_not_found(subject: &str) -> Response {
    registry_error(StatusCode::NOT_FOUND, 40401, &format!("Subject '{subject}' not found."))
}

fn answer(value: &Json) -> Response {
    let mut response = (StatusCode::OK, value.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// The projects the caller may read: one, by its read key, or all.
enum Scope {
    Project(String),
    All,
}

impl Scope {
    fn allows(&self, project: &str) -> bool {
        match self {
            Scope::Project(p) => p == project,
            Scope::All => true,
        }
    }
}

/// A read key from the `read_key` header or Basic auth's password. Any
/// other authorization is refused rather than read as none.
fn read_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    if let Some(key) = headers.get("read_key").and_then(|v| v.to_str().ok()).filter(|k| !k.is_empty()) {
        return Ok(Some(key.to_owned()));
    }
    let Some(authorization) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let refused = || {
        ApiError::unauthorized("the Authorization header must be Basic auth with a project's read key as the password")
    };
    let text = authorization.to_str().map_err(|_| refused())?;
    let (scheme, credentials) = text.split_once(' ').ok_or_else(refused)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(refused());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(credentials.trim()).map_err(|_| refused())?;
    let text = String::from_utf8(decoded).map_err(|_| refused())?;
    let (_, password) = text.split_once(':').ok_or_else(refused)?;
    Ok(Some(password.to_owned()))
}

/// Loopback clients without a key read every project's schemas only where
/// the operator left project management open too (no `lock_key`).
async fn scope(app: &AppState, headers: &HeaderMap, peer: SocketAddr) -> ApiResult<Scope> {
    let open = app.config.schema_registry.open_on_loopback && app.config.lock_key.is_none();
    match read_key(headers)? {
        Some(key) => Ok(Scope::Project(app.authorize(Some(key), &[KeyKind::Read]).await?)),
        None if open && peer.ip().is_loopback() => Ok(Scope::All),
        None => Err(ApiError::unauthorized(
            "read_key is missing: send a project's read key (read_key header, or as the Basic auth password)",
        )),
    }
}

/// A subject's project and collection, if it names one; `log_topic` maps
/// a broker's topic name to the log's.
fn subject_parts(subject: &str, log_topic: impl Fn(&str) -> Option<String>) -> Option<(String, String)> {
    let topic = log_topic(subject.strip_suffix("-value")?)?;
    let (project, collection) = split_topic(&topic)?;
    Some((project.to_owned(), collection))
}

async fn versions_of(app: &AppState, scope: &Scope, subject: &str) -> ApiResult<Option<Vec<SchemaVersion>>> {
    let Some((project, collection)) = subject_parts(subject, |t| app.log.log_topic(t)) else { return Ok(None) };
    if !scope.allows(&project) {
        return Ok(None);
    }
    let versions = app.store.schema_versions(&project, &collection).await?;
    Ok((!versions.is_empty()).then_some(versions))
}

/// `GET /subjects`.
pub async fn subjects(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let scope = scope(&app, &headers, peer).await?;
    let projects = match &scope {
        Scope::Project(p) => vec![p.clone()],
        Scope::All => app.store.projects().await?,
    };
    let mut subjects = Vec::new();
    for project in projects {
        for schema in app.store.latest_schemas(&project).await? {
            subjects.push(format!("{}-value", app.log.broker_topic(&topic_name(&project, &schema.collection))));
        }
    }
    subjects.sort();
    Ok(answer(&json!(subjects)))
}

/// `GET /subjects/{subject}/versions`.
pub async fn versions(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(subject): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let scope = scope(&app, &headers, peer).await?;
    Ok(match versions_of(&app, &scope, &subject).await? {
        Some(versions) => answer(&json!(versions.iter().map(|v| v.version).collect::<Vec<_>>())),
        None => subject_not_found(&subject),
    })
}

/// `GET /subjects/{subject}/versions/{version|latest}`.
pub async fn version(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((subject, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let scope = scope(&app, &headers, peer).await?;
    let Some(versions) = versions_of(&app, &scope, &subject).await? else {
        return Ok(subject_not_found(&subject));
    };
    let found = match version.as_str() {
        "latest" | "-1" => versions.last(),
        n => match n.parse::<i64>() {
            Ok(n) if n > 0 => versions.iter().find(|v| v.version == n),
            _ => {
                return Ok(registry_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    42202,
                    "The specified version is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"",
                ));
            }
        },
    };
    Ok(match found {
        Some(v) => answer(&json!({"subject": subject, "version": v.version, "id": v.id, "schema": v.avro_schema})),
        None => registry_error(StatusCode::NOT_FOUND, 40402, "Version not found."),
    })
}

async fn schema_by_id(app: &AppState, scope: &Scope, id: &str) -> ApiResult<Option<SchemaVersion>> {
    let Ok(id) = id.parse::<i64>() else { return Ok(None) };
    Ok(app.store.schema_by_id(id).await?.filter(|s| scope.allows(&s.project)))
}

/// `GET /schemas/ids/{id}`.
pub async fn schema(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let scope = scope(&app, &headers, peer).await?;
    Ok(match schema_by_id(&app, &scope, &id).await? {
        Some(s) => answer(&json!({"schema": s.avro_schema})),
        None => registry_error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    })
}

/// `GET /schemas/ids/{id}/schema`: the schema itself.
pub async fn schema_text(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let scope = scope(&app, &headers, peer).await?;
    Ok(match schema_by_id(&app, &scope, &id).await? {
        Some(s) => answer(&serde_json::from_str::<Json>(&s.avro_schema).unwrap_or(Json::String(s.avro_schema))),
        None => registry_error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_header_or_basic_auth() {
        let key = |h: &HeaderMap| read_key(h).map_err(|e| e.message);
        let mut h = HeaderMap::new();
        assert_eq!(key(&h), Ok(None));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic c2hvcDpzZWNyZXQ=")); // shop:secret
        assert_eq!(key(&h), Ok(Some("secret".to_owned())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer c2hvcDpzZWNyZXQ="));
        assert!(key(&h).is_err(), "another scheme is refused, not taken as none");
        h.insert("read_key", HeaderValue::from_static("k"));
        assert_eq!(key(&h), Ok(Some("k".to_owned())));
        let same = |t: &str| Some(t.to_owned());
        assert_eq!(subject_parts("shop.pageview-value", same), Some(("shop".into(), "pageview".into())));
        assert_eq!(subject_parts("shop.pageview-key", same), None);
        let prefixed = |t: &str| t.strip_prefix("weir.").map(str::to_owned);
        assert_eq!(subject_parts("weir.shop.pageview-value", prefixed), Some(("shop".into(), "pageview".into())));
        assert_eq!(subject_parts("shop.pageview-value", prefixed), None);
    }
}
