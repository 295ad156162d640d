//! The audit workload: every read, listing, access decision and write about a patient that
//! answered `ok` during the faults has its audit event in the replicated chain after the heal,
//! exactly once, and the chain verifies on every node.
//!
//! Each operation carries a unique correlation id (`a<worker>-<n>`, sent as `x-request-id`
//! through [`kartotek_client::correlated`], or as a write's request id), which the registry
//! records in the operation's audit event. Operations, on the worker's home node:
//! `lookup` (linearizable), `follower-lookup` (bounded staleness, served by a follower from its
//! own state, so its event goes through that follower's journal), `decide` (a plain access
//! decision), `list` (the locator entries of the workload's organisation: one event per
//! patient listed plus one for the organisation) and `register` (a locator write through the
//! write client: a write about a patient is audited too).
//!
//! After the heal, final operations (1) ask every node for an audit query, which first waits
//! until that node's journal has reached the chain, (2) read the whole chain from the leader
//! (linearizable) and (3) read each node's own copy (bounded staleness). Each chain read
//! recomputes the hash chain itself and records, compactly, which correlation ids it found.
//!
//! The checker reports:
//! - *lost events*: an operation that answered `ok` whose correlation id is not in the chain
//!   read from the leader: the guarantee itself;
//! - *events chained twice*: two chain events with the same origin (`served_by`: the serving
//!   node and the event's seq in its journal, unique per journal event). Retried attempts of
//!   one request are different journal events, each audited, and only counted, even when a
//!   paused node serves all of them in the same millisecond (the first run of this check
//!   compared whole events and flagged exactly that);
//! - *broken chains*: a copy whose hashes do not recompute, or two copies with different
//!   hashes at the same seq.
//!
//! Events of operations that failed or timed out may or may not be in the chain (a read
//! refused after its event was journaled is audited all the same: over-auditing, never
//! under-auditing).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kartotek_client::proto::{
    AccessDecisionRequest, Consistency, ListLocatorsRequest, LookupLocatorRequest,
    QueryAuditRequest, ReadOptions, RegisterLocatorRequest,
};
use kartotek_client::{ClientError, KartotekClient, correlated};
use kartotek_domain::audit::{GENESIS_PREV_HASH, verify_chain};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    CheckOutcome, Clients, Validity, Workload, examples, org, patient, read_error, write_error,
};
use crate::history::{Completion, Event, EventType, Invocation, pair};
use crate::nemesis::LogEntry;

/// Patients the operations are about.
const PATIENTS: u64 = 64;
/// Staleness bound of the follower lookups and of the per-node chain reads, ms.
const STALENESS_MS: u64 = 5_000;
/// The chain is read in pages of this many events.
const PAGE: u32 = 1_000;
/// A chain copy records its hash at every seq divisible by this (and at its last), so
/// copies can be compared where they overlap.
const HASH_EVERY: u64 = 500;
/// Kinds of operation whose `ok` promises an audit event.
const AUDITED: [&str; 5] = ["lookup", "follower-lookup", "decide", "list", "register"];

/// The audit workload.
#[derive(Debug)]
pub struct AuditWorkload {
    org: String,
    nodes: usize,
}

impl AuditWorkload {
    /// A workload over a cluster of `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        AuditWorkload { org: org(5), nodes }
    }
}

/// What a worker remembers: its next operation number.
#[derive(Debug, Default)]
pub struct AuditWorker {
    next: u64,
}

fn bounded() -> Option<ReadOptions> {
    Some(ReadOptions {
        consistency: Consistency::BoundedStaleness as i32,
        max_staleness_ms: STALENESS_MS,
    })
}

/// `a<worker>-<n>` → (worker, n).
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (w, n) = id.strip_prefix('a')?.split_once('-')?;
    Some((w.parse().ok()?, n.parse().ok()?))
}

/// Sorted numbers as `[start, end]` runs.
fn runs(ns: &BTreeSet<u64>) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    for &n in ns {
        match out.last_mut() {
            Some(r) if r[1] + 1 == n => r[1] = n,
            _ => out.push([n, n]),
        }
    }
    out
}

