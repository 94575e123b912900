//! Statements in flight: each runs in a task of its own from `POST
//! /v1/statement` on, and is read a page per token. A token asked for again
//! gets the same page (a client's retry); a statement nobody asks about for
//! `trino.abandon_after_s` is cancelled and forgotten, and one read to its
//! end is forgotten shortly after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tokio::sync::watch;

use super::page::{self, Cursor, Progress};
use super::{TrinoConfig, TrinoError, execute};
use crate::app::App;
use crate::plugin::rewrite::QueryCaller;
use crate::query::engine::QueryOutput;

/// How long a statement read to its end stays, for a retry of its last page.
const KEEP_FINISHED: Duration = Duration::from_secs(10);

/// What a client's headers say about its session.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// `X-Trino-` or `X-Presto-`, as the client spoke.
    pub prefix: &'static str,
    pub user: String,
    /// Prepared statements by name (`X-Trino-Prepared-Statement`).
    pub prepared: HashMap<String, String>,
}

/// What a statement ended with.
pub enum Outcome {
    Rows(QueryOutput),
    /// A statement without rows (`USE`, `PREPARE`, …): its update type and
    /// the session headers it answers (names without the prefix).
    Update {
        kind: &'static str,
        headers: Vec<(&'static str, String)>,
    },
}

/// A page's answer: its JSON and the headers to send with it.
#[derive(Clone)]
pub struct Answer {
    pub body: Json,
    pub headers: Vec<(String, String)>,
}

/// A token neither the next nor the last one.
pub enum PageError {
    Gone,
}

#[derive(Debug, thiserror::Error)]
#[error("{0} statements of this project are open; read or cancel some first (trino.max_open_per_project)")]
pub struct TooMany(pub usize);

struct Inner {
    result: Option<Result<Outcome, TrinoError>>,
    next_token: u64,
    last: Option<Answer>,
    cursor: Cursor,
    rows_sent: u64,
    last_seen: Instant,
    /// The last page (or the error) was answered.
    ended: bool,
}

pub struct Statement {
    pub id: String,
    slug: String,
    pub project: String,
    pub sql: String,
    prefix: &'static str,
    started: Instant,
    done: watch::Sender<bool>,
    inner: Mutex<Inner>,
    task: OnceLock<tokio::task::AbortHandle>,
}

pub struct Statements {
    config: TrinoConfig,
    open: Mutex<HashMap<String, Arc<Statement>>>,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

impl Statements {
    /// The registry, with a task that forgets abandoned and finished
    /// statements for as long as the registry lives.
    pub fn new(config: TrinoConfig) -> Arc<Statements> {
        let statements = Arc::new(Statements { config, open: Mutex::new(HashMap::new()) });
        let weak = Arc::downgrade(&statements);
        tokio::spawn(sweep(weak));
        statements
    }

    pub fn config(&self) -> &TrinoConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Statement>>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a statement for a caller.
    pub fn start(
        &self,
        app: Arc<App>,
        caller: QueryCaller,
        session: Session,
        sql: String,
    ) -> Result<Arc<Statement>, TooMany> {
        let now = chrono::Utc::now();
        let id = format!("{}_{:05}_{}", now.format("%Y%m%d_%H%M%S"), rand::random::<u32>() % 100_000, random_hex(3));
        let statement = Arc::new(Statement {
            id: id.clone(),
            slug: random_hex(8),
            project: caller.project.clone(),
            sql: sql.clone(),
            prefix: session.prefix,
            started: Instant::now(),
            done: watch::channel(false).0,
            inner: Mutex::new(Inner {
                result: None,
                next_token: 0,
                last: None,
                cursor: Cursor::default(),
                rows_sent: 0,
                last_seen: Instant::now(),
                ended: false,
            }),
            task: OnceLock::new(),
        });
        {
            let mut open = self.lock();
            let of_project = open.values().filter(|s| s.project == caller.project && !s.ended()).count();
            if of_project >= self.config.max_open_per_project {
                return Err(TooMany(of_project));
            }
            open.insert(id, statement.clone());
        }
        let running = statement.clone();
        let task = tokio::spawn(async move {
            // A statement whose work panicked fails; it does not run forever.
            let work = std::panic::AssertUnwindSafe(execute::execute(&app, &caller, &session, &sql));
            let result = futures::FutureExt::catch_unwind(work).await.unwrap_or_else(|_| {
                tracing::error!(project = caller.project, "a statement's work panicked");
                Err(TrinoError::internal("the statement failed inside the gateway"))
            });
            running.finish(result);
        });
        let _ = statement.task.set(task.abort_handle());
        Ok(statement)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Statement>> {
        self.lock().get(id).cloned()
    }

    /// Cancels a statement of `project`; false if there is none.
    pub fn cancel(&self, id: &str, project: &str) -> bool {
        let Some(statement) = self.get(id).filter(|s| s.project == project) else { return false };
        statement.stop(TrinoError::canceled());
        true
    }
}

/// Every second: statements abandoned are stopped, and those ended long
/// enough ago are forgotten.
async fn sweep(statements: Weak<Statements>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Some(statements) = statements.upgrade() else { return };
        let abandon_after = Duration::from_secs(statements.config.abandon_after_s);
        let mut gone = Vec::new();
        for statement in statements.lock().values() {
            let (idle, ended) = {
                let inner = statement.lock();
                (inner.last_seen.elapsed(), inner.ended)
            };
            if ended && idle > KEEP_FINISHED {
                gone.push(statement.id.clone());
            } else if !ended && idle > abandon_after {
                tracing::info!(id = statement.id, project = statement.project, "a statement was abandoned");
                statement.stop(TrinoError::abandoned(statements.config.abandon_after_s));
                gone.push(statement.id.clone());
            }
        }
        let mut open = statements.lock();
        for id in gone {
            open.remove(&id);
        }
    }
}

impl Statement {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ended(&self) -> bool {
        self.lock().ended
    }

