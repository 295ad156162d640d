//! The watch workload: the locator change feed, read across faults, checked against the
//! writes and the final state: no gap, no duplicate, no reordering.
//!
//! Writers upsert a few entries (patient `k`, a fixed org, system `w`) with fresh values
//! `v<n>`; an acknowledged write returns its revision. The first [`WATCHERS`] workers instead
//! keep a [`LocatorWatch`] on the org open for the whole test (it reconnects to other nodes and
//! resumes after its progress; if it gives up, the worker reopens it after its own progress)
//! and record each batch of events as an operation. After healing, a final read lists the
//! entries and a fresh watch from revision 1 reads the whole feed up to the final read's
//! revision. The checker demands:
//! - each watcher's events, and the final feed, have strictly increasing revisions (no
//!   duplicate, no reordering);
//! - over the revisions a watcher covered, it saw exactly the final feed's events (no gap, no
//!   phantom, same content);
//! - every acknowledged write is in the final feed at its revision with its value, and every
//!   event of the final feed is a write some client attempted;
//! - for every entry, the last event of the final feed is its final state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kartotek_client::proto::{
    ListLocatorsRequest, LocatorEntry, RegisterLocatorRequest, WatchLocatorsRequest,
};
use kartotek_client::{KartotekClient, LocatorWatch};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    CheckOutcome, Clients, Validity, Workload, examples, org, patient, read_error, value_of,
    write_error,
};
use crate::history::{Completion, Event, EventType, Invocation, pair};

/// Workers that watch instead of writing.
pub const WATCHERS: usize = 2;
/// Entries written to.
const KEYS: u64 = 20;
/// System name of the watched entries.
const SYSTEM: &str = "w";
/// How long one `watch` operation collects events.
const POLL: Duration = Duration::from_millis(500);
/// How long the final watch may take to reach the final revision.
const FINAL_WATCH: Duration = Duration::from_secs(30);

/// The watch workload.
#[derive(Debug)]
pub struct WatchWorkload {
    org: String,
    keys: HashMap<String, u64>,
    next_value: AtomicU64,
    /// Revision of the final read, which the final watch must reach.
    final_revision: Mutex<Option<u64>>,
}

/// A worker's watch, if it is a watcher.
#[derive(Default)]
pub struct WatchWorker {
    watch: Option<LocatorWatch>,
    /// Everything up to here was delivered to this worker.
    progress: u64,
}

/// An event as recorded: (revision, key, value).
type Ev = (u64, u64, Option<u64>);

impl Default for WatchWorkload {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchWorkload {
    /// A new workload.
    pub fn new() -> Self {
        WatchWorkload {
            org: org(3),
            keys: (0..KEYS).map(|k| (patient(k), k)).collect(),
            next_value: AtomicU64::new(1),
            final_revision: Mutex::new(None),
        }
    }

    fn event_of(&self, revision: u64, e: &LocatorEntry) -> Value {
        let key = self.keys.get(&e.patient).copied();
        json!([revision, key, value_of(e)])
    }

    fn open(&self, client: &KartotekClient, from: u64) -> LocatorWatch {
        client.watch_locators(WatchLocatorsRequest {
            from_revision: from,
            patient: String::new(),
            org: self.org.clone(),
        })
    }

    /// Collects events for `budget`; returns (events, progress).
    async fn poll(
        &self,
        watch: &mut LocatorWatch,
        budget: Duration,
        events: &mut Vec<Value>,
    ) -> Result<u64, kartotek_client::ClientError> {
        let until = tokio::time::Instant::now() + budget;
        loop {
            match tokio::time::timeout_at(until, watch.next()).await {
                Err(_) => return Ok(watch.progress_revision().unwrap_or(0)),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(msg)) => {
                    for ev in &msg.events {
                        if let Some(kartotek_client::proto::change_event::Record::Locator(e)) =
                            &ev.record
                        {
                            events.push(self.event_of(ev.revision, e));
                        }
                    }
                }
            }
        }
    }

