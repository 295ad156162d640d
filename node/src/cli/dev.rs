//! `kartotek dev`: a local cluster for development, one OS process per node.
//!
//! Writes `node-<id>/node.toml` per node and `<data-dir>/cluster.json` (ids, pids, addresses),
//! starts `kartotek node` for each, initialises the cluster on first start and resumes it from
//! disk on later starts. A node that dies (e.g. `kill -9`) is restarted after a short pause
//! (unless `--no-restart`) and its new pid is written to `cluster.json`. Ctrl-C (or SIGTERM)
//! stops every node cleanly. Nodes run in their own process group and die with the supervisor.
//!
//! It also runs one HTTP frontend (`kartotek frontend --config <data-dir>/frontend.toml`, on
//! `--frontend-addr`, 127.0.0.1:8080 by default), restarted like the nodes; its address and
//! pid are in the `frontend` field of `cluster.json`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use kartotek_client::{ClientConfig, KartotekClient};
use kartotek_proto::v1::Member;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use super::dev_auth::{self, AuthEntry};
use crate::config::NodeConfig;

/// Most nodes `kartotek dev` runs.
pub const DEV_NODES_MAX: u64 = 9;
/// How long nodes get to come up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long nodes get to stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `kartotek dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Number of nodes (used on first start; later starts resume what cluster.json says).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=DEV_NODES_MAX))]
    pub nodes: u64,
    /// Directory for all nodes' data, logs and cluster.json.
    #[arg(long, default_value = "./kartotek-dev")]
    pub data_dir: PathBuf,
    /// gRPC port of node 1; node n gets base + n - 1.
    #[arg(long, default_value_t = 7401)]
    pub base_port: u16,
    /// Metrics port of node 1; node n gets base + n - 1.
    #[arg(long, default_value_t = 9401)]
    pub metrics_base_port: u16,
    /// Raft port of node 1; node n gets base + n - 1.
    #[arg(long, default_value_t = 7501)]
    pub raft_base_port: u16,
    /// Do not restart nodes (or the frontend) that exit.
    #[arg(long)]
    pub no_restart: bool,
    /// Address the HTTP frontend listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub frontend_addr: std::net::SocketAddr,
}

/// `cluster.json`: what runs where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterFile {
    /// Cluster name.
    pub cluster_name: String,
    /// Whether the cluster has been initialised.
    pub initialized: bool,
    /// Pid of the `kartotek dev` supervisor.
    pub supervisor_pid: Option<u32>,
    /// The nodes.
    pub nodes: Vec<NodeEntry>,
    /// The HTTP frontend.
    pub frontend: Option<FrontendEntry>,
    /// Token issuer, keys and client files (absent in a directory made before `kartotek
    /// dev` turned authentication on: its nodes take calls without tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthEntry>,
}

/// The frontend in `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrontendEntry {
    /// Base URL, e.g. `http://127.0.0.1:8080` (`GET <http>/healthz`).
    pub http: String,
    /// Pid of the running process, if any.
    pub pid: Option<u32>,
    /// Frontend configuration file (rewritten at every start from the flags).
    pub config_file: PathBuf,
    /// Log file.
    pub log_file: PathBuf,
}

/// One node in `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Node id.
    pub id: u64,
    /// Pid of the running process, if any.
    pub pid: Option<u32>,
    /// Public gRPC address.
    pub grpc_addr: String,
    /// Raft listener address (empty in a cluster.json of a version before Raft had its own
    /// port: such a directory cannot be resumed).
    #[serde(default)]
    pub raft_addr: String,
    /// Metrics endpoint (`http://…/metrics`).
    pub metrics_addr: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Node configuration file.
    pub config_file: PathBuf,
    /// Log file.
    pub log_file: PathBuf,
}

