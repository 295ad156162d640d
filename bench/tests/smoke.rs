//! CI smoke of the benchmark: `kartotek-bench compare --smoke` against a real 3-node Kartotek
//! cluster (the debug `kartotek` binary that `cargo test --workspace` builds) and a real
//! 3-node etcd cluster (`/usr/bin/etcd`, installed by `.ci/run`), a second per workload.
//! Asserts only that both systems answered every request correctly — never anything about
//! speed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// `target/<profile>/kartotek`, next to the directory holding this test executable.
fn kartotek_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("kartotek"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no kartotek binary next to {}; run `cargo test --workspace` (which builds it)",
                exe.display()
            )
        })
}

#[test]
fn both_systems_answer_every_workload_correctly() {
    let etcd = std::path::Path::new("/usr/bin/etcd");
    assert!(
        etcd.exists(),
        "/usr/bin/etcd is missing: `apt-get install etcd-server etcd-client` (.ci/run does)"
    );
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_kartotek-bench"))
        .arg("compare")
        .arg("--smoke")
        .arg("--kartotek-bin")
        .arg(kartotek_bin())
        .arg("--out-dir")
        .arg(out.path())
        .output()
        .unwrap_or_else(|e| panic!("running kartotek-bench: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kartotek-bench compare --smoke failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let json = std::fs::read_to_string(out.path().join("results/compare.json"))
        .unwrap_or_else(|e| panic!("results JSON: {e}\n{stdout}"));
    let results: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("results JSON: {e}"));
    let aggregates = results["aggregates"]
        .as_array()
        .unwrap_or_else(|| panic!("no aggregates in {json}"));
    for system in ["kartotek", "etcd"] {
        for workload in [
            "write",
            "linear-read",
            "follower-read",
            "mixed",
            "access-decision",
        ] {
            if system == "etcd" && workload == "access-decision" {
                continue;
            }
            let cases: Vec<&serde_json::Value> = aggregates
                .iter()
                .filter(|a| a["system"] == system && a["workload"] == workload)
                .collect();
            assert!(!cases.is_empty(), "no {system} {workload} results");
            for a in cases {
                assert!(
                    a["ok"].as_u64().unwrap_or(0) > 0,
                    "{system} {workload}: no answers: {a}"
                );
                assert_eq!(
                    a["wrong"].as_u64(),
                    Some(0),
                    "{system} {workload}: wrong answers: {a}"
                );
                assert_eq!(
                    a["errors"].as_u64(),
                    Some(0),
                    "{system} {workload}: failures: {a}"
                );
            }
        }
    }
    let report = std::fs::read_to_string(out.path().join("REPORT.md"))
        .unwrap_or_else(|e| panic!("REPORT.md: {e}"));
    assert!(
        report.contains("Kartotek / etcd"),
        "report without the ratio table"
    );
    eprintln!("smoke took {:.1} s", started.elapsed().as_secs_f64());
}
