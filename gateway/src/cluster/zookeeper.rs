//! `election = "zookeeper://host:port[,host:port…]/chroot"`: one master
//! among gateways, elected with ZooKeeper. Each node joins with an
//! ephemeral sequential znode under `<chroot>/master` (a persistent
//! parent); the lowest leads, every other watches only its predecessor.
//! The lead's epoch is its znode's `czxid`, claimed in the metadata fence
//! before any master work.
//!
//! The client (`zookeeper-async`) reports a lost session only as a new one
//! and notices a dead link late, so this side keeps its own account: master
//! work pauses on any state but `Connected`, and whenever no request sent
//! within the last two thirds of the session timeout has been answered (the
//! server cannot have expired a session it heard from since); the lead is
//! over once the node's own znode is gone (its session expired). A deposed
//! master that still believes it leads commits nothing: the fence refuses.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};
use zookeeper_async::{Acl, CreateMode, ZkState, ZooKeeper, ZooKeeperExt};

use super::election::{Election, Role};
use super::{Error, Result, now_ms};
use crate::metadata::MetadataStore;

/// Settings of `election = "zookeeper://…"` (`[zookeeper]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZooKeeperConfig {
    /// Milliseconds of the ZooKeeper session (at least 2000): a master cut
    /// off from ZooKeeper pauses its work after two thirds of it, and
    /// another node leads once it has passed.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
}

fn default_session_timeout_ms() -> u64 {
    6_000
}

impl Default for ZooKeeperConfig {
    fn default() -> Self {
        ZooKeeperConfig { session_timeout_ms: default_session_timeout_ms() }
    }
}

impl ZooKeeperConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.session_timeout_ms < 2_000 {
            return Err("zookeeper.session_timeout_ms must be at least 2000".to_owned());
        }
        Ok(())
    }
}

/// Where the election lives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    hosts: Vec<String>,
    /// The election's folder, `/weir` unless the URL names one.
    chroot: String,
}

fn parse(url: &str) -> Result<Target> {
    let rest = url.strip_prefix("zookeeper://").ok_or_else(|| Error::UnsupportedUrl(url.to_owned()))?;
    let (hosts, chroot) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let hosts: Vec<String> = hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect();
    if hosts.is_empty() || hosts.iter().any(|h| !h.contains(':')) {
        return Err(Error::UnsupportedUrl(url.to_owned()));
    }
    let chroot = if chroot.is_empty() { "/weir".to_owned() } else { chroot.to_owned() };
    Ok(Target { hosts, chroot })
}