/// What one read of a whole chain copy found.
#[derive(Debug, Default)]
struct ChainRead {
    events: u64,
    last_seq: u64,
    /// Correlation ids of this workload, per worker.
    ids: BTreeMap<u64, BTreeSet<u64>>,
    /// Ids with more than one event (retried attempts), with their counts.
    repeated: u64,
    chained_twice: Vec<u64>,
    hashes: BTreeMap<u64, String>,
    broken: Option<String>,
}

impl ChainRead {
    fn to_json(&self, node: Option<usize>) -> Value {
        let ids: BTreeMap<String, Vec<[u64; 2]>> = self
            .ids
            .iter()
            .map(|(w, ns)| (w.to_string(), runs(ns)))
            .collect();
        json!({
            "node": node,
            "events": self.events,
            "last_seq": self.last_seq,
            "ids": ids,
            "repeated": self.repeated,
            "chained_twice": self.chained_twice,
            "hashes": self.hashes,
            "broken": self.broken,
        })
    }
}

/// Reads a whole chain copy through `client` (with `read` options) and checks it.
async fn read_chain(
    client: &KartotekClient,
    read: Option<ReadOptions>,
) -> Result<ChainRead, ClientError> {
    let mut out = ChainRead::default();
    let mut from = 1u64;
    let mut prev = GENESIS_PREV_HASH;
    let mut started = false;
    let mut per_id: HashMap<String, u32> = HashMap::new();
    let mut origins: HashMap<kartotek_domain::ServedBy, u64> = HashMap::new();
    loop {
        let page = client
            .query_audit(QueryAuditRequest {
                from_seq: from,
                limit: PAGE,
                read,
                ..Default::default()
            })
            .await?;
        let mut chained = Vec::with_capacity(page.events.len());
        for m in &page.events {
            match kartotek_client::audit::chained_from_message(m) {
                Ok(c) => chained.push(c),
                Err(e) => {
                    out.broken.get_or_insert(format!("seq {}: {e}", m.seq));
                }
            }
        }
        if !started {
            // Retention may have removed the start; verify from the first event's prev hash.
            if let Some(first) = chained.first() {
                prev = first.prev_hash;
            }
            started = true;
        }
        if let Some(first) = chained.first()
            && out.last_seq != 0
            && first.seq != out.last_seq + 1
        {
            out.broken
                .get_or_insert(format!("gap: seq {} after {}", first.seq, out.last_seq));
        }
        if let Err(b) = verify_chain(prev, &chained) {
            out.broken
                .get_or_insert(format!("hash chain broken at seq {}: {}", b.seq, b.reason));
        }
        for c in &chained {
            out.events += 1;
            out.last_seq = c.seq;
            prev = c.hash;
            if c.seq % HASH_EVERY == 0 {
                out.hashes.insert(c.seq, hex::encode(c.hash));
            }
            // Node and journal seq: unique per journal event, so seen twice means one journal
            // event chained twice.
            if let Some(by) = c.event.served_by
                && let Some(first) = origins.insert(by, c.seq)
            {
                out.chained_twice.push(first);
                out.chained_twice.push(c.seq);
            }
            if let Some(id) = &c.event.correlation_id
                && let Some((w, n)) = parse_id(id)
            {
                out.ids.entry(w).or_default().insert(n);
                // A listing audits every patient it listed under one id: count attempts per
                // (id, action, patient).
                let patient = c
                    .event
                    .patient
                    .as_ref()
                    .map(|p| p.as_str())
                    .unwrap_or_default();
                let k = per_id
                    .entry(format!("{id} {} {patient}", c.event.action.as_str()))
                    .or_default();
                *k += 1;
                if *k == 2 {
                    out.repeated += 1;
                }
            }
        }
        if page.next_seq == 0 {
            break;
        }
        from = page.next_seq;
    }
    if out.last_seq > 0 {
        out.hashes.insert(out.last_seq, hex::encode(prev));
    }
    Ok(out)
}

