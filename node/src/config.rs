//! A node's configuration: TOML file plus `KARTOTEK_*` environment overrides, validated before
//! anything starts. The defaults are those of `kartotek dev`'s first node on one machine.
//!
//! Raft timing comes from a profile (`lan`, the default, or `wan` for sites 10–30 ms apart);
//! any timing set explicitly overrides the profile's value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Errors in a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or parsed.
    #[error("reading configuration: {0}")]
    Load(String),
    /// A value is out of range or inconsistent with another.
    #[error("invalid configuration: {field}: {reason}")]
    Invalid {
        /// The setting, dotted (`raft.heartbeat_interval_ms`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Raft timing profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RaftProfile {
    /// One site or a LAN: sub-millisecond round trips.
    #[default]
    Lan,
    /// Several sites, 10–30 ms round trips.
    Wan,
}

/// Raft settings. Timings left unset take the profile's value.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSettings {
    /// Timing profile.
    pub profile: RaftProfile,
    /// Leader heartbeat interval.
    pub heartbeat_interval_ms: Option<u64>,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min_ms: Option<u64>,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max_ms: Option<u64>,
    /// Deadline of one append-entries or vote RPC.
    pub rpc_timeout_ms: Option<u64>,
    /// Deadline of one snapshot chunk.
    pub install_snapshot_timeout_ms: Option<u64>,
    /// Most log entries in one append-entries RPC.
    pub entries_per_request_max: Option<u64>,
    /// Largest append-entries RPC, in bytes: a larger one is split (openraft waits only one
    /// heartbeat interval for an append, so a huge one would time out over and over).
    pub append_bytes_max: Option<u64>,
    /// Build a snapshot after this many applied entries since the last one.
    pub snapshot_logs_since_last: Option<u64>,
    /// Log entries kept behind a snapshot (lets slow followers catch up without a snapshot).
    pub logs_kept_after_snapshot: Option<u64>,
    /// Size of one snapshot chunk on the wire.
    pub snapshot_chunk_bytes: Option<u64>,
    /// A follower refuses log entries stamped further than this ahead of its own clock, and
    /// the rest of that leader's term (see `raft::stamps`): a leader whose clock runs far
    /// ahead would otherwise move the state clock forward for good (time-limited blocks and
    /// consents would end early). Default 10 000.
    pub stamp_ahead_ms_max: Option<u64>,
}

/// Raft settings with every value resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRaft {
    /// See [`RaftSettings`].
    pub heartbeat_interval_ms: u64,
    /// See [`RaftSettings`].
    pub append_bytes_max: u64,
    /// See [`RaftSettings`].
    pub election_timeout_min_ms: u64,
    /// See [`RaftSettings`].
    pub election_timeout_max_ms: u64,
    /// See [`RaftSettings`].
    pub rpc_timeout_ms: u64,
    /// See [`RaftSettings`].
    pub install_snapshot_timeout_ms: u64,
    /// See [`RaftSettings`].
    pub entries_per_request_max: u64,
    /// See [`RaftSettings`].
    pub snapshot_logs_since_last: u64,
    /// See [`RaftSettings`].
    pub logs_kept_after_snapshot: u64,
    /// See [`RaftSettings`].
    pub snapshot_chunk_bytes: u64,
    /// See [`RaftSettings`].
    pub stamp_ahead_ms_max: u64,
}

