//! The audit log on a real multi-process cluster: every lookup made in the test — through the
//! client on the leader, as a bounded-staleness read on a follower (whose event goes through
//! that node's fsynced audit journal to the chain), and through the CLI — shows up in `audit query` for the patient with its
//! actor and purpose, and `kartotek audit verify` recomputes the chain and finds every node's
//! head in agreement. Who the events name comes from the callers' tokens; the old caller
//! headers without a token are refused and record nothing.

use crate::common;

use std::process::Command;

use common::{TestCluster, clinician, issuer, org, patient, token_of};
use kartotek_client::{ClientConfig, ClientError, KartotekClient};
use kartotek_proto::v1::{
    Consistency, LookupLocatorRequest, QueryAuditRequest, ReadOptions, RegisterLocatorRequest,
};

/// A client over nodes `ids` calling as clinician `hpr` of org 50, purpose treatment.
fn client_as(c: &TestCluster, ids: &[u64], hpr: &str) -> KartotekClient {
    let endpoints = ids
        .iter()
        .map(|id| c.nodes[c.idx(*id)].addr.clone())
        .collect();
    KartotekClient::with_tokens(
        ClientConfig {
            endpoints,
            deadline_ms: 20_000,
            ..ClientConfig::default()
        },
        issuer().tokens_for(clinician(hpr, &org(50))),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits (at most 15 s: a follower's events reach the chain through its shipper) until the
/// audit log of patient `p` holds what `done` looks for (`what`, for the failure message).
async fn wait_for_audit(
    client: &KartotekClient,
    p: &str,
    what: &str,
    done: impl Fn(&[kartotek_proto::v1::AuditEvent]) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let page = client
            .query_audit(QueryAuditRequest {
                patient: p.to_owned(),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if done(&page.events) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not in the patient's audit log: {what}; it has {:?}",
            page.events
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn lookup(p: &str) -> LookupLocatorRequest {
    LookupLocatorRequest {
        patient: p.to_owned(),
        org: String::new(),
        include_retired: false,
        read: None,
    }
}

/// A bounded-staleness lookup of `p` (at most 5 s behind), which a follower serves itself.
fn bounded_lookup(p: &str) -> LookupLocatorRequest {
    LookupLocatorRequest {
        read: Some(ReadOptions {
            consistency: Consistency::BoundedStaleness as i32,
            max_staleness_ms: 5_000,
        }),
        ..lookup(p)
    }
}

/// Registers one locator entry of patient `p` at org 50.
async fn register_entry(writer: &KartotekClient, p: &str) {
    writer
        .register_locator(RegisterLocatorRequest {
            request_id: String::new(),
            patient: p.to_owned(),
            org: org(50),
            system: "ehr".into(),
            categories: vec!["Observation".into()],
            endpoint_ref: String::new(),
            expected_mod_revision: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A node of `c` other than `leader`.
fn follower_of(c: &TestCluster, leader: u64) -> u64 {
    c.nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_lookup_is_audited_and_the_chain_verifies() {
    let c = TestCluster::start(3, |_| {}).await;
    let p = patient(77);
    let other = patient(78);
    let writer = c.client();
    register_entry(&writer, &p).await;

    // Five linearizable lookups by one clinician, two of another patient.
    let leader = c.leader().await;
    let doctor = client_as(&c, &[leader], "1234567");
    for _ in 0..5 {
        let r = doctor
            .lookup_locator(lookup(&p))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.entries.len(), 1);
    }
    for _ in 0..2 {
        doctor
            .lookup_locator(lookup(&other))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // A bounded-staleness lookup served by a follower: its event goes to the leader.
    let follower = follower_of(&c, leader);
    let nurse = client_as(&c, &[follower], "7654321");
    let mut bounded_done = false;
    for _ in 0..50 {
        match nurse.lookup_locator(bounded_lookup(&p)).await {
            Ok(r) => {
                assert_eq!(r.header.map(|h| h.node_id), Some(follower));
                bounded_done = true;
                break;
            }
            Err(ClientError::FailedPrecondition(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("bounded read: {e}"),
        }
    }
    assert!(bounded_done, "the follower never served the bounded read");
    // One lookup through the CLI, as a citizen.
    let endpoints = c
        .nodes
        .iter()
        .map(|n| n.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    let mut citizen = issuer().claims(
        "test-citizen-app",
        &[
            kartotek_auth::scopes::CITIZEN,
            kartotek_auth::scopes::LOCATOR_READ,
        ],
    );
    citizen.sub = p.clone();
    let out = Command::new(env!("CARGO_BIN_EXE_kartotek"))
        .args(["--endpoints", &endpoints, "--token", &token_of(&citizen)])
        .env_remove("KARTOTEK_CLIENT_FILE")
        .args(["locator", "lookup", "--patient", &p, "--json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The old caller headers name nobody: without a token the call is refused, and records
    // nothing. (A token whose claims are malformed never gets signed: the issuer checks them.)
    let headers_only = KartotekClient::new_as(
        ClientConfig {
            endpoints: vec![c.nodes[c.idx(leader)].addr.clone()],
            ..ClientConfig::default()
        },
        kartotek_client::CallerIdentity {
            actor: Some("personnel:1234567".into()),
            purpose: Some("treatment".into()),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match headers_only.lookup_locator(lookup(&p)).await {
        Err(e) if e.code() == tonic::Code::Unauthenticated => {}
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
    let refused = c.client_as(clinician("1234567", "not-an-org"));
    match refused.lookup_locator(lookup(&p)).await {
        Err(e @ ClientError::Token { .. }) => assert!(e.to_string().contains("orgnr"), "{e}"),
        other => panic!("the issuer must refuse to sign a malformed org, got {other:?}"),
    }

    // Every event was fsynced in its node's audit journal before the answer; the shippers move them
    // into the chain within moments.
    wait_for_audit(&writer, &p, "7 lookups", |events| {
        events
            .iter()
            .filter(|e| e.action == "locator.lookup")
            .count()
            >= 7
    })
    .await;

    // "Who has looked at my data?" — through the CLI, as one JSON document.
    let out = common::kartotek(&endpoints, &["--json", "audit", "query", "--patient", &p]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let events: Vec<serde_json::Value> = answer["events"].as_array().cloned().unwrap_or_default();
    let lookups: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["action"] == "locator.lookup")
        .collect();
    assert_eq!(
        lookups.len(),
        7,
        "5 + 1 bounded + 1 CLI lookups: {events:?}"
    );
    let by = |actor: &str| lookups.iter().filter(|e| e["actor"] == actor).count();
    assert_eq!(by("personnel:1234567"), 5);
    assert_eq!(by("personnel:7654321"), 1);
    assert_eq!(by(&format!("citizen:{p}")), 1);
    // Each event names the node that served it (BALP's server agent): the follower's bounded
    // lookup the follower, the clinician's lookups the leader they were sent to.
    let served = |actor: &str| -> Vec<Option<u64>> {
        lookups
            .iter()
            .filter(|e| e["actor"] == actor)
            .map(|e| e["served_by"].as_u64())
            .collect()
    };
    assert_eq!(served("personnel:7654321"), vec![Some(follower)]);
    assert_eq!(served("personnel:1234567"), vec![Some(leader); 5]);
    // With its seq in that node's journal: no two events of one node share one.
    let mut origins: Vec<(u64, String, u64)> = events
        .iter()
        .filter_map(|e| {
            Some((
                e["served_by"].as_u64()?,
                e["served_journal_id"].as_str()?.to_owned(),
                e["served_journal_seq"].as_u64()?,
            ))
        })
        .collect();
    let node_made = origins.len();
    assert!(node_made >= 7, "{events:?}");
    assert!(origins.iter().all(|o| o.2 > 0), "{origins:?}");
    origins.sort_unstable();
    origins.dedup();
    assert_eq!(origins.len(), node_made, "an origin twice: {events:?}");
    assert!(
        lookups
            .iter()
            .filter(|e| e["actor"] != format!("citizen:{p}"))
            .all(|e| e["purpose"] == "treatment" && e["org"] == org(50))
    );
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "events in chain order"
    );

    // A listing by organisation and a watch deliver the patient's entry: both show in the
    // patient's own audit log, not only under the organisation.
    let lister = c.client_as(clinician("2223334", &org(50)));
    let page = lister
        .list_locators(kartotek_proto::v1::ListLocatorsRequest {
            org: org(50),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(page.entries.iter().any(|e| e.patient == p), "{page:?}");
    let mut watch = lister.watch_locators(kartotek_proto::v1::WatchLocatorsRequest {
        from_revision: 1,
        org: org(50),
        ..Default::default()
    });
    let delivered = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let msg = watch.next().await.unwrap_or_else(|e| panic!("watch: {e}"));
            if msg.events.iter().any(|e| {
                matches!(&e.record, Some(kartotek_proto::v1::change_event::Record::Locator(l)) if l.patient == p)
            }) {
                return;
            }
        }
    })
    .await;
    assert!(delivered.is_ok(), "the watch never delivered the entry");
    drop(watch);
    // The register at the start is a write about the patient: audited as one.
    wait_for_audit(
        &writer,
        &p,
        "the listing, the watch and the write",
        |events| {
            let by_lister = |action: &str| {
                events
                    .iter()
                    .any(|e| e.action == action && e.actor == "personnel:2223334")
            };
            by_lister("locator.list")
                && by_lister("locator.watch")
                && events.iter().any(|e| e.action == "locator.write")
        },
    )
    .await;

    // By organisation: the clinician lookups (acting for org 50) of both patients.
    let by_org = writer
        .query_audit(QueryAuditRequest {
            org: org(50),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        by_org
            .events
            .iter()
            .filter(|e| e.action == "locator.lookup")
            .count()
            >= 8
    );

    // An access decision is audited with its effect, the personnel and the purpose.
    let decided = writer
        .decide_access(kartotek_proto::v1::AccessDecisionRequest {
            patient: p.clone(),
            personnel: "2345678".into(),
            org: org(51),
            service: "kjernejournal".into(),
            purpose: "treatment".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("decide: {e}"));
    let decisions = writer
        .query_audit(QueryAuditRequest {
            org: org(51),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let d = decisions
        .events
        .iter()
        .find(|e| e.action == "access.decide")
        .unwrap_or_else(|| panic!("no access.decide event: {decisions:?}"));
    assert_eq!(d.actor, "personnel:2345678");
    assert_eq!(d.patient, p);
    assert!(!d.decision.is_empty());
    assert!(decided.header.is_some());

    // A representative reads the patient's log only with a representation covering `audit`.
    let proxy = patient(4_000); // an adult
    writer
        .grant_representation(kartotek_proto::v1::GrantRepresentationRequest {
            representative: proxy.clone(),
            represented: p.clone(),
            kind: kartotek_proto::v1::RepresentationKind::PowerOfAttorney as i32,
            areas: vec!["audit".into()],
            source: kartotek_proto::v1::RepresentationSource::PatientGranted as i32,
            granted_by: Some(kartotek_proto::v1::Actor {
                kind: kartotek_proto::v1::ActorKind::Citizen as i32,
                id: p.clone(),
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("grant: {e}"));
    let as_rep = |rep: &str| QueryAuditRequest {
        patient: p.clone(),
        representative: rep.to_owned(),
        limit: 1000,
        ..Default::default()
    };
    let seen = writer
        .query_audit(as_rep(&proxy))
        .await
        .unwrap_or_else(|e| panic!("representative query: {e}"));
    assert!(seen.events.iter().any(|e| e.action == "locator.lookup"));
    match writer.query_audit(as_rep(&patient(4_001))).await {
        Err(ClientError::Status(s)) if s.code() == tonic::Code::PermissionDenied => {}
        other => panic!("a stranger must be refused, got {other:?}"),
    }

    // The chain verifies and every node's head agrees.
    let out = common::kartotek(&endpoints, &["--json", "audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["events"].as_u64().unwrap_or(0) >= 10, "{v}");
    assert!(
        v["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().filter(|n| n["agrees"] == true).count() >= 1),
        "{v}"
    );

    // National ids never appear in node logs.
    for n in &c.nodes {
        assert!(
            !c.log(n.id).contains(&p),
            "node {} logged a national id",
            n.id
        );
    }
}

/// A node stopped cleanly (SIGTERM, as an operator decommissions one) ships its audit journal
/// into the chain before it exits (`audit.drain_on_stop_ms`), so wiping its data dir afterwards
/// loses no event. The follower's shipper waits 1 s after each ship here
/// (`audit.ship_interval_ms`), so the last lookups are still in its journal when it is told
/// to stop; right after it exited, the leader's chain already holds every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clean_stop_ships_the_journal_before_exiting() {
    let mut c = TestCluster::start(3, |spec| {
        spec.extra_toml
            .push_str("\n[audit]\nship_interval_ms = 1000\n");
    })
    .await;
    let p = patient(79);
    let writer = c.client();
    register_entry(&writer, &p).await;
    let leader = c.leader().await;
    let follower = follower_of(&c, leader);
    let nurse = client_as(&c, &[follower], "7654321");
    let mut served = 0;
    for _ in 0..100 {
        match nurse.lookup_locator(bounded_lookup(&p)).await {
            Ok(r) => {
                assert_eq!(r.header.map(|h| h.node_id), Some(follower));
                served += 1;
                if served == 5 {
                    break;
                }
            }
            Err(ClientError::FailedPrecondition(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("bounded read: {e}"),
        }
    }
    assert_eq!(served, 5, "the follower never served five bounded reads");
    c.stop(follower);
    assert!(
        c.log(follower)
            .contains("audit journal drained into the chain before stopping"),
        "the stopping follower did not drain its journal: {}",
        c.log(follower)
    );
    let chain = client_as(&c, &[leader], "1234567")
        .query_audit(QueryAuditRequest {
            patient: p.clone(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let lookups = chain
        .events
        .iter()
        .filter(|e| e.action == "locator.lookup")
        .count();
    assert_eq!(lookups, 5, "{:?}", chain.events);
}