/// Runs a read under correlation id `id`: `ok` with `value`, or a failed read.
async fn correlated_read<T>(
    id: String,
    value: Value,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Completion {
    match correlated(id, call).await {
        Ok(_) => Completion::ok(value),
        Err(e) => read_error(value, &e),
    }
}

impl Workload for AuditWorkload {
    type WorkerState = AuditWorker;

    fn name(&self) -> &'static str {
        "audit"
    }

    fn next_op(&self, worker: usize, state: &mut AuditWorker, rng: &mut ChaCha8Rng) -> Invocation {
        let n = state.next;
        state.next += 1;
        let roll: u32 = rng.gen_range(0..100);
        let f = match roll {
            0..40 => "lookup",
            40..70 => "follower-lookup",
            70..85 => "decide",
            85..90 => "list",
            _ => "register",
        };
        Invocation {
            f,
            key: Some(rng.gen_range(0..PATIENTS)),
            value: json!(format!("a{worker}-{n}")),
        }
    }

    async fn invoke(
        &self,
        clients: &Clients,
        _state: &mut AuditWorker,
        op: &Invocation,
    ) -> Completion {
        let id = op.value.as_str().unwrap_or_default().to_owned();
        let key = op.key.unwrap_or_default();
        let value = op.value.clone();
        match op.f {
            "lookup" | "follower-lookup" => {
                let request = LookupLocatorRequest {
                    patient: patient(key),
                    read: if op.f == "lookup" { None } else { bounded() },
                    ..Default::default()
                };
                correlated_read(id, value, clients.read.lookup_locator(request)).await
            }
            "decide" => {
                let request = AccessDecisionRequest {
                    patient: patient(key),
                    personnel: "1234567".into(),
                    org: self.org.clone(),
                    service: "kjernejournal".into(),
                    purpose: "treatment".into(),
                    ..Default::default()
                };
                correlated_read(id, value, clients.read.decide_access(request)).await
            }
            "list" => {
                let request = ListLocatorsRequest {
                    org: self.org.clone(),
                    page_size: 20,
                    ..Default::default()
                };
                correlated_read(id, value, clients.read.list_locators(request)).await
            }
            "register" => {
                let request = RegisterLocatorRequest {
                    patient: patient(key),
                    org: self.org.clone(),
                    system: "jepsen-audit".into(),
                    request_id: id,
                    ..Default::default()
                };
                match clients.write.register_locator(request).await {
                    Ok(_) => Completion::ok(value),
                    Err(e) => write_error(value, &e),
                }
            }
            "drain" => {
                // An audit query on a node waits for that node's journal to reach the chain.
                let node = op.key.unwrap_or_default() as usize;
                let Some(client) = clients.nodes.get(node) else {
                    return Completion::fail(value, "no such node");
                };
                let request = QueryAuditRequest {
                    limit: 1,
                    read: bounded(),
                    ..Default::default()
                };
                match client.query_audit(request).await {
                    Ok(_) => Completion::ok(json!({"node": node})),
                    Err(e) => read_error(value, &e),
                }
            }
            "chain" => match read_chain(&clients.write, None).await {
                Ok(c) => Completion::ok(c.to_json(None)),
                Err(e) => read_error(Value::Null, &e),
            },
            "node-chain" => {
                let node = op.key.unwrap_or_default() as usize;
                let Some(client) = clients.nodes.get(node) else {
                    return Completion::fail(value, "no such node");
                };
                match read_chain(client, bounded()).await {
                    Ok(c) => Completion::ok(c.to_json(Some(node))),
                    Err(e) => read_error(Value::Null, &e),
                }
            }
            other => Completion::fail(value, format!("unknown op {other}")),
        }
    }

    fn final_ops(&self) -> Vec<Invocation> {
        let per_node = |f: &'static str| {
            (0..self.nodes).map(move |n| Invocation {
                f,
                key: Some(n as u64),
                value: Value::Null,
            })
        };
        let mut ops: Vec<Invocation> = per_node("drain").collect();
        ops.push(Invocation {
            f: "chain",
            key: None,
            value: Value::Null,
        });
        ops.extend(per_node("node-chain"));
        ops
    }

    fn check(&self, history: &[Event]) -> CheckOutcome {
        check_history(history)
    }

    fn check_with_nemesis(&self, history: &[Event], nemesis: &[LogEntry]) -> CheckOutcome {
        check_history_with_nemesis(history, nemesis)
    }
}

