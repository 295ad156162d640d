//! Test harness: real `kartotek node` processes on loopback ports, driven through the client.
//!
//! Every node is its own OS process (so it can be killed with SIGKILL, stopped with SIGSTOP,
//! restarted on its data dir). Ports are taken from the kernel (bind to port 0). Clusters are
//! torn down (SIGKILL) when the harness is dropped, also when a test fails.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kartotek_client::{ClientConfig, KartotekClient};
use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::{national_id_from_parts, org_number_from_prefix};
use kartotek_node::config::NodeConfig;
use kartotek_proto::v1::{Member, NodeStatus};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// At most two clusters run at once (the CI machine has 2 cores).
pub static CLUSTERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// The n-th valid synthetic patient id (deterministic).
pub fn patient(n: u32) -> String {
    let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_days(chrono::Days::new(u64::from(n % 15_000))))
        .unwrap_or_default();
    (0..1000u16)
        .find_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| panic!("no valid id for day {n}"))
}

/// A valid org number (deterministic).
pub fn org(n: u32) -> String {
    (10_000_000 + n * 100..10_000_000 + n * 100 + 100)
        .find_map(org_number_from_prefix)
        .map(|o| o.as_str().to_owned())
        .unwrap_or_else(|| panic!("no valid org for {n}"))
}

/// One node process.
pub struct TestNode {
    /// Node id.
    pub id: u64,
    /// gRPC address.
    pub addr: String,
    /// Config file.
    pub config_file: PathBuf,
    /// Log file.
    pub log_file: PathBuf,
    /// The process, if running.
    pub child: Option<Child>,
}

impl TestNode {
    /// Pid of the running process.
    pub fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .map(Pid::from_raw)
    }
}

/// A cluster of node processes.
pub struct TestCluster {
    /// Keeps the data dirs alive.
    pub dir: TempDir,
    /// The nodes, by index (id = index + 1).
    pub nodes: Vec<TestNode>,
    tweak: fn(&mut NodeConfig),
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl TestCluster {
    /// Starts `n` nodes with `tweak` applied to each config, initialises, waits for a leader.
    pub async fn start(n: u64, tweak: fn(&mut NodeConfig)) -> TestCluster {
        let permit = CLUSTERS
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("semaphore: {e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut c = TestCluster {
            dir,
            nodes: Vec::new(),
            tweak,
            _permit: permit,
        };
        for id in 1..=n {
            c.add_node_process(id);
        }
        let members = c
            .nodes
            .iter()
            .map(|n| Member {
                node_id: n.id,
                addr: n.addr.clone(),
                voter: true,
            })
            .collect();
        let client = c.client();
        c.wait_up(&client).await;
        let first = c.nodes[0].addr.clone();
        client
            .init(&first, members)
            .await
            .unwrap_or_else(|e| panic!("init: {e}"));
        c.leader().await;
        c
    }

    /// Writes a config for node `id` and starts it (not part of the membership yet).
    pub fn add_node_process(&mut self, id: u64) -> usize {
        let data_dir = self.dir.path().join(format!("node-{id}"));
        std::fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("{e}"));
        let port = free_port();
        let mut cfg = NodeConfig {
            node_id: id,
            cluster_name: "kartotek-test".into(),
            listen_addr: format!("127.0.0.1:{port}")
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            advertise_addr: None,
            metrics_addr: None,
            data_dir: data_dir.clone(),
            log_filter: "info,openraft=warn".into(),
            ..NodeConfig::default()
        };
        (self.tweak)(&mut cfg);
        let config_file = data_dir.join("node.toml");
        let text = toml::to_string_pretty(&cfg).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&config_file, text).unwrap_or_else(|e| panic!("{e}"));
        self.nodes.push(TestNode {
            id,
            addr: format!("127.0.0.1:{port}"),
            config_file,
            log_file: data_dir.join("node.log"),
            child: None,
        });
        let idx = self.nodes.len() - 1;
        self.spawn(idx);
        idx
    }

    fn spawn(&mut self, idx: usize) {
        let node = &mut self.nodes[idx];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_file)
            .unwrap_or_else(|e| panic!("{e}"));
        let log2 = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(env!("CARGO_BIN_EXE_kartotek"))
            .arg("node")
            .arg("--config")
            .arg(&node.config_file)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn node {}: {e}", node.id));
        node.child = Some(child);
    }

    /// Index of node `id`.
    pub fn idx(&self, id: u64) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// A client over every node.
    pub fn client(&self) -> KartotekClient {
        self.client_for(&self.nodes.iter().map(|n| n.id).collect::<Vec<_>>())
    }

    /// A client over the given nodes only (first = preferred).
    pub fn client_for(&self, ids: &[u64]) -> KartotekClient {
        let endpoints = ids
            .iter()
            .map(|id| self.nodes[self.idx(*id)].addr.clone())
            .collect();
        KartotekClient::new(ClientConfig {
            endpoints,
            deadline_ms: 20_000,
            ..ClientConfig::default()
        })
        .unwrap_or_else(|e| panic!("client: {e}"))
    }

    async fn wait_up(&self, client: &KartotekClient) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for n in &self.nodes {
            while client.status(&n.addr).await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "node {} did not come up; log:\n{}",
                    n.id,
                    self.log(n.id)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Status of node `id`.
    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        self.client_for(&[id])
            .status(&self.nodes[self.idx(id)].addr)
            .await
            .ok()
    }

    /// Waits for a leader that every running node agrees on; returns its id.
    pub async fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut seen = Vec::new();
            for n in self.nodes.iter().filter(|n| n.child.is_some()) {
                if let Some(s) = self.status(n.id).await {
                    seen.push(s.leader_id);
                }
            }
            if let Some(Some(l)) = seen.first()
                && seen.iter().all(|s| *s == Some(*l))
                && self.nodes.iter().any(|n| n.id == *l && n.child.is_some())
            {
                return *l;
            }
            assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until node `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.status(id).await
                && s.applied_index.unwrap_or(0) >= index
            {
                return;
            }
            assert!(Instant::now() < deadline, "node {id} did not apply {index}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `sig` to node `id`.
    pub fn signal(&self, id: u64, sig: Signal) {
        if let Some(pid) = self.nodes[self.idx(id)].pid() {
            let _ = kill(pid, sig);
        }
    }

    /// `kill -9` node `id` and reaps it.
    pub fn kill9(&mut self, id: u64) {
        let idx = self.idx(id);
        if let Some(mut c) = self.nodes[idx].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM node `id` and waits for it to exit.
    pub fn stop(&mut self, id: u64) {
        let idx = self.idx(id);
        self.signal(id, Signal::SIGTERM);
        if let Some(mut c) = self.nodes[idx].child.take() {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }

    /// Restarts node `id` on its data dir.
    pub fn restart(&mut self, id: u64) {
        let idx = self.idx(id);
        assert!(self.nodes[idx].child.is_none(), "node {id} still running");
        self.spawn(idx);
    }

    /// The log of node `id`.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.nodes[self.idx(id)].log_file).unwrap_or_default()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(pid) = n.pid() {
                let _ = kill(pid, Signal::SIGCONT);
            }
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            for n in &self.nodes {
                let log = std::fs::read_to_string(&n.log_file).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- node {} log (last 40 lines, newest first) ----", n.id);
                for l in tail {
                    eprintln!("{l}");
                }
            }
        }
    }
}
