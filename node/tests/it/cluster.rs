//! Multi-process cluster tests: real `kartotek node` processes on loopback, driven through the
//! client. Each test states the guarantee it checks.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{TestCluster, org, patient};
use kartotek_client::ClientError;
use kartotek_proto::v1::{
    Consistency, LookupLocatorRequest, ReadOptions, RegisterLocatorRequest, RetireLocatorRequest,
};
use nix::sys::signal::Signal;

fn register(p: &str, o: &str, system: &str, request_id: &str) -> RegisterLocatorRequest {
    RegisterLocatorRequest {
        request_id: request_id.into(),
        patient: p.into(),
        org: o.into(),
        system: system.into(),
        categories: vec!["Observation".into(), "Condition".into()],
        endpoint_ref: "fhir-api-1".into(),
        expected_mod_revision: None,
    }
}

fn lookup(p: &str) -> LookupLocatorRequest {
    LookupLocatorRequest {
        patient: p.into(),
        org: String::new(),
        include_retired: true,
        read: None,
    }
}

fn bounded(p: &str, ms: u64) -> LookupLocatorRequest {
    LookupLocatorRequest {
        read: Some(ReadOptions {
            consistency: Consistency::BoundedStaleness as i32,
            max_staleness_ms: ms,
        }),
        ..lookup(p)
    }
}

fn systems(entries: &[kartotek_proto::v1::LocatorEntry]) -> BTreeSet<String> {
    entries.iter().map(|e| e.system.clone()).collect()
}

/// A write acknowledged through one node is visible to a linearizable read sent to another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_then_linearizable_read_on_another_node() {
    let c = TestCluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let follower = c
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .unwrap_or(1);
    let p = patient(1);
    let resp = c
        .client_for(&[leader])
        .register_locator(register(&p, &org(1), "ehr-a", ""))
        .await
        .unwrap_or_else(|e| panic!("register: {e}"));
    assert!(resp.changed);
    // A client that only knows the follower is redirected to the leader for the read.
    let got = c
        .client_for(&[follower])
        .lookup_locator(lookup(&p))
        .await
        .unwrap_or_else(|e| panic!("lookup: {e}"));
    assert_eq!(systems(&got.entries), BTreeSet::from(["ehr-a".to_string()]));
    let h = got.header.unwrap_or_default();
    assert!(h.revision >= 1);
    assert_eq!(
        got.entries[0].categories,
        vec!["Condition".to_string(), "Observation".to_string()]
    );
}

/// kill -9 of the leader during a stream of concurrent writes loses no acknowledged write,
/// neither after re-election nor after the killed node restarts from its disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leader_during_writes_loses_no_acknowledged_write() {
    let mut c = TestCluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let client = c.client();
    let writers = 8u32;
    let run_for = Duration::from_secs(4);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let p = patient(100 + w);
            let o = org(2);
            let mut acked = BTreeSet::new();
            let mut failed = 0u32;
            let started = Instant::now();
            let mut i = 0u32;
            while started.elapsed() < run_for {
                let system = format!("sys-{w}-{i}");
                match client.register_locator(register(&p, &o, &system, "")).await {
                    Ok(_) => {
                        acked.insert(system);
                    }
                    Err(_) => failed += 1,
                }
                i += 1;
            }
            (p, acked, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.kill9(leader);
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap_or_else(|e| panic!("writer: {e}")));
    }
    let total: usize = results.iter().map(|(_, a, _)| a.len()).sum();
    assert!(
        total > 50,
        "too few writes acknowledged ({total}) to mean anything"
    );
    let new_leader = c.leader().await;
    assert_ne!(new_leader, leader);
    for (p, acked, _) in &results {
        let got = client
            .lookup_locator(lookup(p))
            .await
            .unwrap_or_else(|e| panic!("lookup after failover: {e}"));
        let have = systems(&got.entries);
        let lost: Vec<_> = acked.difference(&have).collect();
        assert!(
            lost.is_empty(),
            "acknowledged writes lost after failover: {lost:?}"
        );
    }
    // The killed node restarts from its own disk and catches up.
    c.restart(leader);
    let commit = c
        .status(new_leader)
        .await
        .and_then(|s| s.applied_index)
        .unwrap_or(0);
    c.wait_applied(leader, commit).await;
    let local = c.client_for(&[leader]);
    for (p, acked, _) in &results {
        let got = local
            .lookup_locator(bounded(p, 10_000))
            .await
            .unwrap_or_else(|e| panic!("lookup on restarted node: {e}"));
        assert_eq!(got.header.as_ref().map(|h| h.node_id), Some(leader));
        let have = systems(&got.entries);
        assert!(
            acked.is_subset(&have),
            "restarted node misses acknowledged writes"
        );
    }
}

