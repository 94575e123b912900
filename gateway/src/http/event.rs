//! `/event/*`: the collection API.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::Value as Json;
use serde_json::value::RawValue;

use super::request::{header_str, key_from, query_param, read_body, utf8};
use super::{ApiError, ApiResult, AppState, json_response, success};
use crate::ingest::{Context, Event, Stored};
use crate::metadata::KeyKind;
use crate::plugin::enrich::Fate;
use crate::schema::timefmt;

/// The `api` object of collection requests.
#[derive(Debug, Default, Deserialize)]
pub struct Api {
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    library: Option<Json>,
    #[serde(default)]
    api_version: Option<Json>,
    #[serde(default)]
    upload_time: Option<Json>,
    #[serde(default)]
    uuid: Option<Json>,
    #[serde(default)]
    checksum: Option<String>,
}

impl Api {
    /// `api.upload_time`: milliseconds since the epoch, within the years
    /// 1 to 9999.
    fn upload_time_ms(&self) -> ApiResult<Option<i64>> {
        let ms = match &self.upload_time {
            None | Some(Json::Null) => return Ok(None),
            Some(Json::Number(n)) => n.as_i64(),
            Some(Json::String(s)) => s.parse::<i64>().ok(),
            Some(_) => None,
        };
        match ms {
            Some(ms) if ms.checked_mul(1000).is_some_and(timefmt::representable) => Ok(Some(ms)),
            _ => Err(ApiError::bad_request(
                "api.upload_time must be milliseconds since the epoch, within the years 1 to 9999",
            )),
        }
    }

