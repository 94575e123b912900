//! Query memory: each query draws from a pool of its own, capped at the
//! per-query limit, and every pool from the gateway's total. The engine's
//! operators that hold data (sorts, aggregations, joins, the collected
//! result) reserve it here; those that can spill to disk do so when a
//! reservation is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};

/// The start of the message of a query over its own limit.
pub const QUERY_LIMIT: &str = "the query needs more memory than";
/// The start of the message of a query refused for the gateway's total.
pub const GATEWAY_LIMIT: &str = "the gateway's queries hold";

/// The memory all queries of the gateway hold together.
#[derive(Debug)]
pub struct SharedMemory {
    limit: usize,
    used: AtomicUsize,
}

impl SharedMemory {
    pub fn new(limit: usize) -> Arc<SharedMemory> {
        Arc::new(SharedMemory { limit, used: AtomicUsize::new(0) })
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// One query's pool: DataFusion's fair spill pool at the per-query limit
/// (operators that can spill share what the others leave, so each is told
/// to spill before one takes everything), drawing from the gateway's
/// total.
#[derive(Debug)]
pub struct QueryMemory {
    limit: usize,
    inner: FairSpillPool,
    shared: Arc<SharedMemory>,
}

impl QueryMemory {
    pub fn new(limit: usize, shared: Arc<SharedMemory>) -> QueryMemory {
        QueryMemory { limit, inner: FairSpillPool::new(limit), shared }
    }
}

/// Adds `n` to `counter` unless that passes `limit`.
fn add_within(counter: &AtomicUsize, n: usize, limit: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| used.checked_add(n).filter(|&total| total <= limit))
        .is_ok()
}

impl std::fmt::Display for QueryMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query memory: {} of {} bytes", self.inner.reserved(), self.limit)
    }
}

impl MemoryPool for QueryMemory {
    fn name(&self) -> &str {
        "weir-query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.shared.used.fetch_add(additional, Ordering::AcqRel);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
        self.shared.used.fetch_sub(shrink, Ordering::AcqRel);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        if self.inner.try_grow(reservation, additional).is_err() {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{QUERY_LIMIT} query.max_memory_bytes ({} bytes): {} more were asked for by {} while the query holds {}",
                self.limit,
                additional,
                reservation.consumer().name(),
                self.inner.reserved()
            )));
        }
        if !add_within(&self.shared.used, additional, self.shared.limit) {
            self.inner.shrink(reservation, additional);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{GATEWAY_LIMIT} query.total_memory_bytes ({} bytes) now; try again later",
                self.shared.limit
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

impl Drop for QueryMemory {
    /// Whatever a query still held when it ended (dropped reservations give
    /// theirs back first) returns to the gateway's total.
    fn drop(&mut self) {
        self.shared.used.fetch_sub(self.inner.reserved(), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_capped_by_its_limit_and_by_the_total() {
        let shared = SharedMemory::new(150);
        let a: Arc<dyn MemoryPool> = Arc::new(QueryMemory::new(100, shared.clone()));
        let b: Arc<dyn MemoryPool> = Arc::new(QueryMemory::new(100, shared.clone()));
        let ra = MemoryConsumer::new("sort").register(&a);
        let rb = MemoryConsumer::new("join").register(&b);
        ra.try_grow(90).expect("within both");
        let over = ra.try_grow(20).expect_err("over the query's limit");
        assert!(over.to_string().contains(QUERY_LIMIT), "{over}");
        let total = rb.try_grow(70).expect_err("over the total");
        assert!(total.to_string().contains(GATEWAY_LIMIT), "{total}");
        rb.try_grow(60).expect("what remains");
        assert_eq!(shared.used(), 150);
        drop(ra);
        assert_eq!(shared.used(), 60);
        drop(rb);
        drop(b);
        assert_eq!(shared.used(), 0);
    }
}