pub struct ZooKeeperElection {
    role: watch::Sender<Role>,
    /// The epoch of the newest lead seen.
    epoch: AtomicI64,
    step_down: mpsc::UnboundedSender<i64>,
    closing: Arc<Notify>,
    closed: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What this node knows in one session.
struct Campaign {
    target: Target,
    store: Arc<dyn MetadataStore>,
    holder: String,
    session: Duration,
    role: watch::Sender<Role>,
    election: Arc<ZooKeeperElection>,
}

/// How a session's campaign ended.
enum Ended {
    /// Start again with a new session.
    Again,
    /// The node is shutting down.
    Closing,
}

impl ZooKeeperElection {
    /// Joins the election; the node follows (or waits, `unknown`) until
    /// ZooKeeper names it.
    pub async fn start(
        url: &str,
        config: &ZooKeeperConfig,
        store: Arc<dyn MetadataStore>,
        holder: String,
    ) -> Result<Arc<Self>> {
        let target = parse(url)?;
        let (step_down, mut stepped_down) = mpsc::unbounded_channel();
        let election = Arc::new(ZooKeeperElection {
            role: watch::Sender::new(Role::Unknown),
            epoch: AtomicI64::new(0),
            step_down,
            closing: Arc::new(Notify::new()),
            closed: tokio::sync::Mutex::new(None),
        });
        let campaign = Campaign {
            target,
            store,
            holder,
            session: Duration::from_millis(config.session_timeout_ms),
            role: election.role.clone(),
            election: election.clone(),
        };
        let closing = election.closing.clone();
        let task = tokio::spawn(async move {
            loop {
                match campaign.run_session(&mut stepped_down, &closing).await {
                    Ended::Again => tokio::time::sleep(Duration::from_millis(200)).await,
                    Ended::Closing => return,
                }
            }
        });
        *election.closed.lock().await = Some(task);
        Ok(election)
    }
}

fn set(role: &watch::Sender<Role>, new: Role) {
    role.send_if_modified(|r| {
        let changed = *r != new;
        *r = new;
        changed
    });
}

impl Campaign {
    /// One ZooKeeper session: join, follow, lead, until the session or the
    /// lead is lost.
    async fn run_session(&self, stepped_down: &mut mpsc::UnboundedReceiver<i64>, closing: &Notify) -> Ended {
        set(&self.role, Role::Unknown);
        // The client always tries the first host first: spread the nodes.
        let mut hosts = self.target.hosts.clone();
        rand::seq::SliceRandom::shuffle(hosts.as_mut_slice(), &mut rand::rng());
        let (state_tx, mut state) = watch::channel(ZkState::Connecting);
        let hosts = hosts.join(",");
        let connect = ZooKeeper::connect_with_retry_time(
            &hosts,
            self.session,
            |_: zookeeper_async::WatchedEvent| {},
            Duration::from_millis(200),
        );
        let zk = tokio::select! {
            zk = connect => match zk {
                Ok(zk) => zk,
                Err(e) => {
                    tracing::warn!(error = ?e, "cannot reach ZooKeeper; trying again");
                    return Ended::Again;
                }
            },
            () = closing.notified() => return Ended::Closing,
        };
        zk.add_listener(move |s| {
            let _ = state_tx.send(s);
        });
        let ended = tokio::select! {
            ended = self.campaign(&zk, &mut state, stepped_down) => ended,
            () = closing.notified() => Ended::Closing,
        };
        set(&self.role, if matches!(ended, Ended::Closing) { Role::Follower } else { Role::Unknown });
        // Closing the session deletes this node's znode at once, so the
        // next in line need not wait for it to expire.
        let _ = tokio::time::timeout(self.session, zk.close()).await;
        ended
    }

    async fn request<T>(
        &self,
        call: impl std::future::Future<Output = zookeeper_async::ZkResult<T>>,
    ) -> Option<zookeeper_async::ZkResult<T>> {
        tokio::time::timeout(self.session / 3, call).await.ok()
    }

    async fn campaign(
        &self,
        zk: &ZooKeeper,
        state: &mut watch::Receiver<ZkState>,
        stepped_down: &mut mpsc::UnboundedReceiver<i64>,
    ) -> Ended {
        let parent = format!("{}/master", self.target.chroot);
        if !matches!(self.request(zk.ensure_path(&parent)).await, Some(Ok(()))) {
            tracing::warn!(path = parent, "cannot reach ZooKeeper to join the election; trying again");
            return Ended::Again;
        }
        let created = self
            .request(zk.create(
                &format!("{parent}/n-"),
                self.holder.clone().into_bytes(),
                Acl::open_unsafe().clone(),
                CreateMode::EphemeralSequential,
            ))
            .await;
        let Some(Ok(mine)) = created else {
            tracing::warn!("cannot join the election; trying again with a new session");
            return Ended::Again;
        };
        let name = mine.rsplit('/').next().unwrap_or_default().to_owned();
        loop {
            let Some(Ok(mut children)) = self.request(zk.get_children(&parent, false)).await else {
                return Ended::Again;
            };
            children.sort_by_key(|c| sequence(c));
            let Some(place) = children.iter().position(|c| *c == name) else {
                tracing::warn!("this node's place in the election is gone (its session expired)");
                return Ended::Again;
            };
            if let Some(Ok(Some(first))) = self.request(zk.exists(&format!("{parent}/{}", children[0]), false)).await {
                self.election.epoch.fetch_max(first.czxid, Ordering::Relaxed);
            }
            if place == 0 {
                return self.lead(zk, &mine, state, stepped_down).await;
            }
            set(&self.role, Role::Follower);
            // Watch only the predecessor; look again when it goes, and
            // check now and then that this node's own znode is there.
            let gone = Arc::new(Notify::new());
            let wake = gone.clone();
            let predecessor = format!("{parent}/{}", children[place - 1]);
            match self.request(zk.exists_w(&predecessor, move |_| wake.notify_one())).await {
                Some(Ok(_)) => {}
                Some(Err(zookeeper_async::ZkError::NoNode)) => continue,
                _ => return Ended::Again,
            }
            loop {
                tokio::select! {
                    () = gone.notified() => break,
                    changed = state.changed() => {
                        if changed.is_err() {
                            return Ended::Again;
                        }
                        if *state.borrow() != ZkState::Connected {
                            set(&self.role, Role::Unknown);
                        } else {
                            break;
                        }
                    }
                    () = tokio::time::sleep(self.session / 2) => break,
                }
            }
            if *state.borrow() != ZkState::Connected {
                return Ended::Again;
            }
        }
    }