impl RaftSettings {
    /// Fills unset timings from the profile.
    pub fn resolve(&self) -> ResolvedRaft {
        let (hb, emin, emax, rpc) = match self.profile {
            RaftProfile::Lan => (100, 500, 1000, 500),
            RaftProfile::Wan => (150, 1500, 3000, 1500),
        };
        ResolvedRaft {
            heartbeat_interval_ms: self.heartbeat_interval_ms.unwrap_or(hb),
            election_timeout_min_ms: self.election_timeout_min_ms.unwrap_or(emin),
            election_timeout_max_ms: self.election_timeout_max_ms.unwrap_or(emax),
            rpc_timeout_ms: self.rpc_timeout_ms.unwrap_or(rpc),
            install_snapshot_timeout_ms: self.install_snapshot_timeout_ms.unwrap_or(5_000),
            entries_per_request_max: self.entries_per_request_max.unwrap_or(1_000),
            append_bytes_max: self.append_bytes_max.unwrap_or(match self.profile {
                RaftProfile::Lan => 256 << 10,
                RaftProfile::Wan => 1 << 20,
            }),
            snapshot_logs_since_last: self.snapshot_logs_since_last.unwrap_or(50_000),
            logs_kept_after_snapshot: self.logs_kept_after_snapshot.unwrap_or(5_000),
            snapshot_chunk_bytes: self.snapshot_chunk_bytes.unwrap_or(1 << 20),
            stamp_ahead_ms_max: self.stamp_ahead_ms_max.unwrap_or(10_000),
        }
    }
}

/// Storage settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// RocksDB block cache for the state machine.
    pub block_cache_bytes: u64,
    /// How long a request id is remembered for exactly-once retries (leader time).
    pub dedup_ttl_ms: u64,
    /// Most request ids remembered.
    pub dedup_entries_max: u64,
    /// Change events kept for the watch feed (older revisions are compacted). Must be the
    /// same on every node: it is applied in the replicated state machine.
    pub change_history_max: u64,
    /// Free space kept on the data disk: below it the node turns **read-only** (client writes
    /// refused with RESOURCE_EXHAUSTED; reads, their audit, replication and audit shipping go
    /// on in this reserve), and it takes writes again above 1.25 times it (see
    /// [`crate::disk`]). At least 1 MiB.
    pub disk_free_bytes_min: u64,
    /// How often the data disk's free space is looked at, ms (100 to 60 000).
    pub disk_check_interval_ms: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            block_cache_bytes: 128 << 20,
            dedup_ttl_ms: 600_000,
            dedup_entries_max: 1_000_000,
            change_history_max: 1_000_000,
            disk_free_bytes_min: 256 << 20,
            disk_check_interval_ms: 1_000,
        }
    }
}

/// Public API settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Largest request message accepted.
    pub request_size_bytes_max: u64,
    /// Deadline for a write to commit and apply.
    pub write_timeout_ms: u64,
    /// Deadline for a read (including confirming leadership).
    pub read_timeout_ms: u64,
    /// Most requests served at once; more wait (bounded by the client's deadline).
    pub concurrent_requests_max: u64,
    /// Most linearizable reads that share one leadership confirmation round.
    pub reads_per_round_max: u64,
    /// Leader: proposals (each a batch of concurrent writes) committing at once.
    pub proposals_in_flight_max: u64,
    /// Leader: most writes packed into one proposal (one log entry).
    pub proposal_items_max: u64,
    /// Leader: most estimated bytes in one proposal. Keep it well below
    /// `raft.append_bytes_max`: one log entry cannot be split, and openraft gives an append
    /// only one heartbeat interval (a 1000-entry import batch goes alone).
    pub proposal_bytes_max: u64,
    /// Most bulk-import batches of one stream being committed at once (pipelining).
    pub import_batches_in_flight_max: u64,
    /// Most watch streams served at once by this node.
    pub watches_max: u64,
    /// A watch stream with nothing to deliver sends a progress message this often.
    pub watch_progress_interval_ms: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            request_size_bytes_max: 1 << 20,
            write_timeout_ms: 5_000,
            read_timeout_ms: 5_000,
            concurrent_requests_max: 4_096,
            reads_per_round_max: 4_096,
            proposals_in_flight_max: 4,
            proposal_items_max: 512,
            proposal_bytes_max: 128 << 10,
            import_batches_in_flight_max: 4,
            watches_max: 1_024,
            watch_progress_interval_ms: 5_000,
        }
    }
}

