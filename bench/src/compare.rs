//! `compare`: start (or attach to) a 3-node Kartotek and a 3-node etcd cluster with data on
//! one disk, preload the same entries into both, sweep the workloads over the loads with the
//! systems alternating, record latency, throughput, server CPU and memory and how busy the
//! machine was, repeat disturbed runs, and write the results JSON and REPORT.md.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;

use crate::cli::CompareArgs;
use crate::data::Keyspace;
use crate::etcd::{self, EtcdTarget};
use crate::kartotek::{self, KartotekTarget};
use crate::limits;
use crate::metrics::{Samples, delta};
use crate::procfs::{self, BusySampler};
use crate::results::{
    Collector, CompareResults, Limits, Percentiles, Profile, RunRecord, ServerPath, System,
};
use crate::runner::{self, Load, RunSpec};
use crate::setup::{self, Progress};
use crate::target::{Target, Workload};
use crate::{profile, report};

/// Seconds of each physical-limit measurement.
const LIMIT_PROBE: Duration = Duration::from_secs(2);
/// How often server memory is sampled during a run.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);
/// Puts in flight while preloading etcd.
const ETCD_LOAD_IN_FLIGHT: usize = 64;

/// The settings `--smoke` imposes.
fn smoke(mut args: CompareArgs) -> CompareArgs {
    args.workloads = Workload::ALL.to_vec();
    args.concurrency = vec![1, 16];
    args.rates.clear();
    args.timing.warmup_s = 0.3;
    args.timing.duration_s = 1.0;
    args.timing.repetitions = 1;
    args.keys = args.keys.min(200);
    args.attempts = 1;
    args.busy_max = 1.0;
    args.profile_concurrency = 0;
    args
}

/// The clusters under test.
struct Systems {
    kartotek: kartotek::Cluster,
    etcd: etcd::Cluster,
}

impl Systems {
    fn pids(&self, system: System) -> Vec<u32> {
        match system {
            System::Kartotek => self.kartotek.pids(),
            System::Etcd => self.etcd.pids(),
        }
    }

    fn all_pids(&self) -> Vec<u32> {
        let mut p = self.kartotek.pids();
        p.extend(self.etcd.pids());
        p
    }

    /// The leader's counters that matter for the write and read paths.
    async fn leader_counters(&self, system: System) -> Samples {
        match system {
            System::Kartotek => match self.kartotek.leader().await {
                Ok(id) => self.kartotek.metrics(id).await,
                Err(_) => Samples::new(),
            },
            System::Etcd => match self.etcd.leader_index().await {
                Ok(i) => self.etcd.metrics(i).await,
                Err(_) => Samples::new(),
            },
        }
    }
}

/// A counter of Kartotek's, with or without the `_total` suffix prometheus-client adds.
fn counter(before: &Samples, after: &Samples, base: &str) -> f64 {
    let with_total = format!("{base}_total");
    if after.contains_key(&with_total) {
        delta(before, after, &with_total)
    } else {
        delta(before, after, base)
    }
}

fn server_path(
    system: System,
    before: &Samples,
    after: &Samples,
    out: &runner::RunOutcome,
) -> ServerPath {
    let mut p = ServerPath {
        writes: out.writes_total,
        reads: out.reads_total,
        ..ServerPath::default()
    };
    match system {
        System::Kartotek => {
            p.leader_fsyncs = counter(before, after, "kartotek_storage_wal_syncs");
            p.leader_entries = counter(before, after, "kartotek_storage_appended_entries");
            p.read_rounds = counter(before, after, "kartotek_read_index_rounds");
        }
        System::Etcd => {
            p.leader_fsyncs = delta(before, after, "etcd_disk_wal_fsync_duration_seconds_count");
        }
    }
    p
}

/// Everything one run needs besides the target.
struct Case<'a> {
    systems: &'a Systems,
    system: System,
    spec: RunSpec,
    repetition: u32,
    attempt: u32,
    busy_max: f64,
}

