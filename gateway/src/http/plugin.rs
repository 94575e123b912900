//! `/plugin/*`: a project's WebAssembly plugins (master key).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use base64::Engine as _;
use http::{HeaderMap, StatusCode, Uri, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use super::project::body_of;
use super::request::{header_str, json, key_from, query_param, read_body};
use super::{ApiError, ApiResult, AppState, json_response, success};
use crate::ingest::Event;
use crate::metadata::{KeyKind, PluginChange, PluginRecord, PluginUpload};
use crate::plugin::bindings::{crm, types};
use crate::plugin::crm::{CrmCaller, checked_request, checked_response, context as crm_context};
use crate::plugin::enrich::{RequestInfo, to_wire};
use crate::plugin::registry::StatsView;
use crate::plugin::rewrite::{QueryCaller, query_context};
use crate::plugin::runtime::Prepared;
use crate::plugin::{CallLog, Error as PluginError, Hook, OnError};

async fn master(app: &AppState, uri: &Uri, headers: &HeaderMap) -> ApiResult<String> {
    app.authorize(key_from(headers, uri.query(), "master_key"), &[KeyKind::Master]).await
}

/// A plugin name: like a collection name, `[a-z0-9_-]`, at most 100.
fn plugin_name(raw: &str) -> ApiResult<String> {
    if raw.is_empty()
        || raw.len() > 100
        || !raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(ApiError::bad_request(format!(
            "plugin name {raw:?} is not valid: use 1 to 100 of a-z, 0-9, _ and -"
        )));
    }
    Ok(raw.to_owned())
}

/// A whole-number query parameter within `range`, or `default` when absent.
fn number_param(query: Option<&str>, name: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> ApiResult<i64> {
    let Some(text) = query_param(query, name) else { return Ok(default) };
    match text.parse::<i64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be a whole number from {} to {}, not {text:?}",
            range.start(),
            range.end()
        ))),
    }
}

fn invalid(e: PluginError) -> ApiError {
    match e {
        PluginError::Invalid(m) => ApiError::bad_request(format!("the upload is not a usable plugin: {m}")),
        PluginError::Metadata(e) => e.into(),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

fn parse_hook(text: &str) -> ApiResult<Hook> {
    Hook::parse(text).ok_or_else(|| ApiError::bad_request(format!("hook must be enrich, rewrite or crm, not {text:?}")))
}

/// `POST /plugin/upload?name=&hook=enrich|rewrite|crm&order=&on_error=pass|reject&memory_mb=&timeout_ms=`
/// with the component as the body.
pub async fn upload(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let settings = &app.config.plugins;
    // The body is read before anything can refuse the request: a refusal
    // that leaves it unread resets the connection under a client that is
    // still sending, and the client never sees the answer.
    let bytes = read_body(&headers, body, settings.max_upload_bytes, "", app.config.http.body_timeout_ms).await?;
    let project = master(&app, &uri, &headers).await?;
    let query = uri.query();
    let name = plugin_name(&query_param(query, "name").ok_or_else(|| ApiError::bad_request("name is missing"))?)?;
    let hook_text =
        query_param(query, "hook").ok_or_else(|| ApiError::bad_request("hook is missing: enrich, rewrite or crm"))?;
    let hook = parse_hook(&hook_text)?;
    let on_error = match (hook, query_param(query, "on_error").as_deref()) {
        (_, None) => OnError::Reject,
        (Hook::Rewrite, Some("reject")) => OnError::Reject,
        (Hook::Rewrite, Some(_)) => {
            return Err(ApiError::bad_request("rewriters always fail closed: on_error can only be reject"));
        }
        (Hook::Enrich | Hook::Crm, Some(text)) => OnError::parse(text)
            .ok_or_else(|| ApiError::bad_request(format!("on_error must be pass or reject, not {text:?}")))?,
    };
    let position = number_param(query, "order", 0, -1_000_000..=1_000_000)?;
    let memory_mb = number_param(
        query,
        "memory_mb",
        i64::try_from(settings.default_memory_mb).unwrap_or(64),
        1..=i64::try_from(settings.max_memory_mb).unwrap_or(i64::MAX),
    )?;
    let timeout_ms = number_param(
        query,
        "timeout_ms",
        i64::try_from(settings.default_timeout_ms).unwrap_or(20),
        1..=i64::try_from(settings.max_timeout_ms).unwrap_or(i64::MAX),
    )?;
    if let Some(ct) = header_str(&headers, header::CONTENT_TYPE)
        && !ct.starts_with("application/wasm")
        && !ct.starts_with("application/octet-stream")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send the component as application/wasm, not {ct}"),
        ));
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    app.plugins.prepare(&sha256, Arc::from(&bytes[..]), hook).await.map_err(invalid)?;
    let now = app.now_ms();
    app.store.put_component(&sha256, &bytes, now).await?;
    let upload = PluginUpload {
        project: &project,
        name: &name,
        hook: hook.name(),
        position,
        on_error: on_error.name(),
        memory_mb,
        timeout_ms,
        sha256: &sha256,
    };
    let record = app.store.save_plugin(upload, now).await?;
    app.plugins.refresh_project(&project).await.map_err(invalid)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"name": record.name, "version": record.version, "sha256": record.sha256, "hook": record.hook}),
    ))
}

