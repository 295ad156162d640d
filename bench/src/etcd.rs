//! etcd under test: a cluster of Debian's `etcd` (default durability: fsync before ack, no
//! unsafe flags) started on free loopback ports (or attached to), its gRPC API through the
//! vendored protos, compaction + defragmentation between cases, and the workloads' operations.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tonic::transport::{Channel, Endpoint};

use crate::data::{Keyspace, etcd_prefix, prefix_end};
use crate::metrics::{self, Samples};
use crate::process::{Server, free_port};
use crate::target::{OpKind, Outcome, Target};

/// The generated etcd v3 client (subset).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::kv_client::KvClient;
use pb::maintenance_client::MaintenanceClient;

/// Where Debian's `etcd-server` package installs etcd.
pub const DEFAULT_ETCD_BIN: &str = "/usr/bin/etcd";
/// How long members get to come up and elect a leader.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for one defragmentation.
const DEFRAG_TIMEOUT: Duration = Duration::from_secs(120);

/// Checks that `bin` exists and says how to install it otherwise.
pub fn check_installed(bin: &Path) -> anyhow::Result<String> {
    if !bin.exists() {
        bail!(
            "etcd is not installed ({} is missing). The comparison needs it; install Debian's \
             packages with\n\n    sudo apt-get install etcd-server etcd-client\n\nor pass \
             --etcd-bin PATH (or --attach-etcd host:port,... for a running cluster). \
             kartotek-bench never installs anything itself.",
            bin.display()
        );
    }
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", bin.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("etcd (unknown version)")
        .to_owned())
}

/// One member.
#[derive(Debug)]
pub struct Member {
    /// Member name.
    pub name: String,
    /// Client address (`host:port`): gRPC and `/metrics`.
    pub client_addr: String,
    /// Pid, if known.
    pub pid: Option<u32>,
    server: Option<Server>,
}

/// An etcd cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The members.
    pub members: Vec<Member>,
}

fn channel(addr: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .connect_lazy())
}

