//! Integration tests of the client's routing and retry behaviour against in-process fake
//! nodes: leader hints, stable request ids, final errors, deadlines, bounded-staleness reads.

// Test code: a failed expect is a failed test (house rule 4 exempts tests).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kartotek_client::proto::{
    AddLearnerRequest, Consistency, LookupLocatorRequest, Member, ReadOptions,
    RegisterLocatorRequest, RetireLocatorRequest,
};
use kartotek_client::{ClientConfig, ClientError, KartotekClient};
use support::{FakeNode, Reply, dead_addr, invalid, not_leader};
use tonic::{Code, Status};

/// A client for `endpoints` with short, test-friendly timings.
fn client(endpoints: Vec<String>) -> KartotekClient {
    client_with(endpoints, |_| {})
}

fn client_with(endpoints: Vec<String>, adjust: impl FnOnce(&mut ClientConfig)) -> KartotekClient {
    let mut config = ClientConfig {
        endpoints,
        connect_timeout_ms: 500,
        attempt_timeout_ms: 1000,
        deadline_ms: 5000,
        backoff_initial_ms: 10,
        backoff_max_ms: 100,
        token: None,
        ca_file: None,
    };
    adjust(&mut config);
    KartotekClient::new(config).expect("valid config")
}

fn register_request() -> RegisterLocatorRequest {
    RegisterLocatorRequest {
        request_id: String::new(),
        patient: "01010112345".into(),
        org: "123456789".into(),
        system: "ehr".into(),
        categories: vec!["Observation".into()],
        endpoint_ref: "fhir-1".into(),
        expected_mod_revision: None,
    }
}

fn bounded_lookup() -> LookupLocatorRequest {
    LookupLocatorRequest {
        patient: "01010112345".into(),
        org: String::new(),
        include_retired: false,
        read: Some(ReadOptions {
            consistency: Consistency::BoundedStaleness as i32,
            max_staleness_ms: 500,
        }),
    }
}

// (a)
#[tokio::test]
async fn follows_leader_hint_with_the_same_request_id() {
    let leader = FakeNode::healthy(2).await;
    let hint = leader.addr();
    let follower = FakeNode::start(1, move |_, _| {
        Reply::Fail(not_leader(Some((2, hint.as_str()))))
    })
    .await;
    // A large backoff: following a fresh hint must not wait for it.
    let client = client_with(vec![follower.addr()], |c| {
        c.backoff_initial_ms = 4000;
        c.backoff_max_ms = 4000;
    });

    let started = Instant::now();
    let answer = client
        .register_locator(register_request())
        .await
        .expect("register succeeds on the leader");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "slept before following a fresh hint: {:?}",
        started.elapsed()
    );
    assert_eq!(answer.header.map(|h| h.node_id), Some(2));

    let at_follower = follower.seen();
    let at_leader = leader.seen();
    assert_eq!(at_follower.len(), 1);
    assert_eq!(at_leader.len(), 1);
    let id = &at_follower[0].request_id;
    let uuid = uuid::Uuid::parse_str(id).expect("request id is a UUID");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(
        &at_leader[0].request_id, id,
        "leader saw a different request id"
    );
    assert_eq!(at_leader[0].header_request_id.as_ref(), Some(id));
    assert_eq!(at_follower[0].header_request_id.as_ref(), Some(id));

    // The hint was learned: the next call goes straight to the leader.
    assert_eq!(client.leader(), Some(leader.uri()));
    assert!(client.endpoints().contains(&leader.uri()));
    client
        .register_locator(register_request())
        .await
        .expect("second register");
    assert_eq!(follower.calls(), 1);
    assert_eq!(leader.calls(), 2);
    let ids: Vec<String> = leader.seen().into_iter().map(|s| s.request_id).collect();
    assert_ne!(ids[0], ids[1], "each call gets its own request id");
}

// (b)
#[tokio::test]
async fn retries_unavailable_without_hint_keeping_the_request_id() {
    let leader = FakeNode::start(1, |n, _| {
        if n == 0 {
            Reply::Fail(not_leader(None))
        } else {
            Reply::Ok
        }
    })
    .await;
    let client = client(vec![leader.addr()]);
    let given = uuid::Uuid::new_v4().to_string();
    let answer = client
        .register_locator(RegisterLocatorRequest {
            request_id: given.clone(),
            ..register_request()
        })
        .await
        .expect("retry succeeds");
    assert!(answer.changed);
    let seen = leader.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.request_id == given));
    assert!(
        seen.iter()
            .all(|s| s.header_request_id.as_deref() == Some(given.as_str()))
    );
}

