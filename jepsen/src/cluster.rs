//! The cluster under test: real `kartotek node` processes, one per slot, each with its own
//! config, data dir and log under the run directory.
//!
//! The bootstrap (config files, processes, wait-until-up, `admin init`, leader agreement,
//! kill -9 / SIGSTOP / restart, reaping) is `kartotek-testkit`'s, shared with the node tests
//! and bench; [`Cluster`] derefs to the testkit cluster (`c.nodes[i].id`, `.addr`, `.member`).
//! What stays here is jepsen's own:
//!
//! - Networks: in `netns` mode slot `i` runs inside namespace `kj<S>n<i>` (the testkit's
//!   command wrapper prefixes `ip netns exec kj<S>n<i> env ...`, so preloads reach the node
//!   and not `ip`) and listens on `10.213.S.(129+i):7401`; in `loopback` mode it listens on a
//!   free port of 127.0.0.1. The testkit's processes get `PR_SET_PDEATHSIG = SIGKILL`, so
//!   they die with the harness even when it is killed with SIGKILL; [`Cluster`] kills them and
//!   removes the network when dropped (also on panic).
//! - Clock offsets through libfaketime (`FAKETIME_TIMESTAMP_FILE`, monotonic clock untouched)
//!   and disk faults through libfiu (`fiu-ctrl` on the node's control fifo): node environment
//!   and control files only jepsen uses.
//! - Membership bookkeeping: remove, wipe, re-add under a fresh node id at the same address,
//!   and aligning the slots' `member` flags with the leader's view.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use kartotek_client::proto::NodeStatus;
use kartotek_client::{ClientConfig, KartotekClient};
use kartotek_testkit::{ClusterOptions, Launch, NodeSpec, Wrapper};
use serde::Serialize;

pub use kartotek_testkit::status::{leader_status, voters};

use crate::netns::{NODE_PORT, Network};

/// libfaketime, multithreaded flavour (Debian's path).
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// libfiu preload libraries (Debian's path).
const FIU_LIBS: &str = "/usr/lib/fiu/fiu_run_preload.so /usr/lib/fiu/fiu_posix_preload.so";
/// Name of every node's config file; `cleanup` finds stray nodes by it.
pub const CONFIG_NAME: &str = "jepsen-node.toml";

/// How nodes are started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The `kartotek` binary.
    pub binary: PathBuf,
    /// Start in an unsafe mode (the self-checks).
    pub unsafe_mode: Option<UnsafeMode>,
    /// Preload libfaketime (needed by the clock nemesis).
    pub faketime: bool,
    /// Preload libfiu (needed by the disk nemesis).
    pub fiu: bool,
    /// Snapshot every this many entries, a tenth kept behind (node default when unset).
    pub snapshot_logs: Option<u64>,
}

/// The network nodes live in.
#[derive(Debug)]
pub enum Net {
    /// One namespace per node.
    Netns(Network),
    /// Everything on 127.0.0.1.
    Loopback,
}

/// What a status poll saw.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    /// Slot.
    pub slot: usize,
    /// Role reported.
    pub role: String,
    /// Term.
    pub term: u64,
    /// Leader id it believes in.
    pub leader_id: Option<u64>,
    /// Applied index.
    pub applied_index: Option<u64>,
    /// Node id.
    pub node_id: u64,
    /// Last log index.
    pub last_log_index: Option<u64>,
    /// Members it knows: (id, voter).
    pub members: Vec<(u64, bool)>,
}

/// Asks nodes about their state without holding the cluster (cheap to clone).
#[derive(Debug, Clone)]
pub struct Probe {
    /// A client over every node, for administration.
    pub admin: KartotekClient,
    addrs: Vec<String>,
}

impl Probe {
    /// Status of every slot (concurrently, one attempt each).
    pub async fn statuses(&self) -> Vec<Option<NodeStatus>> {
        kartotek_testkit::status::poll(&self.admin, &self.addrs).await
    }

    /// Slot of the node that claims leadership in the highest term, if any.
    pub async fn leader(&self) -> Option<usize> {
        leader_status(&self.statuses().await).map(|(i, _)| i)
    }

