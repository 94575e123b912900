//! `GET /stream/subscribe`: the event stream (Rakam's, pushed rather than
//! polled).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;
use sqlparser::ast::{Ident, ObjectName};

use super::query::reader;
use super::request::{header_str, json, query_param};
use super::{ApiError, ApiResult, AppState};
use crate::plugin::rewrite::QueryCaller;
use crate::query::rewrite::{self, Scope};
use crate::query::run::{QueryError, user_sql};
use crate::schema::names;
use crate::stream::{FeedQuery, Positions, StreamError, feed};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamRequest {
    /// `null` or missing: every collection.
    #[serde(default)]
    collections: Option<Vec<CollectionStream>>,
    #[serde(default)]
    columns: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionStream {
    name: String,
    #[serde(default)]
    filter: Option<String>,
}

/// `GET /stream/subscribe?read_key=&data={collections, columns}` with
/// `Accept: text/event-stream`.
pub async fn subscribe(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let accepts = header_str(&headers, header::ACCEPT).is_some_and(|a| a.contains("text/event-stream"));
    if !accepts {
        return Err(ApiError::new(StatusCode::NOT_ACCEPTABLE, "the response should accept text/event-stream"));
    }
    let caller = reader(&app, &uri, &headers).await?;
    // Mistakes in the request are answered as Rakam does: an SSE error
    // event, then the end of the stream.
    let (queries, resume) = match prepare(&app, &caller, &uri, &headers).await {
        Ok(prepared) => prepared,
        Err(e) => return Ok(sse(Body::from(crate::stream::error_event(e.status.as_u16(), &e.message)))),
    };
    match app.streams.subscribe(&caller.project, queries, resume).await {
        Ok(body) => Ok(sse(Body::from_stream(body))),
        Err(StreamError::TooMany(message)) => {
            Err(ApiError { retry_after: Some(1), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, message) })
        }
        Err(StreamError::Log(e)) => Err(e.into()),
    }
}

fn sse(body: Body) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer would hold messages back (nginx).
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn quoted(name: &str) -> String {
    Ident::with_quote('"', name).to_string()
}

/// The subscription's queries, rewritten and checked, and where it resumes.
async fn prepare(
    app: &AppState,
    caller: &QueryCaller,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<(Vec<FeedQuery>, Option<Positions>)> {
    let data =
        query_param(uri.query(), "data").ok_or_else(|| ApiError::bad_request("data query parameter is required"))?;
    let req: StreamRequest = json(data.as_bytes())?;
    let collections: crate::query::Collections =
        app.store.latest_schemas(&caller.project).await?.into_iter().map(|s| (s.collection, s.fields)).collect();
    let wanted: Vec<CollectionStream> = match req.collections {
        Some(list) if !list.is_empty() => list,
        _ => collections
            .keys()
            .filter(|c| !c.starts_with('$'))
            .map(|c| CollectionStream { name: c.clone(), filter: None })
            .collect(),
    };
    let columns: Option<Vec<String>> = req
        .columns
        .filter(|c| !c.is_empty())
        .map(|c| c.iter().map(|n| names::field_name(n).map_err(|e| ApiError::bad_request(e.to_string()))).collect())
        .transpose()?;
    let table_name = |c: &str| ObjectName::from(vec![Ident::with_quote('"', c)]);
    let table_name: &(dyn Fn(&str) -> ObjectName + Sync) = &table_name;
    let users_table = app.engine.users_table_name(&caller.project);
    if let Some(columns) = &columns {
        let fields_of = |c: &CollectionStream| {
            names::collection_name(&c.name).ok().and_then(|name| collections.get(&name)).cloned().unwrap_or_default()
        };
        if let Some(unknown) =
            columns.iter().find(|n| !wanted.iter().any(|c| fields_of(c).iter().any(|f| f.name == **n)))
        {
            return Err(ApiError::bad_request(format!(
                "column {unknown:?} is in none of the collections subscribed to"
            )));
        }
    }
    let mut queries = Vec::with_capacity(wanted.len());
    for c in wanted {
        let collection = names::collection_name(&c.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let Some(fields) = collections.get(&collection) else {
            return Err(ApiError::bad_request(format!("{collection} is not a collection of this project")));
        };
        let select = match &columns {
            None => "*".to_owned(),
            Some(columns) => columns
                .iter()
                .map(|n| {
                    if fields.iter().any(|f| f.name == *n) {
                        quoted(n)
                    } else {
                        format!("CAST(NULL AS VARCHAR) AS {}", quoted(n))
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        let filter = match c.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            None => String::new(),
            Some(f) => {
                let expr = rewrite::parse_expression(f)
                    .map_err(|e| ApiError::bad_request(format!("Couldn't parse {f}: {e}")))?;
                format!(" WHERE ({expr})")
            }
        };
        let sql = format!("SELECT {select} FROM {}{filter}", quoted(&collection));
        let sql = user_sql(app, caller, &sql).await?;
        let statement = {
            let derived = rewrite::DerivedNames::new();
            let scope = Scope {
                collections: &collections,
                table_name,
                users_table: &users_table,
                catalog: None,
                derived: &derived,
            };
            rewrite::rewrite(&sql, &scope).map_err(|e| QueryError::rewrite(e, &sql))?
        };
        let checked = feed::evaluate(&collection, fields, &[], &[&statement]).await.pop();
        if let Some(Err(e)) = checked {
            return Err(ApiError::bad_request(format!("the subscription's query of {collection} fails: {e}")));
        }
        queries.push(FeedQuery::new(collection, statement));
    }
    let last_id = header_str(headers, header::HeaderName::from_static("last-event-id"))
        .map(str::to_owned)
        .or_else(|| query_param(uri.query(), "last_event_id"));
    let resume = match last_id.filter(|id| !id.is_empty()) {
        None => None,
        Some(id) => Some(
            Positions::from_id(&id)
                .ok_or_else(|| ApiError::bad_request(format!("Last-Event-ID {id:?} is not an id of this stream")))?,
        ),
    };
    Ok((queries, resume))
}