/// Audit log settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Keep audit events this many days (0: forever). The leader removes older ones.
    pub retention_days: u32,
    /// How often the leader looks for events past retention.
    pub prune_interval_ms: u64,
    /// Most events one retention command removes.
    pub prune_events_per_command_max: u32,
    /// When a read (or decision, or write about a patient) may be answered: `journal` (the
    /// default) once its event is fsynced in this node's audit journal, shipped to the chain
    /// within `ship_lag_ms_max`; `chain` once it is committed to the replicated chain (on a
    /// majority's disks), at the cost of a log write per read batch. See [`crate::audit`].
    pub answer_after: AnswerAfter,
    /// The longest an event may wait in the journal for the chain. Past it the node refuses
    /// reads (UNAVAILABLE) until shipping catches up, which bounds what the loss of this
    /// node's disk can take from the chain to this window. 1 s to 1 h.
    pub ship_lag_ms_max: u64,
    /// Most events waiting in the journal (past it, reads are refused). 1,000 to 100 M.
    pub journal_events_max: u64,
    /// Most events one ship to the chain carries (1 to 1,000).
    pub ship_events_max: u32,
    /// When the journal's writer finds more than one read waiting for the previous write
    /// (concurrent load), it waits this long for more before the next synced write, so that
    /// one write carries more events (fewer O_DIRECT writes and less 4 KiB padding per
    /// event); a lone read never waits. Every answer can be delayed by at most this. 0 to
    /// 2,000 µs (0: off, the default until an A/B on the target hardware says otherwise).
    pub journal_gather_us: u64,
    /// After a ship that was not full, the shipper waits this long before the next, so that
    /// a trickle of reads costs one log entry per interval rather than one per read (0 to
    /// 1,000 ms; the time an event needs to reach the chain grows by at most this).
    pub ship_interval_ms: u64,
    /// On a clean stop (SIGTERM, Ctrl-C) the node stops taking requests, then waits up to
    /// this long for its journal to reach the chain before it stops Raft, so a node that is
    /// stopped and then wiped (decommissioned) takes no audit event with it. Events still in
    /// the journal at the deadline (no leader reachable) ship at the next start from the same
    /// data dir. 0 to 600,000 ms (0: do not wait).
    pub drain_on_stop_ms: u64,
}

/// When an audited answer may leave the node (`audit.answer_after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerAfter {
    /// The event is fsynced in this node's journal.
    Journal,
    /// The event is committed to the replicated chain.
    Chain,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            retention_days: 0,
            prune_interval_ms: 60_000,
            prune_events_per_command_max: 10_000,
            answer_after: AnswerAfter::Journal,
            ship_lag_ms_max: 30_000,
            journal_events_max: 1_000_000,
            journal_gather_us: 0,
            ship_events_max: 1_000,
            ship_interval_ms: 20,
            drain_on_stop_ms: 10_000,
        }
    }
}

/// One issuer whose access tokens the node accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerSettings {
    /// The issuer URL, compared exactly with a token's `iss` (the frontend's `token.issuer`,
    /// or an external one such as HelseID).
    pub issuer: String,
    /// The audience its tokens must name for this cluster.
    pub audience: String,
    /// Its public JWK Set (what it serves at `/.well-known/jwks.json`), read at start.
    pub jwks_file: PathBuf,
}

/// Authentication of public calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Every public call must carry a verified bearer token whose scopes allow the method;
    /// the audit actor, organisation and purpose come from it (the default). `false` takes
    /// anyone's calls and believes the caller headers: only for a closed test network (the
    /// node warns at start).
    pub required: bool,
    /// The issuers trusted (1 to 16 when `required`).
    pub trusted_issuers: Vec<TrustedIssuerSettings>,
    /// Clock leeway for `exp`/`nbf`, seconds (0 to 300).
    pub leeway_s: i64,
    /// How often the JWK Set files are checked for changes (new or retired keys), ms; 0:
    /// read once at start.
    pub jwks_reload_interval_ms: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            required: true,
            trusted_issuers: Vec::new(),
            leeway_s: kartotek_auth::LEEWAY_S_DEFAULT,
            jwks_reload_interval_ms: 5_000,
        }
    }
}

impl AuthSettings {
    /// No tokens checked (`required = false`): a closed test network only.
    pub fn off() -> AuthSettings {
        AuthSettings {
            required: false,
            ..AuthSettings::default()
        }
    }
}