/// A plugin as the management API shows it.
#[derive(Serialize)]
struct PluginView {
    name: String,
    hook: String,
    order: i64,
    on_error: String,
    memory_mb: i64,
    timeout_ms: i64,
    version: i64,
    sha256: String,
    enabled: bool,
    config: Json,
    updated_at: i64,
    /// Calls through this gateway since it started.
    stats: StatsView,
}

fn view(app: &AppState, r: PluginRecord) -> PluginView {
    let stats = app.plugins.stats(&r.project, &r.name).view();
    PluginView {
        config: serde_json::from_str(&r.config).unwrap_or(Json::Null),
        name: r.name,
        hook: r.hook,
        order: r.position,
        on_error: r.on_error,
        memory_mb: r.memory_mb,
        timeout_ms: r.timeout_ms,
        version: r.version,
        sha256: r.sha256,
        enabled: r.enabled,
        updated_at: r.updated_at,
        stats,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameOnly {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    name: String,
    config: Json,
}

fn no_such_plugin(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("there is no plugin {name:?} in this project"))
}

/// `POST /plugin/list`.
pub async fn list(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let project = master(&app, &uri, &headers).await?;
    let plugins: Vec<PluginView> =
        app.store.plugins(Some(&project)).await?.into_iter().map(|r| view(&app, r)).collect();
    Ok(json_response(StatusCode::OK, &plugins))
}

async fn find(app: &AppState, project: &str, name: &str) -> ApiResult<PluginRecord> {
    app.store.plugins(Some(project)).await?.into_iter().find(|r| r.name == name).ok_or_else(|| no_such_plugin(name))
}

/// `POST /plugin/get {name}`.
pub async fn get(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let project = master(&app, &uri, &headers).await?;
    let req: NameOnly = body_of(&app, &headers, body).await?;
    let record = find(&app, &project, &req.name).await?;
    Ok(json_response(StatusCode::OK, &view(&app, record)))
}

async fn change(app: &AppState, project: &str, name: &str, change: PluginChange) -> ApiResult<Response> {
    let record =
        app.store.change_plugin(project, name, change, app.now_ms()).await?.ok_or_else(|| no_such_plugin(name))?;
    app.plugins.refresh_project(project).await.map_err(invalid)?;
    Ok(json_response(StatusCode::OK, &view(app, record)))
}

/// `POST /plugin/config {name, config}`: the plugin's configuration for
/// this project (any JSON).
pub async fn config(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let project = master(&app, &uri, &headers).await?;
    let req: ConfigBody = body_of(&app, &headers, body).await?;
    change(&app, &project, &req.name, PluginChange::Config(req.config.to_string())).await
}

/// `POST /plugin/enable {name}`.
pub async fn enable(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let project = master(&app, &uri, &headers).await?;
    let req: NameOnly = body_of(&app, &headers, body).await?;
    change(&app, &project, &req.name, PluginChange::Enabled(true)).await
}

/// `POST /plugin/disable {name}`.
pub async fn disable(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let project = master(&app, &uri, &headers).await?;
    let req: NameOnly = body_of(&app, &headers, body).await?;
    change(&app, &project, &req.name, PluginChange::Enabled(false)).await
}

/// `POST /plugin/delete {name}`.
pub async fn delete(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let project = master(&app, &uri, &headers).await?;
    let req: NameOnly = body_of(&app, &headers, body).await?;
    if !app.store.delete_plugin(&project, &req.name).await? {
        return Err(no_such_plugin(&req.name));
    }
    app.plugins.refresh_project(&project).await.map_err(invalid)?;
    Ok(success())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// A stored plugin, or a name for the uploaded one.
    #[serde(default)]
    name: Option<String>,
    /// A component to run instead of a stored one (base64).
    #[serde(default)]
    component: Option<String>,
    /// The hook of `component`; else the stored plugin's.
    #[serde(default)]
    hook: Option<String>,
    /// The configuration to run with; else the stored one.
    #[serde(default)]
    config: Option<Json>,
    #[serde(default)]
    memory_mb: Option<i64>,
    #[serde(default)]
    timeout_ms: Option<i64>,
    /// For an enricher: `[{collection, properties}]`.
    #[serde(default)]
    events: Option<Vec<Json>>,
    /// For a rewriter: the SQL.
    #[serde(default)]
    query: Option<String>,
    /// For a CRM hook: the request (`on-request`, or with `response`,
    /// `on-response`).
    #[serde(default)]
    request: Option<TestRequest>,
    /// For a CRM hook: the upstream's answer.
    #[serde(default)]
    response: Option<TestResponse>,
}

/// A CRM request as `/plugin/test` takes and answers it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(default = "method_get")]
    method: String,
    path: String,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    /// The body as text.
    #[serde(default)]
    body: String,
}