#[tokio::test]
async fn retire_retries_after_an_attempt_timeout_with_the_same_request_id() {
    let leader = FakeNode::start(1, |n, _| {
        if n == 0 {
            Reply::Delay(Duration::from_secs(3))
        } else {
            Reply::Ok
        }
    })
    .await;
    let client = client_with(vec![leader.addr()], |c| c.attempt_timeout_ms = 200);
    client
        .retire_locator(RetireLocatorRequest {
            request_id: String::new(),
            patient: "01010112345".into(),
            org: "123456789".into(),
            system: "ehr".into(),
        })
        .await
        .expect("second attempt succeeds");
    let seen = leader.seen();
    assert_eq!(seen.len(), 2);
    assert!(!seen[0].request_id.is_empty());
    assert_eq!(seen[0].request_id, seen[1].request_id);
}

// (c)
#[tokio::test]
async fn invalid_argument_is_final_and_names_the_field() {
    let leader = FakeNode::start(1, |_, _| Reply::Fail(invalid("patient"))).await;
    let other = FakeNode::healthy(2).await;
    let client = client(vec![leader.addr(), other.addr()]);
    let err = client
        .register_locator(register_request())
        .await
        .expect_err("invalid argument");
    match &err {
        ClientError::InvalidArgument { field, message } => {
            assert_eq!(field.as_deref(), Some("patient"));
            assert!(message.contains("11 digits"), "{message}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.field(), Some("patient"));
    assert_eq!(leader.calls(), 1, "exactly one attempt");
    assert_eq!(other.calls(), 0);
}

#[tokio::test]
async fn final_codes_are_not_retried() {
    for (code, expect) in [
        (Code::NotFound, Code::NotFound),
        (Code::AlreadyExists, Code::AlreadyExists),
        (Code::FailedPrecondition, Code::FailedPrecondition),
        (Code::PermissionDenied, Code::PermissionDenied),
        (Code::Unauthenticated, Code::Unauthenticated),
        (Code::ResourceExhausted, Code::ResourceExhausted),
        (Code::OutOfRange, Code::OutOfRange),
        // Sent by the server itself, not caused by the transport.
        (Code::Internal, Code::Internal),
        (Code::Unknown, Code::Unknown),
    ] {
        let node = FakeNode::start(1, move |_, _| Reply::Fail(Status::new(code, "no"))).await;
        let client = client(vec![node.addr()]);
        let err = client.promote(4).await.expect_err("final error");
        assert_eq!(err.code(), expect, "{err:?}");
        assert_eq!(node.calls(), 1, "{code:?} retried");
    }
}

// (d)
#[tokio::test]
async fn all_endpoints_down_fails_after_the_deadline() {
    let endpoints = vec![dead_addr().to_string(), dead_addr().to_string()];
    let client = client_with(endpoints, |c| {
        c.deadline_ms = 400;
        c.attempt_timeout_ms = 200;
        c.backoff_initial_ms = 10;
        c.backoff_max_ms = 50;
    });
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        client.register_locator(register_request()),
    )
    .await
    .expect("the call ends by itself");
    let elapsed = started.elapsed();
    let err = result.expect_err("nothing to talk to");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.attempts().is_some_and(|n| n >= 2), "{err:?}");
    assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn a_slow_node_ends_in_deadline_exceeded() {
    let node = FakeNode::start(1, |_, _| Reply::Delay(Duration::from_secs(5))).await;
    let client = client_with(vec![node.addr()], |c| {
        c.deadline_ms = 300;
        c.attempt_timeout_ms = 100;
    });
    let started = Instant::now();
    let err = client.promote(2).await.expect_err("too slow");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(node.calls() >= 2, "attempt timeouts are retried");
}

// (e)
#[tokio::test]
async fn bounded_staleness_goes_to_the_preferred_endpoint_only() {
    let preferred = FakeNode::start(1, |_, seen| {
        if seen.consistency == Consistency::BoundedStaleness as i32 {
            Reply::Fail(Status::failed_precondition("replica too far behind"))
        } else {
            Reply::Ok
        }
    })
    .await;
    let leader = FakeNode::healthy(2).await;
    let client = client(vec![preferred.addr(), leader.addr()]);

    let err = client
        .lookup_locator(bounded_lookup())
        .await
        .expect_err("too stale");
    assert!(matches!(err, ClientError::FailedPrecondition(_)), "{err:?}");
    assert_eq!(preferred.calls(), 1, "FailedPrecondition is not retried");
    assert_eq!(leader.calls(), 0);

    // The caller then reads linearizably: that one is allowed anywhere.
    client
        .lookup_locator(LookupLocatorRequest {
            read: None,
            ..bounded_lookup()
        })
        .await
        .expect("linearizable read");
}

#[tokio::test]
async fn bounded_staleness_ignores_leader_hints() {
    let leader = FakeNode::healthy(2).await;
    let hint = leader.addr();
    let preferred = FakeNode::start(1, move |_, _| {
        Reply::Fail(not_leader(Some((2, hint.as_str()))))
    })
    .await;
    let client = client_with(vec![preferred.addr(), leader.addr()], |c| {
        c.deadline_ms = 300;
    });
    let err = client
        .lookup_locator(bounded_lookup())
        .await
        .expect_err("preferred never answers");
    // Unavailable (the last refusal) when the deadline falls between attempts,
    // DeadlineExceeded when it falls during one (seen on a loaded machine); the point is
    // below: the leader was never asked.
    assert!(
        matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{err:?}"
    );
    assert!(preferred.calls() >= 1);
    assert_eq!(
        leader.calls(),
        0,
        "followed a hint on a bounded-staleness read"
    );
    assert_eq!(client.leader(), None);
}

#[tokio::test]
async fn linearizable_lookup_follows_hints() {
    let leader = FakeNode::healthy(3).await;
    let hint = leader.addr();
    let follower = FakeNode::start(1, move |_, _| {
        Reply::Fail(not_leader(Some((3, hint.as_str()))))
    })
    .await;
    let client = client(vec![follower.addr()]);
    let answer = client
        .lookup_locator(LookupLocatorRequest {
            read: Some(ReadOptions {
                consistency: Consistency::Linearizable as i32,
                max_staleness_ms: 0,
            }),
            ..bounded_lookup()
        })
        .await
        .expect("read on the leader");
    assert_eq!(answer.header.map(|h| h.node_id), Some(3));
    assert_eq!(leader.calls(), 1);
}

#[tokio::test]
async fn dead_leader_is_skipped_round_robin() {
    let good = FakeNode::healthy(2).await;
    let client = client(vec![dead_addr().to_string(), good.addr()]);
    let answer = client
        .register_locator(register_request())
        .await
        .expect("second endpoint answers");
    assert_eq!(answer.header.map(|h| h.node_id), Some(2));
    assert_eq!(client.leader(), Some(good.uri()));
}

#[tokio::test]
async fn transport_failures_are_retried_on_the_next_endpoint() {
    // Accepts TCP connections and drops them at once: no HTTP/2, no gRPC status.
    let rude = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let rude_addr = rude.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    tokio::spawn(async move {
        while !stop_flag.load(Ordering::Relaxed) {
            if let Ok((socket, _)) = rude.accept().await {
                drop(socket);
            }
        }
    });
    let good = FakeNode::healthy(2).await;
    let client = client(vec![rude_addr.to_string(), good.addr()]);
    client
        .add_learner(AddLearnerRequest {
            node_id: 4,
            addr: "127.0.0.1:7404".into(),
            wait_caught_up: false,
            raft_addr: "127.0.0.1:7504".into(),
        })
        .await
        .expect("good node answers");
    assert_eq!(good.calls(), 1);
    stop.store(true, Ordering::Relaxed);
}

#[tokio::test]
async fn token_is_sent_on_every_call() {
    let node = FakeNode::healthy(1).await;
    let client = client_with(vec![node.addr()], |c| c.token = Some("s3cr3t-t0k".into()));
    client.status(&node.addr()).await.expect("status");
    client
        .register_locator(register_request())
        .await
        .expect("register");
    client.snapshot(None).await.expect("snapshot");
    let seen = node.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer s3cr3t-t0k"))
    );
    assert!(
        !format!("{client:?}").contains("s3cr3t"),
        "token in Debug output"
    );
}

#[tokio::test]
async fn status_is_one_attempt_and_status_all_covers_every_endpoint() {
    let up = FakeNode::healthy(1).await;
    let down = dead_addr().to_string();
    let client = client(vec![up.addr(), down.clone()]);

    let status = client.status(&up.uri()).await.expect("status");
    assert_eq!(status.node_id, 1);

    let err = client.status(&down).await.expect_err("down");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.attempts(), Some(1));

    let all = client.status_all().await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0, up.uri());
    assert_eq!(all[0].1.as_ref().map(|s| s.node_id).ok(), Some(1));
    assert_eq!(all[1].0, format!("http://{down}"));
    assert!(all[1].1.is_err());
}

