//! A node's configuration as the harnesses set it, rendered to the TOML `kartotek node
//! --config` reads.
//!
//! This is deliberately not `kartotek_node::config::NodeConfig` (depending on the node library
//! would make bench and jepsen build it). The key names are those of `node/src/config.rs` and
//! `deploy/node.example.toml`; `node/tests/it/testkit_config.rs` parses [`NodeSpec::to_toml`]
//! with `NodeConfig` (unknown keys are refused there) and validates it, so drift fails a test.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Raft timing profile (`raft.profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftProfile {
    /// `lan`: one site.
    Lan,
    /// `wan`: sites 10–30 ms apart.
    Wan,
}

impl RaftProfile {
    /// The value in the TOML file.
    pub fn as_str(self) -> &'static str {
        match self {
            RaftProfile::Lan => "lan",
            RaftProfile::Wan => "wan",
        }
    }
}

/// The `[raft]` table: a profile and explicit overrides. Unset values are not written (the
/// node takes the profile's). Field names are the node's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftSpec {
    /// `profile`; the node's default (`lan`) when unset.
    pub profile: Option<RaftProfile>,
    /// `heartbeat_interval_ms`.
    pub heartbeat_interval_ms: Option<u64>,
    /// `election_timeout_min_ms`.
    pub election_timeout_min_ms: Option<u64>,
    /// `election_timeout_max_ms`.
    pub election_timeout_max_ms: Option<u64>,
    /// `rpc_timeout_ms`.
    pub rpc_timeout_ms: Option<u64>,
    /// `install_snapshot_timeout_ms`.
    pub install_snapshot_timeout_ms: Option<u64>,
    /// `entries_per_request_max`.
    pub entries_per_request_max: Option<u64>,
    /// `append_bytes_max`.
    pub append_bytes_max: Option<u64>,
    /// `snapshot_logs_since_last`.
    pub snapshot_logs_since_last: Option<u64>,
    /// `logs_kept_after_snapshot`.
    pub logs_kept_after_snapshot: Option<u64>,
    /// `snapshot_chunk_bytes`.
    pub snapshot_chunk_bytes: Option<u64>,
}