    /// How a scalar of `api` enters the checksum: its text, or nothing.
    fn text(value: &Option<Json>) -> String {
        match value {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }

    /// `api.checksum`, when given, is the upper-case hex MD5 of `api_key +
    /// api_version + upload_time + the raw bytes of the events`, with absent
    /// parts as empty text.
    fn verify_checksum(&self, events: &str) -> ApiResult<()> {
        let Some(given) = &self.checksum else {
            return Ok(());
        };
        let mut md5 = Md5::new();
        md5.update(self.api_key.as_deref().unwrap_or_default());
        md5.update(Self::text(&self.api_version));
        md5.update(Self::text(&self.upload_time));
        md5.update(events);
        let expected = hex::encode_upper(md5.finalize());
        if !given.eq_ignore_ascii_case(&expected) {
            return Err(ApiError::bad_request("api.checksum does not match the events"));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectBody {
    collection: String,
    #[serde(default)]
    api: Api,
    #[serde(default)]
    properties: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    #[serde(default)]
    api: Api,
    /// Checked element by element, so that one malformed event fails only
    /// itself.
    events: Json,
}

/// The events array once more, as raw text, for the checksum.
#[derive(Deserialize)]
struct RawEvents<'a> {
    #[serde(borrow)]
    events: &'a RawValue,
}

/// One element of a batch's events as an event.
fn batch_event(item: Json) -> Result<Event, String> {
    let Json::Object(mut fields) = item else { return Err("an event must be a JSON object".to_owned()) };
    if let Some(other) = fields.keys().find(|k| *k != "collection" && *k != "properties") {
        return Err(format!("unknown field `{other}`"));
    }
    let collection = match fields.remove("collection") {
        Some(Json::String(collection)) => collection,
        Some(_) => return Err("collection must be a string".to_owned()),
        None => return Err("missing field `collection`".to_owned()),
    };
    Event::new(&collection, fields.remove("properties")).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineBody {
    #[serde(default)]
    collection: Option<String>,
    #[serde(default)]
    properties: Option<Json>,
}

/// Parses a body that must be a JSON object (a struct would also take an
/// array of its fields in order).
fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> ApiResult<T> {
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn one() -> Response {
    json_response(StatusCode::OK, &1)
}

/// The request's side of every event's context. Headers are copied only
/// for a project with enrichers, which are told them.
pub(super) fn context(
    app: &AppState,
    project: String,
    api: Option<&Api>,
    headers: &HeaderMap,
    peer: SocketAddr,
    received_ms: i64,
) -> ApiResult<Context> {
    let header_list =
        if app.plugins.has_enrichers(&project) { super::plugin::header_list(headers) } else { Vec::new() };
    Ok(Context {
        headers: header_list,
        project,
        client_ip: Some(app.client_ip(headers, peer)),
        user_agent: header_str(headers, header::USER_AGENT).map(str::to_owned),
        referer: header_str(headers, header::REFERER).map(str::to_owned),
        upload_time_ms: api.map(Api::upload_time_ms).transpose()?.flatten(),
        request_id: api.and_then(|a| a.uuid.as_ref()).map(|u| Api::text(&Some(u.clone()))),
        received_ms,
    })
}

/// The first event an enricher rejected, as the client's 403 (Rakam
/// answers a crawler's event so).
fn refusal(stored: &Stored) -> Option<ApiError> {
    stored.fates.iter().flatten().find_map(|fate| match fate {
        Fate::Rejected { plugin, reason } => {
            Some(ApiError::forbidden(format!("the event was rejected by plugin {plugin}: {reason}")))
        }
        _ => None,
    })
}

/// The write key of a collection request, or failing that a master key.
async fn write_project(app: &AppState, key: Option<String>) -> ApiResult<String> {
    app.authorize_as(key, &[KeyKind::Write, KeyKind::Master], "api.api_key").await
}

pub async fn collect(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let received = app.now_ms();
    let bytes = read_body(&headers, body, app.config.http.max_body_bytes, "", app.config.http.body_timeout_ms).await?;
    let req: CollectBody = parse(utf8(&bytes)?)?;
    let project = write_project(&app, req.api.api_key.clone()).await?;
    let event = Event::new(&req.collection, req.properties).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let ctx = context(&app, project, Some(&req.api), &headers, peer, received)?;
    let stored = app.ingest.store(&ctx, vec![event]).await?;
    refusal(&stored).map_or_else(|| Ok(one()), Err)
}

/// A parsed `/event/batch` body.
pub struct ParsedBatch {
    pub api: Api,
    pub events: Vec<Event>,
    /// Indexes of the events that were refused.
    pub failed: Vec<usize>,
}

/// Parses an `/event/batch` body and checks its checksum; events that are
/// not well formed are listed in `failed` rather than failing the batch.
pub fn parse_batch(text: &str) -> ApiResult<ParsedBatch> {
    let req: BatchBody = parse(text)?;
    if req.api.checksum.is_some() {
        let raw: RawEvents<'_> = parse(text)?;
        req.api.verify_checksum(raw.events.get())?;
    }
    let Json::Array(items) = req.events else {
        return Err(ApiError::bad_request("events must be a JSON array of events"));
    };
    let mut events = Vec::with_capacity(items.len());
    let mut failed = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match batch_event(item) {
            Ok(event) => events.push(event),
            Err(reason) => {
                tracing::debug!(index = i, %reason, "refused an event of a batch");
                failed.push(i);
            }
        }
    }
    Ok(ParsedBatch { api: req.api, events, failed })
}

pub async fn batch(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let received = app.now_ms();
    let hint = "; send larger loads to /event/bulk";
    let bytes =
        read_body(&headers, body, app.config.http.batch_max_bytes, hint, app.config.http.body_timeout_ms).await?;
    let batch = parse_batch(utf8(&bytes)?)?;
    let project = write_project(&app, batch.api.api_key.clone()).await?;
    let ctx = context(&app, project, Some(&batch.api), &headers, peer, received)?;
    let given = batch.events.len() + batch.failed.len();
    let stored = app.ingest.store(&ctx, batch.events).await?;
    let mut failed = batch.failed;
    if let Some(fates) = &stored.fates {
        // Positions among the well-formed events, back to the request's.
        let original: Vec<usize> = (0..given).filter(|i| failed.binary_search(i).is_err()).collect();
        let rejected: Vec<usize> =
            fates.iter().zip(&original).filter(|(f, _)| matches!(f, Fate::Rejected { .. })).map(|(_, &i)| i).collect();
        failed.extend(rejected);
        failed.sort_unstable();
    }
    if failed.is_empty() { Ok(one()) } else { Ok(json_response(StatusCode::CONFLICT, &failed)) }
}

/// Bulk loads are all or nothing: any bad event refuses the whole body.
pub async fn bulk(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let received = app.now_ms();
    let bytes = read_body(&headers, body, app.config.http.bulk_max_bytes, "", app.config.http.body_timeout_ms).await?;
    let text = utf8(&bytes)?;
    let query = uri.query();
    let header_key = key_from(&headers, query, "master_key");
    let content_type = header_str(&headers, header::CONTENT_TYPE)
        .map(|c| c.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    let collection = query_param(query, "collection");
    let (project, events, api) = match content_type.as_str() {
        "text/csv" => {
            let project = app.authorize(header_key, &[KeyKind::Master]).await?;
            let collection = collection.ok_or_else(|| ApiError::bad_request("CSV bulk loads need ?collection="))?;
            let events = csv_events(&app, &project, &collection, text, query).await?;
            (project, events, None)
        }
        "application/x-ndjson" | "application/ndjson" | "application/jsonlines" | "application/x-jsonlines" => {
            let project = app.authorize(header_key, &[KeyKind::Master]).await?;
            (project, ndjson_events(text, collection.as_deref())?, None)
        }
        _ => {
            let batch = parse_batch(text)?;
            let project = app.authorize(header_key.or(batch.api.api_key.clone()), &[KeyKind::Master]).await?;
            if let Some(i) = batch.failed.first() {
                return Err(ApiError::bad_request(format!("event {i} is not a valid event; nothing was stored")));
            }
            (project, batch.events, Some(batch.api))
        }
    };
    let ctx = context(&app, project, api.as_ref(), &headers, peer, received)?;
    let (events, enriched) = app.ingest.enrich(&ctx, events).await?;
    if let Some(e) = refusal(&enriched) {
        return Err(ApiError::new(e.status, format!("{}; nothing was stored", e.message)));
    }
    app.ingest.append(&ctx, events).await?;
    Ok(success())
}

/// Runs the batch loop now: everything acknowledged before this request is
/// in columnar storage when it answers.
pub async fn bulk_commit(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    app.authorize(key_from(&headers, uri.query(), "master_key"), &[KeyKind::Master]).await?;
    // Records acknowledged before the commit become readable after the
    // log's read delay.
    tokio::time::sleep(app.log.read_delay()).await;
    // On another gateway than the master, as long as a failover may take.
    let wait = std::time::Duration::from_secs(30);
    app.master.commit(app.now_ms(), wait).await.map_err(|e| {
        tracing::error!(error = %e, "the batch could not be committed");
        ApiError::unavailable(format!("the batch could not be committed: {e}"))
    })?;
    Ok(success())
}

fn ndjson_events(text: &str, collection: Option<&str>) -> ApiResult<Vec<Event>> {
    let mut events = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| ApiError::bad_request(format!("line {}: {msg}", n + 1));
        let body: LineBody = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let name = body.collection.as_deref().or(collection).ok_or_else(|| bad("no collection".to_owned()))?;
        events.push(Event::new(name, body.properties).map_err(|e| bad(e.to_string()))?);
    }
    Ok(events)
}

/// CSV rows as events. With a header (the default, `use_header=true`) its
/// names are the fields; without one, the columns are the collection's
/// existing fields in schema order.
async fn csv_events(
    app: &AppState,
    project: &str,
    collection: &str,
    text: &str,
    query: Option<&str>,
) -> ApiResult<Vec<Event>> {
    let separator = match query_param(query, "column_separator").as_deref() {
        None | Some("") => b',',
        Some("\\t" | "tab") => b'\t',
        Some(s) if s.len() == 1 => s.as_bytes()[0],
        Some(s) => {
            return Err(ApiError::bad_request(format!("column_separator must be one character, not {s:?}")));
        }
    };
    let use_header = match query_param(query, "use_header").as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!("use_header must be true or false, not {other:?}")));
        }
    };
    let collection_name =
        crate::schema::names::collection_name(collection).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(line) = unterminated_quote(text, separator) {
        return Err(ApiError::bad_request(format!("CSV: the quoted field that starts on line {line} never ends")));
    }
    let mut reader =
        csv::ReaderBuilder::new().delimiter(separator).has_headers(use_header).from_reader(text.as_bytes());
    let columns: Vec<String> = if use_header {
        reader
            .headers()
            .map_err(|e| ApiError::bad_request(format!("CSV header: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect()
    } else {
        let schema = app.ingest.registry().current(project, &collection_name).await?.ok_or_else(|| {
            ApiError::bad_request("use_header=false needs a collection that exists, whose fields name the columns")
        })?;
        schema.fields.iter().map(|f| f.name.clone()).collect()
    };
    let mut events = Vec::new();
    for (n, row) in reader.records().enumerate() {
        let row = row.map_err(|e| ApiError::bad_request(format!("CSV row {}: {e}", n + 1)))?;
        if row.len() != columns.len() {
            return Err(ApiError::bad_request(format!(
                "CSV row {} has {} columns where the header has {}",
                n + 1,
                row.len(),
                columns.len()
            )));
        }
        let pairs = columns.iter().zip(row.iter()).map(|(c, v)| (c.clone(), sniff(v))).collect();
        events.push(
            Event::from_pairs(&collection_name, pairs)
                .map_err(|e| ApiError::bad_request(format!("CSV row {}: {e}", n + 1)))?,
        );
    }
    Ok(events)
}

/// The line on which a quoted CSV field starts that the text never closes
/// (the CSV reader would take the rest of the text as that field).
fn unterminated_quote(text: &str, separator: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut line, mut i, mut field_start) = (1, 0, true);
    while i < bytes.len() {
        let b = bytes[i];
        if field_start && b == b'"' {
            let opened_on = line;
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Some(opened_on),
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => break,
                    Some(b'\n') => {
                        line += 1;
                        i += 1;
                    }
                    Some(_) => i += 1,
                }
            }
            field_start = false;
        } else {
            if b == b'\n' {
                line += 1;
            }
            field_start = b == separator || b == b'\n' || b == b'\r';
        }
        i += 1;
    }
    None
}