/// All nodes stopped and started again: the state is intact and the cluster serves writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_keeps_state() {
    let mut c = TestCluster::start(3, |_| {}).await;
    let client = c.client();
    let p = patient(7);
    for i in 0..20 {
        client
            .register_locator(register(&p, &org(3), &format!("s{i}"), ""))
            .await
            .unwrap_or_else(|e| panic!("register: {e}"));
    }
    let before = client
        .lookup_locator(lookup(&p))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for id in 1..=3 {
        c.stop(id);
    }
    for id in 1..=3 {
        c.restart(id);
    }
    c.leader().await;
    let after = client
        .lookup_locator(lookup(&p))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after.entries, before.entries);
    let h = after.header.unwrap_or_default();
    assert_eq!(h.revision, before.header.unwrap_or_default().revision);
    client
        .register_locator(register(&p, &org(3), "after-restart", ""))
        .await
        .unwrap_or_else(|e| panic!("write after restart: {e}"));
}

/// A 4th node added as a learner after the log was purged past a snapshot catches up by
/// snapshot; promoted, it replaces a removed voter and writes keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_catches_up_by_snapshot_then_replaces_a_voter() {
    let mut c = TestCluster::start(3, |cfg| {
        cfg.raft.snapshot_logs_since_last = Some(100);
        cfg.raft.logs_kept_after_snapshot = Some(10);
    })
    .await;
    let client = c.client();
    let p = patient(9);
    for i in 0..300 {
        client
            .register_locator(register(&p, &org(4), &format!("s{i}"), ""))
            .await
            .unwrap_or_else(|e| panic!("register: {e}"));
    }
    let leader = c.leader().await;
    client
        .snapshot(None)
        .await
        .unwrap_or_else(|e| panic!("snapshot: {e}"));
    // Wait until the leader has purged its log past the start.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = c.status(leader).await.unwrap_or_default();
        if s.purged_index.unwrap_or(0) > 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader never purged its log: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let idx = c.add_node_process(4);
    let addr = c.nodes[idx].addr.clone();
    let raft_addr = c.nodes[idx].raft_addr.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.status(4).await.is_none() {
        assert!(Instant::now() < deadline, "node 4 did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client
        .add_learner(kartotek_proto::v1::AddLearnerRequest {
            node_id: 4,
            addr: addr.clone(),
            wait_caught_up: true,
            raft_addr,
        })
        .await
        .unwrap_or_else(|e| panic!("add learner: {e}"));
    let s4 = c.status(4).await.unwrap_or_default();
    assert!(
        s4.snapshot_index.unwrap_or(0) > 0,
        "the learner should have been given a snapshot: {s4:?}"
    );
    let got = c
        .client_for(&[4])
        .lookup_locator(bounded(&p, 10_000))
        .await
        .unwrap_or_else(|e| panic!("read on learner: {e}"));
    assert_eq!(got.entries.len(), 300);

    client
        .promote(4)
        .await
        .unwrap_or_else(|e| panic!("promote: {e}"));
    let victim = c
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader && *id != 4)
        .unwrap_or(1);
    let m = client
        .remove(victim)
        .await
        .unwrap_or_else(|e| panic!("remove: {e}"));
    let voters: BTreeSet<u64> = m
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.node_id)
        .collect();
    assert!(
        voters.contains(&4) && !voters.contains(&victim),
        "membership: {voters:?}"
    );
    c.kill9(victim);
    client
        .register_locator(register(&p, &org(4), "after-change", ""))
        .await
        .unwrap_or_else(|e| panic!("write after membership change: {e}"));
    let got = client
        .lookup_locator(lookup(&p))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.entries.len(), 301);
}