/// The ids a chain read found, back from its JSON.
fn ids_of(v: &Value) -> BTreeSet<(u64, u64)> {
    let mut out = BTreeSet::new();
    if let Some(map) = v.get("ids").and_then(Value::as_object) {
        for (w, rs) in map {
            let Ok(w) = w.parse::<u64>() else { continue };
            for r in rs.as_array().into_iter().flatten() {
                let (Some(a), Some(b)) = (
                    r.get(0).and_then(Value::as_u64),
                    r.get(1).and_then(Value::as_u64),
                ) else {
                    continue;
                };
                out.extend((a..=b).map(|n| (w, n)));
            }
        }
    }
    out
}

/// Checks an audit history.
pub fn check_history(history: &[Event]) -> CheckOutcome {
    check_history_with_nemesis(history, &[])
}

/// How long before an undrained decommission an event may have been answered and still be in
/// the wiped journal: the node refuses audited answers once an event waited
/// `audit.ship_lag_ms_max` (30 s), plus an operation's deadline.
const UNDRAINED_WINDOW_NS: u64 = 60_000_000_000;

/// When a node was removed and then wiped with its audit journal not drained (nemesis
/// `undrained_slot` events): nanoseconds since the start.
fn undrained_removals(nemesis: &[LogEntry]) -> Vec<u64> {
    nemesis
        .iter()
        .filter(|e| e.phase == "event" && e.detail.get("undrained_slot").is_some())
        .map(|e| e.time_ns)
        .collect()
}

