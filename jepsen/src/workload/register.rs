//! The register workload: read, write and compare-and-set on single locator entries, checked
//! for linearizability per key.
//!
//! Key `k` is the locator entry (patient `k`, a fixed org, system `reg`); its value is the one
//! category `v<n>`, and every write uses a fresh `n`. A compare-and-set sends
//! `expected_mod_revision`: the revision the worker last saw together with a value (0: the
//! entry must not exist). Because every write creates a new revision and values are never
//! reused, "the revision is r" is the same as "the value is the one read with r", so the
//! checker models CAS on values: a register of `Option<u64>` with read / write / cas.
//!
//! Workers are split into key groups; a group moves to a fresh key after `ops_per_key`
//! operations, which bounds every per-key history the checker has to search.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use kartotek_client::proto::{LookupLocatorRequest, RegisterLocatorRequest};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    CheckOutcome, Clients, Validity, Workload, examples, org, patient, read_error, value_of,
    write_error,
};
use crate::history::{Completion, Event, EventType, Invocation, pair};
use crate::linear::{self, LinOp, LinResult, Model};

/// System name of register entries.
const SYSTEM: &str = "reg";
/// Search steps allowed per key before the checker gives up on it.
const STEPS_PER_KEY_MAX: u64 = 5_000_000;

/// Settings of the register workload.
#[derive(Debug, Clone)]
pub struct RegisterOptions {
    /// Keys in use at once (each worker group shares one).
    pub key_groups: usize,
    /// Operations on one key before its group moves on.
    pub ops_per_key: u64,
}

/// Register workload state shared by all workers.
#[derive(Debug)]
pub struct RegisterWorkload {
    opts: RegisterOptions,
    org: String,
    /// Per group: (current generation, operations issued on its key).
    groups: Mutex<Vec<(u64, u64)>>,
    next_value: AtomicU64,
    /// Highest key used + 1.
    keys_used: AtomicU64,
}

/// What a worker knows: per key, the last value it saw and that value's revision.
#[derive(Debug, Default)]
pub struct RegisterWorker {
    known: HashMap<u64, (Option<u64>, u64)>,
}

impl RegisterWorkload {
    /// A new workload.
    pub fn new(opts: RegisterOptions) -> Self {
        let groups = vec![(0, 0); opts.key_groups.max(1)];
        RegisterWorkload {
            opts,
            org: org(1),
            groups: Mutex::new(groups),
            next_value: AtomicU64::new(1),
            keys_used: AtomicU64::new(0),
        }
    }

    fn key_for(&self, worker: usize) -> u64 {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let n = groups.len();
        let g = worker % n;
        let (generation, count) = &mut groups[g];
        if *count >= self.opts.ops_per_key {
            *generation += 1;
            *count = 0;
        }
        *count += 1;
        let key = g as u64 + n as u64 * *generation;
        self.keys_used.fetch_max(key + 1, Ordering::Relaxed);
        key
    }

    fn read_request(&self, key: u64) -> LookupLocatorRequest {
        LookupLocatorRequest {
            patient: patient(key),
            org: self.org.clone(),
            include_retired: true,
            read: None,
        }
    }

    fn write_request(&self, key: u64, value: u64, expected: Option<u64>) -> RegisterLocatorRequest {
        RegisterLocatorRequest {
            patient: patient(key),
            org: self.org.clone(),
            system: SYSTEM.into(),
            categories: vec![format!("v{value}")],
            expected_mod_revision: expected,
            ..Default::default()
        }
    }
}

impl Workload for RegisterWorkload {
    type WorkerState = RegisterWorker;