/// A bounded-staleness read is served locally when the replica can prove its bound, and
/// refused (not answered stale) when it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_read_honours_its_staleness_bound() {
    let c = TestCluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let ids: Vec<u64> = c
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|id| *id != leader)
        .collect();
    let (f, other) = (ids[0], ids[1]);
    let p = patient(11);
    c.client()
        .register_locator(register(&p, &org(5), "ehr", ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let local = c.client_for(&[f]);
    let got = local
        .lookup_locator(bounded(&p, 2_000))
        .await
        .unwrap_or_else(|e| panic!("bounded read: {e}"));
    assert_eq!(
        got.header.as_ref().map(|h| h.node_id),
        Some(f),
        "served by the follower"
    );
    assert_eq!(
        got.entries.len(),
        1,
        "the read reflects the acknowledged write"
    );

    // Cut the follower off from everyone: it can no longer prove freshness.
    c.signal(leader, Signal::SIGSTOP);
    c.signal(other, Signal::SIGSTOP);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = Instant::now();
    let refused = local.lookup_locator(bounded(&p, 300)).await;
    match refused {
        Err(ClientError::FailedPrecondition(msg)) => assert!(msg.contains("staleness"), "{msg}"),
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refusal must be prompt"
    );
    // A generous bound is still provable from the earlier proof (< 60 s old).
    let got = local
        .lookup_locator(bounded(&p, 60_000))
        .await
        .unwrap_or_else(|e| panic!("generous bound: {e}"));
    assert_eq!(got.entries.len(), 1);
    c.signal(leader, Signal::SIGCONT);
    c.signal(other, Signal::SIGCONT);
}

/// A write retried with the same request id is applied once; the retry gets the original
/// answer even after the state moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_write_with_same_request_id_applies_once() {
    let c = TestCluster::start(3, |_| {}).await;
    let client = c.client();
    let p = patient(13);
    let rid = "5b1f7f3e-6c1a-4c56-9a0e-2d4f1e7b9a01";
    let first = client
        .register_locator(register(&p, &org(6), "ehr", rid))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let retired = client
        .retire_locator(RetireLocatorRequest {
            request_id: String::new(),
            patient: p.clone(),
            org: org(6),
            system: "ehr".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(retired.changed);
    let retry = client
        .register_locator(register(&p, &org(6), "ehr", rid))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        retry.entry, first.entry,
        "the retry gets the original answer"
    );
    assert_eq!(
        retry.header.as_ref().map(|h| h.revision),
        first.header.as_ref().map(|h| h.revision)
    );
    let now = client
        .lookup_locator(lookup(&p))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(now.entries.len(), 1);
    assert_eq!(
        now.entries[0].status,
        kartotek_proto::v1::LocatorStatus::Retired as i32,
        "the retried register must not have been applied again"
    );
    // A request id is the caller's own: another caller's request under the same id is
    // another request (applied, not given the first caller's answer) ...
    let other_caller = c.client_as(common::clinician("9144889", &org(7)));
    let theirs = other_caller
        .register_locator(register(&p, &org(7), "ehr", rid))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        theirs.changed,
        "another caller got the first caller's answer"
    );
    assert_eq!(
        theirs.entry.as_ref().map(|e| e.org.as_str()),
        Some(org(7).as_str())
    );
    // ... and the same caller reusing it for a different request is refused, not answered
    // with the first request's answer.
    match client
        .register_locator(register(&p, &org(8), "ehr", rid))
        .await
    {
        Err(ClientError::FailedPrecondition(m)) => {
            assert!(m.contains("another request"), "{m}")
        }
        other => panic!("a reused request id for another request: {other:?}"),
    }
    let now = client
        .lookup_locator(lookup(&p))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(now.entries.len(), 2, "org 8 must not have been registered");
    // Bad input is refused with the field named, and writes nothing.
    let before = now.header.map(|h| h.revision);
    let err = client
        .register_locator(register("12345678901", &org(6), "ehr", ""))
        .await;
    match err {
        Err(ClientError::InvalidArgument { field, .. }) => {
            assert_eq!(field.as_deref(), Some("patient"))
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    let after = client
        .lookup_locator(lookup(&p))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after.header.map(|h| h.revision), before);

    // Compare-and-set: a stale expected revision is refused and writes nothing; the current
    // one takes effect.
    let current = after.entries[0].mod_revision;
    let cas = |expected: u64| RegisterLocatorRequest {
        expected_mod_revision: Some(expected),
        categories: vec!["Condition".into()],
        ..register(&p, &org(6), "ehr", "")
    };
    match client.register_locator(cas(current - 1)).await {
        Err(ClientError::FailedPrecondition(_)) => {}
        other => panic!("expected FAILED_PRECONDITION for a stale CAS, got {other:?}"),
    }
    let done = client
        .register_locator(cas(current))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(done.changed);
    assert!(done.entry.is_some_and(|e| e.mod_revision > current));
}

/// Raft is served on its own port only; garbage and foreign-cluster Raft traffic there gets an
/// error, never a crash; the cluster keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_foreign_raft_traffic_is_refused() {
    use kartotek_proto::CLUSTER_HEADER;
    use kartotek_proto::raft::v1::RaftPayload;
    use kartotek_proto::raft::v1::raft_service_client::RaftServiceClient;

    let c = TestCluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let payload = |data: Vec<u8>, cluster: &str| {
        let mut r = tonic::Request::new(RaftPayload { data });
        if let Ok(v) = cluster.parse() {
            r.metadata_mut().insert(CLUSTER_HEADER, v);
        }
        r
    };
    // The public port does not serve Raft at all: it has a listener of its own.
    let public = format!("http://{}", c.nodes[c.idx(leader)].addr);
    let mut on_public = RaftServiceClient::connect(public)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // (`raw` below speaks mutual TLS with a certificate of the cluster's CA: the garbage
    // checks are about what a member may send, not about who may connect.)
    let e = on_public
        .vote(payload(vec![], "kartotek-test"))
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(e, Some(tonic::Code::Unimplemented));
    let raft_addr = c.nodes[c.idx(leader)].raft_addr.clone();
    let peer = c
        .pki
        .node("peer", &["127.0.0.1"])
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut raw = raft_client(&raft_addr, Some(&peer)).await;
    let e = raw
        .append_entries(payload(vec![0xff; 64], "kartotek-test"))
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(e, Some(tonic::Code::InvalidArgument));
    let e = raw
        .vote(payload(vec![], "other-cluster"))
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(e, Some(tonic::Code::PermissionDenied));
    let e = raw
        .install_snapshot(tonic::Request::new(RaftPayload {
            data: vec![1, 2, 3],
        }))
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(e, Some(tonic::Code::PermissionDenied));
    // A request meant for another node id (a stale membership entry at a reused address).
    let mut misaddressed = payload(vec![], "kartotek-test");
    misaddressed.metadata_mut().insert(
        kartotek_proto::TARGET_NODE_HEADER,
        tonic::metadata::MetadataValue::from_static("99"),
    );
    let e = raw.vote(misaddressed).await.err().map(|s| s.code());
    assert_eq!(e, Some(tonic::Code::PermissionDenied));
    // Still the same leader, still serving.
    assert_eq!(c.leader().await, leader);
    c.client()
        .register_locator(register(&patient(15), &org(7), "after-garbage", ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A Raft client to `addr`: mutual TLS with `tls` (CA + the client's certificate), or with the
/// server checked against `tls` but no certificate of its own when `tls.cert_file` is empty,
/// or plaintext without `tls`. Connection errors come back from the first call.
async fn raft_client(
    addr: &str,
    tls: Option<&kartotek_testkit::TlsFiles>,
) -> kartotek_proto::raft::v1::raft_service_client::RaftServiceClient<tonic::transport::Channel> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let read = |p: &std::path::Path| std::fs::read(p).unwrap_or_else(|e| panic!("{e}"));
    let endpoint = match tls {
        None => Endpoint::from_shared(format!("http://{addr}")),
        Some(files) => {
            let mut cfg = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(&files.ca_file)))
                .domain_name("127.0.0.1");
            if !files.cert_file.as_os_str().is_empty() {
                cfg = cfg.identity(Identity::from_pem(
                    read(&files.cert_file),
                    read(&files.key_file),
                ));
            }
            Endpoint::from_shared(format!("https://{addr}")).and_then(|e| e.tls_config(cfg))
        }
    }
    .unwrap_or_else(|e| panic!("{e}"))
    .connect_timeout(Duration::from_secs(5));
    kartotek_proto::raft::v1::raft_service_client::RaftServiceClient::new(endpoint.connect_lazy())
}

/// The Raft listener talks only to holders of a cluster certificate: plaintext, TLS without a
/// client certificate, and a certificate of another CA are all refused before any Raft
/// message is read; the cluster's own CA gets through to the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_listener_refuses_hosts_without_a_cluster_certificate() {
    use kartotek_proto::raft::v1::RaftPayload;

    let c = TestCluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let raft_addr = c.nodes[c.idx(leader)].raft_addr.clone();
    let vote = |mut client: kartotek_proto::raft::v1::raft_service_client::RaftServiceClient<
        tonic::transport::Channel,
    >| async move {
        let mut r = tonic::Request::new(RaftPayload {
            data: vec![0xff; 8],
        });
        if let Ok(v) = "kartotek-test".parse() {
            r.metadata_mut().insert(kartotek_proto::CLUSTER_HEADER, v);
        }
        client.vote(r).await.err().map(|s| s.code())
    };
    let refused = |code: Option<tonic::Code>, what: &str| {
        assert!(
            code.is_some() && code != Some(tonic::Code::InvalidArgument),
            "{what}: the call reached the Raft service ({code:?})"
        );
    };
    refused(vote(raft_client(&raft_addr, None).await).await, "plaintext");
    let no_cert = kartotek_testkit::TlsFiles {
        ca_file: c.pki.ca_file().to_path_buf(),
        cert_file: Default::default(),
        key_file: Default::default(),
    };
    refused(
        vote(raft_client(&raft_addr, Some(&no_cert)).await).await,
        "TLS without a client certificate",
    );
    let other_ca = kartotek_testkit::TestPki::new(&c.dir.path().join("other-pki"), "other")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let stranger = other_ca
        .node("stranger", &["127.0.0.1"])
        .unwrap_or_else(|e| panic!("{e:#}"));
    let stranger = kartotek_testkit::TlsFiles {
        ca_file: c.pki.ca_file().to_path_buf(),
        ..stranger
    };
    refused(
        vote(raft_client(&raft_addr, Some(&stranger)).await).await,
        "a certificate of another CA",
    );
    let member = c
        .pki
        .node("member", &["127.0.0.1"])
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        vote(raft_client(&raft_addr, Some(&member)).await).await,
        Some(tonic::Code::InvalidArgument),
        "a cluster certificate reaches the service (which refuses the garbage payload)"
    );
    // The cluster itself still works over TLS: a write commits and reads back.
    c.client()
        .register_locator(register(&patient(16), &org(8), "over-tls", ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.leader().await, leader);
}