/// Checks an audit history, knowing the nemesis's undrained decommissions: an event lost
/// while one was possible (answered ok within [`UNDRAINED_WINDOW_NS`] before it) is the loss
/// the guarantee allows for a node lost for good, counted apart; any other loss is invalid.
pub fn check_history_with_nemesis(history: &[Event], nemesis: &[LogEntry]) -> CheckOutcome {
    let undrained = undrained_removals(nemesis);
    let mut answered_ns: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut promised: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut ok_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut chain: Option<Value> = None;
    let mut copies: Vec<Value> = Vec::new();
    for op in pair(history) {
        let Some(done) = op.done else { continue };
        if done.kind != EventType::Ok {
            continue;
        }
        let f = op.invoke.f.as_str();
        if AUDITED.contains(&f) {
            *ok_by_kind.entry(f.to_owned()).or_default() += 1;
            if let Some(id) = op.invoke.value.as_str().and_then(parse_id) {
                promised.insert(id, f.to_owned());
                answered_ns.insert(id, done.time_ns);
            }
        } else if f == "chain" {
            chain = Some(done.value.clone());
        } else if f == "node-chain" {
            copies.push(done.value.clone());
        }
    }
    let Some(chain) = chain else {
        return CheckOutcome {
            valid: Validity::Unknown,
            summary: "audit: the final chain read never succeeded".into(),
            details: json!({"ok": ok_by_kind}),
        };
    };
    let found = ids_of(&chain);
    let excused = |id: &(u64, u64)| {
        let t = answered_ns.get(id).copied().unwrap_or(u64::MAX);
        undrained
            .iter()
            .any(|&r| t <= r && r - t <= UNDRAINED_WINDOW_NS)
    };
    let mut lost = Vec::new();
    let mut lost_undrained = Vec::new();
    for (id, f) in promised.iter().filter(|(id, _)| !found.contains(id)) {
        let name = format!("a{}-{} ({f})", id.0, id.1);
        if excused(id) {
            lost_undrained.push(name);
        } else {
            lost.push(name);
        }
    }
    let mut duplicates = Vec::new();
    let mut broken = Vec::new();
    let mut hashes: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for (i, copy) in std::iter::once(&chain).chain(copies.iter()).enumerate() {
        let name = copy
            .get("node")
            .and_then(Value::as_u64)
            .map_or("leader".to_owned(), |n| format!("node {n}"));
        if let Some(d) = copy.get("chained_twice").and_then(Value::as_array)
            && !d.is_empty()
        {
            duplicates.push(json!({"copy": name, "seqs": d.iter().take(20).collect::<Vec<_>>()}));
        }
        if let Some(b) = copy.get("broken").and_then(Value::as_str) {
            broken.push(format!("{name}: {b}"));
        }
        for (seq, h) in copy
            .get("hashes")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let (Ok(seq), Some(h)) = (seq.parse::<u64>(), h.as_str()) else {
                continue;
            };
            match hashes.get(&seq) {
                Some((other, hash)) if hash != h => {
                    conflicts.push(format!("seq {seq}: {other} and {name} differ"));
                }
                Some(_) => {}
                None => {
                    hashes.insert(seq, (name.clone(), h.to_owned()));
                }
            }
        }
        let _ = i;
    }
    let valid =
        if lost.is_empty() && duplicates.is_empty() && broken.is_empty() && conflicts.is_empty() {
            Validity::Valid
        } else {
            Validity::Invalid
        };
    let events = chain.get("events").and_then(Value::as_u64).unwrap_or(0);
    let repeated = chain.get("repeated").and_then(Value::as_u64).unwrap_or(0);
    CheckOutcome {
        valid,
        summary: format!(
            "audit: {} ok audited ops, {} events in the chain, {} copies read; {} lost, {} copies with an event chained twice, {} broken copies, {} hash conflicts ({} ids with retried attempts; {} lost with {} undrained decommissions, allowed)",
            promised.len(),
            events,
            copies.len() + 1,
            lost.len(),
            duplicates.len(),
            broken.len(),
            conflicts.len(),
            repeated,
            lost_undrained.len(),
            undrained.len(),
        ),
        details: json!({
            "ok": ok_by_kind,
            "chain_events": events,
            "copies": copies.len() + 1,
            "lost_count": lost.len(),
            "lost": examples(&lost, 20),
            "chained_twice": duplicates,
            "broken": broken,
            "hash_conflicts": examples(&conflicts, 20),
            "repeated_ids": repeated,
            "undrained_decommissions": undrained.len(),
            "lost_undrained_count": lost_undrained.len(),
            "lost_undrained": examples(&lost_undrained, 20),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(index: u64, process: u64, kind: EventType, f: &str, value: Value) -> Event {
        Event {
            index,
            time_ns: index * 10,
            process,
            kind,
            f: f.into(),
            key: Some(1),
            value,
            node: None,
            error: None,
        }
    }

    fn op(events: &mut Vec<Event>, process: u64, f: &str, id: &str, kind: EventType, done: Value) {
        let i = events.len() as u64;
        events.push(ev(i, process, EventType::Invoke, f, json!(id)));
        events.push(ev(i + 1, process, kind, f, done));
    }

    fn chain_value(ids: &[(u64, u64)], node: Option<usize>, hash_at_10: &str) -> Value {
        let mut c = ChainRead::default();
        for &(w, n) in ids {
            c.ids.entry(w).or_default().insert(n);
        }
        c.events = ids.len() as u64;
        c.hashes.insert(10, hash_at_10.into());
        c.to_json(node)
    }

    #[test]
    fn ids_round_trip_as_runs() {
        let ns: BTreeSet<u64> = [1, 2, 3, 7, 9, 10].into();
        assert_eq!(runs(&ns), vec![[1, 3], [7, 7], [9, 10]]);
        let v = chain_value(&[(0, 1), (0, 2), (0, 3), (2, 9)], None, "h");
        assert_eq!(ids_of(&v), [(0, 1), (0, 2), (0, 3), (2, 9)].into());
        assert_eq!(parse_id("a3-17"), Some((3, 17)));
        assert_eq!(parse_id("b3-17"), None);
    }

    /// A loss is allowed only with an undrained decommission shortly after its answer.
    #[test]
    fn a_loss_is_excused_only_by_an_undrained_decommission_just_after_it() {
        let mut h = Vec::new();
        // a0-1 is answered at 30 ns (event times are index * 10).
        op(&mut h, 1, "lookup", "a0-0", EventType::Ok, json!("a0-0"));
        op(&mut h, 1, "lookup", "a0-1", EventType::Ok, json!("a0-1"));
        op(
            &mut h,
            9,
            "chain",
            "",
            EventType::Ok,
            chain_value(&[(0, 0)], None, "h"),
        );
        let removal = |time_ns: u64, detail: Value| LogEntry {
            time_ns,
            phase: "event".into(),
            id: None,
            kind: "member".into(),
            detail,
        };
        let drained = [removal(40, json!({"rejoined_slot": 1, "new_id": 7}))];
        let out = check_history_with_nemesis(&h, &drained);
        assert_eq!(out.valid, Validity::Invalid, "{}", out.summary);
        // Before the answer, or long after it: no excuse.
        for t in [20, 40 + UNDRAINED_WINDOW_NS] {
            let late = [removal(t, json!({"undrained_slot": 1, "removed_id": 2}))];
            let out = check_history_with_nemesis(&h, &late);
            assert_eq!(out.valid, Validity::Invalid, "{t}: {}", out.summary);
        }
        let undrained = [removal(40, json!({"undrained_slot": 1, "removed_id": 2}))];
        let out = check_history_with_nemesis(&h, &undrained);
        assert_eq!(out.valid, Validity::Valid, "{}", out.summary);
        assert_eq!(out.details["lost_count"], json!(0));
        assert_eq!(out.details["lost_undrained_count"], json!(1));
    }

    #[test]
    fn a_lost_event_or_conflict_is_invalid_and_unacknowledged_ops_are_free() {
        let mut h = Vec::new();
        op(&mut h, 1, "lookup", "a0-0", EventType::Ok, json!("a0-0"));
        op(&mut h, 1, "decide", "a0-1", EventType::Ok, json!("a0-1"));
        // Failed and unknown operations promise nothing.
        op(&mut h, 2, "lookup", "a1-0", EventType::Fail, json!("a1-0"));
        op(
            &mut h,
            3,
            "register",
            "a1-1",
            EventType::Info,
            json!("a1-1"),
        );
        let mut valid = h.clone();
        op(
            &mut valid,
            9,
            "chain",
            "",
            EventType::Ok,
            chain_value(&[(0, 0), (0, 1)], None, "h"),
        );
        op(
            &mut valid,
            9,
            "node-chain",
            "",
            EventType::Ok,
            chain_value(&[(0, 0)], Some(1), "h"),
        );
        assert_eq!(check_history(&valid).valid, Validity::Valid);

        let mut lost = h.clone();
        op(
            &mut lost,
            9,
            "chain",
            "",
            EventType::Ok,
            chain_value(&[(0, 0)], None, "h"),
        );
        let out = check_history(&lost);
        assert_eq!(out.valid, Validity::Invalid, "{}", out.summary);
        assert_eq!(out.details["lost_count"], json!(1));

        let mut conflict = h.clone();
        op(
            &mut conflict,
            9,
            "chain",
            "",
            EventType::Ok,
            chain_value(&[(0, 0), (0, 1)], None, "h"),
        );
        op(
            &mut conflict,
            9,
            "node-chain",
            "",
            EventType::Ok,
            chain_value(&[], Some(2), "other"),
        );
        assert_eq!(check_history(&conflict).valid, Validity::Invalid);

        let mut dup = h.clone();
        let mut v = chain_value(&[(0, 0), (0, 1)], None, "h");
        v["chained_twice"] = json!([4, 5]);
        op(&mut dup, 9, "chain", "", EventType::Ok, v);
        let out = check_history(&dup);
        assert_eq!(
            out.valid,
            Validity::Invalid,
            "one event chained twice (same serving node, same millisecond)"
        );
        assert_eq!(
            out.details["chained_twice"].as_array().map(Vec::len),
            Some(1)
        );

        let mut unknown = h;
        op(&mut unknown, 9, "chain", "", EventType::Fail, Value::Null);
        assert_eq!(check_history(&unknown).valid, Validity::Unknown);
    }
}
