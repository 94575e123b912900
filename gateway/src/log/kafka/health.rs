//! Whether the brokers answer: probed in the background, so that `/health`
//! answers at once and appends fail fast while the brokers are down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::log::LogHealth;

pub struct Health {
    up: AtomicBool,
    detail: Mutex<String>,
}

impl Health {
    /// Assumed up until the first probe says otherwise, so that a gateway
    /// started before its brokers tries them at once.
    pub fn new() -> Arc<Self> {
        Arc::new(Health { up: AtomicBool::new(true), detail: Mutex::new("not probed yet".to_owned()) })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn report(&self) -> LogHealth {
        LogHealth { up: self.is_up(), detail: self.detail.lock().unwrap_or_else(|e| e.into_inner()).clone() }
    }

    fn set(&self, up: bool, detail: String) {
        if self.up.swap(up, Ordering::AcqRel) != up {
            if up {
                tracing::info!(detail, "the Kafka brokers answer again");
            } else {
                tracing::warn!(detail, "the Kafka brokers do not answer");
            }
        }
        *self.detail.lock().unwrap_or_else(|e| e.into_inner()) = detail;
    }

    /// Probes the brokers every `interval` with a metadata request, until
    /// the returned task is aborted.
    pub fn spawn_probe(
        self: &Arc<Self>,
        client: Arc<BaseConsumer>,
        interval: Duration,
        timeout: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let health = self.clone();
        tokio::spawn(async move {
            loop {
                let client = client.clone();
                let probe = tokio::task::spawn_blocking(move || {
                    client.fetch_metadata(None, timeout).map(|m| m.brokers().len())
                })
                .await;
                match probe {
                    Ok(Ok(brokers)) if brokers > 0 => health.set(true, format!("{brokers} broker(s) answer")),
                    Ok(Ok(_)) => health.set(false, "no broker in the cluster's metadata".to_owned()),
                    Ok(Err(e)) => health.set(false, e.to_string()),
                    Err(e) => health.set(false, e.to_string()),
                }
                tokio::time::sleep(interval).await;
            }
        })
    }
}