    fn name(&self) -> &'static str {
        "register"
    }

    fn next_op(
        &self,
        worker: usize,
        state: &mut RegisterWorker,
        rng: &mut ChaCha8Rng,
    ) -> Invocation {
        let key = self.key_for(worker);
        let roll: u32 = rng.gen_range(0..100);
        if roll < 50 {
            return Invocation {
                f: "read",
                key: Some(key),
                value: Value::Null,
            };
        }
        let value = self.next_value.fetch_add(1, Ordering::Relaxed);
        if roll < 75 {
            return Invocation {
                f: "write",
                key: Some(key),
                value: json!(value),
            };
        }
        let (from, rev) = state.known.get(&key).copied().unwrap_or((None, 0));
        Invocation {
            f: "cas",
            key: Some(key),
            value: json!({"from": from, "to": value, "rev": rev}),
        }
    }

    async fn invoke(
        &self,
        clients: &Clients,
        state: &mut RegisterWorker,
        op: &Invocation,
    ) -> Completion {
        let Some(key) = op.key else {
            return Completion::fail(op.value.clone(), "no key");
        };
        match op.f {
            "read" => match clients.read.lookup_locator(self.read_request(key)).await {
                Ok(resp) => {
                    let entry = resp.entries.iter().find(|e| e.system == SYSTEM);
                    let value = entry.and_then(value_of);
                    let rev = entry.map_or(0, |e| e.mod_revision);
                    state.known.insert(key, (value, rev));
                    Completion::ok(json!(value))
                }
                Err(e) => read_error(Value::Null, &e),
            },
            "write" => {
                let value = op.value.as_u64().unwrap_or(0);
                match clients
                    .write
                    .register_locator(self.write_request(key, value, None))
                    .await
                {
                    Ok(resp) => {
                        let rev = resp.entry.map_or(0, |e| e.mod_revision);
                        state.known.insert(key, (Some(value), rev));
                        Completion::ok(op.value.clone())
                    }
                    Err(e) => write_error(op.value.clone(), &e),
                }
            }
            "cas" => {
                let to = op.value["to"].as_u64().unwrap_or(0);
                let rev = op.value["rev"].as_u64().unwrap_or(0);
                let req = self.write_request(key, to, Some(rev));
                match clients.write.register_locator(req).await {
                    Ok(resp) => {
                        let rev = resp.entry.map_or(0, |e| e.mod_revision);
                        state.known.insert(key, (Some(to), rev));
                        Completion::ok(op.value.clone())
                    }
                    Err(e) => {
                        state.known.remove(&key);
                        write_error(op.value.clone(), &e)
                    }
                }
            }
            other => Completion::fail(op.value.clone(), format!("unknown op {other}")),
        }
    }

    fn final_ops(&self) -> Vec<Invocation> {
        (0..self.keys_used.load(Ordering::Relaxed))
            .map(|key| Invocation {
                f: "read",
                key: Some(key),
                value: Value::Null,
            })
            .collect()
    }

    fn check(&self, history: &[Event]) -> CheckOutcome {
        check_history(history)
    }
}

/// Register operations as the model sees them.
#[derive(Debug, Clone)]
pub enum RegOp {
    /// Read.
    Read,
    /// Unconditional write.
    Write(u64),
    /// Write `to` if the value is `from`.
    Cas {
        /// Expected value.
        from: Option<u64>,
        /// New value.
        to: u64,
    },
}

/// A register of `Option<u64>` (None: the entry does not exist).
#[derive(Debug)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type State = Option<u64>;
    type Input = RegOp;
    /// Only reads have an output: the value read.
    type Output = Option<u64>;

    fn init(&self) -> Option<u64> {
        None
    }

    fn step(
        &self,
        state: &Option<u64>,
        input: &RegOp,
        output: Option<&Option<u64>>,
    ) -> Option<Option<u64>> {
        match input {
            RegOp::Read => match output {
                Some(read) => (read == state).then_some(*state),
                None => Some(*state),
            },
            RegOp::Write(v) => Some(Some(*v)),
            RegOp::Cas { from, to } => (from == state).then_some(Some(*to)),
        }
    }
}

/// Builds the per-key operation lists from a history.
pub fn per_key_ops(history: &[Event]) -> BTreeMap<u64, Vec<LinOp<RegOp, Option<u64>>>> {
    let mut keys: BTreeMap<u64, Vec<LinOp<RegOp, Option<u64>>>> = BTreeMap::new();
    for op in pair(history) {
        let Some(key) = op.invoke.key else { continue };
        let outcome = op.outcome();
        if outcome == EventType::Fail {
            continue;
        }
        let input = match op.invoke.f.as_str() {
            "read" => {
                if outcome != EventType::Ok {
                    continue;
                }
                RegOp::Read
            }
            "write" => RegOp::Write(op.invoke.value.as_u64().unwrap_or(0)),
            "cas" => RegOp::Cas {
                from: op.invoke.value["from"].as_u64(),
                to: op.invoke.value["to"].as_u64().unwrap_or(0),
            },
            _ => continue,
        };
        let done = op.done.filter(|d| d.kind == EventType::Ok);
        let output = match (&input, done) {
            (RegOp::Read, Some(d)) => Some(d.value.as_u64()),
            (_, Some(_)) => Some(None),
            (_, None) => None,
        };
        keys.entry(key).or_default().push(LinOp {
            id: op.invoke.index,
            call_ns: op.invoke.time_ns,
            return_ns: done.map(|d| d.time_ns),
            input,
            output,
        });
    }
    keys
}

/// Checks every key of a register history.
pub fn check_history(history: &[Event]) -> CheckOutcome {
    let keys = per_key_ops(history);
    let mut invalid = Vec::new();
    let mut unknown = Vec::new();
    let mut ops_max = 0;
    for (key, ops) in &keys {
        ops_max = ops_max.max(ops.len());
        match linear::check(&RegisterModel, ops, STEPS_PER_KEY_MAX) {
            LinResult::Linearizable => {}
            LinResult::Violation {
                longest_prefix,
                stuck_op,
            } => {
                let (stuck, window) = context_ops(history, *key, stuck_op);
                invalid.push(json!({
                    "key": key,
                    "ops": ops.len(),
                    "longest_linearizable_prefix": longest_prefix.len(),
                    "prefix_tail": longest_prefix.iter().rev().take(10).rev().collect::<Vec<_>>(),
                    "unlinearizable_op": stuck,
                    "concurrent_ops": window,
                }))
            }
            LinResult::Unknown { steps } => {
                unknown.push(json!({"key": key, "ops": ops.len(), "steps": steps}))
            }
        }
    }
    let valid = if !invalid.is_empty() {
        Validity::Invalid
    } else if !unknown.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let counts = count_outcomes(history);
    let summary = format!(
        "register: {} keys, {} ok / {} fail / {} info ops; {} non-linearizable key(s), {} undecided",
        keys.len(),
        counts.0,
        counts.1,
        counts.2,
        invalid.len(),
        unknown.len()
    );
    CheckOutcome {
        valid,
        summary,
        details: json!({
            "keys": keys.len(),
            "ops_per_key_max": ops_max,
            "ok": counts.0, "fail": counts.1, "info": counts.2,
            "non_linearizable": examples(invalid, 10),
            "undecided": examples(unknown, 10),
        }),
    }
}

