//! The set workload: unique inserts, occasional reads of the whole set, and a final read after
//! the cluster healed.
//!
//! Element `e` is the locator entry (patient `e mod 15000`, a fixed org, system `e<e>`); a read
//! lists the org's entries page by page (linearizable). The checker reports:
//! - *lost*: acknowledged inserts missing from the final read;
//! - *unexpected*: elements in a read that were never inserted (phantoms), or that were
//!   inserted only after the read had completed;
//! - *stale*: a read missing an element whose insert was acknowledged before the read began,
//!   or missing an element an earlier completed read had already returned (reads must be
//!   linearizable, so the set only grows);
//! - *recovered*: inserts of unknown outcome that the final read shows (fine, for the record).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use kartotek_client::KartotekClient;
use kartotek_client::proto::{ListLocatorsRequest, RegisterLocatorRequest};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    CheckOutcome, Clients, Validity, Workload, examples, org, patient, read_error, write_error,
};
use crate::history::{Completion, Event, EventType, Invocation, pair};

/// Entries per list page.
const PAGE_SIZE: u32 = 1000;
/// Pages read at most (bounds a read).
const PAGES_MAX: usize = 1000;

/// The set workload.
#[derive(Debug)]
pub struct SetWorkload {
    org: String,
    next: AtomicU64,
    /// Percentage of operations that are reads.
    read_pct: u32,
}

impl SetWorkload {
    /// A new workload; `read_pct` % of the operations are reads.
    pub fn new(read_pct: u32) -> Self {
        SetWorkload {
            org: org(2),
            next: AtomicU64::new(0),
            read_pct: read_pct.min(100),
        }
    }

    async fn read_all(
        &self,
        client: &KartotekClient,
    ) -> Result<Vec<u64>, kartotek_client::ClientError> {
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..PAGES_MAX {
            let page = client
                .list_locators(ListLocatorsRequest {
                    org: self.org.clone(),
                    page_size: PAGE_SIZE,
                    page_token: token,
                    include_retired: true,
                    read: None,
                })
                .await?;
            out.extend(page.entries.iter().filter_map(|e| {
                e.system
                    .strip_prefix('e')
                    .and_then(|n| n.parse::<u64>().ok())
            }));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        out.sort_unstable();
        Ok(out)
    }
}

impl Workload for SetWorkload {
    type WorkerState = ();

    fn name(&self) -> &'static str {
        "set"
    }

    fn next_op(&self, _worker: usize, _state: &mut (), rng: &mut ChaCha8Rng) -> Invocation {
        if rng.gen_range(0..100) < self.read_pct {
            return Invocation {
                f: "read",
                key: None,
                value: Value::Null,
            };
        }
        Invocation {
            f: "add",
            key: None,
            value: json!(self.next.fetch_add(1, Ordering::Relaxed)),
        }
    }

    async fn invoke(&self, clients: &Clients, _state: &mut (), op: &Invocation) -> Completion {
        match op.f {
            "add" => {
                let e = op.value.as_u64().unwrap_or(0);
                let req = RegisterLocatorRequest {
                    patient: patient(e),
                    org: self.org.clone(),
                    system: format!("e{e}"),
                    categories: vec!["Observation".into()],
                    ..Default::default()
                };
                match clients.write.register_locator(req).await {
                    Ok(_) => Completion::ok(op.value.clone()),
                    Err(e) => write_error(op.value.clone(), &e),
                }
            }
            "read" | "final-read" => {
                // A final read goes through the write client (every node, leader hints).
                let client = if op.f == "read" {
                    &clients.read
                } else {
                    &clients.write
                };
                match self.read_all(client).await {
                    Ok(elements) => Completion::ok(json!(elements)),
                    Err(e) => read_error(Value::Null, &e),
                }
            }
            other => Completion::fail(op.value.clone(), format!("unknown op {other}")),
        }
    }

