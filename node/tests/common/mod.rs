//! Test harness: real `kartotek node` processes on loopback ports, driven through the client.
//!
//! The bootstrap (configs, ports from the kernel, processes, wait-until-up, `admin init`,
//! leader agreement, kill -9 / SIGSTOP / restart on the data dir, log tails on failure) is
//! `kartotek-testkit`'s, shared with jepsen and bench; this adds the node tests' helpers on top:
//! a bound on concurrent clusters, panicking wrappers keyed by node id, synthetic ids.
//! [`TestCluster`] derefs to the [`Cluster`] (`c.nodes`, `c.status(id)`); it is torn down
//! (SIGKILL) when dropped, also when a test fails, and then prints the nodes' log tails.
//! Its Raft traffic is mutual TLS with a CA made for the cluster (`tls.raft`), so every
//! multi-process test runs on a TLS cluster; `kartotek dev`, jepsen and bench cover plaintext.
//! Its nodes require tokens (`[auth] required`) of one test issuer per test process
//! ([`issuer`]); [`TestCluster::client`] calls with an all-scopes harness token,
//! [`TestCluster::client_as`] with a clinician's, and [`kartotek`] runs the CLI with one.

#![allow(dead_code)]

pub mod raw;

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::{Duration, Instant};

use kartotek_auth::AccessClaims;
use kartotek_client::KartotekClient;
use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::{national_id_from_parts, org_number_from_prefix};
use kartotek_testkit::{Cluster, ClusterOptions, NodeSpec, TestIssuer, TestPki};
use nix::sys::signal::Signal;
use tempfile::TempDir;

/// At most two clusters run at once (the CI machine has 2 cores).
pub static CLUSTERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// The token issuer every cluster of this test process trusts (its public keys in a
/// directory that lives as long as the process).
pub fn issuer() -> &'static TestIssuer {
    static ISSUER: std::sync::OnceLock<(TempDir, TestIssuer)> = std::sync::OnceLock::new();
    &ISSUER
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let issuer = TestIssuer::new(dir.path()).unwrap_or_else(|e| panic!("issuer: {e:#}"));
            (dir, issuer)
        })
        .1
}

/// Claims of clinician `hpr` acting for organisation `org` with purpose `treatment`, with
/// every scope.
pub fn clinician(hpr: &str, org: &str) -> AccessClaims {
    let mut claims = issuer().claims("test-ehr", &kartotek_testkit::auth::all_scopes());
    claims.hpr_number = Some(hpr.into());
    claims.org_parent = Some(org.into());
    claims.purpose_of_use = Some("treatment".into());
    claims
}

/// A signed token of `claims` (fresh times and `jti`), for the CLI's `--token`.
pub fn token_of(claims: &AccessClaims) -> String {
    let now_s = kartotek_domain::Timestamp::now().0.div_euclid(1000);
    let claims = AccessClaims {
        iat: now_s,
        nbf: Some(now_s),
        exp: now_s + 3600,
        jti: format!("cli-{}", uuid::Uuid::new_v4()),
        ..claims.clone()
    };
    issuer()
        .issuer()
        .sign(&claims)
        .unwrap_or_else(|e| panic!("signing: {e}"))
}

/// One node process (the testkit's node: `n.id`, `n.addr`, `n.process`).
pub type TestNode = kartotek_testkit::Node;

/// The body of `GET /metrics` on a node's `metrics_addr` (headers included).
pub fn metrics_text(addr: &str) -> String {
    http_get(addr, "/metrics")
}

/// The whole HTTP/1.0 response (status line, headers, body) to `GET path` at `addr`.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap_or_else(|e| panic!("{e}"));
    let mut body = String::new();
    s.read_to_string(&mut body)
        .unwrap_or_else(|e| panic!("{e}"));
    body
}

/// The value of the sample `series` (name and labels exactly as exposed, e.g.
/// `kartotek_raft_snapshots_sent_total{target="2"}`) in a scrape; `None` if absent.
pub fn metric_value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A free loopback port.
pub fn free_port() -> u16 {
    kartotek_testkit::free_port().unwrap_or_else(|e| panic!("no free port: {e}"))
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

/// The n-th valid synthetic national id of a person born on 14 March `year`.
pub fn person_born(year: i32, n: u16) -> String {
    let date = chrono::NaiveDate::from_ymd_opt(year, 3, 14).unwrap_or_default();
    (n..1000u16)
        .find_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| panic!("no valid id born {year}"))
}