/// The files of one mutual-TLS identity (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutualTlsFiles {
    /// The CA that signs every peer's certificate (for Raft: the cluster CA, node
    /// certificates only).
    pub ca_file: PathBuf,
    /// This node's certificate (it serves with it and presents it to peers).
    pub cert_file: PathBuf,
    /// This node's private key.
    pub key_file: PathBuf,
}

/// The files of the public API's TLS (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTlsFiles {
    /// This node's API certificate (its names: what clients dial, `advertise_addr`'s host).
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
    /// When set, clients must present a certificate of this CA too (mutual TLS on the API,
    /// on top of the bearer token); unset: server TLS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

/// TLS settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// TLS on the public gRPC API (`listen_addr`). Unset: plaintext, which carries bearer
    /// tokens and patient data in the clear: only on loopback or a network of its own (the
    /// node warns at start).
    pub api: Option<ApiTlsFiles>,
    /// Mutual TLS on the Raft listener and on calls to peers (see `raft::tls`). Unset: Raft is
    /// plaintext, which the node accepts only on a loopback `raft_listen_addr` (a dev cluster)
    /// unless `insecure_plaintext_raft` says otherwise.
    pub raft: Option<MutualTlsFiles>,
    /// Allows plaintext Raft on a non-loopback address (a test network of its own, such as the
    /// fault harness's namespaces). Never in production: anyone who reaches the port could
    /// vote and append.
    pub insecure_plaintext_raft: bool,
}

/// Record-family settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordSettings {
    /// How often the leader looks for consents past their request deadline or validity end and
    /// proposes storing them as expired (0: never; reads still show them as expired).
    pub consent_sweep_interval_ms: u64,
    /// Most due-index entries one sweep command carries (at most
    /// `kartotek_domain::limits::CONSENT_EXPIRE_PER_COMMAND_MAX`); the sweep proposes again
    /// at once while more are due.
    pub consent_expire_per_command_max: u32,
    /// How often the leader forgets expired entries of the token ledger (spent assertion and
    /// proof ids, revoked tokens; 0: never, and the ledger grows by one entry per token
    /// request).
    pub token_id_sweep_interval_ms: u64,
}

impl Default for RecordSettings {
    fn default() -> Self {
        RecordSettings {
            consent_sweep_interval_ms: 5_000,
            consent_expire_per_command_max: 500,
            token_id_sweep_interval_ms: 30_000,
        }
    }
}

/// Switches for the fault-injection harness's self-check. Each one breaks a guarantee on
/// purpose, so that the harness can prove its checkers catch the anomaly. Never set in
/// production: the node logs an error at start when any is on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestingSettings {
    /// Serve linearizable reads from local state without confirming leadership (a partitioned
    /// node answers stale data as if it were linearizable).
    pub unsafe_stale_reads: bool,
    /// When non-zero, reads are not fenced during a snapshot install, and the install clears
    /// the state machine in a write of its own and pauses this long before loading (a
    /// follower decision in between sees no blocks and permits).
    pub unsafe_unfenced_install_pause_ms: u64,
}

impl TestingSettings {
    /// True when any unsafe switch is on.
    pub fn any_unsafe(&self) -> bool {
        self.unsafe_stale_reads || self.unsafe_unfenced_install_pause_ms > 0
    }
}

