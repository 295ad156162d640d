//! Kartotek under test: a cluster of real `kartotek node` processes started on free loopback
//! ports (or attached to through a `kartotek dev` `cluster.json`), and the operations of the
//! workloads through the Rust client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kartotek_client::{CallerIdentity, ClientConfig, KartotekClient};
use kartotek_proto::v1::{
    AccessDecisionRequest, Consistency, ImportEntry, ImportLocatorsRequest, LookupLocatorRequest,
    Member, ReadOptions, RegisterLocatorRequest,
};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::data::Keyspace;
use crate::metrics::{self, Samples};
use crate::process::{Server, free_port};
use crate::target::{OpKind, Outcome, Target};

/// How long nodes get to come up and elect a leader.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
/// Who the benchmark says it is (recorded in Kartotek's audit events).
pub const BENCH_ACTOR: &str = "system:kartotek-bench";
/// The HPR number of the health professional its access decisions are for.
pub const BENCH_PERSONNEL: &str = "1234567";
/// The purpose of use it states.
pub const BENCH_PURPOSE: &str = "treatment";
/// Entries per bulk-import batch.
pub const IMPORT_BATCH_ENTRIES: usize = 1000;
/// Import batches in flight.
pub const IMPORT_WINDOW_BATCHES: usize = 8;

/// One node.
#[derive(Debug)]
pub struct Node {
    /// Node id.
    pub id: u64,
    /// gRPC address (`host:port`).
    pub addr: String,
    /// Metrics address (`host:port`), if known.
    pub metrics_addr: Option<String>,
    /// Data dir, if known.
    pub data_dir: Option<PathBuf>,
    /// Pid, if known.
    pub pid: Option<u32>,
    server: Option<Server>,
}

/// A Kartotek cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes.
    pub nodes: Vec<Node>,
}

/// The part of `kartotek dev`'s `cluster.json` the benchmark reads.
#[derive(Debug, Deserialize)]
struct ClusterFile {
    nodes: Vec<ClusterFileNode>,
}

#[derive(Debug, Deserialize)]
struct ClusterFileNode {
    id: u64,
    pid: Option<u32>,
    grpc_addr: String,
    metrics_addr: String,
    data_dir: PathBuf,
}

