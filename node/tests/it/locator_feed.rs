//! Locator bulk import, listing and the change feed on a real multi-process cluster:
//! - `kartotek locator import` of 100 k entries, killed (SIGKILL) part-way and run again,
//!   ends with exactly the file's valid entries and reports every bad line;
//! - a watch that follows every revision while the leader is killed mid-stream sees each
//!   revision exactly once, in order, with nothing missing versus the final state.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestCluster, org, patient};
use kartotek_client::ClientError;
use kartotek_proto::v1::{
    ListLocatorsRequest, RegisterLocatorRequest, WatchLocatorsRequest, change_event,
};

const IMPORT_ENTRIES: u32 = 100_000;
const BAD_LINES: u32 = 7;

/// Counts every entry of `org` by paging through the listing.
async fn count_org(client: &kartotek_client::KartotekClient, o: &str) -> u64 {
    let mut token = String::new();
    let mut n = 0u64;
    loop {
        let page = client
            .list_locators(ListLocatorsRequest {
                org: o.to_owned(),
                page_size: 1000,
                page_token: token,
                include_retired: true,
                read: None,
            })
            .await
            .unwrap_or_else(|e| panic!("list: {e}"));
        n += page.entries.len() as u64;
        token = page.next_page_token;
        if token.is_empty() {
            return n;
        }
    }
}