    async fn final_watch(&self, client: &KartotekClient) -> Completion {
        let target = self
            .final_revision
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(0);
        let mut watch = self.open(client, 1);
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + FINAL_WATCH;
        loop {
            match self.poll(&mut watch, POLL, &mut events).await {
                Ok(progress) if progress >= target => {
                    return Completion::ok(json!({"events": events, "progress": progress}));
                }
                Ok(_) if tokio::time::Instant::now() < deadline => {}
                Ok(progress) => {
                    return Completion::fail(
                        Value::Null,
                        format!("final watch reached {progress}, not {target}"),
                    );
                }
                Err(e) => return read_error(Value::Null, &e),
            }
        }
    }

    async fn final_read(&self, client: &KartotekClient) -> Completion {
        let mut entries = Vec::new();
        let mut token = String::new();
        let mut revision = 0;
        for _ in 0..100 {
            let page = match client
                .list_locators(ListLocatorsRequest {
                    org: self.org.clone(),
                    page_size: 1000,
                    page_token: token,
                    include_retired: true,
                    read: None,
                })
                .await
            {
                Ok(p) => p,
                Err(e) => return read_error(Value::Null, &e),
            };
            if revision == 0 {
                revision = page.header.map_or(0, |h| h.revision);
            }
            entries.extend(
                page.entries
                    .iter()
                    .map(|e| self.event_of(e.mod_revision, e)),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        *self
            .final_revision
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(revision);
        Completion::ok(json!({"entries": entries, "revision": revision}))
    }
}

impl Workload for WatchWorkload {
    type WorkerState = WatchWorker;

    fn name(&self) -> &'static str {
        "watch"
    }

    fn next_op(&self, worker: usize, _state: &mut WatchWorker, rng: &mut ChaCha8Rng) -> Invocation {
        if worker < WATCHERS {
            return Invocation {
                f: "watch",
                key: None,
                value: Value::Null,
            };
        }
        Invocation {
            f: "write",
            key: Some(rng.gen_range(0..KEYS)),
            value: json!(self.next_value.fetch_add(1, Ordering::Relaxed)),
        }
    }

    async fn invoke(
        &self,
        clients: &Clients,
        state: &mut WatchWorker,
        op: &Invocation,
    ) -> Completion {
        match op.f {
            "write" => {
                let key = op.key.unwrap_or(0);
                let value = op.value.as_u64().unwrap_or(0);
                let req = RegisterLocatorRequest {
                    patient: patient(key),
                    org: self.org.clone(),
                    system: SYSTEM.into(),
                    categories: vec![format!("v{value}")],
                    ..Default::default()
                };
                match clients.write.register_locator(req).await {
                    Ok(resp) => Completion::ok(
                        json!({"value": value, "rev": resp.entry.map_or(0, |e| e.mod_revision)}),
                    ),
                    Err(e) => write_error(op.value.clone(), &e),
                }
            }
            "watch" => {
                let from = state.progress + 1;
                let watch = state
                    .watch
                    .get_or_insert_with(|| self.open(&clients.write, from));
                let mut events = Vec::new();
                let polled = self.poll(watch, POLL, &mut events).await;
                match polled {
                    Ok(progress) => {
                        state.progress = state.progress.max(progress);
                        Completion::ok(json!({"events": events, "progress": progress}))
                    }
                    Err(e) => {
                        // Events delivered before the failure still count: keep them.
                        state.progress = state.progress.max(watch.progress_revision().unwrap_or(0));
                        state.watch = None;
                        Completion::ok(json!({
                            "events": events,
                            "progress": state.progress,
                            "reopened_after": e.to_string(),
                        }))
                    }
                }
            }
            "final-read" => self.final_read(&clients.write).await,
            "final-watch" => self.final_watch(&clients.write).await,
            other => Completion::fail(op.value.clone(), format!("unknown op {other}")),
        }
    }

    fn final_ops(&self) -> Vec<Invocation> {
        ["final-read", "final-watch"]
            .into_iter()
            .map(|f| Invocation {
                f,
                key: None,
                value: Value::Null,
            })
            .collect()
    }

    fn check(&self, history: &[Event]) -> CheckOutcome {
        check_history(history)
    }
}

fn parse_events(v: &Value) -> Vec<Ev> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e[0].as_u64()?, e[1].as_u64()?, e[2].as_u64())))
                .collect()
        })
        .unwrap_or_default()
}

