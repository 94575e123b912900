//! The HTTP API: Rakam's project and collection endpoints.

mod continuous;
mod crm;
mod error;
mod event;
mod materialized;
mod own_errors;
mod plugin;
mod posthog;
mod project;
pub mod proxies;
mod query;
mod realtime;
mod registry;
pub mod request;
mod segment;
pub mod server;
mod snowplow;
mod stream;
mod trino;
mod user;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

pub use error::{ApiError, ApiResult, error_body};
pub use event::{ParsedBatch, parse_batch};

use crate::app::App;
use crate::metadata::KeyKind;

pub type AppState = Arc<App>;

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/project/create", post(project::create))
        .route("/project/list", post(project::list))
        .route("/project/delete", post(project::delete).delete(project::delete))
        .route("/project/schema", post(project::schema))
        .route("/project/schema/add", post(project::schema_add))
        .route("/project/schema/add/custom", post(project::schema_add_custom))
        .route("/project/collection", post(project::collection))
        .route("/project/create-api-keys", post(project::create_api_keys))
        .route("/project/check-api-keys", post(project::check_api_keys))
        .route("/project/revoke-api-keys", post(project::revoke_api_keys))
        .route("/project/stats", post(query::project_stats))
        .route("/event/collect", post(event::collect))
        .route("/event/batch", post(event::batch))
        .route("/event/bulk", post(event::bulk))
        .route("/event/bulk/commit", post(event::bulk_commit))
        .route("/event/pixel", get(event::pixel).post(event::pixel))
        .route("/query/execute", post(query::execute).get(query::execute_stream))
        .route("/query/explain", post(query::explain))
        .route("/query/metadata", post(query::query_metadata))
        .route("/query/export", post(query::export))
        .route("/materialized-view/create", post(materialized::create))
        .route("/materialized-view/delete", post(materialized::delete))
        .route("/materialized-view/list", post(materialized::list))
        .route("/materialized-view/schema", post(materialized::schema))
        .route("/materialized-view/get", post(materialized::get))
        .route("/materialized-view/change", post(materialized::change))
        .route("/materialized-view/update", get(materialized::update))
        .route("/continuous-query/create", post(continuous::create))
        .route("/continuous-query/delete", post(continuous::delete))
        .route("/continuous-query/list", post(continuous::list))
        .route("/continuous-query/schema", post(continuous::schema))
        .route("/continuous-query/get", post(continuous::get))
        .route("/continuous-query/test", post(continuous::test))
        .route("/continuous-query/refresh", get(continuous::refresh))
        .route("/realtime/create", post(realtime::create))
        .route("/realtime/list", post(realtime::list))
        .route("/realtime/get", post(realtime::get))
        .route("/realtime/delete", post(realtime::delete))
        .route("/user/create", post(user::create))
        .route("/user/set_properties", post(user::set_properties))
        .route("/user/set_properties_once", post(user::set_properties_once))
        .route("/user/unset_properties", post(user::unset_properties))
        .route("/user/increment_property", post(user::increment_property))
        .route("/user/batch", post(user::batch))
        .route("/user/batch_operations", post(user::batch_operations))
        .route("/user/batch/create", post(user::batch_create))
        .route("/user/get", post(user::get))
        .route("/user/search", post(user::search))
        .route("/user/get_events", post(user::get_events))
        .route("/user/metadata", get(user::metadata).post(user::metadata))
        .route("/user/merge", post(user::merge))
        .route("/user/create_segment", post(user::create_segment))
        .route("/stream/subscribe", get(stream::subscribe))
        .route("/crm/config", get(crm::config).post(crm::config))
        .route("/crm/{*path}", axum::routing::any(crm::forward))
        .route("/plugin/upload", post(plugin::upload))
        .route("/plugin/config", post(plugin::config))
        .route("/plugin/list", post(plugin::list))
        .route("/plugin/get", post(plugin::get))
        .route("/plugin/delete", post(plugin::delete))
        .route("/plugin/enable", post(plugin::enable))
        .route("/plugin/disable", post(plugin::disable))
        .route("/plugin/test", post(plugin::test))
        .route("/subjects", get(registry::subjects))
        .route("/subjects/{subject}/versions", get(registry::versions))
        .route("/subjects/{subject}/versions/{version}", get(registry::version))
        .route("/schemas/ids/{id}", get(registry::schema))
        .route("/schemas/ids/{id}/schema", get(registry::schema_text))
        .route("/v1/statement", post(trino::start))
        .route("/v1/statement/{kind}/{id}/{slug}/{token}", get(trino::page).delete(trino::cancel_page))
        .route("/v1/query/{id}", get(trino::query_info).delete(trino::cancel_query))
        .route("/v1/info", get(trino::info))
        .route("/v1/{call}", post(segment::receive))
        .route("/batch", post(posthog::capture))
        .route("/batch/", post(posthog::capture))
        .route("/capture", post(posthog::capture).get(posthog::capture))
        .route("/capture/", post(posthog::capture).get(posthog::capture))
        .route("/e", post(posthog::capture).get(posthog::capture))
        .route("/e/", post(posthog::capture).get(posthog::capture))
        .route("/i/v0/e", post(posthog::capture))
        .route("/i/v0/e/", post(posthog::capture))
        .route("/com.snowplowanalytics.snowplow/tp2", post(snowplow::post_root))
        .route("/i", get(snowplow::get_root))
        .route("/snowplow/{key}/com.snowplowanalytics.snowplow/tp2", post(snowplow::post_keyed))
        .route("/snowplow/{key}/i", get(snowplow::get_keyed))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors())
        .with_state(app)
}