/// A text value from CSV or a query string as the JSON value it spells:
/// empty is null, `true`/`false` booleans, numbers numbers, else a string.
fn sniff(text: &str) -> Json {
    if text.is_empty() {
        return Json::Null;
    }
    if text == "true" || text == "false" {
        return Json::Bool(text == "true");
    }
    let numeric = text.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'-' || b == b'.')
        && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if numeric {
        if let Ok(i) = text.parse::<i64>() {
            return Json::from(i);
        }
        if let Some(n) = text.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Json::Number(n);
        }
    }
    Json::String(text.to_owned())
}

/// A transparent 1x1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02,
    0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// `?collection=&api.api_key=&prop.X=…`, answered with a 1x1 GIF.
pub async fn pixel(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let received = app.now_ms();
    let query = bounded_query(&app, &uri)?;
    let mut api = Api::default();
    let mut collection = None;
    let mut properties = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "collection" => collection = Some(v.into_owned()),
            "api.api_key" => api.api_key = Some(v.into_owned()),
            "api.upload_time" => api.upload_time = Some(Json::String(v.into_owned())),
            "api.uuid" => api.uuid = Some(Json::String(v.into_owned())),
            // `_` is the usual cache-buster of pixel URLs.
            "api.api_version" | "api.library.name" | "api.library.version" | "_" => {}
            other => match other.strip_prefix("prop.") {
                Some(name) => properties.push((name.to_owned(), sniff(&v))),
                None => {
                    return Err(ApiError::bad_request(format!("unknown pixel parameter {other:?}")));
                }
            },
        }
    }
    let project = write_project(&app, api.api_key.clone()).await?;
    let collection = collection.ok_or_else(|| ApiError::bad_request("collection is missing"))?;
    let event = Event::from_pairs(&collection, properties).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let ctx = context(&app, project, Some(&api), &headers, peer, received)?;
    let stored = app.ingest.store(&ctx, vec![event]).await?;
    if let Some(e) = refusal(&stored) {
        return Err(e);
    }
    Ok(pixel_response())
}

