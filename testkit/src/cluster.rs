//! A cluster of `kartotek node` processes: nodes added from [`NodeSpec`]s (on loopback ports
//! the kernel picks, or at addresses the caller chose), started, waited for, initialised
//! through the client's admin calls, and watched until the voters agree on a leader.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kartotek_client::{CallerIdentity, ClientConfig, KartotekClient, TokenSource};
use kartotek_proto::v1::{Member, NodeStatus};

use crate::auth::TestIssuer;
use crate::config::NodeSpec;
use crate::process::{Launch, Process, Wrapper};
use crate::status;

/// How a cluster's nodes are set up and talked to.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The `kartotek` binary.
    pub binary: PathBuf,
    /// Where [`Cluster::add_loopback`] puts node directories (`node-<id>`).
    pub dir: PathBuf,
    /// `cluster_name` of every node.
    pub cluster_name: String,
    /// `log_filter` of the nodes [`Cluster::add_loopback`] adds.
    pub log_filter: String,
    /// File name of each node's config, in its directory.
    pub config_name: String,
    /// Give the nodes [`Cluster::add_loopback`] adds a metrics port.
    pub metrics: bool,
    /// Extra environment of the nodes [`Cluster::add_loopback`] adds.
    pub env: Vec<(String, String)>,
    /// Client settings for administration and [`Cluster::client_over`] (endpoints are set
    /// from the nodes).
    pub client: ClientConfig,
    /// Who those clients say they are.
    pub identity: CallerIdentity,
    /// How long [`Cluster::bootstrap`] waits for the nodes to answer and for a leader.
    pub startup_timeout: Duration,
    /// Tokens required: the nodes [`Cluster::add_loopback`] adds trust this issuer (`[auth]`
    /// appended to their TOML) and the cluster's clients call with its all-scopes harness
    /// token ([`ClusterOptions::with_auth`]). None: the nodes' default (no tokens checked).
    pub auth: Option<TestIssuer>,
}

impl ClusterOptions {
    /// Nodes of `binary` named `cluster_name` under `dir`; config `node.toml`, log filter
    /// `info,openraft=warn`, no metrics port, client deadline 20 s, startup timeout 60 s.
    pub fn new(binary: &Path, dir: &Path, cluster_name: &str) -> ClusterOptions {
        ClusterOptions {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            cluster_name: cluster_name.to_owned(),
            log_filter: "info,openraft=warn".into(),
            config_name: "node.toml".into(),
            metrics: false,
            env: Vec::new(),
            client: ClientConfig {
                deadline_ms: 20_000,
                ..ClientConfig::default()
            },
            identity: CallerIdentity::default(),
            startup_timeout: Duration::from_secs(60),
            auth: None,
        }
    }

    /// These options with tokens required, from a new [`TestIssuer`] whose public keys go to
    /// `<dir>/issuer-jwks.json`.
    pub fn with_auth(mut self) -> anyhow::Result<ClusterOptions> {
        self.auth = Some(TestIssuer::new(&self.dir)?);
        Ok(self)
    }
}

/// One node: its spec (also reachable through `Deref`: `node.id`, `node.addr`), directory,
/// config file and process.
#[derive(Debug)]
pub struct Node {
    /// What its config file says (rewritten at every start).
    pub spec: NodeSpec,
    /// Directory of its config file and log (and whatever else the harness keeps there).
    pub dir: PathBuf,
    /// Its config file.
    pub config_file: PathBuf,
    /// Its process.
    pub process: Process,
    /// Whether the harness counts it as a voter: true for the nodes [`Cluster::init`] put
    /// in the first membership.
    pub member: bool,
}

impl Deref for Node {
    type Target = NodeSpec;
    fn deref(&self) -> &NodeSpec {
        &self.spec
    }
}

impl DerefMut for Node {
    fn deref_mut(&mut self) -> &mut NodeSpec {
        &mut self.spec
    }
}

impl Node {
    /// Writes the config from [`spec`](Node::spec) and starts the process (nothing if it runs).
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.process.running() {
            return Ok(());
        }
        self.spec.write(&self.config_file)?;
        self.process.name = format!("node {} at {}", self.spec.id, self.spec.addr);
        self.process.launch.env = self.spec.env.clone();
        self.process.start()
    }

    /// Whether it is expected to answer: started, not reaped, not paused.
    pub fn answers(&self) -> bool {
        self.process.running() && !self.process.paused()
    }
}

