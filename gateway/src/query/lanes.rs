//! Where queries run: apart from the HTTP workers, on lanes, each a runtime
//! of its own threads, so that the operating system shares the cores
//! between lanes preemptively. A project runs at most
//! `project_concurrency` queries at once and never holds every lane, so
//! one tenant's expensive queries leave another's a lane of its own; its
//! further queries wait in a bounded queue of their own.
//!
//! Lane threads have large stacks: a statement passes the nesting limit
//! before it gets here, and the walks over it (printing, planning,
//! evaluation) recurse once per level.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Stack size of a lane's threads (reserved, not committed: a thread uses
/// what it touches).
const STACK_BYTES: usize = 256 << 20;

tokio::task_local! {
    /// When the running query must stop; read by the engine's own checks
    /// in work that does not yield (planning).
    static DEADLINE: Instant;
}

/// Whether the query running on this task is past its deadline.
pub fn past_deadline() -> bool {
    DEADLINE.try_with(|deadline| Instant::now() >= *deadline).unwrap_or(false)
}

#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error("{waiting} queries of this project are already waiting; try again when they have finished")]
    Busy { waiting: usize },
    #[error("the query ran longer than {0} s")]
    Timeout(u64),
    #[error("the query failed: {0}")]
    Failed(String),
    #[error("the query runtime is shutting down")]
    Closed,
}

/// How many queries run where.
#[derive(Debug, Clone, Copy)]
pub struct LaneSettings {
    pub lanes: usize,
    pub threads_per_lane: usize,
    pub project_concurrency: usize,
    pub project_queue: usize,
}

struct Lane {
    runtime: Option<tokio::runtime::Runtime>,
    running: AtomicUsize,
}

struct ProjectSlots {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
}

pub struct Lanes {
    lanes: Vec<Lane>,
    settings: LaneSettings,
    projects: Mutex<HashMap<String, Arc<ProjectSlots>>>,
}

impl Drop for Lanes {
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            if let Some(runtime) = lane.runtime.take() {
                runtime.shutdown_background();
            }
        }
    }
}

impl Lanes {
    pub fn new(settings: LaneSettings) -> std::io::Result<Lanes> {
        let settings = LaneSettings {
            lanes: settings.lanes.max(1),
            threads_per_lane: settings.threads_per_lane.max(1),
            project_concurrency: settings.project_concurrency.max(1),
            project_queue: settings.project_queue,
        };
        let lanes = (0..settings.lanes)
            .map(|i| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(settings.threads_per_lane)
                    .thread_name(format!("weir-query-{i}"))
                    .thread_stack_size(STACK_BYTES)
                    .enable_all()
                    .build()?;
                Ok(Lane { runtime: Some(runtime), running: AtomicUsize::new(0) })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Lanes { lanes, settings, projects: Mutex::new(HashMap::new()) })
    }