fn method_get() -> String {
    "GET".into()
}

/// An upstream's answer as `/plugin/test` takes and answers it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestResponse {
    status: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
    /// The body as text.
    #[serde(default)]
    body: String,
}

impl TestRequest {
    fn wire(self) -> crm::CrmRequest {
        crm::CrmRequest {
            method: self.method,
            path: self.path,
            query: self.query,
            headers: wire_headers(self.headers),
            body: self.body.into_bytes(),
        }
    }

    fn shown(r: crm::CrmRequest) -> TestRequest {
        TestRequest {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            body: String::from_utf8_lossy(&r.body).into_owned(),
        }
    }
}

impl TestResponse {
    fn wire(self) -> crm::CrmResponse {
        crm::CrmResponse { status: self.status, headers: wire_headers(self.headers), body: self.body.into_bytes() }
    }

    fn shown(r: crm::CrmResponse) -> TestResponse {
        TestResponse {
            status: r.status,
            headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            body: String::from_utf8_lossy(&r.body).into_owned(),
        }
    }
}

fn wire_headers(headers: Vec<(String, String)>) -> Vec<types::Header> {
    headers.into_iter().map(|(n, v)| types::Header { name: n.to_ascii_lowercase(), value: v }).collect()
}

fn denial_json(denial: crm::Denial) -> Json {
    json!({"outcome": "deny", "status": crate::plugin::crm::denial_status(denial.status), "message": denial.message})
}