/// The nodes of one cluster. Dropping it kills them; when dropped while panicking it prints
/// the tail of every node's log first.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, by slot.
    pub nodes: Vec<Node>,
    /// The options it was made with.
    pub opts: ClusterOptions,
    admin: Option<KartotekClient>,
    /// The harness token of [`ClusterOptions::auth`], shared by every client made here.
    tokens: Option<Arc<dyn TokenSource>>,
}

impl Cluster {
    /// A cluster without nodes yet.
    pub fn new(opts: ClusterOptions) -> Cluster {
        let tokens = opts.auth.as_ref().map(TestIssuer::harness_tokens);
        Cluster {
            nodes: Vec::new(),
            opts,
            admin: None,
            tokens,
        }
    }

    /// Starts `n` loopback nodes (ids 1..=n, `tweak` applied to each spec), initialises the
    /// cluster with all of them as voters and waits for a leader.
    pub async fn start(
        opts: ClusterOptions,
        n: u64,
        tweak: impl Fn(&mut NodeSpec),
    ) -> anyhow::Result<Cluster> {
        let mut c = Cluster::new(opts);
        for id in 1..=n {
            c.add_loopback(id, &tweak)?;
        }
        c.start_all()?;
        c.bootstrap().await?;
        Ok(c)
    }