impl Cluster {
    /// Starts `n` nodes of `bin` with data under `dir`, initialises the cluster and waits for a
    /// leader. `env` is passed to every node (e.g. `KARTOTEK_API__PROPOSALS_IN_FLIGHT_MAX=8`).
    pub async fn start(
        bin: &Path,
        dir: &Path,
        n: u64,
        env: &[(String, String)],
    ) -> anyhow::Result<Cluster> {
        let mut nodes = Vec::new();
        for id in 1..=n {
            let data_dir = dir.join(format!("node-{id}"));
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let addr = format!("127.0.0.1:{}", free_port()?);
            let metrics_addr = format!("127.0.0.1:{}", free_port()?);
            let config_file = data_dir.join("node.toml");
            let toml = format!(
                "# Written by kartotek-bench.\nnode_id = {id}\ncluster_name = \"kartotek-bench\"\n\
                 listen_addr = \"{addr}\"\nadvertise_addr = \"{addr}\"\nmetrics_addr = \"{metrics_addr}\"\n\
                 data_dir = \"{}\"\nlog_filter = \"warn\"\n",
                data_dir.display()
            );
            std::fs::write(&config_file, toml)?;
            let mut cmd = std::process::Command::new(bin);
            cmd.arg("node").arg("--config").arg(&config_file);
            for (k, _) in std::env::vars() {
                if k.starts_with("KARTOTEK_") {
                    cmd.env_remove(k);
                }
            }
            for (k, v) in env {
                cmd.env(k, v);
            }
            let server = Server::spawn(
                &format!("kartotek node {id}"),
                cmd,
                &data_dir.join("node.log"),
            )?;
            nodes.push(Node {
                id,
                addr,
                metrics_addr: Some(metrics_addr),
                data_dir: Some(data_dir),
                pid: server.pid(),
                server: Some(server),
            });
        }
        let cluster = Cluster { nodes };
        let client = cluster.admin_client()?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        for node in &cluster.nodes {
            while client.status(&node.addr).await.is_err() {
                cluster.check_alive()?;
                if Instant::now() > deadline {
                    bail!("kartotek node {} did not come up", node.id);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let members = cluster
            .nodes
            .iter()
            .map(|n| Member {
                node_id: n.id,
                addr: n.addr.clone(),
                voter: true,
            })
            .collect();
        client
            .init(&cluster.nodes[0].addr, members)
            .await
            .context("initialising the Kartotek cluster")?;
        cluster.leader().await?;
        Ok(cluster)
    }

    /// Attaches to a running `kartotek dev` cluster described by its `cluster.json`.
    pub fn attach(cluster_file: &Path) -> anyhow::Result<Cluster> {
        let text = std::fs::read_to_string(cluster_file)
            .with_context(|| format!("reading {}", cluster_file.display()))?;
        let file: ClusterFile = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", cluster_file.display()))?;
        Ok(Cluster {
            nodes: file
                .nodes
                .into_iter()
                .map(|n| Node {
                    id: n.id,
                    addr: n.grpc_addr,
                    metrics_addr: Some(n.metrics_addr),
                    data_dir: Some(n.data_dir),
                    pid: n.pid,
                    server: None,
                })
                .collect(),
        })
    }

    fn check_alive(&self) -> anyhow::Result<()> {
        for n in &self.nodes {
            if let Some(s) = &n.server
                && let Some(pid) = s.pid()
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                bail!("kartotek node {} exited; log:\n{}", n.id, s.log_tail(30));
            }
        }
        Ok(())
    }

    fn admin_client(&self) -> anyhow::Result<KartotekClient> {
        self.client_preferring(None)
    }

    /// A client over every node, `first` (a node id) preferred.
    pub fn client_preferring(&self, first: Option<u64>) -> anyhow::Result<KartotekClient> {
        let mut endpoints: Vec<String> = Vec::new();
        if let Some(f) = first.and_then(|id| self.nodes.iter().find(|n| n.id == id)) {
            endpoints.push(f.addr.clone());
        }
        for n in &self.nodes {
            if !endpoints.contains(&n.addr) {
                endpoints.push(n.addr.clone());
            }
        }
        Ok(KartotekClient::new_as(
            ClientConfig {
                endpoints,
                deadline_ms: 30_000,
                ..ClientConfig::default()
            },
            CallerIdentity {
                actor: Some(BENCH_ACTOR.into()),
                purpose: Some(BENCH_PURPOSE.into()),
                ..CallerIdentity::default()
            },
        )?)
    }

    /// The leader's id, once every node agrees on one.
    pub async fn leader(&self) -> anyhow::Result<u64> {
        let client = self.admin_client()?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let mut seen = Vec::new();
            for n in &self.nodes {
                seen.push(client.status(&n.addr).await.ok().and_then(|s| s.leader_id));
            }
            if let Some(Some(l)) = seen.first()
                && seen.iter().all(|s| *s == Some(*l))
            {
                return Ok(*l);
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("the Kartotek nodes agree on no leader: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Pids of the node processes (those known).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|n| n.pid).collect()
    }

    /// Pid of node `id`.
    pub fn pid_of(&self, id: u64) -> Option<u32> {
        self.nodes.iter().find(|n| n.id == id).and_then(|n| n.pid)
    }

    /// Data dirs of the nodes (those known).
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .filter_map(|n| n.data_dir.clone())
            .collect()
    }

    /// Metrics of node `id` (empty when it has no metrics address or does not answer).
    pub async fn metrics(&self, id: u64) -> Samples {
        let Some(addr) = self
            .nodes
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| n.metrics_addr.clone())
        else {
            return Samples::new();
        };
        metrics::scrape(&addr).await.unwrap_or_default()
    }

    /// Stops the nodes this benchmark started.
    pub fn stop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut s) = n.server.take() {
                s.stop();
            }
        }
    }

    /// Bulk-imports keys `range` of `keyspace` through the Import stream (batches of
    /// [`IMPORT_BATCH_ENTRIES`], [`IMPORT_WINDOW_BATCHES`] in flight); `progress` is called with
    /// the entries answered so far. Returns the entries committed.
    pub async fn import(
        &self,
        keyspace: &Arc<Keyspace>,
        range: std::ops::Range<usize>,
        tag: &str,
        progress: impl Fn(u64),
    ) -> anyhow::Result<u64> {
        let client = self.admin_client()?;
        let (tx, rx) = mpsc::channel::<ImportLocatorsRequest>(IMPORT_WINDOW_BATCHES * 2);
        let (atx, mut arx) = mpsc::channel(IMPORT_WINDOW_BATCHES * 2);
        let ks = keyspace.clone();
        let tag = tag.to_owned();
        let producer = tokio::spawn(async move {
            let mut seq = 0u64;
            let mut key = range.start;
            while key < range.end {
                let end = (key + IMPORT_BATCH_ENTRIES).min(range.end);
                let entries = (key..end)
                    .map(|k| {
                        let e = ks.entry(k, 0);
                        ImportEntry {
                            patient: e.patient,
                            org: e.org,
                            system: e.system,
                            categories: e.categories,
                            endpoint_ref: e.endpoint_ref,
                        }
                    })
                    .collect();
                let req = ImportLocatorsRequest {
                    batch_id: format!("bench-{tag}-{seq}"),
                    sequence: seq,
                    entries,
                };
                if tx.send(req).await.is_err() {
                    break;
                }
                seq += 1;
                key = end;
            }
        });
        let importer = {
            let client = client.clone();
            tokio::spawn(
                async move { client.import_locators(rx, atx, IMPORT_WINDOW_BATCHES).await },
            )
        };
        let mut done = 0u64;
        let mut rejected = 0usize;
        while let Some(answer) = arx.recv().await {
            done += u64::from(answer.changed) + u64::from(answer.unchanged);
            rejected += answer.rejected.len();
            progress(done);
        }
        importer.await??;
        producer.await?;
        if rejected > 0 {
            bail!("Kartotek rejected {rejected} generated entries (a bug in the generator)");
        }
        Ok(done)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kartotek as a [`Target`].
pub struct KartotekTarget {
    leader: KartotekClient,
    followers: Vec<(u64, KartotekClient)>,
    keyspace: Arc<Keyspace>,
    max_staleness_ms: u64,
}

impl KartotekTarget {
    /// Clients for `cluster` (one HTTP/2 connection per node and client): writes and
    /// linearizable reads to the leader, bounded-staleness reads to the followers.
    pub async fn new(
        cluster: &Cluster,
        keyspace: Arc<Keyspace>,
        max_staleness_ms: u64,
    ) -> anyhow::Result<KartotekTarget> {
        let leader_id = cluster.leader().await?;
        let followers = cluster
            .nodes
            .iter()
            .filter(|n| n.id != leader_id)
            .map(|n| Ok((n.id, cluster.client_preferring(Some(n.id))?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(KartotekTarget {
            leader: cluster.client_preferring(Some(leader_id))?,
            followers,
            keyspace,
            max_staleness_ms,
        })
    }
}

impl Target for KartotekTarget {
    async fn call(&self, op: OpKind, worker: usize, key: usize, seq: u64) -> Outcome {
        match op {
            OpKind::AccessDecision => {
                let e = self.keyspace.entry(key, seq);
                let r = self
                    .leader
                    .decide_access(AccessDecisionRequest {
                        patient: e.patient,
                        personnel: BENCH_PERSONNEL.into(),
                        org: e.org,
                        service: e.system,
                        purpose: BENCH_PURPOSE.into(),
                        ..Default::default()
                    })
                    .await;
                match r {
                    Ok(a) if a.effect != 0 && a.header.is_some() => Outcome::Ok,
                    Ok(a) => Outcome::Wrong(format!("decision without effect: {a:?}")),
                    Err(e) => Outcome::Error(e.to_string()),
                }
            }
            OpKind::Write => {
                let e = self.keyspace.entry(key, seq);
                let r = self
                    .leader
                    .register_locator(RegisterLocatorRequest {
                        patient: e.patient,
                        org: e.org,
                        system: e.system,
                        categories: e.categories,
                        endpoint_ref: e.endpoint_ref,
                        ..Default::default()
                    })
                    .await;
                match r {
                    Ok(a) if a.header.is_some() => Outcome::Ok,
                    Ok(_) => Outcome::Wrong("register answer without header".into()),
                    Err(e) => Outcome::Error(e.to_string()),
                }
            }
            OpKind::LinearRead | OpKind::FollowerRead => {
                let patient = self.keyspace.patient(key).to_owned();
                let (client, expect_node) = match (op, self.followers.is_empty()) {
                    (OpKind::FollowerRead, false) => {
                        let (id, c) = &self.followers[worker % self.followers.len()];
                        (c, Some(*id))
                    }
                    _ => (&self.leader, None),
                };
                let read = (op == OpKind::FollowerRead).then_some(ReadOptions {
                    consistency: Consistency::BoundedStaleness as i32,
                    max_staleness_ms: self.max_staleness_ms,
                });
                let r = client
                    .lookup_locator(LookupLocatorRequest {
                        patient: patient.clone(),
                        read,
                        ..Default::default()
                    })
                    .await;
                match r {
                    Ok(a) if !a.entries.iter().any(|e| e.patient == patient) => {
                        Outcome::Wrong(format!(
                            "lookup returned {} entries, none of the patient's",
                            a.entries.len()
                        ))
                    }
                    Ok(a) => match (expect_node, a.header.map(|h| h.node_id)) {
                        (Some(want), Some(got)) if want != got => Outcome::Wrong(format!(
                            "follower read served by node {got}, not {want}"
                        )),
                        _ => Outcome::Ok,
                    },
                    Err(e) => Outcome::Error(e.to_string()),
                }
            }
        }
    }
}