async fn run_case<T: Target>(
    target: Arc<T>,
    case: &Case<'_>,
    seq: Arc<AtomicU64>,
) -> anyhow::Result<(RunRecord, Histogram<u64>)> {
    let systems = case.systems;
    if case.system == System::Etcd {
        systems.etcd.compact_and_defrag().await?;
    }
    let pids = systems.pids(case.system);
    let before = systems.leader_counters(case.system).await;
    let node_cpu_before: Vec<f64> = pids
        .iter()
        .map(|p| procfs::process_cpu_seconds(*p))
        .collect();
    let client_cpu_before = procfs::process_cpu_seconds(std::process::id());
    let written_before = procfs::write_bytes_sum(&pids);
    let busy = BusySampler::start(systems.all_pids());
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sampled = pids.clone();
    let rss = tokio::spawn(async move {
        let mut peak = 0u64;
        loop {
            peak = peak.max(procfs::rss_sum(&sampled));
            if *stop_rx.borrow() {
                return peak;
            }
            tokio::select! {
                _ = tokio::time::sleep(RSS_SAMPLE_INTERVAL) => {}
                _ = stop_rx.changed() => {}
            }
        }
    });
    let started = Instant::now();
    let out = runner::run(target, case.spec, seq).await;
    let wall_seconds = started.elapsed().as_secs_f64();
    let busy = busy.finish();
    let _ = stop_tx.send(true);
    let peak_rss_bytes = rss.await.unwrap_or(0);
    let node_cpu_seconds: Vec<f64> = pids
        .iter()
        .zip(&node_cpu_before)
        .map(|(p, before)| procfs::process_cpu_seconds(*p) - before)
        .collect();
    let cpu: f64 = node_cpu_seconds.iter().sum();
    let after = systems.leader_counters(case.system).await;
    let ops_all = (out.writes_total + out.reads_total).max(1);
    let per_op_us = |seconds: f64| seconds * 1e6 / ops_all as f64;
    let node_cpu_us_per_op = node_cpu_seconds.iter().map(|s| per_op_us(*s)).collect();
    let client_cpu_us_per_op =
        per_op_us(procfs::process_cpu_seconds(std::process::id()) - client_cpu_before);
    let disk_write_bytes_per_op = written_before
        .zip(procfs::write_bytes_sum(&pids))
        .map(|(b, a)| a.saturating_sub(b) as f64 / ops_all as f64);
    let record = RunRecord {
        system: case.system,
        workload: case.spec.workload,
        load: case.spec.load,
        repetition: case.repetition,
        attempt: case.attempt,
        ok: out.ok,
        errors: out.errors,
        wrong: out.wrong,
        first_problem: out.first_problem.clone(),
        throughput_per_s: out.ok as f64 / out.elapsed_seconds,
        latency: Percentiles::of(&out.latency_us),
        server_cpu_seconds: cpu,
        server_cpu_us_per_op: per_op_us(cpu),
        node_cpu_us_per_op,
        client_cpu_us_per_op,
        disk_write_bytes_per_op,
        peak_rss_bytes,
        busy,
        disturbed: busy.other_cpu_fraction > case.busy_max,
        server_path: server_path(case.system, &before, &after, &out),
        wall_seconds,
    };
    Ok((record, out.latency_us))
}

fn describe(r: &RunRecord) -> String {
    format!(
        "{:<8} {:<17} load {:>6}  rep {} try {}: {:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  cpu {:>5.0} µs/op (busiest {:>4.0}, load gen {:>3.0})  other-cpu {:>3.0}% kernel {:>3.0}%{}{}",
        r.system.name(),
        r.workload.name(),
        r.load.label(),
        r.repetition + 1,
        r.attempt + 1,
        r.throughput_per_s,
        r.latency.p50_us / 1e3,
        r.latency.p99_us / 1e3,
        r.server_cpu_us_per_op,
        r.node_cpu_us_per_op.iter().copied().fold(0.0, f64::max),
        r.client_cpu_us_per_op,
        r.busy.other_cpu_fraction * 100.0,
        r.busy.kernel_cpu_fraction * 100.0,
        if r.disturbed { "  DISTURBED" } else { "" },
        match (&r.first_problem, r.errors + r.wrong) {
            (Some(p), n) if n > 0 => format!("  {n} failed/wrong, first: {p}"),
            _ => String::new(),
        }
    )
}

