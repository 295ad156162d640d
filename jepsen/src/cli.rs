//! Command line: `test` runs one test, `check` re-checks a stored history, `cleanup` removes
//! what killed runs left behind; `delay-proxy` and `site-probe` serve `deploy/multi-site/`.
//!
//! Exit codes: 0 valid, 1 anomaly found, 2 undecided (checker budget, no final read), 3 the
//! harness failed, 130 interrupted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::cluster::UnsafeMode;
use crate::nemesis::parse_kinds;
use crate::runner::{NetChoice, TestOptions, WorkloadChoice};
use crate::workload::Validity;

/// Jepsen-style fault-injection tests of a Kartotek cluster.
#[derive(Debug, Parser)]
#[command(name = "kartotek-jepsen", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one test and prints its verdict.
    Test(TestArgs),
    /// Re-checks a stored history (`store/<test>/<timestamp>/history.jsonl`).
    Check {
        /// The workload that produced it.
        #[arg(long, value_enum)]
        workload: WorkloadChoice,
        /// The history file.
        history: PathBuf,
    },
    /// A TCP proxy holding each chunk for a one-way delay (deploy/multi-site/run.sh puts one
    /// in front of each site's node).
    DelayProxy {
        /// Where it listens.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Where it forwards to.
        #[arg(long)]
        to: std::net::SocketAddr,
        /// One-way delay, ms (the round trip through it is twice that).
        #[arg(long)]
        delay_ms: u64,
    },
    /// Sequential writes or reads against endpoints, with p50/p99/max (deploy/multi-site).
    SiteProbe {
        /// Endpoints, comma-separated (the first preferred).
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
        /// What to do.
        #[arg(long, value_enum, default_value = "write")]
        mode: crate::sites::ProbeMode,
        /// How many (unless --seconds).
        #[arg(long, default_value_t = 200)]
        requests: u32,
        /// Run for this long instead.
        #[arg(long)]
        seconds: Option<u64>,
        /// Bound of the bounded-staleness reads, ms.
        #[arg(long, default_value_t = 5_000)]
        staleness_ms: u64,
    },
    /// Removes network namespaces, links and node processes left by killed runs (those of a
    /// harness still running are kept unless --force).
    Cleanup {
        /// Also remove what running harnesses use.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// Workload.
    #[arg(long, value_enum, default_value = "register")]
    workload: WorkloadChoice,
    /// Faults, comma-separated: partition, kill, pause, loss, clock, disk, member; or
    /// `all` / `none`.
    #[arg(long, default_value = "partition,kill")]
    nemesis: String,
    /// Length of the fault phase, seconds.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Length of the heal phase (no faults, workers running), seconds.
    #[arg(long, default_value_t = 10)]
    heal_time: u64,
    /// Seed of the fault schedule and the workers (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Network: namespaces, loopback (process faults only) or auto (namespaces if permitted).
    #[arg(long, value_enum, default_value = "auto")]
    net: NetChoice,
    /// The `kartotek` binary (default: next to this executable or in its parent directory).
    #[arg(long)]
    kartotek_bin: Option<PathBuf>,
    /// Client workers.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Where runs are stored.
    #[arg(long, default_value = "store")]
    store: PathBuf,
    /// Start the nodes in an unsafe mode; the run must then report an anomaly.
    #[arg(long = "unsafe", value_enum)]
    unsafe_mode: Option<UnsafeMode>,
    /// Deadline of one client operation, ms.
    #[arg(long, default_value_t = 4000)]
    op_deadline_ms: u64,
    /// Mean pause between a worker's operations, ms.
    #[arg(long, default_value_t = 20)]
    think_ms: u64,
    /// Register: operations per key before moving to a fresh key.
    #[arg(long, default_value_t = 150)]
    ops_per_key: u64,
    /// Shortest time a fault is held, seconds.
    #[arg(long, default_value_t = 3.0)]
    hold_min: f64,
    /// Longest time a fault is held, seconds.
    #[arg(long, default_value_t = 10.0)]
    hold_max: f64,
    /// Keep the nodes' data directories.
    #[arg(long)]
    keep_data: bool,
    /// Nodes build a snapshot every this many applied entries and keep a tenth of it in the
    /// log behind (`raft.snapshot_logs_since_last`, `raft.logs_kept_after_snapshot`), so a
    /// follower that was down or cut off catches up by snapshot install (default: the
    /// node's own, 50,000).
    #[arg(long)]
    snapshot_logs: Option<u64>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kartotek-jepsen: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    // Dropping the runtime drops every task and with it the cluster (teardown).
    drop(runtime);
    ExitCode::from(code)
}

async fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Cleanup { force } => {
            let mut removed = crate::netns::cleanup_all(force);
            removed.extend(kill_stray_nodes(force));
            if removed.is_empty() {
                println!("nothing to clean up");
            }
            for r in removed {
                println!("removed {r}");
            }
            0
        }
        Command::DelayProxy {
            listen,
            to,
            delay_ms,
        } => {
            match crate::sites::delay_proxy(listen, to, std::time::Duration::from_millis(delay_ms))
                .await
            {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("kartotek-jepsen: {e:#}");
                    3
                }
            }
        }
        Command::SiteProbe {
            endpoints,
            mode,
            requests,
            seconds,
            staleness_ms,
        } => match crate::sites::probe(endpoints, mode, requests, seconds, staleness_ms).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("kartotek-jepsen: {e:#}");
                3
            }
        },
        Command::Check { workload, history } => match check(workload, &history) {
            Ok(v) => exit_code(v),
            Err(e) => {
                eprintln!("kartotek-jepsen: {e:#}");
                3
            }
        },
        Command::Test(args) => match test(args).await {
            Ok(v) => exit_code(v),
            Err(e) => {
                eprintln!("kartotek-jepsen: {e:#}");
                if e.to_string().starts_with("interrupted") {
                    130
                } else {
                    3
                }
            }
        },
    }
}

fn exit_code(v: Validity) -> u8 {
    match v {
        Validity::Valid => 0,
        Validity::Invalid => 1,
        Validity::Unknown => 2,
    }
}

fn check(workload: WorkloadChoice, path: &Path) -> anyhow::Result<Validity> {
    let events = crate::history::load(path)?;
    let outcome = match workload {
        WorkloadChoice::Register => crate::workload::register::check_history(&events),
        WorkloadChoice::Set => crate::workload::set::check_history(&events),
        WorkloadChoice::Watch => crate::workload::watch::check_history(&events),
        WorkloadChoice::Block => crate::workload::block::check_history(&events),
        WorkloadChoice::Audit => {
            // The nemesis log of the same run, when it sits beside the history.
            let faults = match path.parent().map(|d| d.join("nemesis.jsonl")) {
                Some(f) if f.exists() => crate::nemesis::load_log(&f)?,
                _ => Vec::new(),
            };
            crate::workload::audit::check_history_with_nemesis(&events, &faults)
        }
    };
    println!("{}", outcome.summary);
    println!("{}", serde_json::to_string_pretty(&outcome.details)?);
    Ok(outcome.valid)
}

async fn test(args: TestArgs) -> anyhow::Result<Validity> {
    let nemesis = parse_kinds(&args.nemesis)?;
    anyhow::ensure!(
        (1..=crate::netns::NODES_MAX).contains(&args.nodes),
        "--nodes out of range"
    );
    anyhow::ensure!(
        args.concurrency >= 1 && args.concurrency <= 1000,
        "--concurrency must be 1 to 1000"
    );
    anyhow::ensure!(
        args.hold_min > 0.0 && args.hold_max > args.hold_min,
        "need 0 < --hold-min < --hold-max"
    );
    let kartotek_bin = match args.kartotek_bin {
        Some(p) => p,
        None => default_binary()
            .context("no kartotek binary next to this executable; pass --kartotek-bin")?,
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let opts = TestOptions {
        workload: args.workload,
        nemesis,
        time_limit_s: args.time_limit,
        heal_s: args.heal_time,
        seed,
        nodes: args.nodes,
        net: args.net,
        kartotek_bin,
        concurrency: args.concurrency,
        store: args.store,
        unsafe_mode: args.unsafe_mode,
        op_deadline_ms: args.op_deadline_ms.max(100),
        think_ms: args.think_ms,
        ops_per_key: args.ops_per_key.max(1),
        keep_data: args.keep_data,
        hold_s: (args.hold_min, args.hold_max),
        snapshot_logs: args.snapshot_logs.map(|n| n.max(10)),
    };
    let verdict = crate::runner::run(opts).await?;
    println!("{}", verdict.checker.summary);
    println!(
        "kartotek-jepsen: {} — {:?} (net {}, {:.1} s of faults, seed {}); report: {}",
        verdict.test,
        verdict.valid,
        verdict.net,
        verdict.fault_time_s,
        verdict.seed,
        verdict.dir.join("report.html").display()
    );
    Ok(verdict.valid)
}

/// `kartotek` next to this executable, or in its parent directory (covers test executables in
/// `target/debug/deps/`).
pub fn default_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("kartotek"), dir.parent()?.join("kartotek")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Kills node processes started by a harness that is gone (their config file is
/// `jepsen-node.toml` and their parent is init), or all of them with `force`.
fn kill_stray_nodes(force: bool) -> Vec<String> {
    let mut killed = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return killed;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_node = args.iter().any(|a| a.ends_with(b"kartotek"))
            && args
                .iter()
                .any(|a| a.ends_with(crate::cluster::CONFIG_NAME.as_bytes()));
        let orphan = std::fs::read_to_string(p.path().join("stat"))
            .ok()
            .and_then(|stat| {
                // "pid (comm) state ppid ...": comm may contain spaces, so split after ')'.
                let after = stat.rsplit_once(')')?.1.to_owned();
                after.split_whitespace().nth(1)?.parse::<i32>().ok()
            })
            .is_some_and(|ppid| ppid == 1);
        if is_node
            && (orphan || force)
            && nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
        {
            killed.push(format!("node process {pid}"));
        }
    }
    killed
}
