//! The frontend is stateless by construction: neither the storage engine nor the Raft node is
//! in its dependency graph, so it cannot open a database or join the cluster even by mistake.
//!
//! Reads `cargo metadata` for the workspace and walks kartotek-frontend's normal and build
//! dependencies, transitively (dev-dependencies of the frontend's own tests are not part of
//! the library).

// Helpers outside #[test] functions panic on unexpected input too: this is a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Packages that hold state or run Raft.
const FORBIDDEN: [&str; 5] = [
    "kartotek-storage",
    "kartotek-node",
    "openraft",
    "rocksdb",
    "librocksdb-sys",
];

/// Names of every package `root` depends on (normal or build edges), transitively.
fn transitive_deps(metadata: &Value, root: &str) -> BTreeSet<String> {
    let packages = metadata["packages"].as_array().unwrap();
    let name_of: HashMap<&str, &str> = packages
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes = metadata["resolve"]["nodes"].as_array().unwrap();
    let by_id: HashMap<&str, &Value> = nodes
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root_id = packages
        .iter()
        .find(|p| p["name"] == root && p["source"].is_null())
        .and_then(|p| p["id"].as_str())
        .unwrap_or_else(|| panic!("{root} not in the workspace"));
    let mut seen = BTreeSet::new();
    let mut todo = vec![root_id];
    while let Some(id) = todo.pop() {
        for dep in by_id[id]["deps"].as_array().unwrap() {
            let linked = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            let dep_id = dep["pkg"].as_str().unwrap();
            if linked && seen.insert(dep_id.to_owned()) {
                todo.push(dep_id);
            }
        }
    }
    seen.iter()
        .map(|id| name_of[id.as_str()].to_owned())
        .collect()
}

fn forbidden_in(deps: &BTreeSet<String>) -> Vec<&'static str> {
    FORBIDDEN
        .into_iter()
        .filter(|f| deps.contains(*f))
        .collect()
}

#[test]
fn frontend_depends_on_no_storage_and_no_raft() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let deps = transitive_deps(&metadata, "kartotek-frontend");
    // The walk found the graph (so an empty result cannot pass by accident) ...
    for expected in ["kartotek-client", "tonic", "axum"] {
        assert!(deps.contains(expected), "{expected} not found in {deps:?}");
    }
    // ... and the node crate is in the workspace, so its absence here means something.
    assert!(!transitive_deps(&metadata, "kartotek-node").is_empty());
    assert_eq!(
        forbidden_in(&deps),
        Vec::<&str>::new(),
        "kartotek-frontend must stay stateless"
    );
}

/// The token crate is pure logic that both the frontend and the node use: no storage, no
/// Raft, and no async runtime or RPC stack either.
#[test]
fn auth_depends_on_no_storage_raft_or_runtime() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(out.status.success());
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let deps = transitive_deps(&metadata, "kartotek-auth");
    for expected in ["jsonwebtoken", "kartotek-domain", "p256"] {
        assert!(deps.contains(expected), "{expected} not found in {deps:?}");
    }
    assert_eq!(forbidden_in(&deps), Vec::<&str>::new());
    for runtime in ["tokio", "tonic", "axum", "kartotek-client"] {
        assert!(
            !deps.contains(runtime),
            "kartotek-auth depends on {runtime}"
        );
    }
    assert!(
        transitive_deps(&metadata, "kartotek-frontend").contains("kartotek-auth")
            || !Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/token")
                .exists(),
        "the frontend's token service uses kartotek-auth"
    );
}

/// The check fails when a forbidden package enters the graph, directly or further down.
#[test]
fn the_check_catches_a_stateful_dependency() {
    let metadata = serde_json::json!({
        "packages": [
            {"id": "f", "name": "kartotek-frontend", "source": null},
            {"id": "c", "name": "kartotek-client", "source": null},
            {"id": "s", "name": "kartotek-storage", "source": null},
            {"id": "r", "name": "librocksdb-sys", "source": "registry+x"},
            {"id": "t", "name": "tempfile", "source": "registry+x"},
            {"id": "n", "name": "kartotek-node", "source": null}
        ],
        "resolve": {"nodes": [
            {"id": "f", "deps": [
                {"pkg": "c", "dep_kinds": [{"kind": null}]},
                {"pkg": "n", "dep_kinds": [{"kind": "dev"}]}
            ]},
            {"id": "c", "deps": [{"pkg": "s", "dep_kinds": [{"kind": null}]}]},
            {"id": "s", "deps": [
                {"pkg": "r", "dep_kinds": [{"kind": null}]},
                {"pkg": "t", "dep_kinds": [{"kind": "dev"}]}
            ]},
            {"id": "r", "deps": []},
            {"id": "t", "deps": []},
            {"id": "n", "deps": []}
        ]}
    });
    let deps = transitive_deps(&metadata, "kartotek-frontend");
    assert_eq!(
        forbidden_in(&deps),
        ["kartotek-storage", "librocksdb-sys"],
        "dev-dependencies (kartotek-node here) do not count, transitive ones do"
    );
    assert!(!deps.contains("tempfile"));
}
