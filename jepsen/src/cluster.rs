//! The cluster under test: real `kartotek node` processes, one per slot, each with its own
//! config, data dir and log under the run directory.
//!
//! In `netns` mode slot `i` runs inside namespace `kj<S>n<i>` (started with `ip netns exec`) and
//! listens on `10.213.S.(129+i):7401`; in `loopback` mode it listens on a free port of
//! 127.0.0.1. Node processes get `PR_SET_PDEATHSIG = SIGKILL`, so they die with the harness
//! even when it is killed with SIGKILL; [`Cluster`] kills them when dropped (also on panic).
//!
//! Process-level faults live here: kill -9 / restart, SIGSTOP / SIGCONT, clock offsets through
//! libfaketime (`FAKETIME_TIMESTAMP_FILE`, monotonic clock untouched), disk faults through
//! libfiu (`fiu-ctrl` on the node's control fifo), and membership changes (remove, wipe,
//! re-add under a fresh node id at the same address).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use kartotek_client::proto::{Member, NodeStatus};
use kartotek_client::{ClientConfig, KartotekClient};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;

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
    /// Start with `[testing] unsafe_stale_reads = true`.
    pub unsafe_stale_reads: bool,
    /// Preload libfaketime (needed by the clock nemesis).
    pub faketime: bool,
    /// Preload libfiu (needed by the disk nemesis).
    pub fiu: bool,
}

/// The network nodes live in.
#[derive(Debug)]
pub enum Net {
    /// One namespace per node.
    Netns(Network),
    /// Everything on 127.0.0.1.
    Loopback,
}

/// One node slot.
#[derive(Debug)]
pub struct Node {
    /// Current node id (a wiped and re-added node gets a new one).
    pub id: u64,
    /// `host:port` clients and peers use.
    pub addr: String,
    listen: String,
    dir: PathBuf,
    child: Option<Child>,
    /// True while the node is a member (voter) of the cluster.
    pub member: bool,
    /// True while it is stopped with SIGSTOP.
    pub paused: bool,
}

impl Node {
    fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .map(Pid::from_raw)
    }

    /// Data, config and log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node's log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("node.log")
    }
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

/// The slot and status of the node that claims leadership in the highest term.
pub fn leader_status(statuses: &[Option<NodeStatus>]) -> Option<(usize, &NodeStatus)> {
    statuses
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().filter(|s| s.role == "leader").map(|s| (i, s)))
        .max_by_key(|(_, s)| s.term)
}

/// The voters in a node's view of the membership.
pub fn voters(status: &NodeStatus) -> Vec<u64> {
    status
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.node_id)
        .collect()
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
        let mut calls = tokio::task::JoinSet::new();
        for (i, addr) in self.addrs.iter().enumerate() {
            let admin = self.admin.clone();
            let addr = addr.clone();
            calls.spawn(async move {
                let status = tokio::time::timeout(Duration::from_millis(1500), admin.status(&addr))
                    .await
                    .ok()
                    .and_then(Result::ok);
                (i, status)
            });
        }
        let mut out = vec![None; self.addrs.len()];
        while let Some(done) = calls.join_next().await {
            if let Ok((i, status)) = done {
                out[i] = status;
            }
        }
        out
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

/// The nodes of one test.
#[derive(Debug)]
pub struct Cluster {
    /// Node slots.
    pub nodes: Vec<Node>,
    /// The network (dropped after the nodes).
    pub net: Net,
    opts: NodeOptions,
    next_id: u64,
    admin: KartotekClient,
}

