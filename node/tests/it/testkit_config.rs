//! Drift check: the node TOML `kartotek-testkit` writes (for the node tests, jepsen and bench)
//! is a valid `NodeConfig` with the values the testkit meant. `NodeConfig` refuses unknown
//! keys, so a renamed or removed setting fails here.

use std::path::{Path, PathBuf};

use kartotek_node::config::{NodeConfig, RaftProfile as NodeProfile};
use kartotek_testkit::{NodeSpec, RaftProfile, RaftSpec};

fn parse(spec: &NodeSpec) -> NodeConfig {
    let text = spec.to_toml();
    let cfg: NodeConfig =
        toml::from_str(&text).unwrap_or_else(|e| panic!("not a NodeConfig: {e}\n{text}"));
    cfg.validate()
        .unwrap_or_else(|e| panic!("invalid NodeConfig: {e}\n{text}"));
    cfg
}

#[test]
fn every_testkit_setting_reaches_the_node_config() {
    let mut spec = NodeSpec::new(
        7,
        "kartotek-jepsen",
        "10.213.1.130:7401",
        Path::new("/tmp/a dir/with \"quotes\" and \\"),
    );
    spec.listen_addr = Some("0.0.0.0:7401".into());
    assert_eq!(spec.raft_addr, "10.213.1.130:7501", "default: port + 100");
    spec.raft_addr = "10.213.1.130:7601".into();
    spec.raft_listen_addr = Some("0.0.0.0:7601".into());
    // Not loopback and no [tls.raft]: the node wants it said that this is on purpose.
    spec.insecure_plaintext_raft = true;
    spec.metrics_addr = Some("127.0.0.1:9401".into());
    spec.log_filter = "warn,kartotek=debug".into();
    spec.unsafe_stale_reads = true;
    // Every field, so a new one in RaftSpec has to be added here.
    spec.raft = RaftSpec {
        profile: Some(RaftProfile::Wan),
        heartbeat_interval_ms: Some(120),
        election_timeout_min_ms: Some(400),
        election_timeout_max_ms: Some(900),
        rpc_timeout_ms: Some(450),
        install_snapshot_timeout_ms: Some(6_000),
        entries_per_request_max: Some(500),
        append_bytes_max: Some(512 << 10),
        snapshot_logs_since_last: Some(100),
        logs_kept_after_snapshot: Some(10),
        snapshot_chunk_bytes: Some(64 << 10),
    };
    let cfg = parse(&spec);
    assert_eq!(cfg.node_id, 7);
    assert_eq!(cfg.cluster_name, "kartotek-jepsen");
    assert_eq!(cfg.listen_addr.to_string(), "0.0.0.0:7401");
    assert_eq!(cfg.advertise(), "10.213.1.130:7401");
    assert_eq!(cfg.raft_listen_addr.to_string(), "0.0.0.0:7601");
    assert_eq!(cfg.raft_advertise(), "10.213.1.130:7601");
    assert!(cfg.tls.insecure_plaintext_raft);
    assert_eq!(
        cfg.metrics_addr.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9401")
    );
    assert_eq!(
        cfg.data_dir,
        PathBuf::from("/tmp/a dir/with \"quotes\" and \\")
    );
    assert_eq!(cfg.log_filter, "warn,kartotek=debug");
    assert!(cfg.testing.unsafe_stale_reads);
    assert_eq!(cfg.raft.profile, NodeProfile::Wan);
    let r = cfg.raft.resolve();
    assert_eq!(r.heartbeat_interval_ms, 120);
    assert_eq!(r.election_timeout_min_ms, 400);
    assert_eq!(r.election_timeout_max_ms, 900);
    assert_eq!(r.rpc_timeout_ms, 450);
    assert_eq!(r.install_snapshot_timeout_ms, 6_000);
    assert_eq!(r.entries_per_request_max, 500);
    assert_eq!(r.append_bytes_max, 512 << 10);
    assert_eq!(r.snapshot_logs_since_last, 100);
    assert_eq!(r.logs_kept_after_snapshot, 10);
    assert_eq!(r.snapshot_chunk_bytes, 64 << 10);
}

#[test]
fn a_minimal_spec_is_the_node_default_apart_from_what_it_sets() {
    let spec = NodeSpec::new(1, "kartotek-test", "127.0.0.1:7499", Path::new("/tmp/n1"));
    let cfg = parse(&spec);
    let default = NodeConfig::default();
    assert_eq!(cfg.listen_addr.to_string(), "127.0.0.1:7499");
    assert_eq!(cfg.advertise_addr.as_deref(), Some("127.0.0.1:7499"));
    assert_eq!(cfg.metrics_addr, None);
    assert_eq!(cfg.raft.profile, default.raft.profile);
    assert_eq!(cfg.raft.resolve(), default.raft.resolve());
    assert!(!cfg.testing.unsafe_stale_reads);
}

/// `deploy/node.example.toml` is a `NodeConfig` (no unknown or misspelt keys) with Raft on
/// its own TLS listener, TLS on the API and tokens required; `validate()` then only asks for
/// its certificate files.
#[test]
fn the_deploy_example_is_a_node_config() {
    let text = include_str!("../../../deploy/node.example.toml");
    let cfg: NodeConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(cfg.listen_addr, cfg.raft_listen_addr);
    let tls = cfg
        .tls
        .raft
        .clone()
        .unwrap_or_else(|| panic!("no [tls.raft]"));
    assert!(tls.ca_file.ends_with("cluster-ca.pem"), "{tls:?}");
    let api = cfg
        .tls
        .api
        .clone()
        .unwrap_or_else(|| panic!("no [tls.api]"));
    assert!(api.cert_file.ends_with("api-a1.pem"), "{api:?}");
    assert!(cfg.auth.required, "the example requires tokens");
    assert_eq!(cfg.auth.trusted_issuers.len(), 1);
    match cfg.validate() {
        Err(e) => assert!(e.to_string().contains("tls.api.cert_file"), "{e}"),
        Ok(()) => panic!("validated without its certificate files"),
    }
}

/// A spec's `raft_tls` becomes the node's `[tls.raft]`, with files that exist.
#[test]
fn raft_tls_files_reach_the_node_config() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pki =
        kartotek_testkit::TestPki::new(dir.path(), "cluster").unwrap_or_else(|e| panic!("{e:#}"));
    let files = pki
        .node("node-1", &["127.0.0.1"])
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut spec = NodeSpec::new(1, "kartotek-test", "127.0.0.1:7499", dir.path());
    spec.raft_tls = Some(files.clone());
    let cfg = parse(&spec);
    let tls = cfg.tls.raft.unwrap_or_else(|| panic!("no [tls.raft]"));
    assert_eq!(
        (tls.ca_file, tls.cert_file, tls.key_file),
        (files.ca_file, files.cert_file, files.key_file)
    );
    assert!(!cfg.tls.insecure_plaintext_raft);
}