/// Runs `compare`.
pub async fn run(args: CompareArgs) -> anyhow::Result<()> {
    let args = if args.smoke { smoke(args) } else { args };
    let started = chrono::Utc::now();
    let etcd_version = if args.attach_etcd.is_empty() {
        etcd::check_installed(&args.etcd_bin)?
    } else {
        format!("attached at {}", args.attach_etcd.join(","))
    };
    let kartotek_bin = match &args.attach_kartotek {
        Some(_) => None,
        None => Some(setup::kartotek_bin(args.setup.kartotek_bin.as_deref())?),
    };
    let env = setup::env_pairs(&args.setup.kartotek_env)?;
    let work = setup::work_dir(&args.setup)?;
    let out_dir = match (&args.setup.out_dir, args.smoke) {
        (Some(d), _) => d.clone(),
        (None, true) => work.path().join("out"),
        (None, false) => setup::out_dir(None),
    };
    let loadavg_before = procfs::loadavg_1m();
    let machine = procfs::machine(work.path());
    println!(
        "kartotek-bench compare: data in {} ({}), load average {loadavg_before:.2}",
        work.path().display(),
        machine.disk
    );

    let probe_dir = work.path().to_path_buf();
    let limits = tokio::task::spawn_blocking(move || -> anyhow::Result<Limits> {
        Ok(Limits {
            fsync: limits::fsync_latency(&probe_dir, LIMIT_PROBE)?,
            loopback_rtt: limits::loopback_rtt(LIMIT_PROBE / 2)?,
        })
    })
    .await??;
    println!(
        "physical limits: fsync p50 {:.0} µs ({:.0}/s at p50), loopback RTT p50 {:.0} µs",
        limits.fsync.p50_us,
        limits.fsync.median_rate_per_s(),
        limits.loopback_rtt.p50_us
    );

    let kartotek_cluster = match (&args.attach_kartotek, &kartotek_bin) {
        (Some(file), _) => kartotek::Cluster::attach(file)?,
        (None, Some(bin)) => {
            kartotek::Cluster::start(bin, &work.path().join("kartotek"), 3, &env).await?
        }
        (None, None) => bail!("internal: no kartotek binary"),
    };
    let etcd_cluster = if args.attach_etcd.is_empty() {
        etcd::Cluster::start(&args.etcd_bin, &work.path().join("etcd"), 3).await?
    } else {
        etcd::Cluster::attach(&args.attach_etcd, &args.etcd_pids)
    };
    let systems = Systems {
        kartotek: kartotek_cluster,
        etcd: etcd_cluster,
    };
    println!(
        "clusters up: Kartotek pids {:?}, etcd pids {:?}",
        systems.kartotek.pids(),
        systems.etcd.pids()
    );

    let keyspace = Arc::new(Keyspace::new(args.keys, 1));
    let tag = format!("{}-{}", std::process::id(), started.timestamp());
    let t = Instant::now();
    systems
        .kartotek
        .import(&keyspace, 0..keyspace.len(), &tag, |_| {})
        .await
        .context("preloading Kartotek")?;
    let k_load = t.elapsed();
    let etcd_target = Arc::new(EtcdTarget::new(&systems.etcd, keyspace.clone()).await?);
    let t = Instant::now();
    etcd_target
        .load(0..keyspace.len(), ETCD_LOAD_IN_FLIGHT, |_| {})
        .await
        .context("preloading etcd")?;
    let e_load = t.elapsed();
    println!(
        "preloaded {} entries: Kartotek (bulk import) {:.1} s, etcd ({ETCD_LOAD_IN_FLIGHT} puts in flight) {:.1} s",
        keyspace.len(),
        k_load.as_secs_f64(),
        e_load.as_secs_f64()
    );
    let kartotek_target = Arc::new(
        KartotekTarget::new(&systems.kartotek, keyspace.clone(), args.max_staleness_ms).await?,
    );

    let loads: Vec<Load> = if args.rates.is_empty() {
        args.concurrency
            .iter()
            .map(|c| Load::Closed { concurrency: *c })
            .collect()
    } else {
        args.rates
            .iter()
            .map(|r| Load::Open {
                rate: *r,
                in_flight_max: args.in_flight_max,
            })
            .collect()
    };
    let seq = Arc::new(AtomicU64::new(1));
    let mut collector = Collector::default();
    let systems_per_case: usize = args
        .workloads
        .iter()
        .map(|w| if w.kartotek_only() { 1 } else { 2 })
        .sum();
    let total = u64::from(args.timing.repetitions) * (systems_per_case * loads.len()) as u64;
    let progress = Progress::new(total, "compare");
    let mut case_no = 0usize;
    let mut disturbed_attempts = 0usize;
    for repetition in 0..args.timing.repetitions {
        for workload in &args.workloads {
            for load in &loads {
                let order = if (repetition as usize + case_no).is_multiple_of(2) {
                    [System::Kartotek, System::Etcd]
                } else {
                    [System::Etcd, System::Kartotek]
                };
                case_no += 1;
                for system in order {
                    if system == System::Etcd && workload.kartotek_only() {
                        continue;
                    }
                    for attempt in 0..args.attempts.max(1) {
                        let case = Case {
                            systems: &systems,
                            system,
                            spec: RunSpec {
                                workload: *workload,
                                load: *load,
                                warmup: Duration::from_secs_f64(args.timing.warmup_s),
                                duration: Duration::from_secs_f64(args.timing.duration_s),
                                keys: keyspace.len(),
                            },
                            repetition,
                            attempt,
                            busy_max: args.busy_max,
                        };
                        progress.message(&format!(
                            "{} {} {}",
                            system.name(),
                            workload.name(),
                            load.label()
                        ));
                        let (record, hist) = match system {
                            System::Kartotek => {
                                run_case(kartotek_target.clone(), &case, seq.clone()).await?
                            }
                            System::Etcd => {
                                run_case(etcd_target.clone(), &case, seq.clone()).await?
                            }
                        };
                        progress.line(&describe(&record));
                        let keep = !record.disturbed || attempt + 1 >= args.attempts;
                        if record.disturbed {
                            disturbed_attempts += 1;
                        }
                        collector.add(record, &hist, keep);
                        if keep {
                            break;
                        }
                    }
                    progress.inc();
                }
            }
        }
    }
    progress.finish();

    let mut profiles = Vec::new();
    if args.profile_concurrency > 0 {
        profiles = take_profiles(
            &args,
            &systems,
            &kartotek_target,
            &keyspace,
            &seq,
            work.path(),
        )
        .await?;
    }

    let aggregates = collector.aggregates();
    let data_dir_text = work.path().display().to_string();
    let results = CompareResults {
        started: started.to_rfc3339(),
        finished: chrono::Utc::now().to_rfc3339(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        kartotek: kartotek_bin
            .as_deref()
            .map(setup::kartotek_version)
            .unwrap_or_else(|| "attached".into()),
        etcd: etcd_version,
        conditions: conditions(&args, &data_dir_text, &systems),
        limits,
        keys: keyspace.len(),
        value_bytes: keyspace.entry(0, 1).etcd_value().len(),
        runs: collector.runs,
        aggregates,
        profiles,
        loadavg_before,
        disturbed_attempts,
    };
    drop(kartotek_target);
    drop(etcd_target);
    let Systems {
        mut kartotek,
        etcd: mut etcd_cluster,
    } = systems;
    kartotek.stop();
    etcd_cluster.stop();
    let json = report::save_compare(&out_dir, &results)?;
    let report_file = report::write(&out_dir)?;
    println!(
        "results: {}\nreport:  {}",
        json.display(),
        report_file.display()
    );
    setup::finish_work_dir(
        work,
        args.setup.keep_data || args.smoke && args.setup.out_dir.is_none(),
    );
    if args.smoke {
        check_smoke(&results)?;
        println!("smoke: both systems answered every request correctly");
    }
    Ok(())
}

/// Fails unless every case of both systems got answers and none was wrong or failed.
fn check_smoke(r: &CompareResults) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for a in &r.aggregates {
        if a.ok == 0 || a.wrong > 0 || a.errors > 0 {
            problems.push(format!(
                "{} {} {}: {} ok, {} wrong, {} failed",
                a.system.name(),
                a.workload.name(),
                a.load.label(),
                a.ok,
                a.wrong,
                a.errors
            ));
        }
    }
    for w in Workload::ALL {
        for s in [System::Kartotek, System::Etcd] {
            let expected = s == System::Kartotek || !w.kartotek_only();
            if expected
                && !r
                    .aggregates
                    .iter()
                    .any(|a| a.system == s && a.workload == w)
            {
                problems.push(format!("no {} results for {}", w.name(), s.name()));
            }
        }
    }
    if !problems.is_empty() {
        let firsts: Vec<String> = r
            .runs
            .iter()
            .filter_map(|x| x.first_problem.clone())
            .take(5)
            .collect();
        bail!(
            "smoke failed:\n  {}\nfirst problems: {firsts:?}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Profiles the Kartotek leader during a write and a linearizable-read run.
async fn take_profiles(
    args: &CompareArgs,
    systems: &Systems,
    target: &Arc<KartotekTarget>,
    keyspace: &Arc<Keyspace>,
    seq: &Arc<AtomicU64>,
    dir: &Path,
) -> anyhow::Result<Vec<Profile>> {
    if !profile::available() {
        println!("perf is not usable here; no profile taken");
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for workload in [Workload::Write, Workload::LinearRead] {
        let leader = systems.kartotek.leader().await?;
        let Some(pid) = systems.kartotek.pid_of(leader) else {
            println!("leader pid unknown (attached cluster without pids); no profile");
            return Ok(out);
        };
        let spec = RunSpec {
            workload,
            load: Load::Closed {
                concurrency: args.profile_concurrency,
            },
            warmup: Duration::from_secs_f64(args.timing.warmup_s),
            duration: Duration::from_secs_f64(args.timing.duration_s),
            keys: keyspace.len(),
        };
        let data = dir.join(format!("perf-{}.data", workload.slug()));
        let rec = profile::start(pid, spec.warmup + spec.duration, &data)?;
        let o = runner::run(target.clone(), spec, seq.clone()).await;
        let what = format!(
            "Kartotek leader (node {leader}) during {} at {} in flight: {:.0} ops/s",
            workload.name(),
            args.profile_concurrency,
            o.ok as f64 / o.elapsed_seconds
        );
        let p = tokio::task::spawn_blocking(move || rec.finish(&what, false)).await??;
        println!("profiled: {}", p.what);
        out.push(p);
    }
    Ok(out)
}

/// The fairness conditions and settings, as the report states them.
fn conditions(args: &CompareArgs, data_dir: &str, systems: &Systems) -> Vec<String> {
    let load = if args.rates.is_empty() {
        format!(
            "closed loop: a fixed number of requests in flight ({}), each worker waits for its answer",
            args.concurrency
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!(
            "open loop: target rates {} /s (at most {} in flight), latency counted from each request's intended start (no coordinated omission)",
            args.rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            args.in_flight_max
        )
    };
    vec![
        format!(
            "Clusters: {} Kartotek nodes (default settings, `lan` Raft profile: heartbeat 100 ms, election 500–1000 ms) and {} etcd members (etcd defaults: heartbeat 100 ms, election 1000 ms), all on loopback, both running throughout (the one not measured is idle).",
            systems.kartotek.nodes.len(),
            systems.etcd.members.len()
        ),
        "Routing, the same for both: writes and linearizable reads go to the leader; follower reads are spread over the two followers (Kartotek: bounded-staleness lookup; etcd: serializable range, which has no staleness bound at all).".into(),
        format!("Kartotek's follower reads use max_staleness_ms = {}.", args.max_staleness_ms),
        "Authentication, not the same: every Kartotek call carries an ES256 access token that the node verifies (signature, issuer, audience, expiry, scope) before it does anything, as a deployed cluster does (`kartotek-bench auth-cost` measures what that costs); etcd runs without its auth (no users, no tokens), so its numbers include no authentication at all.".into(),
        "Durability, the same for both: a write is acknowledged only after a majority has fsynced it. etcd runs with its defaults (WAL fsync, no unsafe flags); Kartotek always fsyncs (group commit on the RocksDB WAL).".into(),
        "History: before every etcd run its history is compacted (physical) to the current revision and every member is defragmented. Kartotek keeps no MVCC history (a register overwrites the entry); its only record of the past is the bounded change feed (`storage.change_history_max` revisions), which lookups never read. Kartotek's audit log does grow: one event per read (retention is configurable, off by default).".into(),
        format!("Data: both systems' data dirs under {data_dir}, one disk."),
        "Load generator: this one process for both systems, the same workers and key draws; one HTTP/2 connection per node and system (Kartotek through `kartotek-client`, which adds request ids and retries; etcd through plain tonic stubs of its v3 API, no retries).".into(),
        format!("Load: {load}; warm-up {:.1} s then {:.1} s measured per run; {} repetitions, histograms merged; the systems alternate which runs first, case by case and repetition by repetition.", args.timing.warmup_s, args.timing.duration_s, args.timing.repetitions),
        format!(
            "Keys: {} entries preloaded in both; every operation draws a key uniformly; a write stores a new version (a new `endpoint_ref`) so neither system can skip it.",
            args.keys
        ),
        format!(
            "Machine busyness: CPU used by other user processes (process CPU from /proc/stat minus both systems' servers, this load generator and kernel threads), the CPU of kernel threads and interrupts (mostly the servers' own I/O and loopback traffic) and the 1-minute load average are recorded per run; a run where other work used more than {:.0} % of all CPUs is repeated (up to {} attempts) and marked if still disturbed.",
            args.busy_max * 100.0,
            args.attempts
        ),
    ]
}