impl Cluster {
    /// Writes the configs of `n` nodes under `dir` and starts them (not initialised yet).
    pub fn start(n: usize, dir: &Path, net: Net, opts: NodeOptions) -> anyhow::Result<Cluster> {
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let (listen, addr) = match &net {
                Net::Netns(network) => {
                    let a = format!("{}:{NODE_PORT}", network.node_ip(i));
                    (a.clone(), a)
                }
                Net::Loopback => {
                    let port = free_port()?;
                    let a = format!("127.0.0.1:{port}");
                    (a.clone(), a)
                }
            };
            let node_dir = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&node_dir)
                .with_context(|| format!("creating {}", node_dir.display()))?;
            nodes.push(Node {
                id: i as u64 + 1,
                addr,
                listen,
                dir: node_dir,
                child: None,
                member: true,
                paused: false,
            });
        }
        let admin = KartotekClient::new(ClientConfig {
            endpoints: nodes.iter().map(|n| n.addr.clone()).collect(),
            connect_timeout_ms: 500,
            attempt_timeout_ms: 2_000,
            deadline_ms: 10_000,
            ..ClientConfig::default()
        })?;
        let mut cluster = Cluster {
            next_id: n as u64 + 1,
            nodes,
            net,
            opts,
            admin,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    /// Node addresses by slot.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// The network namespaces, if any.
    pub fn network(&self) -> Option<&Network> {
        match &self.net {
            Net::Netns(n) => Some(n),
            Net::Loopback => None,
        }
    }

    fn write_config(&self, i: usize) -> anyhow::Result<PathBuf> {
        let node = &self.nodes[i];
        let mut text = format!(
            "node_id = {}\ncluster_name = \"kartotek-jepsen\"\nlisten_addr = \"{}\"\n\
             advertise_addr = \"{}\"\ndata_dir = \"{}\"\nlog_filter = \"info,openraft=warn\"\n",
            node.id,
            node.listen,
            node.addr,
            node.dir.join("data").display(),
        );
        if self.opts.unsafe_stale_reads {
            text.push_str("\n[testing]\nunsafe_stale_reads = true\n");
        }
        let path = node.dir.join(CONFIG_NAME);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    fn faketime_file(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("faketime")
    }

    fn fiu_prefix(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("fiu-ctrl")
    }

    /// Starts the process of slot `i` on its data dir.
    pub fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        if self.nodes[i].child.is_some() {
            return Ok(());
        }
        let config = self.write_config(i)?;
        let log_path = self.nodes[i].log_file();
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        {
            use std::io::Write;
            writeln!(
                log,
                "=== kartotek-jepsen: starting node id {} at {} ===",
                self.nodes[i].id, self.nodes[i].addr
            )?;
        }
        let mut argv: Vec<String> = match &self.net {
            Net::Netns(net) => net.exec_prefix(i),
            Net::Loopback => Vec::new(),
        };
        // `env` sets the preloads for the node only, not for `ip` in front of it.
        argv.push("env".into());
        let mut preload = Vec::new();
        if self.opts.fiu {
            preload.push(FIU_LIBS.to_owned());
            argv.push(format!("FIU_CTRL_FIFO={}", self.fiu_prefix(i).display()));
            argv.push("FIU_ENABLE=".into());
        }
        if self.opts.faketime {
            let file = self.faketime_file(i);
            if !file.exists() {
                std::fs::write(&file, "+0s\n")?;
            }
            preload.push(FAKETIME_LIB.to_owned());
            argv.push(format!("FAKETIME_TIMESTAMP_FILE={}", file.display()));
            argv.push("FAKETIME_CACHE_DURATION=1".into());
            argv.push("DONT_FAKE_MONOTONIC=1".into());
        }
        if !preload.is_empty() {
            argv.push(format!("LD_PRELOAD={}", preload.join(" ")));
        }
        argv.push(self.opts.binary.display().to_string());
        argv.push("node".into());
        argv.push("--config".into());
        argv.push(config.display().to_string());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env_remove("RUST_LOG")
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting node {i}: {}", argv.join(" ")))?;
        self.nodes[i].child = Some(child);
        self.nodes[i].paused = false;
        Ok(())
    }

    /// True if slot `i` has a live process.
    pub fn running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Reaps processes that exited by themselves; returns (slot, exit status) of each.
    pub fn reap(&mut self) -> Vec<(usize, String)> {
        let mut gone = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(child) = node.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                gone.push((i, status.to_string()));
                node.child = None;
                node.paused = false;
            }
        }
        gone
    }

    /// `kill -9` slot `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nodes[i].paused = false;
    }

    /// SIGSTOP (`pause`) or SIGCONT slot `i`.
    pub fn pause(&mut self, i: usize, pause: bool) {
        if let Some(pid) = self.nodes[i].pid() {
            let sig = if pause {
                Signal::SIGSTOP
            } else {
                Signal::SIGCONT
            };
            if kill(pid, sig).is_ok() {
                self.nodes[i].paused = pause;
            }
        }
    }

    /// Sets the wall-clock offset of slot `i` (seconds; libfaketime re-reads it within 1 s).
    pub fn set_clock_offset(&self, i: usize, offset_s: i64) -> anyhow::Result<()> {
        if !self.opts.faketime {
            bail!("nodes were started without libfaketime");
        }
        let sign = if offset_s < 0 { '-' } else { '+' };
        std::fs::write(
            self.faketime_file(i),
            format!("{sign}{}s\n", offset_s.unsigned_abs()),
        )?;
        Ok(())
    }

    /// Runs a libfiu control command (`enable name=...`, `disable name=...`) in slot `i`.
    pub fn fiu(&self, i: usize, command: &str) -> anyhow::Result<()> {
        if !self.opts.fiu {
            bail!("nodes were started without libfiu");
        }
        let Some(pid) = self.nodes[i].pid() else {
            bail!("node {i} is not running");
        };
        crate::netns::run(&[
            "fiu-ctrl",
            "-f",
            &self.fiu_prefix(i).display().to_string(),
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

    /// Status of every slot (concurrently, one attempt each).
    pub async fn statuses(&self) -> Vec<Option<NodeStatus>> {
        self.probe().statuses().await
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
        self.probe().leader().await
    }

    /// Slot of node id `id`.
    pub fn slot_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Initialises the cluster with every slot as a voter and waits for a leader.
    pub async fn init(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        let probe = self.probe();
        for n in &self.nodes {
            probe.wait_up(&n.addr, timeout).await?;
        }
        let members = self
            .nodes
            .iter()
            .map(|n| Member {
                node_id: n.id,
                addr: n.addr.clone(),
                voter: true,
            })
            .collect();
        self.admin
            .init(&self.nodes[0].addr, members)
            .await
            .context("initialising the cluster")?;
        self.wait_stable(deadline).await
    }

    /// Waits until every running node that the leader counts as a voter agrees on that
    /// leader; returns the leader's slot.
    pub async fn wait_stable(&self, deadline: tokio::time::Instant) -> anyhow::Result<usize> {
        loop {
            let statuses = self.statuses().await;
            let found = leader_status(&statuses);
            let leader = found.map(|(i, _)| i);
            let mut seen = Vec::new();
            if let Some((l, ls)) = found {
                let voters = voters(ls);
                let mut agreed = true;
                for (i, n) in self.nodes.iter().enumerate() {
                    if !voters.contains(&n.id) || n.child.is_none() {
                        continue;
                    }
                    let theirs = statuses[i].as_ref().and_then(|s| s.leader_id);
                    seen.push(theirs);
                    agreed &= theirs == Some(ls.node_id);
                }
                if agreed {
                    return Ok(l);
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no agreed leader; leader slot {leader:?}, voters' leaders seen: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let member = voters.contains(&n.id);
            if member != n.member {
                n.member = member;
                changed.push(i);
            }
        }
        changed
    }

    /// Marks slot `i` removed (after the membership change went through) and stops it.
    pub fn removed(&mut self, i: usize) {
        self.nodes[i].member = false;
        self.kill(i);
    }

    /// Wipes slot `i` and starts it under a fresh id (not a member yet); returns the id and
    /// address to add.
    pub fn start_fresh(&mut self, i: usize) -> anyhow::Result<(u64, String)> {
        self.kill(i);
        let data = self.nodes[i].dir.join("data");
        if data.exists() {
            std::fs::remove_dir_all(&data).with_context(|| format!("wiping {}", data.display()))?;
        }
        self.nodes[i].id = self.next_id;
        self.next_id += 1;
        self.spawn(i)?;
        Ok((self.nodes[i].id, self.nodes[i].addr.clone()))
    }

    /// Kills every process (after SIGCONT, so none stays stopped).
    pub fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.pause(i, false);
            self.kill(i);
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

/// A free loopback port.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