impl RaftSpec {
    /// The overrides that are set, as (key, value).
    fn overrides(&self) -> Vec<(&'static str, u64)> {
        [
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("election_timeout_min_ms", self.election_timeout_min_ms),
            ("election_timeout_max_ms", self.election_timeout_max_ms),
            ("rpc_timeout_ms", self.rpc_timeout_ms),
            (
                "install_snapshot_timeout_ms",
                self.install_snapshot_timeout_ms,
            ),
            ("entries_per_request_max", self.entries_per_request_max),
            ("append_bytes_max", self.append_bytes_max),
            ("snapshot_logs_since_last", self.snapshot_logs_since_last),
            ("logs_kept_after_snapshot", self.logs_kept_after_snapshot),
            ("snapshot_chunk_bytes", self.snapshot_chunk_bytes),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// One node as a harness starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// `node_id`.
    pub id: u64,
    /// `cluster_name`.
    pub cluster_name: String,
    /// `advertise_addr`: the `host:port` peers and clients use.
    pub addr: String,
    /// `listen_addr`; [`addr`](Self::addr) when unset.
    pub listen_addr: Option<String>,
    /// `raft_advertise_addr`: the `host:port` peers reach its Raft listener at (by default
    /// the host of [`addr`](Self::addr) with its port + 100).
    pub raft_addr: String,
    /// `raft_listen_addr`; [`raft_addr`](Self::raft_addr) when unset.
    pub raft_listen_addr: Option<String>,
    /// `metrics_addr` (`/metrics`, `/healthz`, `/readyz`); none when unset.
    pub metrics_addr: Option<String>,
    /// `data_dir`.
    pub data_dir: PathBuf,
    /// `log_filter` (the harness removes `RUST_LOG` from the node's environment, so this is
    /// the filter in effect).
    pub log_filter: String,
    /// `[raft]`.
    pub raft: RaftSpec,
    /// `[tls.raft]`: mutual TLS between nodes; plaintext when unset (which the node accepts
    /// only on loopback unless [`insecure_plaintext_raft`](Self::insecure_plaintext_raft)).
    pub raft_tls: Option<crate::tls::TlsFiles>,
    /// `[tls] insecure_plaintext_raft`: plaintext Raft on a non-loopback address (jepsen's
    /// network namespaces).
    pub insecure_plaintext_raft: bool,
    /// `[testing] unsafe_stale_reads` (jepsen's self-check only).
    pub unsafe_stale_reads: bool,
    /// Extra environment of the node process (`KARTOTEK_*` overrides, preloads).
    pub env: Vec<(String, String)>,
    /// TOML appended to the file as is, after every section above (for sections the spec has
    /// no field for, such as `[auth]` with its `[[auth.trusted_issuers]]`).
    pub extra_toml: String,
}

impl NodeSpec {
    /// Node `id` of `cluster_name` at `addr` with its data in `data_dir`; log filter
    /// `info,openraft=warn`, everything else the node's default.
    pub fn new(id: u64, cluster_name: &str, addr: &str, data_dir: &Path) -> NodeSpec {
        NodeSpec {
            id,
            cluster_name: cluster_name.to_owned(),
            addr: addr.to_owned(),
            listen_addr: None,
            raft_addr: default_raft_addr(addr),
            raft_listen_addr: None,
            metrics_addr: None,
            data_dir: data_dir.to_path_buf(),
            log_filter: "info,openraft=warn".into(),
            raft: RaftSpec::default(),
            raft_tls: None,
            insecure_plaintext_raft: false,
            unsafe_stale_reads: false,
            env: Vec::new(),
            extra_toml: String::new(),
        }
    }

    /// The address the node listens on.
    pub fn listen(&self) -> &str {
        self.listen_addr.as_deref().unwrap_or(&self.addr)
    }

    /// The address the node's Raft listener binds.
    pub fn raft_listen(&self) -> &str {
        self.raft_listen_addr.as_deref().unwrap_or(&self.raft_addr)
    }

    /// The node's TOML configuration.
    pub fn to_toml(&self) -> String {
        let mut t = String::from("# Written by kartotek-testkit.\n");
        let _ = writeln!(t, "node_id = {}", self.id);
        let _ = writeln!(t, "cluster_name = {}", quote(&self.cluster_name));
        let _ = writeln!(t, "listen_addr = {}", quote(self.listen()));
        let _ = writeln!(t, "advertise_addr = {}", quote(&self.addr));
        let _ = writeln!(t, "raft_listen_addr = {}", quote(self.raft_listen()));
        let _ = writeln!(t, "raft_advertise_addr = {}", quote(&self.raft_addr));
        if let Some(m) = &self.metrics_addr {
            let _ = writeln!(t, "metrics_addr = {}", quote(m));
        }
        let data_dir = self.data_dir.display().to_string();
        let _ = writeln!(t, "data_dir = {}", quote(&data_dir));
        let _ = writeln!(t, "log_filter = {}", quote(&self.log_filter));
        let overrides = self.raft.overrides();
        if self.raft.profile.is_some() || !overrides.is_empty() {
            t.push_str("\n[raft]\n");
            if let Some(p) = self.raft.profile {
                let _ = writeln!(t, "profile = {}", quote(p.as_str()));
            }
            for (k, v) in overrides {
                let _ = writeln!(t, "{k} = {v}");
            }
        }
        if self.raft_tls.is_some() || self.insecure_plaintext_raft {
            t.push_str("\n[tls]\n");
            if self.insecure_plaintext_raft {
                t.push_str("insecure_plaintext_raft = true\n");
            }
        }
        if let Some(tls) = &self.raft_tls {
            t.push_str("\n[tls.raft]\n");
            for (k, v) in [
                ("ca_file", &tls.ca_file),
                ("cert_file", &tls.cert_file),
                ("key_file", &tls.key_file),
            ] {
                let _ = writeln!(t, "{k} = {}", quote(&v.display().to_string()));
            }
        }
        if self.unsafe_stale_reads {
            t.push_str("\n[testing]\nunsafe_stale_reads = true\n");
        }
        if !self.extra_toml.is_empty() {
            t.push('\n');
            t.push_str(&self.extra_toml);
            if !t.ends_with('\n') {
                t.push('\n');
            }
        }
        // Nodes require tokens by default; a harness cluster that trusts no issuer (no
        // `[auth]` of its own, see `ClusterOptions::auth`) takes calls without them.
        if !self.extra_toml.contains("[auth]") {
            t.push_str("\n[auth]\nrequired = false\n");
        }
        t
    }

    /// Writes [`to_toml`](Self::to_toml) to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.to_toml()).with_context(|| format!("writing {}", path.display()))
    }
}

/// The default Raft address for a node at `addr`: the same host, port + 100 (7401 → 7501).
fn default_raft_addr(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>().ok().and_then(|p| p.checked_add(100)) {
            Some(p) => format!("{host}:{p}"),
            None => format!("{host}:7501"),
        },
        None => format!("{addr}:7501"),
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_spec_writes_the_top_level_keys_only() {
        let s = NodeSpec::new(3, "kartotek-test", "127.0.0.1:7401", Path::new("/tmp/n3"));
        let t = s.to_toml();
        assert!(t.contains("node_id = 3\n"), "{t}");
        assert!(t.contains("listen_addr = \"127.0.0.1:7401\"\n"), "{t}");
        assert!(t.contains("advertise_addr = \"127.0.0.1:7401\"\n"), "{t}");
        assert!(t.contains("data_dir = \"/tmp/n3\"\n"), "{t}");
        assert!(!t.contains("metrics_addr"), "{t}");
        assert!(!t.contains("[raft]"), "{t}");
        assert!(!t.contains("[testing]"), "{t}");
    }

    #[test]
    fn raft_overrides_and_testing_switch_are_written() {
        let mut s = NodeSpec::new(1, "c", "10.0.0.1:7401", Path::new("/d"));
        s.listen_addr = Some("0.0.0.0:7401".into());
        s.raft.profile = Some(RaftProfile::Wan);
        s.raft.snapshot_logs_since_last = Some(100);
        s.unsafe_stale_reads = true;
        let t = s.to_toml();
        assert!(t.contains("listen_addr = \"0.0.0.0:7401\"\n"), "{t}");
        assert!(t.contains("advertise_addr = \"10.0.0.1:7401\"\n"), "{t}");
        assert!(
            t.contains("[raft]\nprofile = \"wan\"\nsnapshot_logs_since_last = 100\n"),
            "{t}"
        );
        assert!(t.contains("[testing]\nunsafe_stale_reads = true\n"), "{t}");
        assert!(
            t.ends_with("[auth]\nrequired = false\n"),
            "no issuer: tokens not required, said explicitly: {t}"
        );
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny"), "\"x\\u000Ay\"");
    }
}