/// `POST /plugin/test`: runs a stored plugin, or the component given, over
/// events or a query, and answers what it did and logged. Nothing is stored.
pub async fn test(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // Read first, as for uploads: this body may hold a whole component.
    let limit = app.config.http.max_body_bytes.max(app.config.plugins.max_upload_bytes * 4 / 3 + 4096);
    let bytes = read_body(&headers, body, limit, "", app.config.http.body_timeout_ms).await?;
    let project = master(&app, &uri, &headers).await?;
    let req: TestBody = json(&bytes)?;
    let settings = &app.config.plugins;
    let clamp = |given: Option<i64>, default: u64, max: u64| {
        given.unwrap_or(i64::try_from(default).unwrap_or(1)).clamp(1, i64::try_from(max).unwrap_or(i64::MAX))
    };
    let (name, prepared, limits, config) = match (&req.component, &req.name) {
        (Some(component), name) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(component.trim())
                .map_err(|e| ApiError::bad_request(format!("component is not base64: {e}")))?;
            if bytes.len() > settings.max_upload_bytes {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the component is larger than plugins.max_upload_bytes",
                ));
            }
            let hook_text = req.hook.as_deref().unwrap_or(match (&req.query, &req.request) {
                (Some(_), _) => "rewrite",
                (None, Some(_)) => "crm",
                (None, None) => "enrich",
            });
            let hook = parse_hook(hook_text)?;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let prepared = app.plugins.prepare(&sha256, Arc::from(bytes), hook).await.map_err(invalid)?;
            let limits = app.plugins.limits(
                clamp(req.memory_mb, settings.default_memory_mb, settings.max_memory_mb),
                clamp(req.timeout_ms, settings.default_timeout_ms, settings.max_timeout_ms),
            );
            (name.clone().unwrap_or_else(|| "uploaded".into()), prepared, limits, Json::Null.to_string())
        }
        (None, Some(name)) => {
            let record = find(&app, &project, name).await?;
            let hook = Hook::parse(&record.hook).unwrap_or(Hook::Enrich);
            let prepared = app.plugins.stored(&record.sha256, hook).await.map_err(invalid)?;
            let limits = app.plugins.limits(
                req.memory_mb.unwrap_or(record.memory_mb).clamp(1, i64::try_from(settings.max_memory_mb).unwrap_or(1)),
                req.timeout_ms
                    .unwrap_or(record.timeout_ms)
                    .clamp(1, i64::try_from(settings.max_timeout_ms).unwrap_or(1)),
            );
            (record.name, prepared, limits, record.config)
        }
        (None, None) => return Err(ApiError::bad_request("give the name of a stored plugin, or a component")),
    };
    let config: Arc<str> = Arc::from(req.config.as_ref().map_or(config, Json::to_string).as_str());
    let answer = match &prepared {
        Prepared::Enrich(_) => {
            let items = req.events.ok_or_else(|| ApiError::bad_request("an enricher is tested with events"))?;
            let mut events = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let collection = item.get("collection").and_then(Json::as_str).unwrap_or_default().to_owned();
                let event = Event::new(&collection, item.get("properties").cloned())
                    .map_err(|e| ApiError::bad_request(format!("event {i}: {e}")))?;
                events.push(to_wire(&event));
            }
            let info = RequestInfo {
                project: project.clone(),
                client_address: Some(app.client_ip(&headers, peer).to_string()),
                user_agent: header_str(&headers, header::USER_AGENT).map(str::to_owned),
                headers: header_list(&headers),
            };
            let context = crate::plugin::enrich::request_context(&info, &events);
            let called = app.plugins.run_enrich(&prepared, limits, config, context, events).await;
            match called.result {
                Ok(outcomes) => answer(
                    &name,
                    json!({"results": outcomes.into_iter().map(outcome_json).collect::<Vec<_>>()}),
                    None,
                    called.log,
                ),
                Err(f) => answer(&name, json!({}), Some(f.to_string()), called.log),
            }
        }
        Prepared::Rewrite(_) => {
            let sql = req.query.ok_or_else(|| ApiError::bad_request("a rewriter is tested with a query"))?;
            let caller =
                QueryCaller { project: project.clone(), key_kind: KeyKind::Read, attributes: attributes(&headers) };
            let called = app.plugins.run_rewrite(&prepared, limits, config, query_context(&caller), sql).await;
            match called.result {
                Ok(types::RewriteOutcome::Rewritten(q)) => {
                    answer(&name, json!({"outcome": "rewritten", "query": q}), None, called.log)
                }
                Ok(types::RewriteOutcome::Denied(r)) => {
                    answer(&name, json!({"outcome": "denied", "reason": r}), None, called.log)
                }
                Err(f) => answer(&name, json!({}), Some(f.to_string()), called.log),
            }
        }
        Prepared::Crm(_) => {
            let request = req.request.ok_or_else(|| ApiError::bad_request("a CRM hook is tested with a request"))?;
            let caller = CrmCaller {
                project: project.clone(),
                key_kind: KeyKind::Read,
                client_address: Some(app.client_ip(&headers, peer).to_string()),
            };
            let (output, log) = match req.response {
                None => {
                    let called = app
                        .plugins
                        .run_crm_request(&prepared, limits, config, crm_context(&caller), Arc::new(request.wire()))
                        .await;
                    let output = called.result.and_then(checked_request).map(|outcome| match outcome {
                        crm::RequestOutcome::Forward => json!({"outcome": "forward"}),
                        crm::RequestOutcome::ForwardChanged(r) => {
                            json!({"outcome": "forward-changed", "request": TestRequest::shown(r)})
                        }
                        crm::RequestOutcome::Deny(d) => denial_json(d),
                    });
                    (output, called.log)
                }
                Some(response) => {
                    let exchange = Arc::new((request.wire(), response.wire()));
                    let called =
                        app.plugins.run_crm_response(&prepared, limits, config, crm_context(&caller), exchange).await;
                    let output = called.result.and_then(checked_response).map(|outcome| match outcome {
                        crm::ResponseOutcome::Answer => json!({"outcome": "answer"}),
                        crm::ResponseOutcome::AnswerChanged(r) => {
                            json!({"outcome": "answer-changed", "response": TestResponse::shown(r)})
                        }
                        crm::ResponseOutcome::Deny(d) => denial_json(d),
                    });
                    (output, called.log)
                }
            };
            match output {
                Ok(output) => answer(&name, output, None, log),
                Err(f) => answer(&name, json!({}), Some(f.to_string()), log),
            }
        }
    };
    Ok(json_response(StatusCode::OK, &answer))
}

fn answer(name: &str, mut output: Json, failure: Option<String>, log: CallLog) -> Json {
    output["plugin"] = json!(name);
    output["failure"] = json!(failure);
    output["log"] = json!(log);
    output
}

fn outcome_json(outcome: types::Outcome) -> Json {
    match outcome {
        types::Outcome::Keep => json!({"outcome": "keep"}),
        types::Outcome::Replace(props) => {
            json!({"outcome": "replace", "properties": serde_json::from_str::<Json>(&props).unwrap_or(Json::String(props))})
        }
        types::Outcome::Drop => json!({"outcome": "drop"}),
        types::Outcome::Reject(reason) => json!({"outcome": "reject", "reason": reason}),
    }
}

/// The request's headers, lowercased names (as `http` keeps them).
pub fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers.iter().filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect()
}

/// The caller's attributes: `X-Weir-*` headers, prefix removed.
pub fn attributes(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().strip_prefix("x-weir-")?.to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}
