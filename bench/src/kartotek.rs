//! Kartotek under test: a cluster of real `kartotek node` processes started on free loopback
//! ports (or attached to through a `kartotek dev` `cluster.json`), and the operations of the
//! workloads through the Rust client. Starting, waiting for the nodes, `admin init` and the
//! leader wait are `kartotek-testkit`'s (shared with the node tests and jepsen); attaching,
//! pids, metrics and the bulk import are the benchmark's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kartotek_client::{ClientConfig, ClientCredentials, KartotekClient, TokenSource};
use kartotek_proto::v1::{
    AccessDecisionRequest, Consistency, ImportEntry, ImportLocatorsRequest, LookupLocatorRequest,
    ReadOptions, RegisterLocatorRequest,
};
use kartotek_testkit::ClusterOptions;
use kartotek_testkit::status::{self, Expected};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::data::Keyspace;
use crate::metrics::{self, Samples};
use crate::target::{OpKind, Outcome, Target};

/// How long nodes get to come up and elect a leader.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a node gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The client id of the benchmark's tokens (the actor its audit events name).
pub const BENCH_CLIENT_ID: &str = "kartotek-bench";
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
}

/// A Kartotek cluster: started by the benchmark (through `kartotek-testkit`, which owns the
/// processes) or attached to.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes.
    pub nodes: Vec<Node>,
    started: Option<kartotek_testkit::Cluster>,
    /// The tokens every client of the benchmark calls with (None: a `kartotek dev` cluster
    /// made before it required tokens).
    tokens: Option<Arc<dyn TokenSource>>,
}

/// The part of `kartotek dev`'s `cluster.json` the benchmark reads.
#[derive(Debug, Deserialize)]
struct ClusterFile {
    nodes: Vec<ClusterFileNode>,
    /// Present when the dev cluster requires tokens: its client files are in `clients_dir`.
    #[serde(default)]
    auth: Option<ClusterFileAuth>,
}

#[derive(Debug, Deserialize)]
struct ClusterFileAuth {
    clients_dir: PathBuf,
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
    /// The nodes require tokens, which the benchmark's clients carry.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        n: u64,
        env: &[(String, String)],
    ) -> anyhow::Result<Cluster> {
        Cluster::start_with(bin, dir, n, env, true).await
    }

    /// [`Cluster::start`], with tokens required and sent or (`auth` false) neither: the
    /// `auth-cost` comparison.
    pub async fn start_with(
        bin: &Path,
        dir: &Path,
        n: u64,
        env: &[(String, String)],
        auth: bool,
    ) -> anyhow::Result<Cluster> {
        let mut opts = ClusterOptions::new(bin, dir, "kartotek-bench");
        opts.log_filter = "warn".into();
        opts.metrics = true;
        opts.env = env.to_vec();
        opts.client = client_config(Vec::new());
        opts.startup_timeout = STARTUP_TIMEOUT;
        // Measured as deployed: every call carries a token the nodes verify.
        let opts = if auth { opts.with_auth()? } else { opts };
        let tokens = opts.auth.as_ref().map(|issuer| {
            let mut claims = issuer.claims(BENCH_CLIENT_ID, &kartotek_testkit::auth::all_scopes());
            claims.purpose_of_use = Some(BENCH_PURPOSE.into());
            issuer.tokens_for(claims)
        });
        let started = kartotek_testkit::Cluster::start(opts, n, |_| {})
            .await
            .context("starting the Kartotek cluster")?;
        let nodes = started
            .nodes
            .iter()
            .map(|n| Node {
                id: n.id,
                addr: n.addr.clone(),
                metrics_addr: n.metrics_addr.clone(),
                data_dir: Some(n.data_dir.clone()),
                pid: n.process.pid().and_then(|p| u32::try_from(p.as_raw()).ok()),
            })
            .collect();
        Ok(Cluster {
            nodes,
            started: Some(started),
            tokens,
        })
    }

    /// Attaches to a running `kartotek dev` cluster described by its `cluster.json`.
    pub fn attach(cluster_file: &Path) -> anyhow::Result<Cluster> {
        let text = std::fs::read_to_string(cluster_file)
            .with_context(|| format!("reading {}", cluster_file.display()))?;
        let file: ClusterFile = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", cluster_file.display()))?;
        // The dev admin client: every scope the workloads need.
        let tokens = match &file.auth {
            Some(auth) => {
                let path = auth.clients_dir.join("admin.json");
                let source: Arc<dyn TokenSource> = Arc::new(
                    ClientCredentials::from_file(&path)
                        .with_context(|| format!("the dev admin client {}", path.display()))?,
                );
                Some(source)
            }
            None => None,
        };
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
                })
                .collect(),
            started: None,
            tokens,
        })
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
        let config = client_config(endpoints);
        Ok(match &self.tokens {
            Some(tokens) => KartotekClient::with_tokens(config, tokens.clone())?,
            None => KartotekClient::new(config)?,
        })
    }

    /// The leader's id, once every node agrees on one.
    pub async fn leader(&self) -> anyhow::Result<u64> {
        let nodes: Vec<Expected> = self
            .nodes
            .iter()
            .map(|n| Expected {
                id: n.id,
                addr: n.addr.clone(),
                answers: true,
            })
            .collect();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let slot = status::wait_agreed_leader(&self.admin_client()?, &nodes, deadline)
            .await
            .context("the Kartotek nodes agree on no leader")?;
        Ok(self.nodes[slot].id)
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

    /// Stops the nodes this benchmark started (SIGTERM, SIGKILL after 10 s); they can be
    /// started again with [`Cluster::restart_on`].
    pub fn stop(&mut self) {
        if let Some(started) = self.started.as_mut() {
            for n in &mut started.nodes {
                n.process.stop(STOP_TIMEOUT);
            }
        }
        for n in &mut self.nodes {
            n.pid = None;
        }
    }

    /// A token of the benchmark's client, for `kartotek` CLI runs (`--token`); None when the
    /// nodes take calls without one.
    pub async fn bearer(&self) -> anyhow::Result<Option<String>> {
        match &self.tokens {
            Some(t) => Ok(Some(t.token().await?.secret().to_owned())),
            None => Ok(None),
        }
    }

    /// Starts the stopped nodes this benchmark started again, node `id` on data dir `dir`
    /// for each `(id, dir)` (a restored one), on the same addresses.
    pub async fn restart_on(&mut self, dirs: &[(u64, PathBuf)]) -> anyhow::Result<()> {
        let Some(started) = self.started.as_mut() else {
            bail!("this cluster was not started by the benchmark");
        };
        for n in &mut started.nodes {
            if let Some((_, d)) = dirs.iter().find(|(id, _)| *id == n.id) {
                n.spec.data_dir = d.clone();
            }
            n.start()?;
        }
        for (node, s) in self.nodes.iter_mut().zip(&started.nodes) {
            node.data_dir = Some(s.data_dir.clone());
            node.pid = s.process.pid().and_then(|p| u32::try_from(p.as_raw()).ok());
        }
        Ok(())
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

/// The benchmark's client settings over `endpoints`.
fn client_config(endpoints: Vec<String>) -> ClientConfig {
    ClientConfig {
        endpoints,
        deadline_ms: 30_000,
        ..ClientConfig::default()
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