/// One node's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's id; unique in the cluster, never reused for a wiped node.
    pub node_id: u64,
    /// Name shared by all nodes of one cluster; nodes refuse Raft traffic from other clusters.
    pub cluster_name: String,
    /// Address the gRPC server (public API and Raft transport) listens on.
    pub listen_addr: SocketAddr,
    /// Address other nodes and clients use to reach this node (`host:port`); defaults to
    /// `listen_addr`.
    pub advertise_addr: Option<String>,
    /// Address the Raft transport listens on (votes, appends, snapshots, read-index between
    /// nodes): a port of its own, apart from the public API, so that it can demand the
    /// cluster's client certificates.
    pub raft_listen_addr: SocketAddr,
    /// Address other nodes use to reach this node's Raft listener (`host:port`); defaults to
    /// `raft_listen_addr`.
    pub raft_advertise_addr: Option<String>,
    /// Address of the HTTP endpoint with `/metrics`, `/healthz` and `/readyz`; none if unset.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
    /// Log filter (`tracing` env-filter syntax) when `RUST_LOG` is unset.
    pub log_filter: String,
    /// Log lines as `text` or `json` (one object per line); `--log-format` overrides it.
    pub log_format: kartotek_frontend::logging::LogFormat,
    /// Optional OpenTelemetry traces (OTLP; off unless `otlp_endpoint` is set).
    pub telemetry: kartotek_frontend::logging::TelemetrySettings,
    /// File with the key national ids are pseudonymised under in the log (64 hex characters;
    /// the same file on every node makes one person's hash the same in every node's log). Unset:
    /// a key of this node's own, made at first start in `<data_dir>/log-hash.key`. See
    /// [`crate::log_hash`].
    pub log_hash_key_file: Option<PathBuf>,
    /// Raft settings.
    pub raft: RaftSettings,
    /// Storage settings.
    pub storage: StorageSettings,
    /// Public API settings.
    pub api: ApiSettings,
    /// Audit log settings.
    pub audit: AuditSettings,
    /// Record-family settings (the consent-expiry sweep).
    pub records: RecordSettings,
    /// TLS (mutual TLS between nodes).
    pub tls: TlsSettings,
    /// Authentication of public calls (bearer access tokens).
    pub auth: AuthSettings,
    /// Access decision and representation (parental age rules) policy.
    pub policy: crate::policy::PolicySettings,
    /// Unsafe switches for the fault-injection harness (all off by default).
    pub testing: TestingSettings,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_id: 1,
            cluster_name: "kartotek-dev".into(),
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 7401)),
            advertise_addr: None,
            raft_listen_addr: SocketAddr::from(([127, 0, 0, 1], 7501)),
            raft_advertise_addr: None,
            metrics_addr: None,
            data_dir: PathBuf::from("./kartotek-data"),
            log_filter: "info".into(),
            log_format: kartotek_frontend::logging::LogFormat::Text,
            telemetry: kartotek_frontend::logging::TelemetrySettings::default(),
            log_hash_key_file: None,
            raft: RaftSettings::default(),
            storage: StorageSettings::default(),
            api: ApiSettings::default(),
            audit: AuditSettings::default(),
            records: RecordSettings::default(),
            tls: TlsSettings::default(),
            auth: AuthSettings::default(),
            policy: crate::policy::PolicySettings::default(),
            testing: TestingSettings::default(),
        }
    }
}

/// Names of `KARTOTEK_*` variables that belong to the CLI, not to the node.
const CLI_ENV: &[&str] = &[
    "endpoints",
    "token",
    "json",
    "actor",
    "purpose",
    "acting_org",
    "on_behalf_of",
];