/// A valid org number (deterministic).
pub fn org(n: u32) -> String {
    (10_000_000 + n * 100..10_000_000 + n * 100 + 100)
        .find_map(org_number_from_prefix)
        .map(|o| o.as_str().to_owned())
        .unwrap_or_else(|| panic!("no valid org for {n}"))
}

/// The value of `r`, or a panic with its error.
pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The citizen `id` as the actor of a change.
pub fn citizen(id: &str) -> Option<kartotek_proto::v1::Actor> {
    Some(kartotek_proto::v1::Actor {
        kind: kartotek_proto::v1::ActorKind::Citizen as i32,
        id: id.to_owned(),
    })
}

/// A block of the health professional `personnel` for patient `p`, registered by the patient.
pub fn block(
    p: &str,
    personnel: &str,
    level: kartotek_proto::v1::BlockLevel,
) -> kartotek_proto::v1::AddBlockRequest {
    kartotek_proto::v1::AddBlockRequest {
        patient: p.to_owned(),
        target_kind: kartotek_proto::v1::BlockTargetKind::Personnel as i32,
        target: personnel.to_owned(),
        level: level as i32,
        reason: "test".into(),
        registered_by: citizen(p),
        ..Default::default()
    }
}

/// The `kartotek` binary with `KARTOTEK_TOKEN` the token of clinician 1234567 (org 1,
/// purpose treatment, every scope).
pub fn cli_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kartotek"));
    cmd.env_remove("KARTOTEK_CLIENT_FILE")
        .env("KARTOTEK_TOKEN", token_of(&clinician("1234567", &org(1))));
    cmd
}

/// Runs the `kartotek` binary against `endpoints`, with the token of clinician 1234567 (org
/// 1, purpose treatment).
pub fn kartotek(endpoints: &str, args: &[&str]) -> std::process::Output {
    cli_command()
        .args(["--endpoints", endpoints])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running kartotek: {e}"))
}

/// Runs the binary ([`kartotek`]), asserts success and returns stdout.
pub fn stdout(endpoints: &str, args: &[&str]) -> String {
    let out = kartotek(endpoints, args);
    assert!(
        out.status.success(),
        "kartotek {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A cluster of node processes (node ids 1..=n, data under [`dir`](TestCluster::dir)).
pub struct TestCluster {
    // Declared first so the nodes die before their directories are removed.
    kit: Cluster,
    /// Keeps the data dirs alive.
    pub dir: TempDir,
    tweak: fn(&mut NodeSpec),
    /// The nodes serve their public API over TLS too (with their node certificate).
    api_tls: bool,
    /// The cluster CA; signs the certificate of every node added.
    pub pki: TestPki,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl Deref for TestCluster {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.kit
    }
}

impl DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.kit
    }
}

/// Adds node `id` on loopback with a certificate of `pki` for its Raft listener (and, with
/// `api_tls`, its public API), then `tweak`.
fn add_tls_node(
    kit: &mut Cluster,
    pki: &TestPki,
    id: u64,
    tweak: fn(&mut NodeSpec),
    api_tls: bool,
) -> usize {
    let files = pki
        .node(&format!("node-{id}"), &["127.0.0.1", "localhost"])
        .unwrap_or_else(|e| panic!("certificate of node {id}: {e:#}"));
    kit.add_loopback(id, |spec| {
        if api_tls {
            spec.extra_toml.push_str(&format!(
                "[tls.api]\ncert_file = {:?}\nkey_file = {:?}\n\n",
                files.cert_file.display().to_string(),
                files.key_file.display().to_string()
            ));
        }
        spec.raft_tls = Some(files);
        tweak(spec);
    })
    .unwrap_or_else(|e| panic!("node {id}: {e:#}"))
}

impl TestCluster {
    /// Starts `n` nodes with `tweak` applied to each node's spec, initialises, waits for a
    /// leader.
    pub async fn start(n: u64, tweak: fn(&mut NodeSpec)) -> TestCluster {
        TestCluster::start_with_token(n, tweak, None).await
    }

    /// [`TestCluster::start`] whose clients (the bootstrap's admin client too) send `token`
    /// as `authorization: Bearer`, for clusters with `auth.required`.
    pub async fn start_with_token(
        n: u64,
        tweak: fn(&mut NodeSpec),
        token: Option<String>,
    ) -> TestCluster {
        TestCluster::start_inner(n, tweak, token, false).await
    }

    /// [`TestCluster::start`] with the public API over TLS too (`[tls.api]`, the nodes'
    /// certificates of [`TestCluster::pki`]); the harness's clients trust the test CA.
    pub async fn start_with_api_tls(n: u64) -> TestCluster {
        TestCluster::start_inner(n, |_| {}, None, true).await
    }

