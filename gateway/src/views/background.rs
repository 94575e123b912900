//! The master refreshes views ahead of their readers: a view with an
//! interval is refreshed once three quarters of it have passed (or when it
//! has no snapshot yet), so that reads rarely wait. Each view's refresh is
//! a task of its own on its project's query lanes: one project's slow view
//! holds up no other's.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::ViewError;
use crate::app::App;
use crate::cluster::Role;
use crate::metadata::ViewRecord;
use crate::views::continuous::ContinuousError;

/// Refreshes and merges in flight, by project and name.
type Refreshes = JoinSet<((String, String), Result<(), ViewError>)>;

/// A continuous query's replay left unfinished this long (milliseconds)
/// after its creation is done again by the master.
const REPLAY_AFTER_MS: i64 = 30_000;

/// Due for a background refresh at `now_ms`.
fn due(view: &ViewRecord, now_ms: i64) -> bool {
    match (view.update_interval_ms, view.last_update) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(interval), Some(last)) => now_ms - last >= interval * 3 / 4,
    }
}

impl App {
    /// Refreshes due views while this node leads, checking every
    /// `batch.views_interval_ms` (0: never).
    pub fn spawn_view_refresher(self: &Arc<Self>) {
        let interval = self.config.batch.views_interval_ms;
        if interval == 0 {
            return;
        }
        let app = self.clone();
        tokio::spawn(async move {
            let mut role = app.master.election().role();
            loop {
                let current = *role.borrow_and_update();
                match current {
                    Role::Master { epoch } => {
                        tokio::select! {
                            changed = role.changed() => if changed.is_err() { return },
                            () = app.refresh_due_views(epoch, Duration::from_millis(interval)) => {
                                // Deposed: wait for the election to say so.
                                if role.changed().await.is_err() { return }
                            }
                        }
                    }
                    _ => {
                        if role.changed().await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }

    /// Continuous queries' master work: a replay that did not finish where
    /// the query was created is done again; many state files of a
    /// partition are merged.
    async fn keep_continuous_queries(
        self: &Arc<Self>,
        epoch: i64,
        running: &mut Refreshes,
        in_flight: &mut HashSet<(String, String)>,
    ) {
        let queries = match self.store.continuous_queries(None).await {
            Ok(queries) => queries,
            Err(e) => return tracing::warn!(error = %e, "cannot list continuous queries"),
        };
        for query in queries {
            // `continuous.` keys cannot be a view's (no table name has a dot).
            let key = (query.project.clone(), format!("continuous.{}", query.table_name));
            if !in_flight.insert(key.clone()) {
                continue;
            }
            let app = self.clone();
            running.spawn(async move {
                let now = app.now_ms();
                let mut done = Ok(());
                // One that is being created gets its replay there first.
                if query.replaying && now - query.created_at > REPLAY_AFTER_MS {
                    done = app.continuous.replay(&query, Some(epoch), now).await;
                }
                if done.is_ok() {
                    done = app.continuous.merge(&query, epoch, now).await;
                }
                let done = done.map_err(|e| match e {
                    ContinuousError::Deposed(epoch) => ViewError::Deposed(epoch),
                    e => ViewError::Invalid(e.to_string()),
                });
                (key, done)
            });
        }
    }

    /// Returns once a refresh finds `epoch` deposed.
    async fn refresh_due_views(self: &Arc<Self>, epoch: i64, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut running: Refreshes = JoinSet::new();
        let mut in_flight: HashSet<(String, String)> = HashSet::new();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                Some(done) = running.join_next() => {
                    let Ok((key, outcome)) = done else { continue };
                    in_flight.remove(&key);
                    match outcome {
                        Ok(()) => {}
                        Err(ViewError::Deposed(_)) => return,
                        Err(e) => tracing::warn!(project = key.0, view = key.1, error = %e, "a view's refresh failed"),
                    }
                    continue;
                }
            }
            let views = match self.store.views(None).await {
                Ok(views) => views,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list views to refresh");
                    continue;
                }
            };
            self.keep_continuous_queries(epoch, &mut running, &mut in_flight).await;
            let now = self.now_ms();
            for view in views.into_iter().filter(|v| due(v, now)) {
                let key = (view.project.clone(), view.table_name.clone());
                if !in_flight.insert(key.clone()) {
                    continue;
                }
                let app = self.clone();
                running.spawn(async move {
                    let refreshed = app.refresh_if(&key.0, &key.1, Some(epoch), |v| due(v, app.now_ms())).await;
                    (key, refreshed.map(drop))
                });
            }
        }
    }
}
