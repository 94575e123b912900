//! `election = "single"`: this node leads, alone. Its lead is a lease on
//! the metadata store's fence, renewed while it runs, so that a second
//! gateway started on the same store never loads beside the first: on a
//! log of its own (files) it is refused at start, since no master could
//! ever load what it acknowledged; on a shared log (Kafka) it waits as a
//! follower and takes the lead once the first's lease runs out. A node
//! that restarts with the same data folder takes its lead back at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use super::election::{Election, Role};
use super::{Error, Result, now_ms};
use crate::metadata::MetadataStore;

/// Settings of `election = "single"` (`[single]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SingleConfig {
    /// Milliseconds a lead lasts without renewal (renewed every quarter of
    /// it). Another gateway on the same metadata store is refused while the
    /// lead is this recent, and may lead once it is older.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
}

fn default_lease_ms() -> u64 {
    10_000
}

impl Default for SingleConfig {
    fn default() -> Self {
        SingleConfig { lease_ms: default_lease_ms() }
    }
}

pub struct SingleElection {
    store: Arc<dyn MetadataStore>,
    holder: String,
    lease: Duration,
    role: watch::Sender<Role>,
    /// The epoch this node holds, also while it cannot renew it.
    held: Mutex<Option<i64>>,
    epoch: AtomicI64,
    closed: AtomicBool,
}

impl SingleElection {
    /// Claims the lead. When another node holds it: refuses on a log of
    /// this node's own, follows on a shared one.
    pub async fn start(
        store: Arc<dyn MetadataStore>,
        holder: String,
        config: &SingleConfig,
        shared_log: bool,
    ) -> Result<Arc<Self>> {
        let lease = Duration::from_millis(config.lease_ms.max(100));
        let now = now_ms();
        let claimed = store.claim_next_epoch(&holder, now, now - lease.as_millis() as i64).await?;
        let fence = store.master_epoch().await?;
        let role = match claimed {
            Some(epoch) => {
                tracing::info!(epoch, "this node leads (election = single)");
                Role::Master { epoch }
            }
            None if shared_log => {
                tracing::warn!(holder = fence.holder, "another gateway leads on this metadata store: this one follows");
                Role::Follower
            }
            None => return Err(Error::AlreadyLed { holder: fence.holder, ago_ms: now - fence.renewed_at }),
        };
        let election = Arc::new(SingleElection {
            store,
            holder,
            lease,
            role: watch::Sender::new(role),
            held: Mutex::new(claimed),
            epoch: AtomicI64::new(fence.epoch),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(election.clone().keep());
        Ok(election)
    }

    /// Renews the lead while it holds one, and takes it back when the
    /// other holder's lease has run out.
    async fn keep(self: Arc<Self>) {
        let lease_ms = self.lease.as_millis() as i64;
        let mut renewed = now_ms();
        loop {
            tokio::time::sleep(self.lease / 4).await;
            let mut held = self.held.lock().await;
            if self.closed.load(Ordering::Relaxed) {
                return;
            }
            let now = now_ms();
            match *held {
                Some(epoch) => match self.store.renew_epoch(epoch, now).await {
                    Ok(true) => {
                        renewed = now;
                        self.role.send_if_modified(|r| replace(r, Role::Master { epoch }));
                    }
                    Ok(false) => {
                        tracing::error!(epoch, "another node has claimed the lead: master work stops");
                        *held = None;
                        self.role.send_replace(Role::Follower);
                    }
                    Err(e) if now - renewed > lease_ms / 2 => {
                        tracing::warn!(error = %e, "the lead cannot be renewed: master work pauses");
                        self.role.send_if_modified(|r| replace(r, Role::Unknown));
                    }
                    Err(e) => tracing::warn!(error = %e, "the lead cannot be renewed; trying again"),
                },
                None => match self.store.claim_next_epoch(&self.holder, now, now - lease_ms).await {
                    Ok(Some(epoch)) => {
                        tracing::info!(epoch, "this node leads again (election = single)");
                        *held = Some(epoch);
                        renewed = now;
                        self.epoch.store(epoch, Ordering::Relaxed);
                        self.role.send_replace(Role::Master { epoch });
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "the lead cannot be claimed; trying again"),
                },
            }
        }
    }
}

fn replace(role: &mut Role, new: Role) -> bool {
    let changed = *role != new;
    *role = new;
    changed
}

#[async_trait]
impl Election for SingleElection {
    fn backend(&self) -> &'static str {
        "single"
    }

    fn role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Relaxed)
    }

    async fn step_down(&self, epoch: i64) {
        let mut held = self.held.lock().await;
        if *held == Some(epoch) {
            *held = None;
            self.role.send_replace(Role::Follower);
        }
    }

    async fn close(&self) {
        let mut held = self.held.lock().await;
        self.closed.store(true, Ordering::Relaxed);
        if let Some(epoch) = held.take() {
            self.role.send_replace(Role::Follower);
            if let Err(e) = self.store.release_epoch(epoch).await {
                tracing::warn!(error = %e, "could not release the lead");
            }
        }
    }
}