/// Revisions that go back or repeat.
fn disorder(events: &[Ev]) -> Vec<Value> {
    events
        .windows(2)
        .filter(|w| w[1].0 <= w[0].0)
        .map(|w| json!({"after": w[0].0, "got": w[1].0}))
        .collect()
}

/// Checks a watch history.
pub fn check_history(history: &[Event]) -> CheckOutcome {
    let ops = pair(history);
    let last_ok = |f: &str| {
        ops.iter()
            .filter(|o| o.invoke.f == f)
            .filter_map(|o| o.done.filter(|d| d.kind == EventType::Ok))
            .next_back()
    };
    let final_read = last_ok("final-read");
    let final_watch = last_ok("final-watch");
    let (Some(final_read), Some(final_watch)) = (final_read, final_watch) else {
        return CheckOutcome {
            valid: Validity::Unknown,
            summary: "watch: the final read or the final watch did not succeed".into(),
            details: json!({}),
        };
    };
    let feed = parse_events(&final_watch.value["events"]);
    let by_rev: BTreeMap<u64, Ev> = feed.iter().map(|e| (e.0, *e)).collect();
    let mut problems: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for d in disorder(&feed) {
        problems.entry("final_feed_disorder").or_default().push(d);
    }

    // Writes: (key, value) -> acknowledged revision, and every attempted (key, value).
    let mut attempted: HashMap<(u64, u64), bool> = HashMap::new();
    let mut acked = 0usize;
    for o in ops.iter().filter(|o| o.invoke.f == "write") {
        let (Some(key), Some(value)) = (o.invoke.key, o.invoke.value.as_u64()) else {
            continue;
        };
        if o.outcome() == EventType::Fail {
            continue;
        }
        attempted.insert((key, value), true);
        if let Some(d) = o.done.filter(|d| d.kind == EventType::Ok) {
            acked += 1;
            let rev = d.value["rev"].as_u64().unwrap_or(0);
            match by_rev.get(&rev) {
                Some(e) if e.1 == key && e.2 == Some(value) => {}
                other => problems.entry("lost_acknowledged_write").or_default().push(
                    json!({"key": key, "value": value, "rev": rev, "feed_has": other.map(|e| json!(e))}),
                ),
            }
        }
    }
    for e in &feed {
        if !e.2.is_some_and(|v| attempted.contains_key(&(e.1, v))) {
            problems.entry("phantom_event").or_default().push(json!(e));
        }
    }

    // Final state: each entry's last feed event.
    let mut last_of: HashMap<u64, Ev> = HashMap::new();
    for e in &feed {
        last_of.insert(e.1, *e);
    }
    let state = parse_events(&final_read.value["entries"]);
    for s in &state {
        if last_of.get(&s.1) != Some(s) {
            problems
                .entry("final_state_mismatch")
                .or_default()
                .push(json!({"entry": s, "last_feed_event": last_of.get(&s.1)}));
        }
    }
    if state.len() != last_of.len() {
        problems
            .entry("final_state_mismatch")
            .or_default()
            .push(json!({"entries": state.len(), "keys_in_feed": last_of.len()}));
    }

    // Watchers: in order, and exactly the feed over the range they covered.
    let mut watchers: BTreeMap<u64, Vec<Ev>> = BTreeMap::new();
    let mut watch_ops = 0usize;
    for o in ops.iter().filter(|o| o.invoke.f == "watch") {
        if let Some(d) = o.done.filter(|d| d.kind == EventType::Ok) {
            watch_ops += 1;
            // The client itself refuses a stream that goes back.
            if let Some(why) = d.value["reopened_after"].as_str()
                && why.contains("went back")
            {
                problems
                    .entry("watch_disorder")
                    .or_default()
                    .push(json!({"process": o.invoke.process, "client": why}));
            }
            watchers
                .entry(o.invoke.process)
                .or_default()
                .extend(parse_events(&d.value["events"]));
        }
    }
    let mut delivered = 0usize;
    for (process, seen) in &watchers {
        delivered += seen.len();
        for d in disorder(seen) {
            problems
                .entry("watch_disorder")
                .or_default()
                .push(json!({"process": process, "at": d}));
        }
        let (Some(first), Some(last)) = (seen.first(), seen.last()) else {
            continue;
        };
        let expected: Vec<&Ev> = by_rev.range(first.0..=last.0).map(|(_, e)| e).collect();
        let got: Vec<&Ev> = seen.iter().collect();
        if expected != got {
            let missing: Vec<u64> = expected
                .iter()
                .filter(|e| !got.contains(e))
                .map(|e| e.0)
                .collect();
            let extra: Vec<Ev> = got
                .iter()
                .filter(|e| !expected.contains(e))
                .map(|e| **e)
                .collect();
            problems
                .entry("watch_gap_or_phantom")
                .or_default()
                .push(json!({
                    "process": process,
                    "range": [first.0, last.0],
                    "missing_revisions": examples(missing, 20),
                    "unexpected_events": examples(extra, 20),
                }));
        }
    }

    let valid = if problems.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    let counts: BTreeMap<&str, usize> = problems.iter().map(|(k, v)| (*k, v.len())).collect();
    CheckOutcome {
        valid,
        summary: format!(
            "watch: {acked} writes acknowledged, final feed {} events, {} watchers delivered {delivered} events in {watch_ops} polls; problems: {}",
            feed.len(),
            watchers.len(),
            if counts.is_empty() {
                "none".to_owned()
            } else {
                format!("{counts:?}")
            }
        ),
        details: json!({
            "acknowledged_writes": acked,
            "final_feed_events": feed.len(),
            "final_entries": state.len(),
            "watch_events_delivered": delivered,
            "problems": problems
                .into_iter()
                .map(|(k, v)| (k.to_owned(), json!({"count": v.len(), "examples": examples(v, 10)})))
                .collect::<serde_json::Map<_, _>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::history::test_event as ev;

    fn history(watch_events: Value, feed: Value) -> Vec<Event> {
        vec![
            ev(0, 5, EventType::Invoke, "write", Some(1), json!(7)),
            ev(
                1,
                5,
                EventType::Ok,
                "write",
                Some(1),
                json!({"value": 7, "rev": 3}),
            ),
            ev(2, 6, EventType::Invoke, "write", Some(2), json!(8)),
            ev(3, 6, EventType::Info, "write", Some(2), json!(8)),
            ev(4, 0, EventType::Invoke, "watch", None, Value::Null),
            ev(
                5,
                0,
                EventType::Ok,
                "watch",
                None,
                json!({"events": watch_events}),
            ),
            ev(6, 9, EventType::Invoke, "final-read", None, Value::Null),
            ev(
                7,
                9,
                EventType::Ok,
                "final-read",
                None,
                json!({"entries": [[3, 1, 7], [5, 2, 8]], "revision": 5}),
            ),
            ev(8, 9, EventType::Invoke, "final-watch", None, Value::Null),
            ev(
                9,
                9,
                EventType::Ok,
                "final-watch",
                None,
                json!({"events": feed}),
            ),
        ]
    }

    #[test]
    fn accepts_a_consistent_feed() {
        let out = check_history(&history(
            json!([[3, 1, 7], [5, 2, 8]]),
            json!([[3, 1, 7], [5, 2, 8]]),
        ));
        assert_eq!(out.valid, Validity::Valid, "{}", out.details);
    }

    #[test]
    fn finds_gaps_duplicates_and_lost_writes() {
        let gap = check_history(&history(
            json!([[3, 1, 7], [3, 1, 7], [5, 2, 8]]),
            json!([[3, 1, 7], [5, 2, 8]]),
        ));
        assert_eq!(gap.valid, Validity::Invalid);
        assert!(gap.details["problems"]["watch_disorder"]["count"].as_u64() >= Some(1));
        let lost = check_history(&history(json!([[5, 2, 8]]), json!([[5, 2, 8]])));
        assert!(
            lost.details["problems"]["lost_acknowledged_write"]["count"].as_u64() >= Some(1),
            "{}",
            lost.details
        );
        let phantom = check_history(&history(
            json!([]),
            json!([[3, 1, 7], [4, 1, 99], [5, 2, 8]]),
        ));
        assert!(phantom.details["problems"]["phantom_event"]["count"].as_u64() >= Some(1));
    }
}
