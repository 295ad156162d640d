//! The results of a comparison: one record per measured run, aggregates per (system,
//! workload, load) with the repetitions' histograms merged, and everything the report states
//! about the conditions. Serialised as the raw JSON next to the report.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::limits::Timing;
use crate::procfs::{Busyness, Machine};
use crate::runner::{Load, histogram};
use crate::target::Workload;

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// Kartotek.
    Kartotek,
    /// etcd.
    Etcd,
}

impl System {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            System::Kartotek => "Kartotek",
            System::Etcd => "etcd",
        }
    }
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50_us: f64,
    /// 90th.
    pub p90_us: f64,
    /// 99th.
    pub p99_us: f64,
    /// 99.9th.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Percentiles {
    /// From a histogram.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let q = |x: f64| h.value_at_quantile(x) as f64;
        Percentiles {
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: h.max() as f64,
            mean_us: h.mean(),
        }
    }
}

/// Server-side counters of the write and read paths over one run (leader only).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ServerPath {
    /// Writes acknowledged to the load generator (warm-up included).
    pub writes: u64,
    /// Reads answered (warm-up included).
    pub reads: u64,
    /// WAL fsyncs of the leader.
    pub leader_fsyncs: f64,
    /// Raft entries appended by the leader (Kartotek only).
    pub leader_entries: f64,
    /// Read-index rounds (Kartotek only).
    pub read_rounds: f64,
}

impl ServerPath {
    /// Acknowledged writes per leader fsync.
    pub fn writes_per_fsync(&self) -> Option<f64> {
        (self.leader_fsyncs > 0.0 && self.writes > 0)
            .then(|| self.writes as f64 / self.leader_fsyncs)
    }

    /// Raft entries per leader fsync.
    pub fn entries_per_fsync(&self) -> Option<f64> {
        (self.leader_fsyncs > 0.0 && self.leader_entries > 0.0)
            .then(|| self.leader_entries / self.leader_fsyncs)
    }

    /// Writes per Raft entry (proposal batching).
    pub fn writes_per_entry(&self) -> Option<f64> {
        (self.leader_entries > 0.0 && self.writes > 0)
            .then(|| self.writes as f64 / self.leader_entries)
    }

    /// Reads per read-index round.
    pub fn reads_per_round(&self) -> Option<f64> {
        (self.read_rounds > 0.0 && self.reads > 0).then(|| self.reads as f64 / self.read_rounds)
    }
}

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// System.
    pub system: System,
    /// Workload.
    pub workload: Workload,
    /// Load.
    pub load: Load,
    /// Repetition (0-based).
    pub repetition: u32,
    /// Attempt within the repetition (> 0: earlier attempts were disturbed).
    pub attempt: u32,
    /// Correct answers measured.
    pub ok: u64,
    /// Failures.
    pub errors: u64,
    /// Wrong answers.
    pub wrong: u64,
    /// First failure or wrong answer.
    pub first_problem: Option<String>,
    /// Correct answers per second.
    pub throughput_per_s: f64,
    /// Latency.
    pub latency: Percentiles,
    /// CPU time of all server processes of the system, seconds (warm-up included).
    pub server_cpu_seconds: f64,
    /// That CPU time per operation (warm-up included), microseconds.
    pub server_cpu_us_per_op: f64,
    /// CPU time of each server process per operation (warm-up included), microseconds, in
    /// node order: shows the busiest server (the leader, for writes and linearizable reads).
    #[serde(default)]
    pub node_cpu_us_per_op: Vec<f64>,
    /// CPU time of the load generator (this process) per operation, microseconds: the client
    /// library's cost, which shares the machine with the servers.
    #[serde(default)]
    pub client_cpu_us_per_op: f64,
    /// Bytes the servers caused to be written to storage per operation (`/proc/<pid>/io`
    /// `write_bytes`: WAL, Raft log, audit journal, flushes and compactions that ran in the
    /// run), when readable.
    #[serde(default)]
    pub disk_write_bytes_per_op: Option<f64>,
    /// Largest sum of the servers' resident memory seen during the run, bytes.
    pub peak_rss_bytes: u64,
    /// How busy the machine was with other work.
    pub busy: Busyness,
    /// Whether other work exceeded the threshold (the run was repeated if attempts were left).
    pub disturbed: bool,
    /// Leader counters.
    pub server_path: ServerPath,
    /// Wall time of the whole run including warm-up, seconds.
    pub wall_seconds: f64,
}