#[tokio::test]
async fn admin_calls_follow_hints_and_snapshot_can_target_a_node() {
    let leader = FakeNode::healthy(2).await;
    let hint = leader.addr();
    let follower = FakeNode::start(1, move |_, seen| {
        if seen.method == "snapshot" {
            Reply::Ok
        } else {
            Reply::Fail(not_leader(Some((2, hint.as_str()))))
        }
    })
    .await;
    let client = client(vec![follower.addr()]);
    let promoted = client.promote(3).await.expect("promote on leader");
    assert_eq!(promoted.log_index, 7);
    client.remove(3).await.expect("remove on leader");
    let snap = client
        .snapshot(Some(&follower.addr()))
        .await
        .expect("snapshot on follower");
    assert_eq!(snap.snapshot_index, Some(42));
    let methods: Vec<&str> = follower.seen().iter().map(|s| s.method).collect();
    assert_eq!(methods, vec!["promote", "snapshot"]);
    let methods: Vec<&str> = leader.seen().iter().map(|s| s.method).collect();
    assert_eq!(methods, vec!["promote", "remove"]);
}

#[tokio::test]
async fn init_waits_for_a_node_that_is_still_starting() {
    let addr = dead_addr();
    let starter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        FakeNode::start_on(addr, 1, |_, _| Reply::Ok).await
    });
    let client = client(vec![addr.to_string()]);
    let members = vec![Member {
        node_id: 1,
        addr: addr.to_string(),
        voter: true,
        raft_addr: "127.0.0.1:7501".into(),
    }];
    let answer = client
        .init(&addr.to_string(), members.clone())
        .await
        .expect("init once the node is up");
    assert_eq!(answer.members, members);
    let node = starter.await.expect("starter task");
    assert_eq!(node.calls(), 1);

    // A refusal by the node itself is final for init.
    let refusing = FakeNode::start(2, |_, _| {
        Reply::Fail(Status::failed_precondition("already initialized"))
    })
    .await;
    let err = client
        .init(&refusing.uri(), members)
        .await
        .expect_err("already initialized");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(refusing.calls(), 1);
}

