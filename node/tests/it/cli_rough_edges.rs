//! Rough edges of the `kartotek` command line found by a new user (issue 15), each driven
//! through the real binary against real node processes (or against nothing at all).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::{TestCluster, free_port, kartotek, org, patient, stdout};
use kartotek_proto::v1::RegisterLocatorRequest;

/// Stdout of a `--json` command as exactly one JSON document (trailing documents fail).
fn one_document(endpoints: &str, args: &[&str]) -> serde_json::Value {
    let text = stdout(endpoints, args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("kartotek {args:?} --json is not one document ({e}):\n{text}"))
}

/// Registers `n` entries of organisation `o` (systems `sys-0`, `sys-1`, ...).
async fn register(cluster: &TestCluster, o: &str, n: u32) {
    let client = cluster.client();
    for i in 0..n {
        client
            .register_locator(RegisterLocatorRequest {
                patient: patient(i),
                org: o.to_owned(),
                system: format!("sys-{i}"),
                categories: vec!["Observation".into()],
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("register {i}: {e}"));
    }
}

/// `locator list --count` counted the first page only (100 where `--all` listed 201).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locator_list_count_covers_every_page() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let ep = cluster.nodes[0].addr.clone();
    let o = org(71);
    register(&cluster, &o, 201).await;

    assert_eq!(
        stdout(&ep, &["locator", "list", "--org", &o, "--count"]).trim(),
        "201"
    );
    let counted = one_document(&ep, &["--json", "locator", "list", "--org", &o, "--count"]);
    assert_eq!(counted["count"], 201, "{counted}");
    let listed = one_document(&ep, &["--json", "locator", "list", "--org", &o, "--all"]);
    assert_eq!(listed["entries"].as_array().map(Vec::len), Some(201));
    assert_eq!(listed["next_page_token"], "");
    // One page is still one page, with the token to go on.
    let page = one_document(&ep, &["--json", "locator", "list", "--org", &o]);
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(100));
    assert_ne!(page["next_page_token"], "");
}

/// `--json` printed one document per page (`locator list --all`) and NDJSON for
/// `audit query`; now every command prints exactly one document, and only streams
/// (`locator watch`) print one per line, as their help says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_is_one_document_for_every_command() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let ep = cluster.nodes[0].addr.clone();
    let o = org(72);
    register(&cluster, &o, 3).await;
    let p = patient(0);
    one_document(&ep, &["--json", "locator", "lookup", "--patient", &p]);
    one_document(&ep, &["--json", "locator", "lookup", "--patient", &p]);

    let listed = one_document(
        &ep,
        &[
            "--json",
            "locator",
            "list",
            "--org",
            &o,
            "--all",
            "--page-size",
            "1",
        ],
    );
    assert_eq!(
        listed["entries"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );

    let audit = one_document(&ep, &["--json", "audit", "query", "--patient", &p]);
    let events = audit["events"].as_array().expect("events");
    assert!(events.len() >= 2, "{audit}");
    assert_eq!(audit["count"], events.len());
    let limited = one_document(
        &ep,
        &["--json", "audit", "query", "--patient", &p, "--limit", "1"],
    );
    assert_eq!(limited["events"].as_array().map(Vec::len), Some(1));
    assert_ne!(limited["next_seq"], 0, "{limited}");

    for args in [
        &["admin", "status"][..],
        &["audit", "verify"],
        &["locator", "list", "--org", &o],
        &["block", "list", "--patient", &p],
        &["consent", "list", "--patient", &p],
        &["reservation", "list", "--patient", &p],
    ] {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        one_document(&ep, &with_json);
    }

    // The stream is NDJSON: one document per line, and its help says so.
    let feed = stdout(
        &ep,
        &["--json", "locator", "watch", "--from", "1", "--limit", "3"],
    );
    let lines: Vec<serde_json::Value> = feed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{feed}");
    let help = stdout(&ep, &["locator", "watch", "--help"]);
    assert!(help.contains("NDJSON"), "{help}");
}

/// Tables came in two styles (box drawing for locator entries, ASCII for audit events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_share_one_style() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let ep = cluster.nodes[0].addr.clone();
    let o = org(73);
    register(&cluster, &o, 1).await;
    let p = patient(0);
    for args in [
        &["locator", "lookup", "--patient", &p][..],
        &["locator", "list", "--org", &o],
        &["audit", "query", "--patient", &p],
        &["admin", "status"],
    ] {
        let text = stdout(&ep, args);
        assert!(
            text.contains('│') && text.contains('─'),
            "{args:?}: not the box-drawing table style:\n{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("+-") || l.starts_with("| ")),
            "{args:?}: an ASCII table:\n{text}"
        );
    }
}

/// `audit verify` printed Rust debug values (`node Some(1): head seq Some(5) agrees`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_prints_plain_values() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let ep = cluster.nodes[0].addr.clone();
    register(&cluster, &org(74), 1).await;
    stdout(&ep, &["locator", "lookup", "--patient", &patient(0)]);

    let text = stdout(&ep, &["audit", "verify"]);
    assert!(text.contains("chain verified:"), "{text}");
    let node_line = text
        .lines()
        .find(|l| l.contains("node 1: head seq "))
        .unwrap_or_else(|| panic!("no line for node 1:\n{text}"));
    assert!(node_line.trim_end().ends_with("agrees"), "{node_line}");
    for debug in ["Some(", "None", "\"", "{:?}", "..="] {
        assert!(
            !text.contains(debug),
            "debug formatting {debug:?} in:\n{text}"
        );
    }

    // An enum flag's error quotes the value without Rust string escapes.
    let out = kartotek(
        &ep,
        &[
            "block",
            "add",
            "--patient",
            &patient(0),
            "--target-kind",
            "personnel",
            "--target",
            "5555",
            "--level",
            "bogus",
            "--reason",
            "privacy",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("unknown value `bogus`"), "{err}");
}

/// With no cluster running every command retried for 15 s ("unavailable after 24
/// attempt(s) … Connection refused"); now it fails within about 2 s with a hint.
#[test]
fn no_cluster_fails_fast_with_a_hint() {
    let endpoints = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(",");
    for args in [
        &["locator", "lookup", "--patient", "15076500565"][..],
        &["audit", "verify"],
        &["locator", "watch"],
    ] {
        let started = Instant::now();
        let out = kartotek(&endpoints, args);
        let elapsed = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            elapsed < Duration::from_secs(5),
            "{args:?} took {elapsed:?}"
        );
        assert!(
            err.contains("hint: is the cluster running? start one with: kartotek dev"),
            "{args:?}: {err}"
        );
        assert!(err.contains("refused the connection"), "{args:?}: {err}");
    }
    // `admin status` asks each node once and shows the table, with the hint under it.
    let out = kartotek(&endpoints, &["admin", "status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the cluster running?"), "{err}");
}
