//! What a system under test must do for the load generator: the three operations every
//! workload is made of, with a verdict on each answer.

use std::future::Future;

use serde::{Deserialize, Serialize};

/// A workload of the comparison.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Locator register vs etcd put of the same entry as JSON, to the leader.
    Write,
    /// Linearizable lookup by patient vs etcd linearizable prefix get, on the leader.
    LinearRead,
    /// Bounded-staleness lookup vs etcd serializable get, spread over the followers.
    FollowerRead,
    /// 90 % linearizable reads, 10 % writes.
    Mixed,
    /// Kartotek only: the access decision (linearizable, audited).
    AccessDecision,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 5] = [
        Workload::Write,
        Workload::LinearRead,
        Workload::FollowerRead,
        Workload::Mixed,
        Workload::AccessDecision,
    ];

    /// Whether only Kartotek has this operation (etcd has no counterpart).
    pub fn kartotek_only(self) -> bool {
        self == Workload::AccessDecision
    }

    /// Name in tables and files.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Write => "write",
            Workload::LinearRead => "linearizable read",
            Workload::FollowerRead => "follower read",
            Workload::Mixed => "mixed 90/10",
            Workload::AccessDecision => "access decision",
        }
    }

    /// Short name for file names.
    pub fn slug(self) -> &'static str {
        match self {
            Workload::Write => "write",
            Workload::LinearRead => "linear-read",
            Workload::FollowerRead => "follower-read",
            Workload::Mixed => "mixed",
            Workload::AccessDecision => "access-decision",
        }
    }

    /// What each system does for it.
    pub fn description(self) -> &'static str {
        match self {
            Workload::Write => {
                "Kartotek `Register` (validated, deduplicated by request id) vs etcd `Put` of the same entry as JSON; both to the leader"
            }
            Workload::LinearRead => {
                "Kartotek `Lookup` by patient (read-index, linearizable) vs etcd linearizable `Range` over the patient's prefix; both on the leader"
            }
            Workload::FollowerRead => {
                "Kartotek bounded-staleness `Lookup` vs etcd serializable `Range`; spread over the two followers"
            }
            Workload::Mixed => "90 % linearizable reads, 10 % writes, as above",
            Workload::AccessDecision => {
                "Kartotek only: `AccessService.Decide` for a health professional (HPR number, org, service, purpose `treatment`) on a patient, linearizable, audited; etcd has no counterpart"
            }
        }
    }

    /// The operation for a uniform draw `u` in `0..100`.
    pub fn op(self, u: u32) -> OpKind {
        match self {
            Workload::Write => OpKind::Write,
            Workload::LinearRead => OpKind::LinearRead,
            Workload::FollowerRead => OpKind::FollowerRead,
            Workload::Mixed if u < 10 => OpKind::Write,
            Workload::Mixed => OpKind::LinearRead,
            Workload::AccessDecision => OpKind::AccessDecision,
        }
    }
}

/// One operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Write the entry of a key (a new version of it).
    Write,
    /// Read a patient's entries, linearizably, on the leader.
    LinearRead,
    /// Read a patient's entries from a follower.
    FollowerRead,
    /// Decide whether a health professional may access a patient's data (Kartotek only).
    AccessDecision,
}

/// The verdict on one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered correctly.
    Ok,
    /// Answered, but not what was expected (a read missing the preloaded entry, a follower
    /// read served by the leader, …).
    Wrong(String),
    /// Failed (error status, timeout).
    Error(String),
}

/// A system under test, ready for load.
pub trait Target: Send + Sync + 'static {
    /// Runs one operation on key number `key` (writes store version `seq`); `worker` picks the
    /// follower for follower reads.
    fn call(
        &self,
        op: OpKind,
        worker: usize,
        key: usize,
        seq: u64,
    ) -> impl Future<Output = Outcome> + Send;
}