impl Cluster {
    /// Starts `n` members of `bin` with data under `dir` and waits for a leader.
    pub async fn start(bin: &Path, dir: &Path, n: usize) -> anyhow::Result<Cluster> {
        let mut specs = Vec::new();
        for i in 1..=n {
            specs.push((
                format!("etcd-{i}"),
                format!("127.0.0.1:{}", free_port()?),
                format!("127.0.0.1:{}", free_port()?),
            ));
        }
        let initial = specs
            .iter()
            .map(|(name, _, peer)| format!("{name}=http://{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (name, client, peer) in &specs {
            let data_dir = dir.join(name);
            std::fs::create_dir_all(&data_dir)?;
            let mut cmd = std::process::Command::new(bin);
            cmd.arg("--name")
                .arg(name)
                .arg("--data-dir")
                .arg(data_dir.join("data"))
                .arg("--listen-client-urls")
                .arg(format!("http://{client}"))
                .arg("--advertise-client-urls")
                .arg(format!("http://{client}"))
                .arg("--listen-peer-urls")
                .arg(format!("http://{peer}"))
                .arg("--initial-advertise-peer-urls")
                .arg(format!("http://{peer}"))
                .arg("--initial-cluster")
                .arg(&initial)
                .arg("--initial-cluster-state")
                .arg("new")
                .arg("--initial-cluster-token")
                .arg(format!("kartotek-bench-{}", std::process::id()))
                .arg("--logger")
                .arg("zap")
                .arg("--log-level")
                .arg("warn");
            for (k, _) in std::env::vars() {
                if k.starts_with("ETCD_") {
                    cmd.env_remove(k);
                }
            }
            let server = Server::spawn(name, cmd, &data_dir.join("etcd.log"))?;
            members.push(Member {
                name: name.clone(),
                client_addr: client.clone(),
                pid: server.pid(),
                server: Some(server),
            });
        }
        let cluster = Cluster { members };
        cluster.leader_index().await?;
        Ok(cluster)
    }

    /// Attaches to running members at `addrs` (`host:port`); `pids` (same order) if known.
    pub fn attach(addrs: &[String], pids: &[u32]) -> Cluster {
        Cluster {
            members: addrs
                .iter()
                .enumerate()
                .map(|(i, a)| Member {
                    name: format!("etcd-{}", i + 1),
                    client_addr: a.clone(),
                    pid: pids.get(i).copied(),
                    server: None,
                })
                .collect(),
        }
    }

    /// Index (in `members`) of the leader, once every member agrees on one.
    pub async fn leader_index(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let mut ids = Vec::new();
            let mut leaders = Vec::new();
            for m in &self.members {
                let st = match channel(&m.client_addr) {
                    Ok(ch) => MaintenanceClient::new(ch)
                        .status(pb::StatusRequest {})
                        .await
                        .ok()
                        .map(tonic::Response::into_inner),
                    Err(_) => None,
                };
                ids.push(
                    st.as_ref()
                        .and_then(|s| s.header.as_ref())
                        .map(|h| h.member_id),
                );
                leaders.push(st.map(|s| s.leader).filter(|l| *l != 0));
            }
            if let Some(Some(l)) = leaders.first()
                && leaders.iter().all(|x| *x == Some(*l))
                && let Some(idx) = ids.iter().position(|id| *id == Some(*l))
            {
                return Ok(idx);
            }
            for m in &self.members {
                if let Some(s) = &m.server
                    && let Some(pid) = s.pid()
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    bail!("{} exited; log:\n{}", m.name, s.log_tail(30));
                }
            }
            if Instant::now() > deadline {
                bail!("the etcd members agree on no leader");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Pids of the members (those known).
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(|m| m.pid).collect()
    }

    /// Metrics of member `idx`.
    pub async fn metrics(&self, idx: usize) -> Samples {
        match self.members.get(idx) {
            Some(m) => metrics::scrape(&m.client_addr).await.unwrap_or_default(),
            None => Samples::new(),
        }
    }

    /// Compacts the history up to the current revision (physically) and defragments every
    /// member, so no old versions slow reads down. Returns the compacted revision.
    pub async fn compact_and_defrag(&self) -> anyhow::Result<i64> {
        let leader = self.leader_index().await?;
        let ch = channel(&self.members[leader].client_addr)?;
        let rev = KvClient::new(ch.clone())
            .range(pb::RangeRequest {
                key: b"/".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await?
            .into_inner()
            .header
            .map(|h| h.revision)
            .unwrap_or(0);
        if rev > 1 {
            match KvClient::new(ch)
                .compact(pb::CompactionRequest {
                    revision: rev,
                    physical: true,
                })
                .await
            {
                Ok(_) => {}
                // Already compacted at this revision.
                Err(s) if s.message().contains("compacted") => {}
                Err(s) => return Err(s).context("etcd compaction"),
            }
        }
        for m in &self.members {
            let mut c = MaintenanceClient::new(channel(&m.client_addr)?);
            tokio::time::timeout(DEFRAG_TIMEOUT, c.defragment(pb::DefragmentRequest {}))
                .await
                .with_context(|| format!("defragmenting {} timed out", m.name))?
                .with_context(|| format!("defragmenting {}", m.name))?;
        }
        Ok(rev)
    }

    /// Stops the members this benchmark started.
    pub fn stop(&mut self) {
        for m in &mut self.members {
            if let Some(mut s) = m.server.take() {
                s.stop();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// etcd as a [`Target`].
pub struct EtcdTarget {
    leader: Channel,
    followers: Vec<Channel>,
    keyspace: Arc<Keyspace>,
}

impl EtcdTarget {
    /// One channel (HTTP/2 connection) per member: writes and linearizable reads to the
    /// leader, serializable reads to the followers.
    pub async fn new(cluster: &Cluster, keyspace: Arc<Keyspace>) -> anyhow::Result<EtcdTarget> {
        let leader = cluster.leader_index().await?;
        let mut followers = Vec::new();
        for (i, m) in cluster.members.iter().enumerate() {
            if i != leader {
                followers.push(channel(&m.client_addr)?);
            }
        }
        Ok(EtcdTarget {
            leader: channel(&cluster.members[leader].client_addr)?,
            followers,
            keyspace,
        })
    }

    /// Writes keys `range` (version 0), `in_flight` puts at a time; `progress` gets the count.
    pub async fn load(
        self: &Arc<Self>,
        range: std::ops::Range<usize>,
        in_flight: usize,
        progress: impl Fn(u64),
    ) -> anyhow::Result<u64> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut done = 0u64;
        for key in range {
            if tasks.len() >= in_flight
                && let Some(r) = tasks.join_next().await
            {
                r??;
                done += 1;
                progress(done);
            }
            let me = self.clone();
            tasks.spawn(async move {
                let e = me.keyspace.entry(key, 0);
                KvClient::new(me.leader.clone())
                    .put(pb::PutRequest {
                        key: e.etcd_key().into_bytes(),
                        value: e.etcd_value(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
            done += 1;
        }
        progress(done);
        Ok(done)
    }
}

impl Target for EtcdTarget {
    async fn call(&self, op: OpKind, worker: usize, key: usize, seq: u64) -> Outcome {
        match op {
            OpKind::AccessDecision => Outcome::Error("etcd has no access decision".into()),
            OpKind::Write => {
                let e = self.keyspace.entry(key, seq);
                match KvClient::new(self.leader.clone())
                    .put(pb::PutRequest {
                        key: e.etcd_key().into_bytes(),
                        value: e.etcd_value(),
                        ..Default::default()
                    })
                    .await
                {
                    Ok(r) if r.get_ref().header.is_some() => Outcome::Ok,
                    Ok(_) => Outcome::Wrong("put answer without header".into()),
                    Err(s) => Outcome::Error(s.to_string()),
                }
            }
            OpKind::LinearRead | OpKind::FollowerRead => {
                let prefix = etcd_prefix(self.keyspace.patient(key));
                let serializable = op == OpKind::FollowerRead && !self.followers.is_empty();
                let ch = if serializable {
                    self.followers[worker % self.followers.len()].clone()
                } else {
                    self.leader.clone()
                };
                let end = prefix_end(&prefix);
                match KvClient::new(ch)
                    .range(pb::RangeRequest {
                        key: prefix.clone().into_bytes(),
                        range_end: end,
                        serializable,
                        ..Default::default()
                    })
                    .await
                {
                    Ok(r)
                        if r.get_ref()
                            .kvs
                            .iter()
                            .any(|kv| kv.key.starts_with(prefix.as_bytes())) =>
                    {
                        Outcome::Ok
                    }
                    Ok(r) => Outcome::Wrong(format!(
                        "range returned {} keys, none of the patient's",
                        r.get_ref().kvs.len()
                    )),
                    Err(s) => Outcome::Error(s.to_string()),
                }
            }
        }
    }
}