    async fn start_inner(
        n: u64,
        tweak: fn(&mut NodeSpec),
        token: Option<String>,
        api_tls: bool,
    ) -> TestCluster {
        let permit = CLUSTERS
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("semaphore: {e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut opts = ClusterOptions::new(
            Path::new(env!("CARGO_BIN_EXE_kartotek")),
            dir.path(),
            "kartotek-test",
        );
        opts.startup_timeout = Duration::from_secs(90);
        // A test that brings its own token brings its own `[auth]` too (node/tests/it/auth.rs).
        match token {
            Some(token) => opts.client.token = Some(token),
            None => opts.auth = Some(issuer().clone()),
        }
        let pki = TestPki::new(&dir.path().join("pki"), "cluster")
            .unwrap_or_else(|e| panic!("test CA: {e:#}"));
        if api_tls {
            opts.client.ca_file = Some(pki.ca_file().to_path_buf());
        }
        let mut kit = Cluster::new(opts);
        for id in 1..=n {
            add_tls_node(&mut kit, &pki, id, tweak, api_tls);
        }
        kit.start_all().unwrap_or_else(|e| panic!("{e:#}"));
        // A panic here drops `kit` while unwinding, which prints the nodes' log tails.
        kit.bootstrap()
            .await
            .unwrap_or_else(|e| panic!("starting the cluster: {e:#}"));
        TestCluster {
            kit,
            dir,
            tweak,
            api_tls,
            pki,
            _permit: permit,
        }
    }

    /// Writes a config for node `id` and starts it (not part of the membership yet).
    pub fn add_node_process(&mut self, id: u64) -> usize {
        let idx = add_tls_node(&mut self.kit, &self.pki, id, self.tweak, self.api_tls);
        self.kit.nodes[idx]
            .start()
            .unwrap_or_else(|e| panic!("node {id}: {e:#}"));
        idx
    }

    /// Index of node `id`.
    pub fn idx(&self, id: u64) -> usize {
        self.slot_of(id).unwrap_or_else(|| panic!("no node {id}"))
    }

    /// A client over every node.
    pub fn client(&self) -> KartotekClient {
        self.client_for(&self.nodes.iter().map(|n| n.id).collect::<Vec<_>>())
    }

    /// A client over every node calling as `claims` (e.g. [`clinician`]).
    pub fn client_as(&self, claims: AccessClaims) -> KartotekClient {
        self.client_with(issuer().tokens_for(claims))
            .unwrap_or_else(|e| panic!("client: {e:#}"))
    }

    /// A client over the given nodes only (first = preferred).
    pub fn client_for(&self, ids: &[u64]) -> KartotekClient {
        self.client_over(ids)
            .unwrap_or_else(|e| panic!("client: {e:#}"))
    }

    /// Waits for a leader that every running voter agrees on; returns its id.
    pub async fn leader(&self) -> u64 {
        let slot = self
            .wait_leader(Instant::now() + Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        self.nodes[slot].id
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
        self.nodes[self.idx(id)].process.signal(sig);
    }

    /// `kill -9` node `id` and reaps it.
    pub fn kill9(&mut self, id: u64) {
        let idx = self.idx(id);
        self.kit.nodes[idx].process.kill9();
    }

    /// SIGTERM node `id` and waits for it to exit (SIGKILL after 15 s).
    pub fn stop(&mut self, id: u64) {
        let idx = self.idx(id);
        self.kit.nodes[idx].process.stop(Duration::from_secs(15));
    }

    /// Restarts node `id` on its data dir.
    pub fn restart(&mut self, id: u64) {
        let idx = self.idx(id);
        assert!(
            !self.nodes[idx].process.running(),
            "node {id} still running"
        );
        self.kit.nodes[idx]
            .start()
            .unwrap_or_else(|e| panic!("node {id}: {e:#}"));
    }

    /// Stops node `id` (SIGTERM, as `systemctl restart` does) and starts it again on
    /// `binary`, with the same config and data dir: one step of a rolling upgrade.
    pub fn upgrade(&mut self, id: u64, binary: &Path) {
        self.stop(id);
        let idx = self.idx(id);
        self.kit.nodes[idx].process.set_program(binary);
        self.restart(id);
    }

    /// The log of node `id`.
    pub fn log(&self, id: u64) -> String {
        self.nodes[self.idx(id)].process.log()
    }
}