/// Browsers on any site may call the API, with credentials, as Rakam's
/// browser library sends them (`withCredentials`): the origin is answered
/// back, since `*` is refused for such requests. Keys, not cookies, open
/// projects, so credentials grant nothing here.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_credentials(true)
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
}

/// `GET /health`: 200 while the event log takes appends, else 503; the
/// body says which.
async fn health(State(app): State<AppState>) -> Response {
    let log = app.log.health().await;
    let (status, word) = if log.up { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "unavailable") };
    let election = app.master.election();
    let role = *election.role().borrow();
    let body = serde_json::json!({
        "status": word,
        "log": {"up": log.up, "detail": log.detail},
        "election": {"backend": election.backend(), "role": role.name(), "epoch": election.epoch()},
    });
    json_response(status, &body)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A request's JSON body; an empty one reads as `{}`.
async fn body_or_empty<T: serde::de::DeserializeOwned>(
    app: &AppState,
    headers: &http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<T> {
    let limits = &app.config.http;
    request::json(&request::read_body(headers, body, limits.max_body_bytes, "", limits.body_timeout_ms).await?)
}

/// Another SDK's body (`http.sdk_max_bytes`, sent and inflated).
async fn sdk_body(app: &AppState, headers: &http::HeaderMap, body: axum::body::Body) -> ApiResult<bytes::Bytes> {
    let limits = &app.config.http;
    let bytes = request::read_body(headers, body, limits.sdk_max_bytes, "", limits.body_timeout_ms).await?;
    request::decoded(headers, bytes, limits.sdk_max_bytes)
}

/// The project of the request's key of `kind` (header or query parameter).
async fn key_kind(app: &AppState, uri: &http::Uri, headers: &http::HeaderMap, kind: KeyKind) -> ApiResult<String> {
    app.authorize(request::key_from(headers, uri.query(), kind.name()), &[kind]).await
}

/// `{"success": true}`.
fn success() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({"success": true}))
}

impl App {
    /// The project a key opens, if it is of one of `kinds`. A missing key is
    /// 401; a wrong one 403, saying nothing of whether the project exists.
    pub(crate) async fn authorize(&self, key: Option<String>, kinds: &[KeyKind]) -> ApiResult<String> {
        self.authorize_as(key, kinds, kinds[0].name()).await
    }

    /// [`App::authorize`], naming the key as the request carries it.
    pub(crate) async fn authorize_as(&self, key: Option<String>, kinds: &[KeyKind], name: &str) -> ApiResult<String> {
        let key = key.ok_or_else(|| ApiError::unauthorized(format!("{name} is missing")))?;
        self.keys.project_of(&key, kinds).await?.ok_or_else(|| ApiError::forbidden(format!("{name} is invalid")))
    }

    /// The client's address, per `http.trusted_proxies`.
    pub(crate) fn client_ip(&self, headers: &http::HeaderMap, peer: SocketAddr) -> std::net::IpAddr {
        proxies::client_ip(headers, peer.ip(), &self.trusted_proxies)
    }

    /// Project creation and listing: the lock key when one is configured,
    /// else loopback clients only.
    pub(crate) fn check_lock_key(&self, given: Option<&str>, peer: SocketAddr) -> ApiResult<()> {
        lock_key_allows(self.config.lock_key.as_deref(), given, peer).map_err(ApiError::forbidden)
    }
}

fn lock_key_allows(configured: Option<&str>, given: Option<&str>, peer: SocketAddr) -> Result<(), &'static str> {
    match configured {
        Some(lock) if given.is_some_and(|g| request::same_secret(g, lock)) => Ok(()),
        Some(_) => Err("lock_key is invalid"),
        None if peer.ip().is_loopback() => Ok(()),
        None => Err(
            "no lock_key is configured on this server, so projects can be created and listed from loopback clients only",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_lock_key_only_loopback_clients_pass() {
        let local: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let local6: SocketAddr = "[::1]:1".parse().expect("addr");
        let remote: SocketAddr = "203.0.113.5:1".parse().expect("addr");
        assert!(lock_key_allows(None, None, local).is_ok());
        assert!(lock_key_allows(None, None, local6).is_ok());
        assert!(lock_key_allows(None, Some("anything"), remote).is_err());
        assert!(lock_key_allows(Some("k"), Some("k"), remote).is_ok());
        assert!(lock_key_allows(Some("k"), None, local).is_err(), "a configured key binds loopback too");
        assert!(lock_key_allows(Some("k"), Some("x"), local).is_err());
    }
}