impl ClusterFile {
    fn load(path: &Path) -> anyhow::Result<Option<ClusterFile>> {
        if !path.exists() {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cluster: ClusterFile =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if cluster.nodes.iter().any(|n| n.raft_addr.is_empty()) {
            let dir = path.parent().unwrap_or(path);
            bail!(
                "{} was made by an older kartotek (Raft shared the API port, and the stored membership has another format); remove the directory to start a fresh dev cluster: rm -rf {}",
                path.display(),
                dir.display()
            );
        }
        Ok(Some(cluster))
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

fn pid_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .map(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
        .unwrap_or(false)
}

fn new_cluster(args: &DevArgs, data_dir: &Path) -> anyhow::Result<ClusterFile> {
    let mut nodes = Vec::new();
    for id in 1..=args.nodes {
        let offset = u16::try_from(id - 1)?;
        let grpc_port = args
            .base_port
            .checked_add(offset)
            .context("port out of range")?;
        let metrics_port = args
            .metrics_base_port
            .checked_add(offset)
            .context("port out of range")?;
        let raft_port = args
            .raft_base_port
            .checked_add(offset)
            .context("port out of range")?;
        let dir = data_dir.join(format!("node-{id}"));
        nodes.push(NodeEntry {
            id,
            pid: None,
            grpc_addr: format!("127.0.0.1:{grpc_port}"),
            raft_addr: format!("127.0.0.1:{raft_port}"),
            metrics_addr: format!("127.0.0.1:{metrics_port}"),
            config_file: dir.join("node.toml"),
            log_file: dir.join("node.log"),
            data_dir: dir,
        });
    }
    Ok(ClusterFile {
        cluster_name: "kartotek-dev".into(),
        initialized: false,
        supervisor_pid: None,
        nodes,
        frontend: None,
        auth: None,
    })
}

fn write_node_config(cluster: &ClusterFile, node: &NodeEntry) -> anyhow::Result<()> {
    std::fs::create_dir_all(&node.data_dir)?;
    let config = NodeConfig {
        node_id: node.id,
        cluster_name: cluster.cluster_name.clone(),
        listen_addr: node.grpc_addr.parse().context("grpc address")?,
        advertise_addr: Some(node.grpc_addr.clone()),
        raft_listen_addr: node.raft_addr.parse().context("raft address")?,
        raft_advertise_addr: Some(node.raft_addr.clone()),
        metrics_addr: Some(node.metrics_addr.parse().context("metrics address")?),
        data_dir: node.data_dir.clone(),
        auth: cluster
            .auth
            .as_ref()
            .map(AuthEntry::node_settings)
            .unwrap_or_else(crate::config::AuthSettings::off),
        ..NodeConfig::default()
    };
    config.validate()?;
    let text = format!(
        "# Written by `kartotek dev`; edit freely, it is rewritten only when missing.\n{}",
        toml::to_string_pretty(&config)?
    );
    if !node.config_file.exists() {
        std::fs::write(&node.config_file, text)?;
    }
    Ok(())
}

fn spawn_node(exe: &Path, node: &NodeEntry) -> anyhow::Result<Child> {
    spawn(exe, "node", &node.config_file, &node.log_file)
        .with_context(|| format!("starting node {}", node.id))
}

fn spawn_frontend(exe: &Path, frontend: &FrontendEntry) -> anyhow::Result<Child> {
    spawn(exe, "frontend", &frontend.config_file, &frontend.log_file)
        .context("starting the frontend")
}

/// Starts `kartotek <command> --config <config>` with its output appended to `log`.
fn spawn(exe: &Path, command: &str, config: &Path, log: &Path) -> anyhow::Result<Child> {
    let log_out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let log_err = log_out.try_clone()?;
    let mut cmd = Command::new(exe);
    cmd.arg(command)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(log_out)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGTERM the child when
    // the supervisor dies, so no node outlives `kartotek dev`.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    Ok(cmd.spawn()?)
}

/// Writes `<data-dir>/frontend.toml` for `addr`, talking to the cluster's nodes.
fn write_frontend_config(
    cluster: &ClusterFile,
    data_dir: &Path,
    addr: std::net::SocketAddr,
) -> anyhow::Result<FrontendEntry> {
    let http = format!("http://{addr}");
    let mut token = kartotek_frontend::TokenSettings::default();
    if let Some(auth) = &cluster.auth {
        // The issuer of the first start, even if --frontend-addr changed since: the nodes
        // and the client files name it.
        token.issuer = auth.issuer.clone();
        token.audience = auth.audience.clone();
        token.signing_keys_file = Some(auth.signing_keys_file.clone());
        token.access_token_lifetime_s = dev_auth::TOKEN_LIFETIME_S.unsigned_abs();
    }
    let config = kartotek_frontend::FrontendConfig {
        listen_addr: addr,
        public_base_url: http.clone(),
        cluster: kartotek_frontend::ClusterSettings {
            endpoints: cluster.nodes.iter().map(|n| n.grpc_addr.clone()).collect(),
            ..kartotek_frontend::ClusterSettings::default()
        },
        token,
        // DEV ONLY: citizens log in at /dev/login instead of ID-porten.
        citizen_login: kartotek_frontend::CitizenLoginSettings {
            dev_login: true,
            ..kartotek_frontend::CitizenLoginSettings::default()
        },
        // The citizen page /innsyn logs citizens in as the dev citizen app.
        innsyn: kartotek_frontend::InnsynSettings {
            client_file: cluster
                .auth
                .as_ref()
                .map(|auth| auth.client_file("citizen-app")),
            ..kartotek_frontend::InnsynSettings::default()
        },
        ..kartotek_frontend::FrontendConfig::default()
    };
    config.validate()?;
    let config_file = data_dir.join("frontend.toml");
    std::fs::write(
        &config_file,
        format!(
            "# Written by `kartotek dev` at every start (--frontend-addr).\n{}",
            config.to_toml()?
        ),
    )?;
    Ok(FrontendEntry {
        http,
        pid: None,
        config_file,
        log_file: data_dir.join("frontend.log"),
    })
}

/// If the process in `slot` has exited: notes it (`pid` = None) and, unless `no_restart`,
/// starts it again after a pause with `respawn`. Returns whether anything changed.
async fn restart_if_exited(
    slot: &mut Option<Child>,
    pid: &mut Option<u32>,
    name: &str,
    no_restart: bool,
    respawn: impl FnOnce() -> anyhow::Result<Child>,
) -> bool {
    let Some(Ok(Some(status))) = slot.as_mut().map(|c| c.try_wait()) else {
        return false;
    };
    *slot = None;
    *pid = None;
    if no_restart {
        println!("{name} exited ({status}); not restarting (--no-restart)");
        return true;
    }
    println!("{name} exited ({status}); restarting in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
    match respawn() {
        Ok(child) => {
            *pid = child.id();
            *slot = Some(child);
        }
        Err(e) => println!("{name} could not be restarted: {e:#}"),
    }
    true
}

/// Runs the dev cluster until Ctrl-C.
pub async fn run(args: &DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let cluster_path = data_dir.join("cluster.json");
    let mut cluster = match ClusterFile::load(&cluster_path)? {
        Some(c) => {
            if let Some(pid) = c.supervisor_pid
                && pid != std::process::id()
                && pid_alive(pid)
            {
                bail!(
                    "a dev cluster is already running from {} (supervisor pid {pid})",
                    data_dir.display()
                );
            }
            if c.nodes.len() as u64 != args.nodes {
                tracing::warn!(
                    nodes = c.nodes.len(),
                    "resuming the existing cluster; --nodes applies only to a new data dir"
                );
            }
            c
        }
        None => {
            let mut c = new_cluster(args, &data_dir)?;
            c.auth = Some(AuthEntry::prepare(
                &data_dir,
                &format!("http://{}", args.frontend_addr),
            )?);
            c
        }
    };
    // Rewrites the public keys from the kept private ones.
    if let Some(auth) = &cluster.auth {
        cluster.auth = Some(AuthEntry::prepare(&data_dir, &auth.issuer)?);
    }
    cluster.supervisor_pid = Some(std::process::id());
    let exe = std::env::current_exe().context("locating the kartotek binary")?;

    let mut children: Vec<Option<Child>> = Vec::new();
    for node in &cluster.nodes {
        write_node_config(&cluster, node)?;
    }
    for i in 0..cluster.nodes.len() {
        let child = spawn_node(&exe, &cluster.nodes[i])?;
        cluster.nodes[i].pid = child.id();
        children.push(Some(child));
    }
    let mut frontend = write_frontend_config(&cluster, &data_dir, args.frontend_addr)?;
    let mut frontend_child = Some(spawn_frontend(&exe, &frontend)?);
    frontend.pid = frontend_child.as_ref().and_then(Child::id);
    cluster.frontend = Some(frontend.clone());
    cluster.save(&cluster_path)?;

    let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.grpc_addr.clone()).collect();
    let client_config = ClientConfig {
        endpoints: endpoints.clone(),
        ..ClientConfig::default()
    };
    let client = match &cluster.auth {
        Some(auth) => auth.supervisor_client(client_config)?,
        None => KartotekClient::new(client_config)?,
    };
    let token_endpoint = format!("{}/connect/token", frontend.http);
    let result = tokio::select! {
        r = async {
            bring_up(&client, &mut cluster, &cluster_path).await?;
            match &cluster.auth {
                Some(auth) => auth.provision_clients(&client, &token_endpoint).await,
                None => Ok(Vec::new()),
            }
        } => r,
        _ = super::shutdown_signal() => Err(anyhow::anyhow!("interrupted during start-up")),
    };
    let client_files = match result {
        Ok(files) => files,
        Err(e) => {
            stop_all(std::slice::from_mut(&mut frontend_child)).await;
            stop_all(&mut children).await;
            cluster.supervisor_pid = None;
            let _ = cluster.save(&cluster_path);
            return Err(e);
        }
    };

    println!(
        "Kartotek dev cluster `{}` is running:",
        cluster.cluster_name
    );
    for n in &cluster.nodes {
        println!(
            "  node {}  gRPC {}  raft {}  metrics http://{}/metrics  pid {}  log {}",
            n.id,
            n.grpc_addr,
            n.raft_addr,
            n.metrics_addr,
            n.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            n.log_file.display()
        );
    }
    println!(
        "  frontend {}  pid {}  log {}",
        frontend.http,
        frontend
            .pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into()),
        frontend.log_file.display()
    );
    println!("  cluster file: {}", cluster_path.display());
    println!("  endpoints:    {}", endpoints.join(","));
    println!(
        "  note: dev only: everything is PLAINTEXT on loopback (no TLS between nodes or to clients); see deploy/tls/ for a real cluster"
    );
    print_clients(&cluster, &client_files);
    println!("Ctrl-C stops the cluster.");

    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                let mut changed = false;
                for (slot, node) in children.iter_mut().zip(cluster.nodes.iter_mut()) {
                    let name = format!("node {}", node.id);
                    let respawn = || spawn_node(&exe, node);
                    let mut pid = node.pid;
                    changed |= restart_if_exited(slot, &mut pid, &name, args.no_restart, respawn).await;
                    node.pid = pid;
                }
                let mut pid = frontend.pid;
                let respawn = || spawn_frontend(&exe, &frontend);
                if restart_if_exited(&mut frontend_child, &mut pid, "frontend", args.no_restart, respawn).await {
                    frontend.pid = pid;
                    cluster.frontend = Some(frontend.clone());
                    changed = true;
                }
                if changed {
                    cluster.save(&cluster_path)?;
                }
            }
        }
    }
    println!(
        "stopping {} nodes and the frontend…",
        children.iter().flatten().count()
    );
    stop_all(std::slice::from_mut(&mut frontend_child)).await;
    stop_all(&mut children).await;
    for n in &mut cluster.nodes {
        n.pid = None;
    }
    frontend.pid = None;
    cluster.frontend = Some(frontend);
    cluster.supervisor_pid = None;
    cluster.save(&cluster_path)?;
    println!(
        "stopped; data kept in {} (run `kartotek dev` again to resume)",
        data_dir.display()
    );
    Ok(())
}

