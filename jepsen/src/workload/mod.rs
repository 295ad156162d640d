//! Workloads: what the client processes do, and the checker that judges the history.
//!
//! A [`Workload`] generates operations for each worker, runs one against the cluster through
//! the worker's [`Clients`], lists the final reads to run after the cluster healed, and checks
//! the whole history. Implemented: [`register`] (read / write / compare-and-set per key,
//! linearizability per key), [`set`] (unique inserts, reads, final read), [`watch`] (the
//! locator change feed across faults), [`block`] (block safety: once a block is
//! acknowledged, no later access decision permits) and [`audit`] (every answered read has its
//! audit event in the chain after the heal, once, and every node's chain verifies).

pub mod audit;
pub mod block;
pub mod register;
pub mod set;
pub mod watch;

use std::future::Future;
use std::sync::Arc;

use kartotek_client::{ClientConfig, ClientError, KartotekClient, TokenSource};
use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::{national_id_from_parts, org_number_from_prefix};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use crate::history::{Completion, Event, Invocation};

/// The clients of one worker.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Slot of the node this worker is homed on.
    pub home: usize,
    /// Writes: every node, home first; follows leader hints.
    pub write: KartotekClient,
    /// Reads: only the home node, so reads exercise every node (a follower forwards or
    /// redirects; in the unsafe mode it answers from its own state).
    pub read: KartotekClient,
    /// One client per node (by slot), each reaching only that node: reads of a node's own
    /// state (bounded staleness) for final checks.
    pub nodes: Vec<KartotekClient>,
}

impl Clients {
    /// Clients for a worker homed on `home`, with per-operation deadline `deadline_ms`.
    /// Calls carry tokens from `tokens` (the cluster's harness token) when given.
    pub fn new(
        addrs: &[String],
        home: usize,
        deadline_ms: u64,
        tokens: Option<Arc<dyn TokenSource>>,
    ) -> anyhow::Result<Clients> {
        let mut order = vec![addrs[home].clone()];
        order.extend(
            addrs
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != home)
                .map(|(_, a)| a.clone()),
        );
        let config = |endpoints: Vec<String>| ClientConfig {
            endpoints,
            connect_timeout_ms: 500,
            attempt_timeout_ms: (deadline_ms / 2).max(1),
            deadline_ms,
            backoff_initial_ms: 20,
            backoff_max_ms: 500,
            token: None,
            ca_file: None,
        };
        let client = |config: ClientConfig| match &tokens {
            Some(t) => KartotekClient::with_tokens(config, t.clone()),
            None => KartotekClient::new(config),
        };
        Ok(Clients {
            home,
            write: client(config(order))?,
            read: client(config(vec![addrs[home].clone()]))?,
            nodes: addrs
                .iter()
                .map(|a| client(config(vec![a.clone()])))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A checker's judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// No anomaly found.
    Valid,
    /// An anomaly was found.
    Invalid,
    /// The checker could not decide (budget exhausted, final read failed).
    Unknown,
}

impl Validity {
    /// The worse of two judgements.
    pub fn and(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }
}

/// The result of a workload's checker.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    /// The judgement.
    pub valid: Validity,
    /// One line for the console.
    pub summary: String,
    /// Counts and (bounded) examples of anomalies.
    pub details: Value,
}

/// A workload: operation generator, client, final reads and checker.
pub trait Workload: Send + Sync + 'static {
    /// What a worker remembers between its operations.
    type WorkerState: Default + Send + 'static;

    /// Short name (`register`, `set`).
    fn name(&self) -> &'static str;

    /// The next operation of `worker`.
    fn next_op(
        &self,
        worker: usize,
        state: &mut Self::WorkerState,
        rng: &mut ChaCha8Rng,
    ) -> Invocation;

    /// Runs `op` and says how it ended.
    fn invoke(
        &self,
        clients: &Clients,
        state: &mut Self::WorkerState,
        op: &Invocation,
    ) -> impl Future<Output = Completion> + Send;

    /// Reads to run once the cluster has healed (each retried until it succeeds or time runs
    /// out).
    fn final_ops(&self) -> Vec<Invocation>;

    /// Judges the history.
    fn check(&self, history: &[Event]) -> CheckOutcome;

    /// Judges the history knowing what the nemesis did (`nemesis.jsonl`); most workloads need
    /// only the history.
    fn check_with_nemesis(
        &self,
        history: &[Event],
        _nemesis: &[crate::nemesis::LogEntry],
    ) -> CheckOutcome {
        self.check(history)
    }
}

/// How an error of a write counts in the history: `fail` only when it certainly had no
/// effect, otherwise `info`.
pub fn write_error(value: Value, e: &ClientError) -> Completion {
    match e {
        ClientError::InvalidArgument { .. }
        | ClientError::FailedPrecondition(_)
        | ClientError::NotFound(_)
        | ClientError::Config(_) => Completion::fail(value, e.to_string()),
        _ => Completion::info(value, e.to_string()),
    }
}

/// A read that failed had no effect: always `fail`.
pub fn read_error(value: Value, e: &ClientError) -> Completion {
    Completion::fail(value, e.to_string())
}

/// The value an entry holds (the category `v<n>`), as the register and watch workloads write.
pub fn value_of(entry: &kartotek_client::proto::LocatorEntry) -> Option<u64> {
    entry
        .categories
        .iter()
        .find_map(|c| c.strip_prefix('v').and_then(|n| n.parse().ok()))
}

/// A valid synthetic national id, distinct for `n` below 15 000 (deterministic).
pub fn patient(n: u64) -> String {
    let day = n % 15_000;
    let date = chrono::NaiveDate::from_ymd_opt(1940, 1, 1)
        .and_then(|d| d.checked_add_days(chrono::Days::new(day)))
        .unwrap_or_default();
    (0..1000u16)
        .find_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default()
}

/// A valid org number (deterministic).
pub fn org(n: u32) -> String {
    (20_000_000 + n * 100..20_000_000 + n * 100 + 100)
        .find_map(org_number_from_prefix)
        .map(|o| o.as_str().to_owned())
        .unwrap_or_default()
}

/// At most `n` items of an iterator, as JSON, for reports.
pub fn examples<T: Serialize>(items: impl IntoIterator<Item = T>, n: usize) -> Value {
    Value::Array(
        items
            .into_iter()
            .take(n)
            .filter_map(|i| serde_json::to_value(i).ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kartotek_domain::ids::{NationalId, OrgNumber};

    #[test]
    fn ids_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for n in (0..15_000).step_by(7) {
            let p = patient(n);
            assert!(NationalId::parse(&p).is_ok(), "{n}: {p}");
            assert!(seen.insert(p), "duplicate for {n}");
        }
        assert!(OrgNumber::parse(&org(1)).is_ok());
        assert_ne!(org(1), org(2));
    }

    #[test]
    fn validity_combines() {
        use Validity::*;
        assert_eq!(Valid.and(Unknown), Unknown);
        assert_eq!(Unknown.and(Invalid), Invalid);
        assert_eq!(Valid.and(Valid), Valid);
    }
}
