//! A rolling upgrade, as `deploy/RUNBOOK.md` §7 does it: each node of a 3-node cluster in
//! turn — followers first, the leader last — stopped with SIGTERM (a safe stop), started
//! again on the "new" binary (a copy of the build at another path: the procedure, not a
//! format change, is what is tested), and waited for until it has caught up, while a client
//! writes locator entries and reads each back linearizably the whole time.
//!
//! Asserted: no request fails (the client's own retries within its deadline are the
//! documented retry window: the runbook says 15 s for the CLI; the longest request is
//! printed and must stay under it); every acknowledged write is there afterwards, on every
//! node; each node runs the new binary; the audit chain verifies on every node.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{TestCluster, org, patient};
use kartotek_proto::v1::{Consistency, LookupLocatorRequest, ReadOptions, RegisterLocatorRequest};

/// The documented retry window (RUNBOOK §7: clients retry within their deadline, 15 s).
const RETRY_WINDOW: Duration = Duration::from_secs(15);

/// What the writer saw.
#[derive(Default)]
struct Load {
    acked: Vec<String>,
    failures: Vec<String>,
    latencies_ms: Vec<u128>,
}

async fn write_and_read(client: kartotek_client::KartotekClient, stop: Arc<AtomicBool>) -> Load {
    let mut load = Load::default();
    let system = org(90);
    let mut n = 20_000u32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let p = patient(n);
        let started = Instant::now();
        let written = client
            .register_locator(RegisterLocatorRequest {
                request_id: format!("upgrade-{n}"),
                patient: p.clone(),
                org: system.clone(),
                system: "ehr-upgrade".into(),
                categories: vec!["Observation".into()],
                endpoint_ref: "fhir-api-1".into(),
                expected_mod_revision: None,
            })
            .await;
        load.latencies_ms.push(started.elapsed().as_millis());
        if let Err(e) = written {
            load.failures.push(format!("write {n}: {e}"));
            continue;
        }
        load.acked.push(p.clone());
        let started = Instant::now();
        let read = client
            .lookup_locator(LookupLocatorRequest {
                patient: p,
                ..Default::default()
            })
            .await;
        load.latencies_ms.push(started.elapsed().as_millis());
        match read {
            Ok(r) if r.entries.len() == 1 => {}
            Ok(r) => load
                .failures
                .push(format!("read {n}: {} entries", r.entries.len())),
            Err(e) => load.failures.push(format!("read {n}: {e}")),
        }
    }
    load
}

/// The program node `id`'s process runs now.
fn exe_of(cluster: &TestCluster, id: u64) -> std::path::PathBuf {
    let pid = cluster.nodes[cluster.idx(id)]
        .process
        .pid()
        .expect("running");
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_in_turn_onto_the_new_binary_with_no_failed_request() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let new_dir = tempfile::tempdir().unwrap();
    let new_binary = new_dir.path().join("kartotek-next");
    std::fs::copy(env!("CARGO_BIN_EXE_kartotek"), &new_binary).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_and_read(cluster.client(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Followers first, the leader last (RUNBOOK §7.1 step 5).
    let leader = cluster.leader().await;
    let mut order: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    order.push(leader);
    for id in order {
        let started = Instant::now();
        cluster.upgrade(id, &new_binary);
        // Caught up: it applies what the leader had committed when it came back, and
        // every running voter agrees on a leader.
        let leader_now = cluster.leader().await;
        let target = cluster
            .status(leader_now)
            .await
            .and_then(|s| s.applied_index)
            .unwrap_or(0);
        cluster.wait_applied(id, target).await;
        assert_eq!(
            exe_of(&cluster, id).canonicalize().unwrap(),
            new_binary.canonicalize().unwrap(),
            "node {id} runs the new binary"
        );
        eprintln!(
            "node {id} upgraded and caught up in {} ms",
            started.elapsed().as_millis()
        );
        // Some load between the steps, as an operator watches a minute.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let load = writer.await.unwrap();

    let mut sorted = load.latencies_ms.clone();
    sorted.sort_unstable();
    let pct = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    eprintln!(
        "rolling upgrade: {} writes acknowledged, {} requests, p50 {} ms, p99 {} ms, max {} ms",
        load.acked.len(),
        sorted.len(),
        pct(0.5),
        pct(0.99),
        sorted.last().copied().unwrap_or(0)
    );
    assert!(
        load.failures.is_empty(),
        "failed requests during the upgrade: {:?}",
        load.failures
    );
    assert!(load.acked.len() >= 20, "the load ran: {}", load.acked.len());
    assert!(
        sorted.last().copied().unwrap_or(0) < RETRY_WINDOW.as_millis(),
        "a request took longer than the retry window"
    );

    // Every acknowledged write, on every node (its own state, bounded staleness).
    let leader = cluster.leader().await;
    let target = cluster
        .status(leader)
        .await
        .and_then(|s| s.applied_index)
        .unwrap_or(0);
    for id in 1..=3 {
        cluster.wait_applied(id, target).await;
        let client = cluster.client_for(&[id]);
        for p in &load.acked {
            let r = client
                .lookup_locator(LookupLocatorRequest {
                    patient: p.clone(),
                    read: Some(ReadOptions {
                        consistency: Consistency::BoundedStaleness as i32,
                        max_staleness_ms: 60_000,
                    }),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("node {id}, {p}: {e}"));
            assert_eq!(r.entries.len(), 1, "node {id} lost {p}");
        }
    }
    // The audit chain (every lookup above was audited) verifies on every node.
    let endpoints = cluster.addrs().join(",");
    let out = common::kartotek(&endpoints, &["--json", "audit", "verify"]);
    assert!(
        out.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
}
