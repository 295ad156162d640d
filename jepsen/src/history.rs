//! Operation histories: what every client process invoked and how it completed.
//!
//! Each operation is recorded twice: an `invoke` event before the request is sent and a
//! completion (`ok`, `fail` or `info`) after the answer, both stamped with monotonic
//! nanoseconds since the test started. `fail` means the operation certainly did not take
//! effect (INVALID_ARGUMENT, FAILED_PRECONDITION of a compare-and-set); `info` means the outcome
//! is unknown (timeout, unavailable) and the operation may take effect at any later time.
//!
//! Events go through a bounded channel to a [`Recorder`] task that appends them to
//! `history.jsonl` and keeps them for the checkers.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

/// Events buffered between the clients and the recorder.
const EVENT_QUEUE_LEN: usize = 8192;

/// The kind of a history event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The operation was started.
    Invoke,
    /// It completed and took effect.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown whether it took effect (it may still, at any time).
    Info,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history.
    pub index: u64,
    /// Monotonic nanoseconds since the test started.
    pub time_ns: u64,
    /// The logical client process (a worker gets a new process after an `info`).
    pub process: u64,
    /// Invoke or completion.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Operation name (`read`, `write`, `cas`, `add`, ...).
    pub f: String,
    /// Key of the operation, for keyed workloads.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key: Option<u64>,
    /// Argument (invoke) or result (ok).
    #[serde(default)]
    pub value: Value,
    /// The node the client was homed on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<usize>,
    /// Error text of a fail / info.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// An operation as a workload produces it, before it is run.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Operation name.
    pub f: &'static str,
    /// Key, for keyed workloads.
    pub key: Option<u64>,
    /// Argument.
    pub value: Value,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Ok, fail or info.
    pub kind: EventType,
    /// Result (for ok) or the argument again.
    pub value: Value,
    /// Error text for fail / info.
    pub error: Option<String>,
}

impl Completion {
    /// Took effect, with `value` as result.
    pub fn ok(value: Value) -> Self {
        Completion {
            kind: EventType::Ok,
            value,
            error: None,
        }
    }

    /// Certainly did not take effect.
    pub fn fail(value: Value, error: impl Into<String>) -> Self {
        Completion {
            kind: EventType::Fail,
            value,
            error: Some(error.into()),
        }
    }

    /// Unknown outcome.
    pub fn info(value: Value, error: impl Into<String>) -> Self {
        Completion {
            kind: EventType::Info,
            value,
            error: Some(error.into()),
        }
    }
}

/// A handle clients use to record events; cheap to clone.
#[derive(Debug, Clone)]
pub struct HistoryHandle {
    start: Instant,
    tx: mpsc::Sender<Event>,
}

impl HistoryHandle {
    /// Nanoseconds since the test started (monotonic).
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant the test started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Records that `process` invokes `op` (on its home `node`).
    pub async fn invoke(&self, process: u64, node: Option<usize>, op: &Invocation) {
        let event = Event {
            index: 0,
            time_ns: self.now_ns(),
            process,
            kind: EventType::Invoke,
            f: op.f.to_owned(),
            key: op.key,
            value: op.value.clone(),
            node,
            error: None,
        };
        // The recorder only goes away at the end of the test; losing events then is harmless.
        let _ = self.tx.send(event).await;
    }

    /// Records how the operation `op` of `process` completed.
    pub async fn complete(
        &self,
        process: u64,
        node: Option<usize>,
        op: &Invocation,
        done: Completion,
    ) {
        let event = Event {
            index: 0,
            time_ns: self.now_ns(),
            process,
            kind: done.kind,
            f: op.f.to_owned(),
            key: op.key,
            value: done.value,
            node,
            error: done.error,
        };
        let _ = self.tx.send(event).await;
    }
}

/// Writes events to `history.jsonl` and collects them.
pub struct Recorder {
    task: tokio::task::JoinHandle<anyhow::Result<Vec<Event>>>,
}