    /// Waits until the node at `addr` answers.
    pub async fn wait_up(&self, addr: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.admin.status(addr).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                bail!("node at {addr} did not come up (see its node.log)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// Unsafe node modes, for the self-checks: each breaks one guarantee on purpose, and a run in
/// it must report the anomaly its checker looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnsafeMode {
    /// Linearizable reads served from local state without confirming leadership; audit
    /// events journaled in the background after the answer (`[testing] unsafe_stale_reads`).
    StaleReads,
    /// Reads not fenced during a snapshot install, which clears the state machine and pauses
    /// before loading (`[testing] unsafe_unfenced_install_pause_ms`): a follower decision in
    /// the pause sees no blocks and permits.
    UnfencedInstall,
}

impl UnsafeMode {
    /// As on the command line.
    pub fn name(self) -> &'static str {
        match self {
            UnsafeMode::StaleReads => "stale-reads",
            UnsafeMode::UnfencedInstall => "unfenced-install",
        }
    }
}

/// How long an unfenced install leaves the state machine empty, ms.
const UNFENCED_INSTALL_PAUSE_MS: u64 = 1_000;

/// The nodes of one test: a testkit cluster plus the network and jepsen's node options.
#[derive(Debug)]
pub struct Cluster {
    kit: kartotek_testkit::Cluster,
    /// The network (dropped after the nodes).
    pub net: Net,
    opts: NodeOptions,
    next_id: u64,
    admin: KartotekClient,
}

impl Deref for Cluster {
    type Target = kartotek_testkit::Cluster;
    fn deref(&self) -> &kartotek_testkit::Cluster {
        &self.kit
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut kartotek_testkit::Cluster {
        &mut self.kit
    }
}

impl Cluster {
    /// Writes the configs of `n` nodes under `dir` and starts them (not initialised yet).
    pub fn start(n: usize, dir: &Path, net: Net, opts: NodeOptions) -> anyhow::Result<Cluster> {
        let mut kit_opts = ClusterOptions::new(&opts.binary, dir, "kartotek-jepsen");
        kit_opts.config_name = CONFIG_NAME.into();
        kit_opts.client = ClientConfig {
            connect_timeout_ms: 500,
            attempt_timeout_ms: 2_000,
            deadline_ms: 10_000,
            ..ClientConfig::default()
        };
        // Faults with auth on, as deployed: the nodes verify every worker's token.
        let kit_opts = kit_opts.with_auth()?;
        let mut kit = kartotek_testkit::Cluster::new(kit_opts);
        for i in 0..n {
            let addr = match &net {
                Net::Netns(network) => format!("{}:{NODE_PORT}", network.node_ip(i)),
                Net::Loopback => format!("127.0.0.1:{}", kartotek_testkit::free_port()?),
            };
            // In a namespace the Raft port is the node port + 100 on the node's address (the
            // spec's default); on loopback it needs a free port of its own.
            let raft_addr = match &net {
                Net::Netns(_) => None,
                Net::Loopback => Some(format!("127.0.0.1:{}", kartotek_testkit::free_port()?)),
            };
            let node_dir = dir.join(format!("n{i}"));
            let mut spec = NodeSpec::new(
                i as u64 + 1,
                "kartotek-jepsen",
                &addr,
                &node_dir.join("data"),
            );
            match raft_addr {
                Some(r) => spec.raft_addr = r,
                // A network of the harness's own; the nemeses need plain packets to drop.
                None => spec.insecure_plaintext_raft = true,
            }
            match opts.unsafe_mode {
                None => {}
                Some(UnsafeMode::StaleReads) => spec.unsafe_stale_reads = true,
                Some(UnsafeMode::UnfencedInstall) => spec.extra_toml.push_str(&format!(
                    "\n[testing]\nunsafe_unfenced_install_pause_ms = {UNFENCED_INSTALL_PAUSE_MS}\n"
                )),
            }
            if let Some(n) = opts.snapshot_logs {
                spec.raft.snapshot_logs_since_last = Some(n);
                spec.raft.logs_kept_after_snapshot = Some(n / 10);
            }
            spec.env = node_env(&opts, &node_dir)?;
            let wrapper = match &net {
                Net::Netns(network) => Some(netns_wrapper(network.exec_prefix(i))),
                Net::Loopback => None,
            };
            kit.add(spec, &node_dir, wrapper)?;
        }
        let admin = kit.admin().cloned().context("a cluster of no nodes")?;
        let mut cluster = Cluster {
            admin,
            kit,
            net,
            opts,
            next_id: n as u64 + 1,
        };
        cluster.kit.start_all()?;
        Ok(cluster)
    }

    /// The token every client of the harness calls with.
    pub fn tokens(&self) -> Option<std::sync::Arc<dyn kartotek_client::TokenSource>> {
        self.kit.tokens()
    }