/// A point of a latency CDF: quantile and latency in microseconds.
pub type CdfPoint = (f64, f64);

/// The repetitions of one (system, workload, load), histograms merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aggregate {
    /// System.
    pub system: System,
    /// Workload.
    pub workload: Workload,
    /// Load.
    pub load: Load,
    /// Runs kept (one per repetition).
    pub runs: usize,
    /// Mean throughput of the runs, per second.
    pub throughput_per_s: f64,
    /// Lowest run throughput.
    pub throughput_min_per_s: f64,
    /// Highest run throughput.
    pub throughput_max_per_s: f64,
    /// Latency over all runs.
    pub latency: Percentiles,
    /// Latency CDF over all runs.
    pub cdf: Vec<CdfPoint>,
    /// Mean server CPU per operation, microseconds.
    pub server_cpu_us_per_op: f64,
    /// Mean CPU per operation of the busiest server of each run, microseconds.
    #[serde(default)]
    pub busiest_node_cpu_us_per_op: f64,
    /// Mean load-generator CPU per operation, microseconds.
    #[serde(default)]
    pub client_cpu_us_per_op: f64,
    /// Mean bytes written to storage per operation (`None` unless every run had it).
    #[serde(default)]
    pub disk_write_bytes_per_op: Option<f64>,
    /// Highest peak RSS of the runs, bytes.
    pub peak_rss_bytes: u64,
    /// Correct answers, failures, wrong answers over all runs.
    pub ok: u64,
    /// Failures.
    pub errors: u64,
    /// Wrong answers.
    pub wrong: u64,
    /// Kept runs that were still disturbed (no attempts left).
    pub disturbed_runs: usize,
    /// Highest other-work CPU fraction of the kept runs.
    pub busy_other_max: f64,
    /// Leader counters summed over the runs.
    pub server_path: ServerPath,
}

/// Quantiles the CDF is sampled at.
fn cdf_quantiles() -> Vec<f64> {
    let mut q = Vec::new();
    for i in 1..=99 {
        q.push(f64::from(i) / 100.0);
    }
    for x in [0.995, 0.999, 0.9995, 0.9999, 1.0] {
        q.push(x);
    }
    q
}

/// The runs kept for one (system, workload, load): their load, indexes and merged histogram.
type Kept = (Load, Vec<usize>, Histogram<u64>);

/// Accumulates runs and their histograms.
#[derive(Default)]
pub struct Collector {
    /// Every run, kept or not.
    pub runs: Vec<RunRecord>,
    kept: BTreeMap<(System, Workload, String), Kept>,
}

impl Collector {
    /// Adds a run; `keep` says whether it counts (the last attempt of a repetition).
    pub fn add(&mut self, record: RunRecord, hist: &Histogram<u64>, keep: bool) {
        let idx = self.runs.len();
        if keep {
            let key = (record.system, record.workload, record.load.label());
            let e = self
                .kept
                .entry(key)
                .or_insert_with(|| (record.load, Vec::new(), histogram()));
            e.1.push(idx);
            let _ = e.2.add(hist);
        }
        self.runs.push(record);
    }

