//! CPU profiles with `perf` (software clock event: works in VMs without hardware counters):
//! record one process during a run, then summarise by thread and by symbol (self time).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::results::Profile;

/// Sampling frequency, Hz.
const FREQUENCY_HZ: u32 = 499;
/// Stages of Kartotek's request path: a frame name fragment and what it is. A stage's share
/// is the largest inclusive share of a frame containing the fragment.
const STAGES: [(&str, &str); 9] = [
    (
        "h2::proto::connection::Connection",
        "HTTP/2 connections (h2, tonic), all traffic",
    ),
    (
        "LocatorService>::lookup",
        "Lookup handler (CPU only; waits cost none)",
    ),
    (
        "StateReader::lookup_locator",
        "  of which: reading the state (RocksDB iterator)",
    ),
    ("LocatorService>::register", "Register handler"),
    (
        "Applier::apply_entry",
        "state machine apply (writes, audit events)",
    ),
    ("ReplicationCore", "replication to the followers (openraft)"),
    ("log_store::run_flusher", "Raft log flush + fsync thread"),
    ("raft_service", "Raft RPC service (followers' appends)"),
    ("proposer", "proposal batching"),
];
/// Allocator symbols (self time summed).
const ALLOCATOR: [&str; 8] = [
    "malloc",
    "_int_malloc",
    "_int_free",
    "cfree",
    "malloc_consolidate",
    "unlink_chunk",
    "realloc",
    "_int_realloc",
];
/// Lines kept per summary.
const ROWS_MAX: usize = 25;

/// A running `perf record`.
pub struct Recording {
    child: Child,
    data: String,
    command: String,
}

/// Whether `perf` can sample here.
pub fn available() -> bool {
    Command::new("perf")
        .args(["stat", "-e", "cpu-clock", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Starts recording `pid` for `duration` into `data_file`.
pub fn start(pid: u32, duration: Duration, data_file: &Path) -> anyhow::Result<Recording> {
    let data = data_file.display().to_string();
    let secs = format!("{:.1}", duration.as_secs_f64());
    let args = [
        "record".to_owned(),
        "-e".into(),
        "cpu-clock".into(),
        "-F".into(),
        FREQUENCY_HZ.to_string(),
        "--call-graph".into(),
        "dwarf,16384".into(),
        "-p".into(),
        pid.to_string(),
        "-o".into(),
        data.clone(),
        "--".into(),
        "sleep".into(),
        secs,
    ];
    let command = format!("perf {}", args.join(" "));
    let child = Command::new("perf")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf record")?;
    Ok(Recording {
        child,
        data,
        command,
    })
}

impl Recording {
    /// Waits for the recording and summarises it.
    pub fn finish(mut self, what: &str, keep: bool) -> anyhow::Result<Profile> {
        self.child.wait().context("waiting for perf record")?;
        let by_thread = report(&self.data, "comm", false)?;
        let by_symbol = report(&self.data, "dso,sym", false)?;
        let inclusive = report(&self.data, "sym", true)?;
        let mut by_stage: Vec<(String, f64)> = STAGES
            .iter()
            .map(|(frag, label)| {
                let share = inclusive
                    .iter()
                    .filter(|(n, _)| n.contains(frag))
                    .map(|(_, p)| *p)
                    .fold(0.0, f64::max);
                ((*label).to_owned(), share)
            })
            .collect();
        let flat = report(&self.data, "sym", false)?;
        let alloc: f64 = flat
            .iter()
            .filter(|(n, _)| {
                let sym = n
                    .rsplit(' ')
                    .next()
                    .unwrap_or("")
                    .split('@')
                    .next()
                    .unwrap_or("");
                ALLOCATOR.contains(&sym)
            })
            .map(|(_, p)| *p)
            .sum();
        by_stage.push(("memory allocator (malloc/free, self time)".into(), alloc));
        if !keep {
            let _ = std::fs::remove_file(&self.data);
        }
        Ok(Profile {
            what: what.to_owned(),
            command: self.command,
            by_thread,
            by_symbol,
            by_stage,
            data_file: keep.then_some(self.data),
        })
    }
}

/// `perf report` rows (name, share %): self time, or inclusive (`children`) time.
fn report(data: &str, sort: &str, children: bool) -> anyhow::Result<Vec<(String, f64)>> {
    let out = Command::new("perf")
        .args([
            "report",
            "-i",
            data,
            "--stdio",
            if children {
                "--children"
            } else {
                "--no-children"
            },
            "-g",
            "none",
            "--percent-limit",
            if children { "0.2" } else { "0.3" },
            "--sort",
            sort,
        ])
        .stderr(Stdio::null())
        .output()
        .context("running perf report")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let Some((pct, rest)) = t.split_once('%') else {
            continue;
        };
        let Ok(p) = pct.trim().parse::<f64>() else {
            continue;
        };
        // With children: "<children>% <self>% [.] name"; the first number is inclusive.
        let rest = if children {
            rest.split_once('%').map(|(_, r)| r).unwrap_or(rest)
        } else {
            rest
        };
        let name = rest.split_whitespace().collect::<Vec<_>>().join(" ");
        rows.push((name, p));
        if !children && rows.len() == ROWS_MAX {
            break;
        }
    }
    Ok(rows)
}