#[tokio::test]
async fn calls_can_be_spawned() {
    let node = FakeNode::healthy(1).await;
    let client = client(vec![node.addr()]);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.register_locator(register_request()).await })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task").expect("register");
    }
    assert_eq!(node.calls(), 8);
}

// A leader cut off (it never answers): the followers still name it until they elect another.
// After one attempt timeout at it, the client does not follow their hints back to it within
// the attempt timeout, but asks the other nodes until one answers as the new leader.
#[tokio::test]
async fn hints_naming_a_leader_that_just_timed_out_are_not_followed_back() {
    let old = FakeNode::start(1, |_, _| Reply::Delay(Duration::from_secs(60))).await;
    let old_addr = old.addr();
    let hint = old_addr.clone();
    // Node 2 wins the election after it has named the old leader three times.
    let new_leader = FakeNode::start(2, move |n, _| {
        if n < 3 {
            Reply::Fail(not_leader(Some((1, hint.as_str()))))
        } else {
            Reply::Ok
        }
    })
    .await;
    let hint = old_addr.clone();
    let follower = FakeNode::start(3, move |_, _| {
        Reply::Fail(not_leader(Some((1, hint.as_str()))))
    })
    .await;
    let client = client(vec![old.addr(), new_leader.addr(), follower.addr()]);

    let started = Instant::now();
    let answer = client
        .register_locator(register_request())
        .await
        .expect("the new leader takes the write");
    assert_eq!(answer.header.map(|h| h.node_id), Some(2));
    assert_eq!(
        old.calls(),
        1,
        "a stale hint was followed back to the lost leader"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "one attempt timeout (1 s) and backoffs, not two timeouts: {:?}",
        started.elapsed()
    );
    assert_eq!(new_leader.calls(), 4);
}
