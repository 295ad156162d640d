//! One test run: set up the network and the cluster, run the workers and the nemesis (fault
//! phase), heal everything and keep the workers going (heal phase), run the final reads,
//! check the history, and write `store/<test>/<timestamp>/`.
//!
//! Teardown is guaranteed: the cluster (and with it the network namespaces) is torn down when
//! the run ends, fails, panics or is interrupted (SIGINT / SIGTERM / SIGHUP); node processes also
//! carry `PR_SET_PDEATHSIG`, so they die with the harness even on SIGKILL, and
//! `kartotek-jepsen cleanup` removes namespaces a SIGKILLed harness left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::cluster::{Cluster, Net, NodeOptions, UnsafeMode};
use crate::history::{EventType, HistoryHandle, Recorder};
use crate::nemesis::{Kind, Nemesis, NemesisLog, Timing, plan};
use crate::netns::Network;
use crate::report;
use crate::workload::audit::AuditWorkload;
use crate::workload::block::BlockWorkload;
use crate::workload::register::{RegisterOptions, RegisterWorkload};
use crate::workload::set::SetWorkload;
use crate::workload::watch::WatchWorkload;
use crate::workload::{CheckOutcome, Clients, Validity, Workload};

/// Which network to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NetChoice {
    /// Network namespaces (needs root / CAP_NET_ADMIN).
    Netns,
    /// 127.0.0.1, process faults only.
    Loopback,
    /// Namespaces if permitted, else loopback.
    Auto,
}

/// Which workload to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadChoice {
    /// Read / write / CAS registers, linearizability per key.
    Register,
    /// Unique inserts, no loss, no phantoms.
    Set,
    /// The change feed across faults: no gap, duplicate or reordering.
    Watch,
    /// Block safety: once a block is acknowledged, no later access decision permits.
    Block,
    /// Every answered read has its audit event in the chain after the heal, exactly once.
    Audit,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Workload.
    pub workload: WorkloadChoice,
    /// Nemesis kinds (may be empty).
    pub nemesis: Vec<Kind>,
    /// Length of the fault phase.
    pub time_limit_s: u64,
    /// Length of the heal phase (workers keep running, no faults).
    pub heal_s: u64,
    /// Seed of the schedule and of the workers' choices.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// Network.
    pub net: NetChoice,
    /// The `kartotek` binary.
    pub kartotek_bin: PathBuf,
    /// Worker count.
    pub concurrency: usize,
    /// Where runs are stored.
    pub store: PathBuf,
    /// Start the nodes in an unsafe mode (self-check).
    pub unsafe_mode: Option<UnsafeMode>,
    /// Deadline of one client operation.
    pub op_deadline_ms: u64,
    /// Mean pause of a worker between operations.
    pub think_ms: u64,
    /// Register: operations per key.
    pub ops_per_key: u64,
    /// Keep the nodes' data dirs after the run.
    pub keep_data: bool,
    /// Fault hold time range.
    pub hold_s: (f64, f64),
    /// Snapshot every this many entries, a tenth kept behind (node default when unset).
    pub snapshot_logs: Option<u64>,
}

/// The verdict of a run (`verdict.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Test name.
    pub test: String,
    /// The run directory.
    pub dir: PathBuf,
    /// Overall judgement.
    pub valid: Validity,
    /// Workload.
    pub workload: WorkloadChoice,
    /// Nemesis kinds that ran.
    pub nemesis: Vec<Kind>,
    /// Kinds asked for but not possible in this network mode.
    pub nemesis_skipped: Vec<Kind>,
    /// `netns` or `loopback`.
    pub net: String,
    /// Why loopback, if it was a fallback.
    pub net_note: Option<String>,
    /// Seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Client workers.
    pub concurrency: usize,
    /// Unsafe node mode in force.
    pub unsafe_mode: Option<UnsafeMode>,
    /// Fault phase length.
    pub time_limit_s: u64,
    /// Heal phase length.
    pub heal_s: u64,
    /// Seconds some fault was active.
    pub fault_time_s: f64,
    /// Wall time of the whole run.
    pub duration_s: f64,
    /// The checker's result.
    pub checker: CheckOutcome,
    /// Faults started / failed to start, per kind.
    pub faults: Value,
    /// Nodes that exited on their own.
    pub node_exits: Vec<Value>,
    /// Ok operations in the last 5 s of the heal phase (0: the cluster did not recover).
    pub ok_ops_end_of_heal: usize,
}

