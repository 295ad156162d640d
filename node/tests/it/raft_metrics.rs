//! The Raft transport's metrics count what happens: with a follower paused (SIGSTOP) while
//! the others take writes, the leader counts append timeouts to it and shows its replication
//! lag; once the leader has purged its log past a snapshot, the resumed follower catches up
//! by that snapshot, which the leader counts as sent and the follower as installed.

use crate::common;

use std::time::{Duration, Instant};

use common::{TestCluster, free_port, metric_value, metrics_text, org, patient};
use kartotek_proto::v1::RegisterLocatorRequest;

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_timeouts_lag_and_snapshot_sends_are_counted() {
    let mut c = TestCluster::start(3, |spec| {
        spec.metrics_addr = Some(format!("127.0.0.1:{}", free_port()));
        spec.raft.snapshot_logs_since_last = Some(100);
        spec.raft.logs_kept_after_snapshot = Some(10);
    })
    .await;
    let leader = c.leader().await;
    let follower = c
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .unwrap_or(1);
    let metrics_of = |c: &TestCluster, id: u64| {
        let addr = c.nodes[c.idx(id)].metrics_addr.clone();
        metrics_text(&addr.unwrap_or_else(|| panic!("node {id} has no metrics_addr")))
    };
    let target = format!("{{target=\"{follower}\"}}");
    let series = |name: &str| format!("{name}{target}");

    let idx = c.idx(follower);
    c.nodes[idx].process.pause();
    let client = c.client_for(&[leader]);
    let p = patient(11);
    for i in 0..300 {
        client
            .register_locator(RegisterLocatorRequest {
                patient: p.clone(),
                org: org(11),
                system: format!("s{i}"),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("register with a follower paused: {e}"));
    }
    eventually("append timeouts to the paused follower", async || {
        let m = metrics_of(&c, leader);
        metric_value(&m, &series("kartotek_raft_append_timeouts_total")).unwrap_or(0.0) >= 1.0
    })
    .await;
    let m = metrics_of(&c, leader);
    let lag = metric_value(&m, &series("kartotek_raft_replication_lag_entries")).unwrap_or(0.0);
    assert!(
        lag >= 300.0,
        "replication lag of the paused follower: {lag}\n{m}"
    );
    // The other follower and the leader are a majority: nothing waits for a quorum once
    // the writes are in (entries in flight may show for a moment).
    eventually("commit lag 0 with one follower paused", async || {
        let m = metrics_of(&c, leader);
        metric_value(&m, "kartotek_raft_commit_lag_entries") == Some(0.0)
    })
    .await;

    client
        .snapshot(None)
        .await
        .unwrap_or_else(|e| panic!("snapshot: {e}"));
    eventually("the leader purging its log", async || {
        c.status(leader)
            .await
            .unwrap_or_default()
            .purged_index
            .unwrap_or(0)
            > 10
    })
    .await;
    c.nodes[idx].process.resume();
    eventually(
        "the follower installing the leader's snapshot",
        async || {
            let m = metrics_of(&c, follower);
            metric_value(&m, "kartotek_storage_snapshots_installed_total").unwrap_or(0.0) >= 1.0
        },
    )
    .await;
    eventually("the leader counting the snapshot as sent", async || {
        let m = metrics_of(&c, leader);
        metric_value(&m, &series("kartotek_raft_snapshots_sent_total")).unwrap_or(0.0) >= 1.0
            && metric_value(&m, &series("kartotek_raft_snapshot_chunks_sent_total")).unwrap_or(0.0)
                >= 1.0
    })
    .await;
    eventually("the follower catching up", async || {
        let m = metrics_of(&c, leader);
        metric_value(&m, &series("kartotek_raft_replication_lag_entries")) == Some(0.0)
    })
    .await;
    let f = metrics_of(&c, follower);
    assert_eq!(
        metric_value(&f, "kartotek_raft_has_leader"),
        Some(1.0),
        "{f}"
    );
    assert!(metric_value(&f, "kartotek_raft_leader_changes_total").unwrap_or(0.0) >= 1.0);
}