    /// Leads while this node's znode stands and ZooKeeper answers.
    async fn lead(
        &self,
        zk: &ZooKeeper,
        mine: &str,
        state: &mut watch::Receiver<ZkState>,
        stepped_down: &mut mpsc::UnboundedReceiver<i64>,
    ) -> Ended {
        let sent = Instant::now();
        let Some(Ok(Some(stat))) = self.request(zk.exists(mine, false)).await else { return Ended::Again };
        let epoch = stat.czxid;
        match self.claim(epoch).await {
            Ok(true) => {}
            Ok(false) => return Ended::Again,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim the lead in the metadata store; trying again");
                return Ended::Again;
            }
        }
        self.election.epoch.fetch_max(epoch, Ordering::Relaxed);
        tracing::info!(epoch, "this node leads (election = zookeeper)");
        set(&self.role, Role::Master { epoch });
        let mut answered = sent;
        let mut ticks = tokio::time::interval(self.session / 6);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let sent = Instant::now();
                    match self.request(zk.exists(mine, false)).await {
                        Some(Ok(Some(_))) => answered = sent,
                        Some(Ok(None)) => {
                            tracing::warn!(epoch, "this node's session expired: it no longer leads");
                            return Ended::Again;
                        }
                        _ => {}
                    }
                }
                changed = state.changed() => {
                    if changed.is_err() {
                        return Ended::Again;
                    }
                }
                Some(fenced) = stepped_down.recv() => {
                    if fenced == epoch {
                        return Ended::Again;
                    }
                }
            }
            let connected = *state.borrow() == ZkState::Connected;
            if connected && answered.elapsed() < self.session * 2 / 3 {
                set(&self.role, Role::Master { epoch });
            } else {
                set(&self.role, Role::Unknown);
            }
            if answered.elapsed() > self.session {
                tracing::warn!(epoch, "no answer from ZooKeeper for a whole session: this node no longer leads");
                return Ended::Again;
            }
        }
    }

    /// Claims `epoch` in the fence; `true` also when this node holds it
    /// already (a reconnect within the session).
    async fn claim(&self, epoch: i64) -> Result<bool> {
        if self.store.claim_epoch(epoch, &self.holder, now_ms()).await? {
            return Ok(true);
        }
        let fence = self.store.master_epoch().await?;
        if fence.epoch == epoch && fence.holder == self.holder {
            return Ok(true);
        }
        tracing::error!(
            epoch,
            fenced = fence.epoch,
            "the fence holds a newer epoch than this lead's: if ZooKeeper's data was reset, \
             reset the fence (README, \"ZooKeeper's data is lost\")"
        );
        Ok(false)
    }
}

/// The sequence number ZooKeeper appended to a znode's name.
fn sequence(name: &str) -> u64 {
    name.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Election for ZooKeeperElection {
    fn backend(&self) -> &'static str {
        "zookeeper"
    }

    fn role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Relaxed)
    }

    async fn step_down(&self, epoch: i64) {
        if *self.role.borrow() == (Role::Master { epoch }) {
            set(&self.role, Role::Follower);
        }
        let _ = self.step_down.send(epoch);
    }

    async fn close(&self) {
        self.closing.notify_one();
        if let Some(task) = self.closed.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse("zookeeper://a:1,b:2/weir/prod").expect("url");
        assert_eq!(t, Target { hosts: vec!["a:1".into(), "b:2".into()], chroot: "/weir/prod".into() });
        assert_eq!(parse("zookeeper://a:1").expect("url").chroot, "/weir");
        assert!(parse("zookeeper:///x").is_err());
        assert!(parse("zookeeper://nohostport/x").is_err());
        assert!(parse("zk://a:1").is_err());
        assert_eq!(sequence("n-0000000012"), 12);
    }
}