/// Runs one test, tearing everything down afterwards, also on Ctrl-C.
pub async fn run(opts: TestOptions) -> anyhow::Result<Verdict> {
    let name = test_name(&opts);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let dir = opts.store.join(&name).join(&stamp);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let latest = opts.store.join(&name).join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(&stamp, &latest);
    println!(
        "kartotek-jepsen: {name}, seed {}, storing in {}",
        opts.seed,
        dir.display()
    );

    if !opts.kartotek_bin.is_file() {
        bail!(
            "kartotek binary {} not found (build it, or pass --kartotek-bin)",
            opts.kartotek_bin.display()
        );
    }
    let (net, net_note) = make_network(opts.net, opts.nodes)?;
    let net_name = match &net {
        Net::Netns(_) => "netns",
        Net::Loopback => "loopback",
    };
    let (kinds, skipped): (Vec<Kind>, Vec<Kind>) = opts
        .nemesis
        .iter()
        .partition(|k| matches!(net, Net::Netns(_)) || !k.needs_netns());
    if !skipped.is_empty() {
        println!(
            "kartotek-jepsen: loopback mode: skipping {} (they need network namespaces)",
            skipped
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(note) = &net_note {
        println!("kartotek-jepsen: {note}");
    }
    let node_opts = NodeOptions {
        binary: opts.kartotek_bin.clone(),
        unsafe_mode: opts.unsafe_mode,
        faketime: kinds.contains(&Kind::Clock),
        fiu: kinds.contains(&Kind::Disk),
        snapshot_logs: opts.snapshot_logs,
    };
    let slot = match &net {
        Net::Netns(n) => Some(n.slot()),
        Net::Loopback => None,
    };
    let started = Instant::now();
    let cluster = Cluster::start(opts.nodes, &dir.join("nodes"), net, node_opts)?;
    let cluster = Arc::new(Mutex::new(cluster));

    let body = run_body(&opts, &dir, cluster.clone(), &kinds, started);
    let outcome = tokio::select! {
        r = body => r,
        sig = shutdown_signal() => Err(anyhow::anyhow!("interrupted by {sig}")),
    };
    // Teardown, whatever happened. A task stuck while holding the cluster cannot block it:
    // after a timeout the network is removed by name (the nodes die with this process).
    match tokio::time::timeout(Duration::from_secs(30), cluster.lock()).await {
        Ok(mut c) => {
            c.stop_all();
            if let Net::Netns(n) = &mut c.net {
                n.teardown();
            }
        }
        Err(_) => {
            eprintln!("kartotek-jepsen: cluster busy; removing the network by name");
            if let Some(slot) = slot {
                crate::netns::teardown_slot(slot, opts.nodes);
            }
        }
    }
    let (checker, history, nemesis_log, node_exits) = outcome?;
    if checker.valid != Validity::Valid {
        println!("kartotek-jepsen: keeping the nodes' data dirs (run not valid)");
    }
    // Data of a run that is not valid is kept for the investigation.
    if !opts.keep_data && checker.valid == Validity::Valid {
        for i in 0..opts.nodes {
            let _ = std::fs::remove_dir_all(dir.join("nodes").join(format!("n{i}")).join("data"));
        }
    }

    let fault_time_s = fault_time(&nemesis_log, opts.time_limit_s as f64);
    let heal_end_ns = history.last().map_or(0, |e| e.time_ns);
    let ok_ops_end_of_heal = ok_ops_in_heal_tail(&history, &nemesis_log, heal_end_ns);
    let verdict = Verdict {
        test: name,
        dir: dir.clone(),
        valid: checker.valid,
        workload: opts.workload,
        nemesis: kinds.clone(),
        nemesis_skipped: skipped,
        net: net_name.into(),
        net_note,
        seed: opts.seed,
        nodes: opts.nodes,
        concurrency: opts.concurrency,
        unsafe_mode: opts.unsafe_mode,
        time_limit_s: opts.time_limit_s,
        heal_s: opts.heal_s,
        fault_time_s,
        duration_s: started.elapsed().as_secs_f64(),
        faults: fault_counts(&nemesis_log),
        checker,
        node_exits,
        ok_ops_end_of_heal,
    };
    std::fs::write(
        dir.join("verdict.json"),
        serde_json::to_string_pretty(&verdict)?,
    )?;
    report::write(&dir.join("report.html"), &verdict, &history, &nemesis_log)?;
    Ok(verdict)
}

type BodyOutcome = (
    CheckOutcome,
    Vec<crate::history::Event>,
    Vec<crate::nemesis::LogEntry>,
    Vec<Value>,
);

async fn run_body(
    opts: &TestOptions,
    dir: &Path,
    cluster: Arc<Mutex<Cluster>>,
    kinds: &[Kind],
    started: Instant,
) -> anyhow::Result<BodyOutcome> {
    cluster.lock().await.init(Duration::from_secs(60)).await?;
    match opts.workload {
        WorkloadChoice::Register => {
            let w = RegisterWorkload::new(RegisterOptions {
                key_groups: (opts.concurrency / 3).max(1),
                ops_per_key: opts.ops_per_key,
            });
            run_workload(opts, dir, cluster, kinds, started, Arc::new(w)).await
        }
        WorkloadChoice::Set => {
            run_workload(
                opts,
                dir,
                cluster,
                kinds,
                started,
                Arc::new(SetWorkload::new(10)),
            )
            .await
        }
        WorkloadChoice::Watch => {
            let w = Arc::new(WatchWorkload::new());
            run_workload(opts, dir, cluster, kinds, started, w).await
        }
        WorkloadChoice::Block => {
            let w = Arc::new(BlockWorkload::new());
            run_workload(opts, dir, cluster, kinds, started, w).await
        }
        WorkloadChoice::Audit => {
            let w = Arc::new(AuditWorkload::new(opts.nodes));
            run_workload(opts, dir, cluster, kinds, started, w).await
        }
    }
}

async fn run_workload<W: Workload>(
    opts: &TestOptions,
    dir: &Path,
    cluster: Arc<Mutex<Cluster>>,
    kinds: &[Kind],
    started: Instant,
    workload: Arc<W>,
) -> anyhow::Result<BodyOutcome> {
    let (addrs, tokens) = {
        let c = cluster.lock().await;
        (c.addrs(), c.tokens())
    };
    let (recorder, history) = Recorder::start(&dir.join("history.jsonl"), started)?;
    let log = NemesisLog::create(&dir.join("nemesis.jsonl"), started)?;
    let timing = Timing {
        phase_s: opts.time_limit_s as f64,
        hold_s: opts.hold_s,
        ..Timing::default()
    };
    let planned = plan(opts.seed, kinds, opts.nodes, timing);
    for (id, p) in planned.iter().enumerate() {
        log.log("plan", Some(id), p.fault.kind().name(), json!(p));
    }
    let nemesis = Nemesis {
        cluster: cluster.clone(),
        log: log.clone(),
    };

    let mut tasks = tokio::task::JoinSet::new();
    let stop = Arc::new(AtomicBool::new(false));
    for idx in 0..opts.concurrency {
        let clients = Clients::new(
            &addrs,
            idx % addrs.len(),
            opts.op_deadline_ms,
            tokens.clone(),
        )?;
        tasks.spawn(worker(
            workload.clone(),
            idx,
            opts.concurrency,
            clients,
            history.clone(),
            stop.clone(),
            opts.seed,
            opts.think_ms,
        ));
    }
    let exits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let monitor = tokio::spawn(monitor(cluster.clone(), log.clone(), exits.clone()));

    // Fault phase.
    let phase_start = tokio::time::Instant::now();
    println!(
        "kartotek-jepsen: fault phase {} s ({} faults planned: {})",
        opts.time_limit_s,
        planned.len(),
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
    );
    let phase_end = phase_start + Duration::from_secs(opts.time_limit_s);
    let nemesis_run = nemesis.run(planned, phase_start, phase_end);
    tokio::join!(
        nemesis_run,
        tokio::time::sleep_until(phase_start + Duration::from_secs(opts.time_limit_s))
    );

    // Heal phase.
    println!("kartotek-jepsen: heal phase {} s", opts.heal_s);
    nemesis.heal_all(kinds).await;
    let healed = cluster
        .lock()
        .await
        .wait_stable(tokio::time::Instant::now() + Duration::from_secs(60))
        .await;
    match &healed {
        Ok(leader) => log.log(
            "event",
            None,
            "cluster",
            json!({"stable_leader_slot": leader}),
        ),
        Err(e) => {
            let seen = cluster.lock().await.seen().await;
            log.log(
                "error",
                None,
                "cluster",
                json!({"error": format!("{e:#}"), "statuses": seen}),
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(opts.heal_s)).await;
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}

    // Final reads.
    println!("kartotek-jepsen: final reads");
    final_reads(
        workload.as_ref(),
        &addrs,
        tokens,
        &history,
        opts.op_deadline_ms,
    )
    .await?;
    monitor.abort();
    drop(history);
    let events = recorder.finish().await?;
    println!("kartotek-jepsen: checking {} events", events.len());
    let w = workload.clone();
    let ev = events.clone();
    let faults = log.entries();
    let checker = tokio::task::spawn_blocking(move || w.check_with_nemesis(&ev, &faults)).await?;
    let exits = exits.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((checker, events, log.entries(), exits))
}

#[allow(clippy::too_many_arguments)]
async fn worker<W: Workload>(
    workload: Arc<W>,
    idx: usize,
    workers: usize,
    clients: Clients,
    history: HistoryHandle,
    stop: Arc<AtomicBool>,
    seed: u64,
    think_ms: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1 + idx as u64));
    let mut state = W::WorkerState::default();
    let mut process = idx as u64;
    let home = Some(clients.home);
    while !stop.load(Ordering::Relaxed) {
        let op = workload.next_op(idx, &mut state, &mut rng);
        history.invoke(process, home, &op).await;
        let done = workload.invoke(&clients, &mut state, &op).await;
        let indeterminate = done.kind == EventType::Info;
        history.complete(process, home, &op, done).await;
        if indeterminate {
            // The old process may still be "running" its operation: continue as a new one.
            process += workers as u64;
        }
        if think_ms > 0 {
            let pause = rng.gen_range(0..=2 * think_ms);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

/// Runs the workload's final reads, each retried until ok or 60 s have passed (120 s for all).
async fn final_reads<W: Workload>(
    workload: &W,
    addrs: &[String],
    tokens: Option<Arc<dyn kartotek_client::TokenSource>>,
    history: &HistoryHandle,
    deadline_ms: u64,
) -> anyhow::Result<()> {
    const FINAL_PROCESS: u64 = 1_000_000;
    let clients = Clients::new(addrs, 0, deadline_ms.max(5_000), tokens)?;
    let mut state = W::WorkerState::default();
    // 60 s for the first final op, 120 s for all: after that each op gets one attempt.
    let overall = Instant::now() + Duration::from_secs(120);
    for (k, op) in workload.final_ops().iter().enumerate() {
        let process = FINAL_PROCESS + k as u64;
        let deadline = (Instant::now() + Duration::from_secs(60)).min(overall);
        loop {
            history.invoke(process, None, op).await;
            let done = workload.invoke(&clients, &mut state, op).await;
            let ok = done.kind == EventType::Ok;
            history.complete(process, None, op, done).await;
            if ok || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// Notes nodes that exit on their own.
async fn monitor(
    cluster: Arc<Mutex<Cluster>>,
    log: NemesisLog,
    exits: Arc<std::sync::Mutex<Vec<Value>>>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let gone = cluster.lock().await.reap();
        for (slot, status) in gone {
            let v = json!({"slot": slot, "status": status});
            log.log("event", None, "cluster", json!({"exited": v}));
            exits.lock().unwrap_or_else(|p| p.into_inner()).push(v);
        }
    }
}

fn make_network(choice: NetChoice, nodes: usize) -> anyhow::Result<(Net, Option<String>)> {
    match choice {
        NetChoice::Loopback => Ok((
            Net::Loopback,
            Some("loopback mode (asked for): process faults only".into()),
        )),
        NetChoice::Netns => Ok((Net::Netns(Network::create(nodes)?), None)),
        NetChoice::Auto => match Network::create(nodes) {
            Ok(n) => Ok((Net::Netns(n), None)),
            Err(e) => Ok((
                Net::Loopback,
                Some(format!(
                    "LOOPBACK MODE: network namespaces not permitted ({e:#}); only process faults"
                )),
            )),
        },
    }
}

fn test_name(opts: &TestOptions) -> String {
    let workload = match opts.workload {
        WorkloadChoice::Register => "register",
        WorkloadChoice::Set => "set",
        WorkloadChoice::Watch => "watch",
        WorkloadChoice::Block => "block",
        WorkloadChoice::Audit => "audit",
    };
    let nemesis = if opts.nemesis.is_empty() {
        "none".to_owned()
    } else {
        opts.nemesis
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join("+")
    };
    let unsafe_part = opts
        .unsafe_mode
        .map(|m| format!("-unsafe-{}", m.name()))
        .unwrap_or_default();
    format!("{workload}-{nemesis}{unsafe_part}")
}

/// Waits for SIGINT, SIGTERM or SIGHUP; returns its name.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}

/// Seconds during which at least one fault was active (union of start..stop intervals).
pub fn fault_time(log: &[crate::nemesis::LogEntry], phase_s: f64) -> f64 {
    let mut intervals = report::fault_intervals(log, phase_s * 1e9);
    intervals.sort_by(|a, b| a.start_ns.total_cmp(&b.start_ns));
    let mut total = 0.0;
    let mut cur: Option<(f64, f64)> = None;
    for i in intervals {
        match cur {
            Some((s, e)) if i.start_ns <= e => cur = Some((s, e.max(i.end_ns))),
            Some((s, e)) => {
                total += e - s;
                cur = Some((i.start_ns, i.end_ns));
            }
            None => cur = Some((i.start_ns, i.end_ns)),
        }
    }
    if let Some((s, e)) = cur {
        total += e - s;
    }
    (total / 1e9 * 10.0).round() / 10.0
}

fn fault_counts(log: &[crate::nemesis::LogEntry]) -> Value {
    let mut m = serde_json::Map::new();
    for e in log {
        if e.phase == "start" || e.phase == "error" {
            let slot = m
                .entry(e.kind.clone())
                .or_insert_with(|| json!({"started": 0, "errors": 0}));
            let field = if e.phase == "start" {
                "started"
            } else {
                "errors"
            };
            slot[field] = json!(slot[field].as_u64().unwrap_or(0) + 1);
        }
    }
    Value::Object(m)
}

fn ok_ops_in_heal_tail(
    history: &[crate::history::Event],
    log: &[crate::nemesis::LogEntry],
    end_ns: u64,
) -> usize {
    let heal_ns = log
        .iter()
        .find(|e| e.kind == "heal")
        .map_or(0, |e| e.time_ns);
    // The last 5 s of worker activity (final reads excluded).
    let workers_end = history
        .iter()
        .filter(|e| e.process < 1_000_000)
        .map(|e| e.time_ns)
        .max()
        .unwrap_or(end_ns);
    let from = workers_end.saturating_sub(5_000_000_000).max(heal_ns);
    history
        .iter()
        .filter(|e| e.process < 1_000_000 && e.kind == EventType::Ok && e.time_ns >= from)
        .count()
}
