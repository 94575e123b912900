//! The election seam: which node may do master work, under which epoch.

use async_trait::async_trait;
use tokio::sync::watch;

/// This node's part in the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This node leads, under an epoch it has claimed in the metadata store.
    Master { epoch: i64 },
    /// Another node leads, or none yet.
    Follower,
    /// This node cannot tell (it lost its link to the election): master
    /// work is paused until it can.
    Unknown,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master { .. } => "master",
            Role::Follower => "follower",
            Role::Unknown => "unknown",
        }
    }
}

#[async_trait]
pub trait Election: Send + Sync + 'static {
    /// `single` or `zookeeper`.
    fn backend(&self) -> &'static str;
    /// This node's role, now and as it changes. Master work runs only
    /// while it is [`Role::Master`], and stops as soon as it is not.
    fn role(&self) -> watch::Receiver<Role>;
    /// The epoch of the newest lead this node knows of (its own while it
    /// leads); 0 before any.
    fn epoch(&self) -> i64;
    /// Gives up the lead of `epoch`: a commit found the fence taken by a
    /// newer master.
    async fn step_down(&self, epoch: i64);
    /// Leaves the election at shutdown, so that another node may lead at
    /// once.
    async fn close(&self);
}