    /// The network namespaces, if any.
    pub fn network(&self) -> Option<&Network> {
        match &self.net {
            Net::Netns(n) => Some(n),
            Net::Loopback => None,
        }
    }

    /// Starts the process of slot `i` on its data dir.
    pub fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        self.kit.nodes[i].start()
    }

    /// True if slot `i` has a live process.
    pub fn running(&self, i: usize) -> bool {
        self.nodes[i].process.running()
    }

    /// Reaps processes that exited by themselves; returns (slot, exit status) of each.
    pub fn reap(&mut self) -> Vec<(usize, String)> {
        let mut gone = Vec::new();
        for (i, node) in self.kit.nodes.iter_mut().enumerate() {
            if let Some(status) = node.process.reap() {
                gone.push((i, status.to_string()));
            }
        }
        gone
    }

    /// `kill -9` slot `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        self.kit.nodes[i].process.kill9();
    }

    /// SIGSTOP (`pause`) or SIGCONT slot `i`.
    pub fn pause(&mut self, i: usize, pause: bool) {
        let process = &mut self.kit.nodes[i].process;
        if pause {
            process.pause();
        } else {
            process.resume();
        }
    }

    /// Sets the wall-clock offset of slot `i` (seconds; libfaketime re-reads it within 1 s).
    pub fn set_clock_offset(&self, i: usize, offset_s: i64) -> anyhow::Result<()> {
        if !self.opts.faketime {
            bail!("nodes were started without libfaketime");
        }
        let sign = if offset_s < 0 { '-' } else { '+' };
        std::fs::write(
            faketime_file(&self.nodes[i].dir),
            format!("{sign}{}s\n", offset_s.unsigned_abs()),
        )?;
        Ok(())
    }

    /// Runs a libfiu control command (`enable name=...`, `disable name=...`) in slot `i`.
    pub fn fiu(&self, i: usize, command: &str) -> anyhow::Result<()> {
        if !self.opts.fiu {
            bail!("nodes were started without libfiu");
        }
        let Some(pid) = self.nodes[i].process.pid() else {
            bail!("node {i} is not running");
        };
        crate::netns::run(&[
            "fiu-ctrl",
            "-f",
            &fiu_prefix(&self.nodes[i].dir).display().to_string(),
            "-c",
            command,
            &pid.to_string(),
        ])
    }

    /// A probe for status queries made without holding the cluster.
    pub fn probe(&self) -> Probe {
        Probe {
            admin: self.admin.clone(),
            addrs: self.addrs(),
        }
    }

    /// A compact view of the statuses, for logs.
    pub async fn seen(&self) -> Vec<Seen> {
        self.statuses()
            .await
            .into_iter()
            .enumerate()
            .filter_map(|(slot, s)| {
                s.map(|s| Seen {
                    slot,
                    role: s.role,
                    term: s.term,
                    leader_id: s.leader_id,
                    applied_index: s.applied_index,
                    node_id: s.node_id,
                    last_log_index: s.last_log_index,
                    members: s.members.iter().map(|m| (m.node_id, m.voter)).collect(),
                })
            })
            .collect()
    }

    /// Slot of the node that claims leadership in the highest term, if any.
    pub async fn leader(&self) -> Option<usize> {
        leader_status(&self.statuses().await).map(|(i, _)| i)
    }

    /// Initialises the cluster with every slot as a voter and waits for a leader.
    pub async fn init(&mut self, timeout: Duration) -> anyhow::Result<usize> {
        self.kit.opts.startup_timeout = timeout;
        self.kit.bootstrap().await
    }

    /// Waits until every running node that the leader counts as a voter agrees on that
    /// leader; returns the leader's slot.
    pub async fn wait_stable(&self, deadline: tokio::time::Instant) -> anyhow::Result<usize> {
        self.kit.wait_leader(deadline.into_std()).await
    }

    /// Aligns the slots' `member` flags with the leader's membership (an administrative call
    /// that timed out may still have taken effect); returns the slots whose flag changed.
    pub async fn sync_membership(&mut self) -> Vec<usize> {
        let statuses = self.statuses().await;
        let Some((_, ls)) = leader_status(&statuses) else {
            return Vec::new();
        };
        let voters = voters(ls);
        let mut changed = Vec::new();
        for (i, n) in self.kit.nodes.iter_mut().enumerate() {
            let member = voters.contains(&n.id);
            if member != n.member {
                n.member = member;
                changed.push(i);
            }
        }
        changed
    }

