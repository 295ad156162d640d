//! `scale`: bulk-import many locator entries into a fresh 3-node Kartotek cluster, then
//! measure lookup latency, memory and disk bytes per entry at that size; with `--backup`, also
//! the operator's backup, verify and restore of it ([`crate::backup`]).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::backup::{self, BackupResults};
use crate::cli::ScaleArgs;
use crate::data::Keyspace;
use crate::kartotek::{self, IMPORT_BATCH_ENTRIES, IMPORT_WINDOW_BATCHES, KartotekTarget};
use crate::procfs::{self, BusySampler, Busyness};
use crate::report;
use crate::results::Percentiles;
use crate::runner::{self, Load, RunSpec};
use crate::setup::{self, Progress};
use crate::target::Workload;

/// The size the issue asks about.
pub const TARGET_ENTRIES: usize = 10_000_000;
/// Time the followers get to apply the import before memory and disk are measured.
const SETTLE: Duration = Duration::from_secs(5);

/// What a scale run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleResults {
    /// Start (RFC 3339).
    pub started: String,
    /// End.
    pub finished: String,
    /// Command line.
    pub command: String,
    /// How the entries were loaded.
    pub method: String,
    /// Entries imported.
    pub entries: usize,
    /// Entries per patient.
    pub entries_per_patient: u32,
    /// Import wall time, seconds.
    pub import_seconds: f64,
    /// Entries per second.
    pub import_rate_per_s: f64,
    /// Lookups in flight.
    pub lookup_concurrency: usize,
    /// Lookup measurement, seconds.
    pub lookup_seconds: f64,
    /// Lookups per second.
    pub lookup_throughput_per_s: f64,
    /// Lookup latency.
    pub lookup_latency: Percentiles,
    /// Node ids, in the order of the per-node figures.
    pub node_ids: Vec<u64>,
    /// RSS per node after the import and lookups, bytes.
    pub rss_bytes: Vec<u64>,
    /// Peak RSS per node (VmHWM), bytes.
    pub peak_rss_bytes: Vec<u64>,
    /// Data dir size per node, bytes.
    pub disk_bytes: Vec<u64>,
    /// Mean data dir bytes per entry.
    pub disk_bytes_per_entry: f64,
    /// A clearly labelled linear extrapolation to 10 M entries, when fewer were run.
    pub extrapolation: Option<String>,
    /// How busy the machine was with other work during the import.
    #[serde(default)]
    pub import_busy: Busyness,
    /// … and during the lookups.
    #[serde(default)]
    pub lookup_busy: Busyness,
    /// Backup, verify and restore at this size (`--backup`).
    #[serde(default)]
    pub backup: Option<BackupResults>,
}