    /// The aggregates, sorted by workload, load, system.
    pub fn aggregates(&self) -> Vec<Aggregate> {
        let mut out: Vec<Aggregate> = self
            .kept
            .iter()
            .map(|((system, workload, _), (load, idxs, hist))| {
                let runs: Vec<&RunRecord> = idxs.iter().filter_map(|i| self.runs.get(*i)).collect();
                let n = runs.len().max(1) as f64;
                let tp: Vec<f64> = runs.iter().map(|r| r.throughput_per_s).collect();
                let mut path = ServerPath::default();
                for r in &runs {
                    path.writes += r.server_path.writes;
                    path.reads += r.server_path.reads;
                    path.leader_fsyncs += r.server_path.leader_fsyncs;
                    path.leader_entries += r.server_path.leader_entries;
                    path.read_rounds += r.server_path.read_rounds;
                }
                Aggregate {
                    system: *system,
                    workload: *workload,
                    load: *load,
                    runs: runs.len(),
                    throughput_per_s: tp.iter().sum::<f64>() / n,
                    throughput_min_per_s: tp.iter().copied().fold(f64::INFINITY, f64::min),
                    throughput_max_per_s: tp.iter().copied().fold(0.0, f64::max),
                    latency: Percentiles::of(hist),
                    cdf: if hist.is_empty() {
                        Vec::new()
                    } else {
                        cdf_quantiles()
                            .into_iter()
                            .map(|q| (q, hist.value_at_quantile(q) as f64))
                            .collect()
                    },
                    server_cpu_us_per_op: runs.iter().map(|r| r.server_cpu_us_per_op).sum::<f64>()
                        / n,
                    busiest_node_cpu_us_per_op: runs
                        .iter()
                        .map(|r| r.node_cpu_us_per_op.iter().copied().fold(0.0, f64::max))
                        .sum::<f64>()
                        / n,
                    client_cpu_us_per_op: runs.iter().map(|r| r.client_cpu_us_per_op).sum::<f64>()
                        / n,
                    disk_write_bytes_per_op: runs
                        .iter()
                        .map(|r| r.disk_write_bytes_per_op)
                        .sum::<Option<f64>>()
                        .map(|b| b / n),
                    peak_rss_bytes: runs.iter().map(|r| r.peak_rss_bytes).max().unwrap_or(0),
                    ok: runs.iter().map(|r| r.ok).sum(),
                    errors: runs.iter().map(|r| r.errors).sum(),
                    wrong: runs.iter().map(|r| r.wrong).sum(),
                    disturbed_runs: runs.iter().filter(|r| r.disturbed).count(),
                    busy_other_max: runs
                        .iter()
                        .map(|r| r.busy.other_cpu_fraction)
                        .fold(0.0, f64::max),
                    server_path: path,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (a.workload, a.load.x(), a.system)
                .partial_cmp(&(b.workload, b.load.x(), b.system))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        out
    }
}

/// Physical limits measured at the start of the run.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Limits {
    /// 4 KiB write + fdatasync on the data disk.
    pub fsync: Timing,
    /// 1-byte TCP ping-pong over loopback.
    pub loopback_rtt: Timing,
}

/// A CPU profile of one case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// What was profiled.
    pub what: String,
    /// The command used.
    pub command: String,
    /// Share of samples by thread name.
    pub by_thread: Vec<(String, f64)>,
    /// Share of samples by symbol (self time).
    pub by_symbol: Vec<(String, f64)>,
    /// Inclusive share of samples by stage of the request path.
    #[serde(default)]
    pub by_stage: Vec<(String, f64)>,
    /// Where the raw data was left, if kept.
    pub data_file: Option<String>,
}

/// Everything a comparison produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareResults {
    /// Start time (RFC 3339).
    pub started: String,
    /// End time.
    pub finished: String,
    /// The command line.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// `kartotek --version` or the binary path.
    pub kartotek: String,
    /// `etcd --version`.
    pub etcd: String,
    /// Fairness conditions and settings, as stated in the report.
    pub conditions: Vec<String>,
    /// Physical limits.
    pub limits: Limits,
    /// Entries preloaded into both systems.
    pub keys: usize,
    /// Size of one entry's etcd value (JSON), bytes.
    pub value_bytes: usize,
    /// Every run.
    pub runs: Vec<RunRecord>,
    /// Aggregates.
    pub aggregates: Vec<Aggregate>,
    /// CPU profiles, if taken.
    pub profiles: Vec<Profile>,
    /// Load before the run (1-minute load average).
    pub loadavg_before: f64,
    /// Share of runs that were disturbed at least once.
    pub disturbed_attempts: usize,
}