/// Says how to call the cluster: the client files, and the one export line.
fn print_clients(cluster: &ClusterFile, files: &[(&'static dev_auth::DevClient, PathBuf)]) {
    let Some(auth) = &cluster.auth else {
        println!(
            "  note: this data directory was made before kartotek dev turned authentication on: its nodes take calls WITHOUT tokens (remove the directory for one that checks them)"
        );
        println!("Try `kartotek admin status` in another terminal.");
        return;
    };
    println!(
        "  auth: every call needs an access token from {} (issuer; keys in {})",
        auth.issuer,
        auth.signing_keys_file
            .parent()
            .unwrap_or(&auth.signing_keys_file)
            .display()
    );
    for (client, path) in files {
        println!(
            "  client {:<15} {}  ({})",
            client.name,
            path.display(),
            client.description
        );
    }
    let first = auth.client_file(dev_auth::DEV_CLIENTS[0].name);
    let admin = auth.client_file(dev_auth::DEV_CLIENTS[1].name);
    println!("In another terminal, to call it as the health service:");
    println!("  export KARTOTEK_CLIENT_FILE={}", first.display());
    println!(
        "and for cluster administration: KARTOTEK_CLIENT_FILE={} kartotek admin status",
        admin.display()
    );
}

/// Waits for every node to answer, initialises the cluster if needed, waits for a leader.
async fn bring_up(
    client: &KartotekClient,
    cluster: &mut ClusterFile,
    path: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut statuses = Vec::new();
    for n in &cluster.nodes {
        loop {
            match client.status(&n.grpc_addr).await {
                Ok(s) => {
                    statuses.push(s);
                    break;
                }
                Err(e) if Instant::now() > deadline => {
                    bail!(
                        "node {} at {} did not come up: {e} (see {})",
                        n.id,
                        n.grpc_addr,
                        n.log_file.display()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    if !statuses.iter().any(|s| s.initialized) {
        let members = cluster
            .nodes
            .iter()
            .map(|n| Member {
                node_id: n.id,
                addr: n.grpc_addr.clone(),
                voter: true,
                raft_addr: n.raft_addr.clone(),
            })
            .collect();
        let first = &cluster.nodes.first().context("no nodes")?.grpc_addr;
        client
            .init(first, members)
            .await
            .context("initialising the cluster")?;
        println!("initialised a new cluster of {} nodes", cluster.nodes.len());
    }
    cluster.initialized = true;
    cluster.save(path)?;
    loop {
        for n in &cluster.nodes {
            if let Ok(s) = client.status(&n.grpc_addr).await
                && s.leader_id.is_some()
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no leader was elected within {} s",
                STARTUP_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM to every node, then SIGKILL to those still running after [`STOP_TIMEOUT`].
async fn stop_all(children: &mut [Option<Child>]) {
    for child in children.iter().flatten() {
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for child in children.iter_mut().flatten() {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, child.wait()).await.is_err() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}