    /// Marks slot `i` removed (after the membership change went through) and stops it.
    ///
    /// Stopped as an operator decommissions a node: SIGTERM, so that it ships its audit
    /// journal into the chain before it exits (`audit.drain_on_stop_ms`); a node that is down
    /// is started once on its data dir for that. Returns whether the journal drained: false
    /// when no leader took it in time (a partition), and the wipe that follows loses it.
    pub fn removed(&mut self, i: usize) -> bool {
        self.kit.nodes[i].member = false;
        let node = &mut self.kit.nodes[i];
        if !node.process.running() && node.start().is_err() {
            return false;
        }
        self.stop_draining(i)
    }

    /// SIGTERM slot `i` and wait for it to exit; whether its audit journal drained first.
    fn stop_draining(&mut self, i: usize) -> bool {
        let process = &mut self.kit.nodes[i].process;
        // The node's drain waits 10 s by default; a blocking wait, off the async workers.
        tokio::task::block_in_place(|| process.stop(Duration::from_secs(15)));
        // Logged by the node's `audit::drain_on_stop` when the wait ran out.
        !process
            .log_tail(50)
            .contains("stopping with audit events not yet in the chain")
    }

    /// Wipes slot `i` and starts it under a fresh id (not a member yet); returns the id, the
    /// public address, the Raft address to add, and whether the process it replaced (an
    /// earlier attempt that never became a member, which may have answered reads as a
    /// learner) drained its audit journal before the wipe.
    pub fn start_fresh(&mut self, i: usize) -> anyhow::Result<(u64, String, String, bool)> {
        // A process still here is an earlier attempt: stopped like a decommissioned node,
        // since the wipe below takes its journal (a run of 2026-12-02 lost a follower read
        // that a learner of a failed rejoin had answered, to a kill -9 here).
        let drained = !self.running(i) || self.stop_draining(i);
        self.kill(i);
        let data = self.nodes[i].data_dir.clone();
        if data.exists() {
            std::fs::remove_dir_all(&data).with_context(|| format!("wiping {}", data.display()))?;
        }
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let id = self.next_id;
        self.next_id += 1;
        let node = &mut self.kit.nodes[i];
        node.spec.id = id;
        node.start()?;
        Ok((id, node.addr.clone(), node.raft_addr.clone(), drained))
    }

    /// Kills every process (after SIGCONT, so none stays stopped).
    pub fn stop_all(&mut self) {
        for n in &mut self.kit.nodes {
            n.process.resume();
            n.process.kill9();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
        if let Net::Netns(net) = &mut self.net {
            net.teardown();
        }
    }
}

fn faketime_file(node_dir: &Path) -> PathBuf {
    node_dir.join("faketime")
}

fn fiu_prefix(node_dir: &Path) -> PathBuf {
    node_dir.join("fiu-ctrl")
}

/// The preloads and their settings for a node in `node_dir`.
fn node_env(opts: &NodeOptions, node_dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    let mut preload = Vec::new();
    if opts.fiu {
        preload.push(FIU_LIBS.to_owned());
        env.push((
            "FIU_CTRL_FIFO".to_owned(),
            fiu_prefix(node_dir).display().to_string(),
        ));
        env.push(("FIU_ENABLE".to_owned(), String::new()));
    }
    if opts.faketime {
        let file = faketime_file(node_dir);
        std::fs::create_dir_all(node_dir)
            .with_context(|| format!("creating {}", node_dir.display()))?;
        if !file.exists() {
            std::fs::write(&file, "+0s\n")
                .with_context(|| format!("writing {}", file.display()))?;
        }
        preload.push(FAKETIME_LIB.to_owned());
        env.push((
            "FAKETIME_TIMESTAMP_FILE".to_owned(),
            file.display().to_string(),
        ));
        env.push(("FAKETIME_CACHE_DURATION".to_owned(), "1".to_owned()));
        env.push(("DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()));
    }
    if !preload.is_empty() {
        env.push(("LD_PRELOAD".to_owned(), preload.join(" ")));
    }
    Ok(env)
}

/// Runs a node's launch as `<prefix...> env K=V ... kartotek node --config ...`.
fn netns_wrapper(prefix: Vec<String>) -> Wrapper {
    Arc::new(move |launch: &Launch| {
        let mut cmd = Command::new(&prefix[0]);
        cmd.args(&prefix[1..]).args(launch.env_argv());
        cmd
    })
}