impl Recorder {
    /// Starts a recorder writing to `path`; returns it with the clients' handle.
    pub fn start(path: &Path, start: Instant) -> anyhow::Result<(Recorder, HistoryHandle)> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let (tx, mut rx) = mpsc::channel::<Event>(EVENT_QUEUE_LEN);
        let task = tokio::task::spawn_blocking(move || {
            let mut out = std::io::BufWriter::new(file);
            let mut events = Vec::new();
            while let Some(mut event) = rx.blocking_recv() {
                event.index = events.len() as u64;
                serde_json::to_writer(&mut out, &event)?;
                out.write_all(b"\n")?;
                events.push(event);
            }
            out.flush()?;
            Ok(events)
        });
        Ok((Recorder { task }, HistoryHandle { start, tx }))
    }

    /// Waits until every handle is dropped, then returns the history.
    pub async fn finish(self) -> anyhow::Result<Vec<Event>> {
        self.task.await.context("history recorder panicked")?
    }
}

/// Reads a `history.jsonl` back.
pub fn load(path: &Path) -> anyhow::Result<Vec<Event>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("line {}", i + 1)))
        .collect()
}

/// An invocation paired with its completion.
#[derive(Debug, Clone)]
pub struct Op<'a> {
    /// The invoke event.
    pub invoke: &'a Event,
    /// The completion; `None` if the history ended first (treated like `info`).
    pub done: Option<&'a Event>,
}

impl Op<'_> {
    /// The completion type (`Info` when there is none).
    pub fn outcome(&self) -> EventType {
        self.done.map_or(EventType::Info, |d| d.kind)
    }

    /// Completion time, if the operation completed with certainty (ok or fail).
    pub fn end_ns(&self) -> Option<u64> {
        self.done
            .filter(|d| d.kind != EventType::Info)
            .map(|d| d.time_ns)
    }
}

/// Pairs every invoke with the next completion of the same process.
pub fn pair(events: &[Event]) -> Vec<Op<'_>> {
    let mut open: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    let mut ops: Vec<Op<'_>> = Vec::new();
    for e in events {
        if e.kind == EventType::Invoke {
            open.insert(e.process, ops.len());
            ops.push(Op {
                invoke: e,
                done: None,
            });
        } else if let Some(i) = open.remove(&e.process) {
            ops[i].done = Some(e);
        }
    }
    ops
}

/// A history event for checker tests: `index` doubles as the monotonic time.
#[cfg(test)]
pub(crate) fn test_event(
    index: u64,
    process: u64,
    kind: EventType,
    f: &str,
    key: Option<u64>,
    value: Value,
) -> Event {
    Event {
        index,
        time_ns: index,
        process,
        kind,
        f: f.into(),
        key,
        value,
        node: None,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(time_ns: u64, process: u64, kind: EventType) -> Event {
        test_event(time_ns, process, kind, "read", None, Value::Null)
    }

    #[test]
    fn pairs_by_process() {
        let events = vec![
            ev(1, 1, EventType::Invoke),
            ev(2, 2, EventType::Invoke),
            ev(3, 2, EventType::Ok),
            ev(4, 1, EventType::Info),
            ev(5, 3, EventType::Invoke),
        ];
        let ops = pair(&events);
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].outcome(), EventType::Info);
        assert_eq!(ops[0].end_ns(), None);
        assert_eq!(ops[1].end_ns(), Some(3));
        assert!(ops[2].done.is_none());
    }

    #[tokio::test]
    async fn records_and_reloads() {
        let dir = std::env::temp_dir().join(format!("kj-hist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("history.jsonl");
        let (rec, h) = Recorder::start(&path, Instant::now()).expect("start");
        let op = Invocation {
            f: "write",
            key: Some(3),
            value: Value::from(7),
        };
        h.invoke(1, Some(0), &op).await;
        h.complete(1, Some(0), &op, Completion::ok(Value::from(7)))
            .await;
        drop(h);
        let events = rec.finish().await.expect("finish");
        assert_eq!(events.len(), 2);
        let back = load(&path).expect("load");
        assert_eq!(back[1].kind, EventType::Ok);
        assert_eq!(back[1].index, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