/// A request's query string, within `http.max_body_bytes`.
pub(super) fn bounded_query<'u>(app: &AppState, uri: &'u Uri) -> ApiResult<&'u str> {
    let query = uri.query().unwrap_or_default();
    if query.len() > app.config.http.max_body_bytes {
        return Err(ApiError::new(StatusCode::URI_TOO_LONG, "the query string is too long"));
    }
    Ok(query)
}

/// The answer to a tracking pixel: a 1x1 GIF no cache keeps.
pub(super) fn pixel_response() -> Response {
    let mut response = (StatusCode::OK, PIXEL).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unterminated_quotes_are_found() {
        assert_eq!(unterminated_quote("a,b\n\"x,y\"\n1,2\n", b','), None);
        assert_eq!(unterminated_quote("a,b\n\"say \"\"hi\"\"\",2\n", b','), None);
        assert_eq!(unterminated_quote("a,b\n1,\"open\n2,3\n", b','), Some(2));
        assert_eq!(unterminated_quote("a;b\nx\"y;2\n", b';'), None);
        assert_eq!(unterminated_quote("a\tb\n1\t\"x", b'\t'), Some(2));
    }

    #[test]
    fn text_values_are_sniffed() {
        assert_eq!(sniff(""), Json::Null);
        assert_eq!(sniff("true"), json!(true));
        assert_eq!(sniff("42"), json!(42));
        assert_eq!(sniff("-1.5"), json!(-1.5));
        assert_eq!(sniff("1e3"), json!(1000.0));
        assert_eq!(sniff("2024-01-02"), json!("2024-01-02"));
        assert_eq!(sniff("12abc"), json!("12abc"));
        assert_eq!(sniff("-"), json!("-"));
    }

    #[test]
    fn checksum_covers_key_version_time_and_events() {
        let events = r#"[{"collection":"a"}]"#;
        let mut api = Api {
            api_key: Some("k".into()),
            api_version: Some(json!("1")),
            upload_time: Some(json!(5)),
            ..Api::default()
        };
        let sum = hex::encode_upper(Md5::digest(format!("k15{events}")));
        api.checksum = Some(sum);
        assert!(api.verify_checksum(events).is_ok());
        assert!(api.verify_checksum("[]").is_err());
    }
}