/// Runs `scale`.
pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    let started = chrono::Utc::now();
    let bin = setup::kartotek_bin(args.setup.kartotek_bin.as_deref())?;
    let env = setup::env_pairs(&args.setup.kartotek_env)?;
    let work = setup::work_dir(&args.setup)?;
    let out_dir = setup::out_dir(args.setup.out_dir.as_deref());
    println!("generating {} entries…", args.entries);
    let keyspace = Arc::new(Keyspace::new(args.entries, args.entries_per_patient));
    let mut cluster =
        kartotek::Cluster::start(&bin, &work.path().join("kartotek"), 3, &env).await?;
    println!("cluster up in {}; importing", work.path().display());
    let progress = Progress::new(keyspace.len() as u64, "import");
    let last_line = std::sync::Mutex::new(Instant::now());
    let busy = BusySampler::start(cluster.pids());
    let t = Instant::now();
    let imported = cluster
        .import(
            &keyspace,
            0..keyspace.len(),
            &format!("scale-{}", started.timestamp()),
            |n| {
                progress.set(n);
                if let Ok(mut last) = last_line.lock()
                    && last.elapsed() > Duration::from_secs(10)
                {
                    *last = Instant::now();
                    progress.line(&format!(
                        "imported {n} entries, {:.0}/s",
                        n as f64 / t.elapsed().as_secs_f64()
                    ));
                }
            },
        )
        .await
        .context("bulk import")?;
    let import_seconds = t.elapsed().as_secs_f64();
    let import_busy = busy.finish();
    progress.finish();
    println!(
        "imported {imported} entries in {import_seconds:.1} s ({:.0}/s)",
        imported as f64 / import_seconds
    );
    tokio::time::sleep(SETTLE).await;

    let target = Arc::new(KartotekTarget::new(&cluster, keyspace.clone(), 1000).await?);
    let spec = RunSpec {
        workload: Workload::LinearRead,
        load: Load::Closed {
            concurrency: args.concurrency,
        },
        warmup: Duration::from_secs(2),
        duration: Duration::from_secs_f64(args.lookup_s),
        keys: keyspace.len(),
    };
    let busy = BusySampler::start(cluster.pids());
    let out = runner::run(target, spec, Arc::new(AtomicU64::new(1))).await;
    let lookup_busy = busy.finish();
    let lookup_latency = Percentiles::of(&out.latency_us);
    println!(
        "lookups: {:.0}/s p50 {:.2} ms p99 {:.2} ms ({} failed, {} wrong)",
        out.ok as f64 / out.elapsed_seconds,
        lookup_latency.p50_us / 1e3,
        lookup_latency.p99_us / 1e3,
        out.errors,
        out.wrong
    );
    let node_ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    let pids: Vec<u32> = cluster.nodes.iter().map(|n| n.pid.unwrap_or(0)).collect();
    let rss_bytes: Vec<u64> = pids.iter().map(|p| procfs::rss_bytes(*p)).collect();
    let peak_rss_bytes: Vec<u64> = pids.iter().map(|p| procfs::peak_rss_bytes(*p)).collect();
    let disk_bytes: Vec<u64> = cluster
        .data_dirs()
        .iter()
        .map(|d| procfs::disk_usage_bytes(d))
        .collect();
    let entries = keyspace.len();
    let disk_bytes_per_entry = disk_bytes.iter().sum::<u64>() as f64
        / disk_bytes.len().max(1) as f64
        / entries.max(1) as f64;
    let extrapolation = (entries < TARGET_ENTRIES).then(|| {
        let f = TARGET_ENTRIES as f64 / entries.max(1) as f64;
        format!(
            "**Extrapolated, not measured**: linearly to 10 M entries, the import would take ≈ {:.0} min at this rate and ≈ {:.1} GiB of disk per node; lookup latency at 10 M is not extrapolated (RocksDB point lookups grow with the number of levels, roughly logarithmically).",
            import_seconds * f / 60.0,
            disk_bytes_per_entry * TARGET_ENTRIES as f64 / (1u64 << 30) as f64
        )
    });
    let backup = if args.backup {
        Some(
            backup::run(&mut cluster, &bin, work.path(), keyspace.clone())
                .await
                .context("backup and restore")?,
        )
    } else {
        None
    };
    let results = ScaleResults {
        started: started.to_rfc3339(),
        finished: chrono::Utc::now().to_rfc3339(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        method: format!(
            "bulk import (`KartotekClient::import_locators`, the Import stream: batches of {IMPORT_BATCH_ENTRIES} entries, {IMPORT_WINDOW_BATCHES} in flight, each batch one Raft entry)"
        ),
        entries,
        entries_per_patient: keyspace.systems,
        import_seconds,
        import_rate_per_s: imported as f64 / import_seconds,
        lookup_concurrency: args.concurrency,
        lookup_seconds: args.lookup_s,
        lookup_throughput_per_s: out.ok as f64 / out.elapsed_seconds,
        lookup_latency,
        node_ids,
        rss_bytes,
        peak_rss_bytes,
        disk_bytes,
        disk_bytes_per_entry,
        extrapolation,
        import_busy,
        lookup_busy,
        backup,
    };
    drop(cluster);
    let json = report::save_json(&out_dir, report::SCALE_JSON, &results)?;
    let md = report::write(&out_dir)?;
    println!("results: {}\nreport:  {}", json.display(), md.display());
    setup::finish_work_dir(work, args.setup.keep_data);
    Ok(())
}