    /// Adds node `spec` with its config and log in `dir` (created), run through `wrapper` if
    /// given, trusting [`ClusterOptions::auth`] if set; not started, not a member. Returns its
    /// slot.
    pub fn add(
        &mut self,
        mut spec: NodeSpec,
        dir: &Path,
        wrapper: Option<Wrapper>,
    ) -> anyhow::Result<usize> {
        if let Some(issuer) = &self.opts.auth
            && !spec.extra_toml.contains("[auth]")
        {
            spec.extra_toml.push_str(&issuer.node_toml());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::create_dir_all(&spec.data_dir)
            .with_context(|| format!("creating {}", spec.data_dir.display()))?;
        let config_file = dir.join(&self.opts.config_name);
        let launch = Launch::node(&self.opts.binary, &config_file, &spec.env);
        let mut process = Process::new(&format!("node {}", spec.id), launch, &dir.join("node.log"));
        if let Some(w) = wrapper {
            process = process.with_wrapper(w);
        }
        self.nodes.push(Node {
            spec,
            dir: dir.to_path_buf(),
            config_file,
            process,
            member: false,
        });
        self.admin = Some(self.client_at(self.addrs())?);
        Ok(self.nodes.len() - 1)
    }

    /// Adds node `id` on a free loopback port (and metrics port if the options say so) in
    /// `<dir>/node-<id>`, which is also its data dir; `tweak` may change the spec. Not started.
    pub fn add_loopback(
        &mut self,
        id: u64,
        tweak: impl FnOnce(&mut NodeSpec),
    ) -> anyhow::Result<usize> {
        let dir = self.opts.dir.join(format!("node-{id}"));
        let addr = format!("127.0.0.1:{}", crate::free_port()?);
        let mut spec = NodeSpec::new(id, &self.opts.cluster_name, &addr, &dir);
        spec.raft_addr = format!("127.0.0.1:{}", crate::free_port()?);
        spec.log_filter = self.opts.log_filter.clone();
        spec.env = self.opts.env.clone();
        if self.opts.metrics {
            spec.metrics_addr = Some(format!("127.0.0.1:{}", crate::free_port()?));
        }
        tweak(&mut spec);
        self.add(spec, &dir, None)
    }

    /// Starts every node that does not run.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for n in &mut self.nodes {
            n.start()?;
        }
        Ok(())
    }

    /// Waits for every node to answer, initialises the cluster with every node as a voter
    /// and waits for a leader; returns the leader's slot.
    pub async fn bootstrap(&mut self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + self.opts.startup_timeout;
        self.wait_up(deadline).await?;
        self.init().await?;
        self.wait_leader(deadline).await
    }

    /// Slot of node `id`.
    pub fn slot_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The nodes' addresses, by slot.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// A client over nodes `ids`, in that order (the first is preferred).
    pub fn client_over(&self, ids: &[u64]) -> anyhow::Result<KartotekClient> {
        let mut endpoints = Vec::new();
        for id in ids {
            let slot = self.slot_of(*id).with_context(|| format!("no node {id}"))?;
            endpoints.push(self.nodes[slot].addr.clone());
        }
        self.client_at(endpoints)
    }

    fn client_at(&self, endpoints: Vec<String>) -> anyhow::Result<KartotekClient> {
        let config = ClientConfig {
            endpoints,
            ..self.opts.client.clone()
        };
        match &self.tokens {
            Some(tokens) => KartotekClient::with_tokens(config, tokens.clone()),
            None => KartotekClient::new_as(config, self.opts.identity.clone()),
        }
        .context("building a client")
    }

    /// The harness token every client made here calls with (None without
    /// [`ClusterOptions::auth`]).
    pub fn tokens(&self) -> Option<Arc<dyn TokenSource>> {
        self.tokens.clone()
    }

    /// A client over every node whose calls carry tokens from `tokens` (e.g.
    /// [`TestIssuer::tokens_for`] with a personnel member's claims).
    pub fn client_with(&self, tokens: Arc<dyn TokenSource>) -> anyhow::Result<KartotekClient> {
        let config = ClientConfig {
            endpoints: self.addrs(),
            ..self.opts.client.clone()
        };
        KartotekClient::with_tokens(config, tokens).context("building a client")
    }

    /// The client over every node used for administration and status polls (`None` before
    /// the first node is added).
    pub fn admin(&self) -> Option<&KartotekClient> {
        self.admin.as_ref()
    }

    fn admin_or_err(&self) -> anyhow::Result<KartotekClient> {
        self.admin.clone().context("a cluster without nodes")
    }

    /// Waits until every running node answers a status call; fails with the tail of its log
    /// when one exits or `deadline` passes.
    pub async fn wait_up(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let admin = self.admin_or_err()?;
        for n in &mut self.nodes {
            if !n.process.running() {
                continue;
            }
            loop {
                let last = match admin.status(&n.addr).await {
                    Ok(_) => break,
                    Err(e) => e,
                };
                if let Some(exit) = n.process.exited() {
                    bail!(
                        "node {} exited ({exit}); its log ends:\n{}",
                        n.id,
                        n.process.log_tail(40)
                    );
                }
                if Instant::now() > deadline {
                    bail!(
                        "node {} at {} did not come up (last answer: {last}); its log ends:\n{}",
                        n.id,
                        n.addr,
                        n.process.log_tail(40)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// `admin init` on the first node with every node as a voter; marks them members.
    pub async fn init(&mut self) -> anyhow::Result<()> {
        let first = self.nodes.first().context("a cluster without nodes")?;
        let first = first.addr.clone();
        let members = self
            .nodes
            .iter()
            .map(|n| Member {
                voter: true,
                node_id: n.id,
                addr: n.addr.clone(),
                raft_addr: n.raft_addr.clone(),
            })
            .collect();
        self.admin_or_err()?
            .init(&first, members)
            .await
            .context("initialising the cluster")?;
        for n in &mut self.nodes {
            n.member = true;
        }
        Ok(())
    }

    /// Status of every slot (concurrently, one attempt each).
    pub async fn statuses(&self) -> Vec<Option<NodeStatus>> {
        match &self.admin {
            Some(admin) => status::poll(admin, &self.addrs()).await,
            None => Vec::new(),
        }
    }

    /// Status of node `id`, if it answers.
    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        let slot = self.slot_of(id)?;
        let admin = self.admin.as_ref()?;
        tokio::time::timeout(status::POLL_TIMEOUT, admin.status(&self.nodes[slot].addr))
            .await
            .ok()?
            .ok()
    }

    /// Waits until every answering node that the leader counts as a voter names that leader
    /// (see [`status::agreed_leader`]); returns the leader's slot.
    pub async fn wait_leader(&self, deadline: Instant) -> anyhow::Result<usize> {
        let admin = self.admin_or_err()?;
        let nodes: Vec<status::Expected> = self
            .nodes
            .iter()
            .map(|n| status::Expected {
                id: n.id,
                addr: n.addr.clone(),
                answers: n.answers(),
            })
            .collect();
        status::wait_agreed_leader(&admin, &nodes, deadline).await
    }

    /// Prints the last `lines` lines of every node's log to stderr.
    pub fn print_log_tails(&self, lines: usize) {
        for n in &self.nodes {
            eprintln!(
                "---- node {} ({}), last {lines} lines ----\n{}",
                n.id,
                n.process.log_file().display(),
                n.process.log_tail(lines)
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.process.resume();
            n.process.kill9();
        }
        if std::thread::panicking() {
            self.print_log_tails(40);
        }
    }
}