    fn slots(&self, project: &str) -> Arc<ProjectSlots> {
        let mut projects = self.projects.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slots) = projects.get(project) {
            return slots.clone();
        }
        projects
            .entry(project.to_owned())
            .or_insert_with(|| {
                // Never every lane, unless there is only one.
                let share = self.settings.project_concurrency.min(self.lanes.len().saturating_sub(1).max(1));
                Arc::new(ProjectSlots { running: Arc::new(Semaphore::new(share)), waiting: AtomicUsize::new(0) })
            })
            .clone()
    }

    /// Runs `work` for `project` on the least busy lane, within `timeout`
    /// from now (waiting for a turn included). Past it the work is
    /// dropped wherever it is.
    pub async fn run<F, T>(&self, project: &str, timeout: Duration, work: F) -> Result<T, LaneError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let deadline = Instant::now() + timeout;
        let timed_out = || LaneError::Timeout(timeout.as_secs());
        let permit = self.turn(project, deadline).await.map_err(|e| e.unwrap_or_else(timed_out))?;
        let lane = self
            .lanes
            .iter()
            .filter(|l| l.runtime.is_some())
            .min_by_key(|l| l.running.load(Ordering::Relaxed))
            .ok_or(LaneError::Closed)?;
        let runtime = lane.runtime.as_ref().ok_or(LaneError::Closed)?;
        lane.running.fetch_add(1, Ordering::Relaxed);
        let _running = Running(&lane.running);
        let task = runtime.spawn(DEADLINE.scope(deadline, async move {
            let _permit: OwnedSemaphorePermit = permit;
            work.await
        }));
        // A caller that stops waiting (a cancelled statement, a client
        // gone) stops the work too.
        let abort = AbortOnDrop(task.abort_handle());
        match tokio::time::timeout_at(deadline.into(), task).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.is_panic() => {
                let message = e.into_panic();
                let text = message
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| message.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "an internal error".to_owned());
                tracing::error!(project, panic = %text, "a query panicked");
                Err(LaneError::Failed(text))
            }
            Ok(Err(_)) => Err(LaneError::Closed),
            Err(_) => {
                abort.0.abort();
                Err(timed_out())
            }
        }
    }

    /// Waits for one of the project's running slots; `Err(None)` when the
    /// deadline passed while waiting.
    async fn turn(&self, project: &str, deadline: Instant) -> Result<OwnedSemaphorePermit, Option<LaneError>> {
        let slots = self.slots(project);
        if let Ok(permit) = slots.running.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = slots.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Running(&slots.waiting);
        if waiting >= self.settings.project_queue {
            return Err(Some(LaneError::Busy { waiting }));
        }
        match tokio::time::timeout_at(deadline.into(), slots.running.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Some(LaneError::Closed)),
            Err(_) => Err(None),
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts one in a counter while it lives.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(lanes: usize, project_concurrency: usize, project_queue: usize) -> Lanes {
        Lanes::new(LaneSettings { lanes, threads_per_lane: 1, project_concurrency, project_queue }).expect("lanes")
    }

    #[tokio::test]
    async fn a_busy_project_leaves_a_lane_to_others() {
        let lanes = Arc::new(lanes(2, 8, 100));
        // Work that never yields, the worst a query can do.
        let spin = |ms: u64| move || std::thread::sleep(Duration::from_millis(ms));
        let mut floods = Vec::new();
        for _ in 0..4 {
            let lanes = lanes.clone();
            let spin = spin(400);
            floods.push(tokio::spawn(
                async move { lanes.run("a", Duration::from_secs(30), async move { spin() }).await },
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        lanes.run("b", Duration::from_secs(30), async { 1 }).await.expect("b runs");
        assert!(started.elapsed() < Duration::from_millis(300), "b waited {:?} behind a", started.elapsed());
        for f in floods {
            f.await.expect("join").expect("a runs");
        }
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_stops_the_work() {
        let lanes = Arc::new(lanes(1, 1, 10));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(100);
        let waiting = {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                lanes
                    .run("a", Duration::from_secs(30), async move {
                        for i in 0.. {
                            if tx.send(i).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    })
                    .await
            })
        };
        assert_eq!(rx.recv().await, Some(0), "the work started");
        waiting.abort();
        // The work is dropped, and with it its end of the channel.
        let drained = tokio::time::timeout(Duration::from_secs(5), async { while rx.recv().await.is_some() {} }).await;
        assert!(drained.is_ok(), "the work went on after its caller stopped waiting");
        lanes.run("a", Duration::from_secs(1), async { 1 }).await.expect("the project's slot is free");
    }

    #[tokio::test]
    async fn waiting_is_bounded_and_timed() {
        let lanes = Arc::new(lanes(2, 1, 1));
        let long = {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                lanes.run("a", Duration::from_secs(5), tokio::time::sleep(Duration::from_secs(1))).await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.run("a", Duration::from_millis(200), async { 2 }).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = lanes.run("a", Duration::from_secs(5), async { 3 }).await;
        assert!(matches!(refused, Err(LaneError::Busy { waiting: 1 })), "{refused:?}");
        assert!(matches!(queued.await.expect("join"), Err(LaneError::Timeout(_))));
        long.await.expect("join").expect("long runs");
    }

    #[tokio::test]
    async fn a_panic_is_an_error_and_a_deadline_is_seen_inside() {
        let lanes = lanes(1, 1, 10);
        let failed = lanes.run("a", Duration::from_secs(5), async { panic!("boom") }).await;
        assert!(matches!(failed, Err(LaneError::Failed(m)) if m == "boom"));
        let (tx, rx) = std::sync::mpsc::channel();
        let timed_out = lanes
            .run("a", Duration::from_millis(100), async move {
                let before = past_deadline();
                std::thread::sleep(Duration::from_millis(150));
                let _ = tx.send((before, past_deadline()));
            })
            .await;
        // The caller gave up at the deadline; the work saw it pass.
        assert!(matches!(timed_out, Err(LaneError::Timeout(_))));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).expect("the work ran"), (false, true));
        assert!(!past_deadline(), "no deadline outside a query");
    }
}