    fn final_ops(&self) -> Vec<Invocation> {
        vec![Invocation {
            f: "final-read",
            key: None,
            value: Value::Null,
        }]
    }

    fn check(&self, history: &[Event]) -> CheckOutcome {
        check_history(history)
    }
}

/// Checks a set history.
pub fn check_history(history: &[Event]) -> CheckOutcome {
    let ops = pair(history);
    // element -> (invoke ns, ok completion ns)
    let mut adds: HashMap<u64, (u64, Option<u64>)> = HashMap::new();
    let mut info_adds = BTreeSet::new();
    let mut reads: Vec<(u64, u64, BTreeSet<u64>, bool)> = Vec::new();
    for op in &ops {
        match op.invoke.f.as_str() {
            "add" => {
                let Some(e) = op.invoke.value.as_u64() else {
                    continue;
                };
                let ok = op
                    .done
                    .filter(|d| d.kind == EventType::Ok)
                    .map(|d| d.time_ns);
                if op.outcome() == EventType::Info {
                    info_adds.insert(e);
                }
                if op.outcome() != EventType::Fail {
                    adds.insert(e, (op.invoke.time_ns, ok));
                }
            }
            "read" | "final-read" => {
                if let Some(d) = op.done.filter(|d| d.kind == EventType::Ok) {
                    let set: BTreeSet<u64> = d
                        .value
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default();
                    reads.push((
                        op.invoke.time_ns,
                        d.time_ns,
                        set,
                        op.invoke.f == "final-read",
                    ));
                }
            }
            _ => {}
        }
    }
    reads.sort_by_key(|r| r.0);
    let final_read = reads.iter().filter(|r| r.3).max_by_key(|r| r.1);
    let mut lost = Vec::new();
    let mut recovered = 0usize;
    if let Some((_, _, fin, _)) = final_read {
        for (e, (_, ok)) in &adds {
            if ok.is_some() && !fin.contains(e) {
                lost.push(*e);
            }
        }
        recovered = info_adds.iter().filter(|e| fin.contains(e)).count();
    }
    lost.sort_unstable();

    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    // Acknowledged adds ordered by ack time, to find those acknowledged before a read began.
    let mut acked: Vec<(u64, u64)> = adds
        .iter()
        .filter_map(|(e, (_, ok))| ok.map(|t| (t, *e)))
        .collect();
    acked.sort_unstable();
    for (invoked, completed, set, _) in &reads {
        for e in set {
            match adds.get(e) {
                None => unexpected.push(json!({"element": e, "read_ms": *completed as f64 / 1e6, "why": "never inserted"})),
                Some((inv, _)) if inv > completed => unexpected.push(
                    json!({"element": e, "read_ms": *completed as f64 / 1e6, "why": "inserted after the read completed"}),
                ),
                _ => {}
            }
        }
        let before = acked.partition_point(|(t, _)| t < invoked);
        let missing: Vec<u64> = acked[..before]
            .iter()
            .map(|(_, e)| *e)
            .filter(|e| !set.contains(e))
            .collect();
        if !missing.is_empty() {
            stale.push(json!({
                "read_invoked_ms": *invoked as f64 / 1e6,
                "missing_acknowledged": missing.len(),
                "examples": examples(missing, 10),
            }));
        }
    }
    // Monotonicity: what a completed read returned, every later read must return.
    let mut by_end: Vec<&(u64, u64, BTreeSet<u64>, bool)> = reads.iter().collect();
    by_end.sort_by_key(|r| r.1);
    let mut seen_union: BTreeSet<u64> = BTreeSet::new();
    let mut j = 0;
    for r in &reads {
        while j < by_end.len() && by_end[j].1 < r.0 {
            seen_union.extend(by_end[j].2.iter().copied());
            j += 1;
        }
        let went_missing: Vec<u64> = seen_union.difference(&r.2).copied().collect();
        if !went_missing.is_empty() {
            stale.push(json!({
                "read_invoked_ms": r.0 as f64 / 1e6,
                "missing_previously_read": went_missing.len(),
                "examples": examples(went_missing, 10),
            }));
        }
    }

    let valid = if !lost.is_empty() || !unexpected.is_empty() || !stale.is_empty() {
        Validity::Invalid
    } else if final_read.is_none() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let ok_adds = adds.values().filter(|(_, ok)| ok.is_some()).count();
    let summary = format!(
        "set: {} adds acknowledged, {} of unknown outcome ({} recovered), {} reads; {} lost, {} unexpected, {} stale reads{}",
        ok_adds,
        info_adds.len(),
        recovered,
        reads.len(),
        lost.len(),
        unexpected.len(),
        stale.len(),
        if final_read.is_none() {
            "; NO FINAL READ"
        } else {
            ""
        }
    );
    CheckOutcome {
        valid,
        summary,
        details: json!({
            "acknowledged_adds": ok_adds,
            "unknown_adds": info_adds.len(),
            "recovered": recovered,
            "reads": reads.len(),
            "final_read_size": final_read.map(|r| r.2.len()),
            "lost": lost.len(),
            "lost_examples": examples(&lost, 20),
            "unexpected": unexpected.len(),
            "unexpected_examples": examples(unexpected, 20),
            "stale_reads": stale.len(),
            "stale_examples": examples(stale, 20),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, p: u64, kind: EventType, f: &str, value: Value) -> Event {
        Event {
            index: t,
            time_ns: t,
            process: p,
            kind,
            f: f.into(),
            key: None,
            value,
            node: None,
            error: None,
        }
    }

    fn base() -> Vec<Event> {
        vec![
            ev(1, 1, EventType::Invoke, "add", json!(0)),
            ev(2, 1, EventType::Ok, "add", json!(0)),
            ev(3, 2, EventType::Invoke, "add", json!(1)),
            ev(4, 2, EventType::Info, "add", json!(1)),
        ]
    }

    #[test]
    fn valid_history() {
        let mut h = base();
        h.push(ev(10, 3, EventType::Invoke, "final-read", Value::Null));
        h.push(ev(11, 3, EventType::Ok, "final-read", json!([0, 1])));
        let out = check_history(&h);
        assert_eq!(out.valid, Validity::Valid, "{}", out.details);
    }

    #[test]
    fn reports_lost_phantom_and_stale() {
        let mut h = base();
        h.push(ev(5, 4, EventType::Invoke, "read", Value::Null));
        h.push(ev(6, 4, EventType::Ok, "read", json!([])));
        h.push(ev(10, 3, EventType::Invoke, "final-read", Value::Null));
        h.push(ev(11, 3, EventType::Ok, "final-read", json!([7])));
        let out = check_history(&h);
        assert_eq!(out.valid, Validity::Invalid);
        assert_eq!(out.details["lost"], 1);
        assert_eq!(out.details["unexpected"], 1);
        assert_eq!(out.details["stale_reads"], 2, "{}", out.details);
    }

    #[test]
    fn non_monotonic_reads_are_stale() {
        let mut h = base();
        h.push(ev(5, 4, EventType::Invoke, "read", Value::Null));
        h.push(ev(6, 4, EventType::Ok, "read", json!([0, 1])));
        h.push(ev(7, 4, EventType::Invoke, "read", Value::Null));
        h.push(ev(8, 4, EventType::Ok, "read", json!([0])));
        h.push(ev(10, 3, EventType::Invoke, "final-read", Value::Null));
        h.push(ev(11, 3, EventType::Ok, "final-read", json!([0, 1])));
        let out = check_history(&h);
        assert_eq!(out.details["stale_reads"], 1, "{}", out.details);
    }

    #[test]
    fn missing_final_read_is_unknown() {
        assert_eq!(check_history(&base()).valid, Validity::Unknown);
    }
}