impl NodeConfig {
    /// Loads defaults, then the TOML file (if given), then `KARTOTEK_*` variables (nested keys
    /// with `__`, e.g. `KARTOTEK_RAFT__PROFILE=wan`), and validates the result.
    pub fn load(path: Option<&Path>) -> Result<NodeConfig, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(NodeConfig::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Load(format!("{} does not exist", p.display())));
            }
            fig = fig.merge(Toml::file(p));
        }
        // `KARTOTEK_FRONTEND_*` configures the frontend (`kartotek dev` runs both from one
        // environment); it is not a node setting.
        fig = fig.merge(
            Env::prefixed("KARTOTEK_")
                .filter(|k| !k.as_str().starts_with("frontend_"))
                .split("__")
                .ignore(CLI_ENV),
        );
        let cfg: NodeConfig = fig
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The address others reach this node at.
    pub fn advertise(&self) -> String {
        self.advertise_addr
            .clone()
            .unwrap_or_else(|| self.listen_addr.to_string())
    }

    /// The address other nodes reach this node's Raft listener at.
    pub fn raft_advertise(&self) -> String {
        self.raft_advertise_addr
            .clone()
            .unwrap_or_else(|| self.raft_listen_addr.to_string())
    }

    /// Checks ranges and relations between settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.telemetry
            .validate()
            .map_err(|(field, reason)| invalid(field, reason))?;
        if self.node_id == 0 {
            return Err(invalid("node_id", "must be at least 1"));
        }
        if self.auth.required
            && !(1..=kartotek_auth::verify::TRUSTED_ISSUERS_MAX)
                .contains(&self.auth.trusted_issuers.len())
        {
            return Err(invalid(
                "auth.trusted_issuers",
                "every call needs a verified token (auth.required, the default), so the node \
                 needs 1 to 16 [[auth.trusted_issuers]] (issuer, audience, jwks_file: the token \
                 service's; see deploy/node.example.toml); set auth.required = false only on a \
                 closed test network",
            ));
        }
        if !(0..=kartotek_auth::LEEWAY_S_MAX).contains(&self.auth.leeway_s) {
            return Err(invalid("auth.leeway_s", "must be 0 to 300"));
        }
        if self.auth.jwks_reload_interval_ms != 0
            && !(100..=3_600_000).contains(&self.auth.jwks_reload_interval_ms)
        {
            return Err(invalid(
                "auth.jwks_reload_interval_ms",
                "must be 0 (never) or 100 ms to 1 h",
            ));
        }
        if let Some(api) = &self.tls.api {
            for (key, path) in [
                ("tls.api.cert_file", Some(&api.cert_file)),
                ("tls.api.key_file", Some(&api.key_file)),
                ("tls.api.client_ca_file", api.client_ca_file.as_ref()),
            ] {
                if let Some(path) = path
                    && !path.is_file()
                {
                    return Err(invalid(key, format!("{} is not a file", path.display())));
                }
            }
        }
        match &self.tls.raft {
            Some(files) => {
                for (key, path) in [
                    ("tls.raft.ca_file", &files.ca_file),
                    ("tls.raft.cert_file", &files.cert_file),
                    ("tls.raft.key_file", &files.key_file),
                ] {
                    if !path.is_file() {
                        return Err(invalid(key, format!("{} is not a file", path.display())));
                    }
                }
            }
            None if !self.raft_listen_addr.ip().is_loopback()
                && !self.tls.insecure_plaintext_raft =>
            {
                return Err(invalid(
                    "tls.raft",
                    format!(
                        "raft_listen_addr {} is not loopback: set [tls.raft] (ca_file, cert_file, key_file; see deploy/tls/) so that only cluster members can vote and append",
                        self.raft_listen_addr
                    ),
                ));
            }
            None => {}
        }
        if self.raft_listen_addr == self.listen_addr {
            return Err(invalid(
                "raft_listen_addr",
                "must differ from listen_addr (Raft has a listener of its own)",
            ));
        }
        if self.cluster_name.is_empty() || self.cluster_name.len() > 64 {
            return Err(invalid("cluster_name", "must be 1 to 64 bytes"));
        }
        if !self
            .cluster_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(invalid("cluster_name", "allowed are A-Z a-z 0-9 - _ ."));
        }
        if let Some(a) = &self.advertise_addr
            && (a.is_empty() || a.len() > 256 || !a.contains(':'))
        {
            return Err(invalid("advertise_addr", "must be host:port"));
        }
        let r = self.raft.resolve();
        if r.heartbeat_interval_ms == 0 {
            return Err(invalid("raft.heartbeat_interval_ms", "must be positive"));
        }
        if r.election_timeout_min_ms < 2 * r.heartbeat_interval_ms {
            return Err(invalid(
                "raft.election_timeout_min_ms",
                "must be at least twice the heartbeat interval",
            ));
        }
        if r.election_timeout_max_ms <= r.election_timeout_min_ms {
            return Err(invalid(
                "raft.election_timeout_max_ms",
                "must be greater than election_timeout_min_ms",
            ));
        }
        if r.rpc_timeout_ms == 0 || r.install_snapshot_timeout_ms == 0 {
            return Err(invalid("raft.rpc_timeout_ms", "timeouts must be positive"));
        }
        if !((64 << 10)..=(64 << 20)).contains(&r.append_bytes_max) {
            return Err(invalid("raft.append_bytes_max", "must be 64 KiB to 64 MiB"));
        }
        if !(1..=10_000).contains(&r.entries_per_request_max) {
            return Err(invalid(
                "raft.entries_per_request_max",
                "must be 1 to 10000",
            ));
        }
        if r.snapshot_logs_since_last == 0 {
            return Err(invalid("raft.snapshot_logs_since_last", "must be positive"));
        }
        if !(1000..=3_600_000).contains(&r.stamp_ahead_ms_max) {
            return Err(invalid(
                "raft.stamp_ahead_ms_max",
                "must be 1000 to 3600000 ms",
            ));
        }
        if !(4096..=(64 << 20)).contains(&r.snapshot_chunk_bytes) {
            return Err(invalid(
                "raft.snapshot_chunk_bytes",
                "must be 4 KiB to 64 MiB",
            ));
        }
        if !(1024..=(64 << 20)).contains(&self.api.request_size_bytes_max) {
            return Err(invalid(
                "api.request_size_bytes_max",
                "must be 1 KiB to 64 MiB",
            ));
        }
        if self.api.write_timeout_ms == 0 || self.api.read_timeout_ms == 0 {
            return Err(invalid("api.write_timeout_ms", "timeouts must be positive"));
        }
        if self.audit.prune_interval_ms == 0 || self.audit.prune_events_per_command_max == 0 {
            return Err(invalid(
                "audit.prune_interval_ms",
                "prune_interval_ms and prune_events_per_command_max must be positive",
            ));
        }
        if !(1_000..=3_600_000).contains(&self.audit.ship_lag_ms_max) {
            return Err(invalid("audit.ship_lag_ms_max", "must be 1 s to 1 h"));
        }
        if !(1_000..=100_000_000).contains(&self.audit.journal_events_max) {
            return Err(invalid(
                "audit.journal_events_max",
                "must be 1,000 to 100,000,000",
            ));
        }
        if self.audit.journal_gather_us > 2_000 {
            return Err(invalid("audit.journal_gather_us", "must be 0 to 2,000"));
        }
        if self.audit.ship_interval_ms > 1_000 {
            return Err(invalid("audit.ship_interval_ms", "must be 0 to 1,000"));
        }
        if self.audit.drain_on_stop_ms > 600_000 {
            return Err(invalid("audit.drain_on_stop_ms", "must be 0 to 600,000"));
        }
        if self.testing.unsafe_unfenced_install_pause_ms > 60_000 {
            return Err(invalid(
                "testing.unsafe_unfenced_install_pause_ms",
                "must be 0 to 60,000",
            ));
        }
        let ship_max = kartotek_domain::limits::AUDIT_EVENTS_PER_APPEND_MAX;
        if !(1..=ship_max).contains(&(self.audit.ship_events_max as usize)) {
            return Err(invalid(
                "audit.ship_events_max",
                format!("must be 1 to {ship_max}"),
            ));
        }
        let expire_max = kartotek_domain::limits::CONSENT_EXPIRE_PER_COMMAND_MAX;
        if !(1..=expire_max).contains(&(self.records.consent_expire_per_command_max as usize)) {
            return Err(invalid(
                "records.consent_expire_per_command_max",
                format!("must be 1 to {expire_max}"),
            ));
        }
        if let Err(e) = self.policy.validate() {
            return Err(invalid("policy", e.to_string()));
        }
        if self.storage.disk_free_bytes_min < 1 << 20 {
            return Err(invalid(
                "storage.disk_free_bytes_min",
                "at least 1048576 (1 MiB)",
            ));
        }
        if !(100..=60_000).contains(&self.storage.disk_check_interval_ms) {
            return Err(invalid("storage.disk_check_interval_ms", "100 to 60000"));
        }
        if self.storage.change_history_max == 0 {
            return Err(invalid("storage.change_history_max", "must be positive"));
        }
        if !(1..=64).contains(&self.api.proposals_in_flight_max) {
            return Err(invalid("api.proposals_in_flight_max", "must be 1 to 64"));
        }
        if !(1..=10_000).contains(&self.api.proposal_items_max) {
            return Err(invalid("api.proposal_items_max", "must be 1 to 10000"));
        }
        if !((64 << 10)..=(16 << 20)).contains(&self.api.proposal_bytes_max) {
            return Err(invalid(
                "api.proposal_bytes_max",
                "must be 64 KiB to 16 MiB",
            ));
        }
        if !(1..=64).contains(&self.api.import_batches_in_flight_max) {
            return Err(invalid(
                "api.import_batches_in_flight_max",
                "must be 1 to 64",
            ));
        }
        if self.api.watches_max == 0 || self.api.watch_progress_interval_ms == 0 {
            return Err(invalid(
                "api.watches_max",
                "watches_max and watch_progress_interval_ms must be positive",
            ));
        }
        if self.api.concurrent_requests_max == 0 || self.api.reads_per_round_max == 0 {
            return Err(invalid("api.concurrent_requests_max", "must be positive"));
        }
        if self.storage.dedup_ttl_ms < 1000 || self.storage.dedup_entries_max == 0 {
            return Err(invalid(
                "storage.dedup_ttl_ms",
                "dedup must remember ids for at least 1 s and at least 1 id",
            ));
        }
        Ok(())
    }

    /// openraft's configuration from these settings.
    pub fn openraft(&self) -> Result<openraft::Config, ConfigError> {
        let r = self.raft.resolve();
        let cfg = openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: r.heartbeat_interval_ms,
            election_timeout_min: r.election_timeout_min_ms,
            election_timeout_max: r.election_timeout_max_ms,
            install_snapshot_timeout: r.install_snapshot_timeout_ms,
            max_payload_entries: r.entries_per_request_max,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: r.logs_kept_after_snapshot,
            snapshot_max_chunk_size: r.snapshot_chunk_bytes,
            replication_lag_threshold: r.logs_kept_after_snapshot.max(1),
            ..Default::default()
        };
        cfg.validate().map_err(|e| invalid("raft", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_profiles_differ() {
        // Tokens are required by default, so the bare default names what is missing.
        assert!(matches!(
            NodeConfig::default().validate(),
            Err(ConfigError::Invalid {
                field: "auth.trusted_issuers",
                ..
            })
        ));
        let c = NodeConfig {
            auth: AuthSettings::off(),
            ..NodeConfig::default()
        };
        assert!(c.validate().is_ok());
        assert!(c.openraft().is_ok());
        let mut w = c.clone();
        w.raft.profile = RaftProfile::Wan;
        assert!(w.validate().is_ok());
        assert!(
            w.raft.resolve().election_timeout_min_ms > c.raft.resolve().election_timeout_min_ms
        );
    }

    #[test]
    fn bad_values_are_named() {
        let c = NodeConfig {
            node_id: 0,
            auth: AuthSettings::off(),
            ..NodeConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                field: "node_id",
                ..
            })
        ));
        let mut c = NodeConfig {
            auth: AuthSettings::off(),
            ..NodeConfig::default()
        };
        c.raft.election_timeout_min_ms = Some(60);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                field: "raft.election_timeout_min_ms",
                ..
            })
        ));
        let mut c = NodeConfig::default();
        c.raft.entries_per_request_max = Some(0);
        assert!(c.validate().is_err());
    }

    #[test]
    fn toml_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("n.toml");
        let _ = std::fs::write(
            &p,
            "node_id = 3\n[raft]\nprofile = \"wan\"\n[auth]\nrequired = false\n",
        );
        let c = NodeConfig::load(Some(&p)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.node_id, 3);
        assert_eq!(c.raft.profile, RaftProfile::Wan);
        let _ = std::fs::write(&p, "node_id = 3\nnode_idd = 4\n");
        assert!(NodeConfig::load(Some(&p)).is_err());
        assert!(NodeConfig::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