/// The public API over TLS (`[tls.api]`): a client that trusts the CA of the nodes' API
/// certificates registers and looks up; a plaintext client and a client that trusts another
/// CA get no answer at all (the handshake fails before a request is read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_api_serves_tls_when_configured() {
    use kartotek_client::{ClientConfig, KartotekClient};

    let cluster = TestCluster::start_with_api_tls(1).await;
    let clinician = common::clinician("1234567", &org(1));
    let tls = cluster.client_as(clinician.clone());
    let p = patient(901);
    tls.register_locator(register(&p, &org(1), "tls-ehr", ""))
        .await
        .unwrap_or_else(|e| panic!("register over TLS: {e}"));
    let found = tls
        .lookup_locator(LookupLocatorRequest {
            patient: p.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("lookup over TLS: {e}"));
    assert_eq!(found.entries.len(), 1);

    let other = kartotek_testkit::TestPki::new(&cluster.dir.path().join("other-pki"), "other")
        .unwrap_or_else(|e| panic!("{e:#}"));
    for (what, ca_file) in [
        ("plaintext", None),
        ("another CA", Some(other.ca_file().to_path_buf())),
    ] {
        let config = ClientConfig {
            endpoints: cluster.addrs(),
            ca_file,
            attempt_timeout_ms: 500,
            deadline_ms: 1_500,
            ..ClientConfig::default()
        };
        let client =
            KartotekClient::with_tokens(config, common::issuer().tokens_for(clinician.clone()))
                .unwrap_or_else(|e| panic!("{e}"));
        let r = client
            .lookup_locator(LookupLocatorRequest {
                patient: p.clone(),
                ..Default::default()
            })
            .await;
        assert!(
            r.is_err(),
            "{what}: a lookup without the right TLS was answered"
        );
    }
}