fn import_cmd(endpoints: &str, file: &std::path::Path) -> Command {
    let mut cmd = common::cli_command();
    cmd.args(["--endpoints", endpoints, "--json", "locator", "import"])
        .arg(file)
        .args(["--batch-size", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_import_interrupted_and_resumed_imports_every_entry_once() {
    let c = TestCluster::start(3, |_| {}).await;
    let client = c.client();
    let o = org(40);
    // 15 000 patients (the synthetic id generator's range) × several systems.
    let patients: Vec<String> = (0..15_000).map(patient).collect();
    let file = c.dir.path().join("entries.ndjson");
    {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(&file).unwrap_or_else(|e| panic!("{e}")));
        for i in 0..IMPORT_ENTRIES {
            let p = &patients[(i % 15_000) as usize];
            writeln!(
                f,
                r#"{{"patient":"{p}","org":"{o}","system":"sys-{}","categories":["Observation","Condition"],"endpoint_ref":"fhir-1"}}"#,
                i / 15_000
            )
            .unwrap_or_else(|e| panic!("{e}"));
            if i % 20_000 == 7 {
                // Bad lines at spread-out places: a bad id, broken JSON, an oversized field…
                let bad = match (i / 20_000) % 4 {
                    0 => format!(r#"{{"patient":"12345678901","org":"{o}","system":"x"}}"#),
                    1 => "{not json".to_owned(),
                    2 => format!(
                        r#"{{"patient":"{p}","org":"{o}","system":"{}"}}"#,
                        "s".repeat(200)
                    ),
                    _ => format!(r#"{{"patient":"{p}","org":"123456789","system":"x"}}"#),
                };
                writeln!(f, "{bad}").unwrap_or_else(|e| panic!("{e}"));
            }
        }
        for _ in 0..(BAD_LINES - 5) {
            writeln!(f, r#"{{"patient":"","org":"{o}","system":"x"}}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        f.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    let endpoints = c
        .nodes
        .iter()
        .map(|n| n.addr.clone())
        .collect::<Vec<_>>()
        .join(",");

    // First run: kill it once a good part (but not all) is done.
    let state_file = c.dir.path().join("entries.ndjson.import-state.json");
    let mut first = import_cmd(&endpoints, &file)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(240);
    let done_at_kill = loop {
        let done = std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["batches_done"].as_u64())
            .unwrap_or(0);
        if done >= 20 {
            break done;
        }
        if let Ok(Some(status)) = first.try_wait() {
            panic!("import finished before it could be interrupted: {status}");
        }
        assert!(Instant::now() < deadline, "import made no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    first.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = first.wait();
    assert!(
        done_at_kill < 100,
        "the kill came too late to test resuming"
    );

    // Second run resumes and finishes.
    let started = Instant::now();
    let out = import_cmd(&endpoints, &file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "resumed import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("summary: {e}"));
    let resumed_from = summary["resumed_from_batch"].as_u64().unwrap_or(0);
    assert!(resumed_from >= done_at_kill, "{summary}");
    assert_eq!(summary["state"]["complete"], true);
    assert_eq!(
        summary["state"]["rejected"].as_u64(),
        Some(u64::from(BAD_LINES)),
        "{summary}"
    );
    assert_eq!(
        summary["state"]["changed"].as_u64().unwrap_or(0)
            + summary["state"]["unchanged"].as_u64().unwrap_or(0),
        u64::from(IMPORT_ENTRIES),
        "{summary}"
    );
    eprintln!(
        "import: resumed at batch {resumed_from}; second run {:.1} s, {:.0} entries/s",
        started.elapsed().as_secs_f64(),
        summary["entries_per_second"].as_f64().unwrap_or(0.0)
    );
    let rejected = std::fs::read_to_string(c.dir.path().join("entries.ndjson.rejected.ndjson"))
        .unwrap_or_default();
    assert_eq!(rejected.lines().count(), BAD_LINES as usize, "{rejected}");
    assert!(rejected.contains("\"field\":\"patient\""), "{rejected}");
    assert!(rejected.contains("\"field\":\"system\""), "{rejected}");
    assert!(
        !rejected.contains("12345678901"),
        "rejected-lines file names the line, not the id"
    );

    // The cluster holds exactly the valid entries.
    assert_eq!(count_org(&client, &o).await, u64::from(IMPORT_ENTRIES));

    // A third run has nothing left to do.
    let again = import_cmd(&endpoints, &file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.status.success());
    assert_eq!(count_org(&client, &o).await, u64::from(IMPORT_ENTRIES));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_survives_a_leader_kill_without_gap_or_duplicate() {
    let mut c = TestCluster::start(3, |_| {}).await;
    let client = c.client();
    let o = org(41);
    let writes: u32 = 300;

    // Watch everything from revision 1 through a client that prefers a follower at first.
    let leader = c.leader().await;
    let follower = c
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .unwrap_or(1);
    let mut order = vec![follower];
    order.extend(c.nodes.iter().map(|n| n.id).filter(|id| *id != follower));
    let watcher_client = c.client_for(&order);
    let watcher = tokio::spawn(async move {
        let mut w = watcher_client.watch_locators(WatchLocatorsRequest {
            from_revision: 1,
            patient: String::new(),
            org: String::new(),
        });
        let mut seen: Vec<(u64, String, String)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), w.next())
                .await
                .unwrap_or_else(|_| panic!("watch stalled after {} events", seen.len()))
                .unwrap_or_else(|e| panic!("watch: {e}"));
            for e in msg.events {
                if let Some(change_event::Record::Locator(l)) = e.record {
                    seen.push((e.revision, l.patient, l.system));
                }
            }
            if seen.len() as u32 >= writes {
                return seen;
            }
            assert!(Instant::now() < deadline, "watch did not see every write");
        }
    });

    // Writers; the leader is killed part-way.
    let mut acked = BTreeMap::new();
    for i in 0..writes {
        if i == writes / 3 {
            let l = c.leader().await;
            c.kill9(l);
        }
        let p = patient(500 + i);
        let r = client
            .register_locator(RegisterLocatorRequest {
                request_id: format!("watch-test-{i}"),
                patient: p.clone(),
                org: o.clone(),
                system: format!("s{i}"),
                categories: vec!["Observation".into()],
                endpoint_ref: String::new(),
                expected_mod_revision: None,
            })
            .await;
        match r {
            Ok(resp) => {
                let rev = resp.entry.map(|e| e.mod_revision).unwrap_or(0);
                acked.insert(rev, (p, format!("s{i}")));
            }
            Err(ClientError::DeadlineExceeded { .. } | ClientError::Unavailable { .. }) => {
                panic!("write {i} failed during the leader change")
            }
            Err(e) => panic!("write {i}: {e}"),
        }
    }
    let seen = watcher.await.unwrap_or_else(|e| panic!("{e}"));

    // No duplicate, no reordering, no gap: revisions are exactly 1..=n.
    let revisions: Vec<u64> = seen.iter().map(|s| s.0).collect();
    let expected: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(
        revisions, expected,
        "watch revisions must be contiguous from 1"
    );
    // Every acknowledged write is in the feed at its revision, with its content.
    for (rev, (p, s)) in &acked {
        let got = seen
            .get((*rev - 1) as usize)
            .unwrap_or_else(|| panic!("rev {rev} missing"));
        assert_eq!((&got.1, &got.2), (p, s), "event at revision {rev}");
    }
    assert_eq!(acked.len() as u32, writes);
}
