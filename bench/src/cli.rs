//! The command line: `compare`, `scale`, `limits`, `report`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::target::Workload;

/// Kartotek side by side with etcd on one machine, in one run, with a report.
#[derive(Debug, Parser)]
#[command(name = "kartotek-bench", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the workloads against a Kartotek and an etcd cluster and write the report.
    Compare(Box<CompareArgs>),
    /// Bulk-import many locator entries into Kartotek: import rate, lookup latency, RSS and
    /// disk bytes per entry at that size.
    Scale(ScaleArgs),
    /// The cost of token verification: linearizable lookups against a cluster that requires
    /// tokens and one that does not, side by side in one run.
    AuthCost(AuthCostArgs),
    /// Measure only the physical limits: fsync latency of the data disk and loopback RTT.
    Limits(LimitsArgs),
    /// Regenerate REPORT.md and the plots from the results JSON.
    Report(ReportArgs),
}

/// Where the binaries and data are.
#[derive(Debug, Clone, Args)]
pub struct SetupArgs {
    /// The `kartotek` binary (default: next to this executable, or in its parent directory).
    #[arg(long)]
    pub kartotek_bin: Option<PathBuf>,
    /// Parent of the data dirs of both systems (one disk for both); default the system's
    /// temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep the data dirs after the run.
    #[arg(long)]
    pub keep_data: bool,
    /// Where REPORT.md and results/ go (default: the bench crate's directory).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Extra environment for every Kartotek node, `KEY=VALUE`
    /// (e.g. `KARTOTEK_API__PROPOSALS_IN_FLIGHT_MAX=8`); repeatable.
    #[arg(long = "kartotek-env", value_name = "KEY=VALUE")]
    pub kartotek_env: Vec<String>,
}

/// How long each run lasts and how often it is repeated (`compare`, `auth-cost`).
#[derive(Debug, Clone, Args)]
pub struct RunTiming {
    /// Warm-up per run, seconds (load offered, not measured).
    #[arg(long, default_value_t = 2.0)]
    pub warmup_s: f64,
    /// Measured time per run, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub duration_s: f64,
    /// Repetitions of every case; the systems compared alternate which goes first.
    #[arg(long, default_value_t = 3)]
    pub repetitions: u32,
}

/// Arguments of `compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub setup: SetupArgs,
    /// The etcd binary (Debian: `apt-get install etcd-server etcd-client`).
    #[arg(long, default_value = crate::etcd::DEFAULT_ETCD_BIN)]
    pub etcd_bin: PathBuf,
    /// Use a running `kartotek dev` cluster (its cluster.json) instead of starting one.
    #[arg(long, value_name = "CLUSTER_JSON")]
    pub attach_kartotek: Option<PathBuf>,
    /// Use running etcd members (`host:port,...`, client URLs) instead of starting them.
    #[arg(long, value_delimiter = ',')]
    pub attach_etcd: Vec<String>,
    /// Pids of the attached etcd members (same order), for CPU and memory.
    #[arg(long, value_delimiter = ',')]
    pub etcd_pids: Vec<u32>,
    /// Workloads to run.
    #[arg(long, value_delimiter = ',', default_values_t = Workload::ALL.to_vec(), value_enum)]
    pub workloads: Vec<Workload>,
    /// Requests in flight (closed loop), swept.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 16, 64, 256])]
    pub concurrency: Vec<usize>,
    /// Open loop instead: target rates in requests per second, swept (latency counted from
    /// each request's intended start).
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Cap on requests in flight in open-loop mode.
    #[arg(long, default_value_t = 1024)]
    pub in_flight_max: usize,
    #[command(flatten)]
    pub timing: RunTiming,
    /// Locator entries preloaded into both systems (reads and writes draw keys uniformly).
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// Staleness bound of Kartotek's follower reads.
    #[arg(long, default_value_t = 1000)]
    pub max_staleness_ms: u64,
    /// A run during which other work used more than this fraction of all CPUs is disturbed
    /// and repeated.
    #[arg(long, default_value_t = 0.15)]
    pub busy_max: f64,
    /// Attempts per run before a disturbed one is kept anyway (and marked).
    #[arg(long, default_value_t = 3)]
    pub attempts: u32,
    /// Profile Kartotek's leader with `perf` during a write and a linearizable-read run at
    /// this concurrency (0: no profile).
    #[arg(long, default_value_t = 0)]
    pub profile_concurrency: usize,
    /// CI smoke: tiny cluster load, a second per workload at concurrency 1 and 16, one
    /// repetition; fails unless both systems answered every request correctly. Writes the
    /// results to --out-dir (default: a temporary directory), never REPORT.md in the tree.
    #[arg(long)]
    pub smoke: bool,
}

/// Arguments of `scale`.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub setup: SetupArgs,
    /// Locator entries to import (10 M took 4.2 min and 0.66 GiB of disk per node on 2 cores).
    #[arg(long, default_value_t = crate::scale::TARGET_ENTRIES)]
    pub entries: usize,
    /// Entries per patient (each a different source system).
    #[arg(long, default_value_t = 4)]
    pub entries_per_patient: u32,
    /// Lookup measurement after the import, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub lookup_s: f64,
    /// Lookups in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Then back the cluster up with `kartotek admin backup`, verify the backup, restore every
    /// node from it and check lookups on the restored cluster; times and sizes in the report.
    #[arg(long)]
    pub backup: bool,
}

/// Arguments of `auth-cost`.
#[derive(Debug, Clone, Args)]
pub struct AuthCostArgs {
    #[command(flatten)]
    pub setup: SetupArgs,
    /// Lookups in flight, swept.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 64])]
    pub concurrency: Vec<usize>,
    #[command(flatten)]
    pub timing: RunTiming,
    /// Locator entries preloaded into each cluster.
    #[arg(long, default_value_t = 2_000)]
    pub keys: usize,
}

/// Arguments of `limits`.
#[derive(Debug, Clone, Args)]
pub struct LimitsArgs {
    /// Directory on the disk to measure (default: the system's temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
}

/// Arguments of `report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Where REPORT.md and results/ are (default: the bench crate's directory).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}