    fn finish(&self, result: Result<Outcome, TrinoError>) {
        let mut inner = self.lock();
        if inner.result.is_none() {
            inner.result = Some(result);
        }
        drop(inner);
        self.done.send_replace(true);
    }

    /// Stops the statement's work and answers `error` from its next page on.
    fn stop(&self, error: TrinoError) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
        let mut inner = self.lock();
        if !inner.ended {
            inner.result = Some(Err(error));
        }
        drop(inner);
        self.done.send_replace(true);
    }

    pub fn uri(&self, base: &str, token: u64) -> String {
        format!("{base}/v1/statement/executing/{}/{}/{token}", self.id, self.slug)
    }

    pub fn slug_is(&self, slug: &str) -> bool {
        self.slug == slug
    }

    fn progress(&self, state: &str, inner: &Inner) -> Json {
        let elapsed_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        page::stats(&Progress { state, elapsed_ms, rows: inner.rows_sent, bytes: 0 })
    }

    fn answer(&self, base: &str, state: &str, inner: &Inner, next: Option<u64>) -> Json {
        let mut body = json!({
            "id": self.id,
            "infoUri": format!("{base}/v1/query/{}", self.id),
            "stats": self.progress(state, inner),
            "warnings": [],
        });
        if let Some(token) = next {
            body["nextUri"] = Json::from(self.uri(base, token));
            body["partialCancelUri"] = Json::from(format!("{base}/v1/stage/{}.0", self.id));
        }
        body
    }

    /// The first answer: queued, with where to ask next.
    pub fn queued(&self, base: &str) -> Json {
        let inner = self.lock();
        self.answer(base, "QUEUED", &inner, Some(0))
    }

    /// The state as `/v1/query/{id}` tells it.
    pub fn info(&self, base: &str) -> Json {
        let inner = self.lock();
        let state = match &inner.result {
            None => "RUNNING",
            Some(Ok(_)) => "FINISHED",
            Some(Err(_)) => "FAILED",
        };
        json!({"queryId": self.id, "state": state, "query": self.sql, "self": format!("{base}/v1/query/{}", self.id), "queryStats": self.progress(state, &inner)})
    }

    /// The page for `token`, waiting up to `max_wait` for a running
    /// statement.
    pub async fn page(
        &self,
        base: &str,
        token: u64,
        max_wait: Duration,
        page_bytes: usize,
    ) -> Result<Answer, PageError> {
        {
            let mut inner = self.lock();
            inner.last_seen = Instant::now();
            if token + 1 == inner.next_token {
                return inner.last.clone().ok_or(PageError::Gone);
            }
            if token != inner.next_token {
                return Err(PageError::Gone);
            }
        }
        let mut done = self.done.subscribe();
        let _ = tokio::time::timeout(max_wait, done.wait_for(|d| *d)).await;
        let mut inner = self.lock();
        if token + 1 == inner.next_token {
            // Another request for the same token answered meanwhile.
            return inner.last.clone().ok_or(PageError::Gone);
        }
        if token != inner.next_token {
            return Err(PageError::Gone);
        }
        inner.last_seen = Instant::now();
        let prefix = self.prefix;
        let answer = match inner.result.take() {
            None => Answer { body: self.answer(base, "RUNNING", &inner, Some(token + 1)), headers: Vec::new() },
            Some(Err(e)) => {
                let mut body = self.answer(base, "FAILED", &inner, None);
                body["error"] = e.to_json();
                inner.result = Some(Err(e));
                inner.ended = true;
                Answer { body, headers: Vec::new() }
            }
            Some(Ok(Outcome::Update { kind, headers })) => {
                let mut body = self.answer(base, "FINISHED", &inner, None);
                body["updateType"] = Json::from(kind);
                inner.ended = true;
                let headers = headers.iter().map(|(name, value)| (format!("{prefix}{name}"), value.clone())).collect();
                inner.result = Some(Ok(Outcome::Update { kind, headers: Vec::new() }));
                Answer { body, headers }
            }
            Some(Ok(Outcome::Rows(output))) => {
                let mut cursor = inner.cursor;
                let rows = page::take(&output.batches, &mut cursor, page_bytes);
                let more = page::more(&output.batches, &cursor);
                inner.cursor = cursor;
                inner.rows_sent += rows.len() as u64;
                let (state, next) = if more { ("RUNNING", Some(token + 1)) } else { ("FINISHED", None) };
                let mut body = self.answer(base, state, &inner, next);
                body["columns"] = page::columns(&output.schema);
                if !rows.is_empty() {
                    body["data"] = Json::Array(rows);
                }
                if more {
                    inner.result = Some(Ok(Outcome::Rows(output)));
                } else {
                    inner.ended = true;
                    let empty =
                        QueryOutput { batches: Vec::new(), schema: output.schema.clone(), views: Default::default() };
                    inner.result = Some(Ok(Outcome::Rows(empty)));
                }
                Answer { body, headers: Vec::new() }
            }
        };
        inner.next_token = token + 1;
        inner.last = Some(answer.clone());
        Ok(answer)
    }
}
