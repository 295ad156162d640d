//! Read consistency: making the local state fit to answer a read.
//!
//! - [`read_barrier`]: linearizable reads (read-index, one leadership confirmation per batch of
//!   concurrent reads).
//! - [`staleness`]: bounded-staleness reads served by any replica that can prove, with its own
//!   monotonic clock, that it is at most `max_staleness_ms` behind.
//!
//! [`ReadMode`] names the two; the request layer ([`crate::api`]) parses it from a request's
//! `ReadOptions` and the audit layer ([`crate::audit`]) combines it with recording the read.
//! Builds on [`crate::raft`]; knows nothing of callers or audit.

pub mod read_barrier;
pub mod staleness;

use std::time::Duration;

/// How a read must be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Confirm leadership, wait for apply.
    Linearizable,
    /// Serve locally if provably at most this old.
    Bounded(Duration),
}