/// (ok, fail, info) completions.
pub fn count_outcomes(history: &[Event]) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for e in history {
        match e.kind {
            EventType::Ok => c.0 += 1,
            EventType::Fail => c.1 += 1,
            EventType::Info => c.2 += 1,
            EventType::Invoke => {}
        }
    }
    c
}

/// The stuck operation and the (at most 30) operations on `key` that overlap it or ended
/// within 2 s before it, for the report.
fn context_ops(history: &[Event], key: u64, stuck: Option<u64>) -> (Value, Vec<Value>) {
    let ops = pair(history);
    let Some(stuck) = stuck.and_then(|id| ops.iter().find(|o| o.invoke.index == id)) else {
        return (Value::Null, Vec::new());
    };
    let stuck_start = stuck.invoke.time_ns;
    let stuck_end = stuck.done.map_or(stuck_start, |d| d.time_ns);
    let window: Vec<Value> = ops
        .iter()
        .filter(|o| o.invoke.key == Some(key) && o.outcome() != EventType::Fail)
        .filter(|o| {
            let end = o.done.map_or(u64::MAX, |d| d.time_ns);
            o.invoke.time_ns <= stuck_end && end.saturating_add(2_000_000_000) >= stuck_start
        })
        .map(describe_op)
        .collect();
    let skip = window.len().saturating_sub(30);
    (describe_op(stuck), window.into_iter().skip(skip).collect())
}

/// One operation as the report shows it.
fn describe_op(o: &crate::history::Op<'_>) -> Value {
    json!({
        "index": o.invoke.index,
        "process": o.invoke.process,
        "f": o.invoke.f,
        "arg": o.invoke.value,
        "type": o.outcome(),
        "result": o.done.map(|d| d.value.clone()),
        "invoke_ms": o.invoke.time_ns as f64 / 1e6,
        "complete_ms": o.done.map(|d| d.time_ns as f64 / 1e6),
        "node": o.invoke.node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(index: u64, t: u64, p: u64, kind: EventType, f: &str, value: Value) -> Event {
        Event {
            index,
            time_ns: t,
            process: p,
            kind,
            f: f.into(),
            key: Some(0),
            value,
            node: None,
            error: None,
        }
    }

    #[test]
    fn detects_stale_read() {
        let h = vec![
            ev(0, 0, 1, EventType::Invoke, "write", json!(1)),
            ev(1, 10, 1, EventType::Ok, "write", json!(1)),
            ev(2, 20, 2, EventType::Invoke, "read", Value::Null),
            ev(3, 30, 2, EventType::Ok, "read", Value::Null),
        ];
        let out = check_history(&h);
        assert_eq!(out.valid, Validity::Invalid, "{}", out.details);
    }

    #[test]
    fn failed_cas_is_ignored_and_info_may_apply() {
        let h = vec![
            ev(
                0,
                0,
                1,
                EventType::Invoke,
                "cas",
                json!({"from": null, "to": 1, "rev": 0}),
            ),
            ev(
                1,
                10,
                1,
                EventType::Info,
                "cas",
                json!({"from": null, "to": 1, "rev": 0}),
            ),
            ev(
                2,
                20,
                2,
                EventType::Invoke,
                "cas",
                json!({"from": 5, "to": 2, "rev": 9}),
            ),
            ev(
                3,
                30,
                2,
                EventType::Fail,
                "cas",
                json!({"from": 5, "to": 2, "rev": 9}),
            ),
            ev(4, 40, 3, EventType::Invoke, "read", Value::Null),
            ev(5, 50, 3, EventType::Ok, "read", json!(1)),
        ];
        assert_eq!(check_history(&h).valid, Validity::Valid);
    }

    #[test]
    fn keys_rotate_after_ops_per_key() {
        let w = RegisterWorkload::new(RegisterOptions {
            key_groups: 2,
            ops_per_key: 3,
        });
        let keys: Vec<u64> = (0..8).map(|i| w.key_for(i % 2)).collect();
        assert_eq!(keys, vec![0, 1, 0, 1, 0, 1, 2, 3]);
        assert_eq!(w.final_ops().len(), 4);
    }
}
