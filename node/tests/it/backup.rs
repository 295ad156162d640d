//! Online backup and restore on real multi-process clusters (`kartotek admin backup`,
//! `verify-backup`, `restore`):
//!
//! - a backup taken from a 3-node cluster while a writer keeps writing holds exactly the
//!   writes up to its revision: every write acknowledged before the backup was asked for is
//!   at or below it, and after a restore into three new data directories (same ids and
//!   addresses, no `admin init`) every acknowledged write at or below the revision is there
//!   and none above it;
//! - the restored cluster elects a leader, its audit chain verifies (`kartotek audit
//!   verify`), and its change feed continues from the backed-up revision (a watch from the
//!   revision gets the last backed-up change first, then new writes);
//! - a truncated and a one-byte-flipped copy of the backup are refused by `verify-backup` and
//!   by `restore`, which then creates nothing.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestCluster, ok, org, patient};
use kartotek_proto::v1::{
    LookupLocatorRequest, RegisterLocatorRequest, WatchLocatorsRequest, change_event,
};

fn register(n: u32) -> RegisterLocatorRequest {
    RegisterLocatorRequest {
        patient: patient(n),
        org: org(7),
        system: format!("ehr-{n}"),
        categories: vec!["Observation".into()],
        endpoint_ref: "fhir-api-1".into(),
        ..Default::default()
    }
}

/// Runs the binary with `args` and returns (success, stdout, stderr).
fn run(endpoints: &str, args: &[&str]) -> (bool, String, String) {
    let out = common::kartotek(endpoints, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Copies backup directory `from` to `to`, with `change` applied to the snapshot's bytes.
fn damaged_copy(from: &Path, to: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    ok(std::fs::create_dir_all(to));
    ok(std::fs::copy(
        from.join("manifest.json"),
        to.join("manifest.json"),
    ));
    let mut bytes = ok(std::fs::read(from.join("backup.snap")));
    change(&mut bytes);
    ok(std::fs::write(to.join("backup.snap"), bytes));
}

/// The damaged backup at `dir` is refused by verify-backup (stderr naming `why`) and by
/// restore, which leaves no data directory behind.
fn assert_refused(dir: &Path, why: &str) {
    let d = dir.display().to_string();
    let prom = dir.with_extension("prom");
    let prom_s = prom.display().to_string();
    let (verified, _, err) = run(
        "127.0.0.1:1",
        &["admin", "verify-backup", "--metrics-file", &prom_s, &d],
    );
    assert!(!verified, "verify-backup accepted {d}");
    assert!(err.contains(why), "verify-backup of {d}: {err}");
    assert!(!prom.exists(), "a refused backup wrote metrics");
    let data = dir.with_extension("restored");
    let data_s = data.display().to_string();
    let (restored, _, err) = run(
        "127.0.0.1:1",
        &[
            "admin",
            "restore",
            "--from",
            &d,
            "--data-dir",
            &data_s,
            "--node-id",
            "1",
        ],
    );
    assert!(!restored, "restore accepted {d}");
    assert!(err.contains(why), "restore of {d}: {err}");
    assert!(!data.exists(), "a refused restore created {data_s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_writes_restores_into_a_new_cluster() {
    let mut c = TestCluster::start(3, |_| {}).await;
    let client = c.client();
    let endpoints = c.addrs().join(",");
    for n in 0..100 {
        ok(client.register_locator(register(n)).await);
    }
    // A bulk of entries through `locator import` (KARTOTEK_BACKUP_TEST_BULK of them, default
    // 2000), so the snapshot has some size; set it higher to measure.
    let bulk: u32 = std::env::var("KARTOTEK_BACKUP_TEST_BULK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let file = c.dir.path().join("bulk.ndjson");
    let lines: String = (0..bulk)
        .map(|n| {
            format!(
                "{{\"patient\":\"{}\",\"org\":\"{}\",\"system\":\"bulk-{n}\",\"categories\":[\"Observation\"],\"endpoint_ref\":\"fhir-api-1\"}}\n",
                patient(n % 14_000),
                org(8)
            )
        })
        .collect();
    ok(std::fs::write(&file, lines));
    let imported = Instant::now();
    let (done, _, err) = run(
        &endpoints,
        &["locator", "import", &file.display().to_string()],
    );
    assert!(done, "import: {err}");
    eprintln!(
        "imported {bulk} entries in {} ms",
        imported.elapsed().as_millis()
    );

    // A writer keeps writing through the backup; it keeps (patient number, revision) of
    // every acknowledged write.
    let acked: Arc<Mutex<Vec<(u32, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 100u32;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = client.register_locator(register(n)).await {
                    let revision = r.header.map_or(0, |h| h.revision);
                    acked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((n, revision));
                }
                n += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked_before = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let backup_dir = c.dir.path().join("backup");
    let out = backup_dir.display().to_string();
    let started = Instant::now();
    let (ep, o) = (endpoints.clone(), out.clone());
    let (backed_up, stdout, stderr) = ok(tokio::task::spawn_blocking(move || {
        run(&ep, &["--json", "admin", "backup", "--out", &o])
    })
    .await);
    let backup_ms = started.elapsed().as_millis();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    ok(writer.await);
    assert!(backed_up, "admin backup failed: {stderr}");
    let report: serde_json::Value = ok(serde_json::from_str(&stdout));
    let m = &report["manifest"];
    let revision = m["revision"].as_u64().unwrap_or(0);
    let index = m["last_log"]["index"].as_u64().unwrap_or(0);
    let size = m["size_bytes"].as_u64().unwrap_or(0);
    eprintln!(
        "backup: {size} bytes, {} frames, log index {index}, revision {revision}, {backup_ms} ms",
        m["frames"]
    );
    assert!(revision >= 100 + u64::from(bulk), "{report}");
    assert!(
        index >= m["read_index"].as_u64().unwrap_or(u64::MAX),
        "{report}"
    );
    // Linearizable: every write acknowledged before the backup was asked for is in it.
    for (n, r) in &acked_before {
        assert!(
            *r <= revision,
            "write {n} at {r} acked before the backup (at {revision})"
        );
    }
    assert!(!backup_dir.join("backup.snap.tmp").exists());
    let prom = c.dir.path().join("kartotek_backup.prom");
    let prom_s = prom.display().to_string();
    let (verified, vout, verr) = run(
        &endpoints,
        &[
            "--json",
            "admin",
            "verify-backup",
            "--metrics-file",
            &prom_s,
            &out,
        ],
    );
    assert!(verified, "verify-backup: {verr}");
    assert!(vout.contains("\"ok\": true"), "{vout}");
    // The metrics file the backup alerts read: every series, this backup's revision.
    let text = std::fs::read_to_string(&prom).unwrap_or_else(|e| panic!("{prom_s}: {e}"));
    for name in kartotek_cli::backup::METRIC_NAMES {
        assert!(
            text.contains(&format!("\n{name}{{cluster=")),
            "{name}:\n{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "kartotek_backup_revision{{cluster=\"kartotek-test\"}} {revision}\n"
        )),
        "{text}"
    );
    // A second backup into the same directory is refused.
    let (again, _, err) = run(&endpoints, &["admin", "backup", "--out", &out]);
    assert!(!again && err.contains("already holds a backup"), "{err}");

    // Damaged copies are refused, naming what is wrong.
    let truncated = c.dir.path().join("truncated");
    damaged_copy(&backup_dir, &truncated, |b| b.truncate(b.len() / 2));
    assert_refused(&truncated, "truncated");
    let flipped = c.dir.path().join("flipped");
    damaged_copy(&backup_dir, &flipped, |b| {
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
    });
    assert_refused(&flipped, "does not verify");
    let flipped_end = c.dir.path().join("flipped-end");
    damaged_copy(&backup_dir, &flipped_end, |b| {
        if let Some(last) = b.last_mut() {
            *last ^= 0x80;
        }
    });
    assert_refused(&flipped_end, "checksum");

    // A new cluster from the backup: the old one stops; each node is restored into a new,
    // empty data directory and started on it.
    for id in 1..=3 {
        c.stop(id);
    }
    let restore_started = Instant::now();
    for id in 1..=3u64 {
        let data = c.dir.path().join(format!("restored-{id}"));
        let (restored, _, err) = run(
            &endpoints,
            &[
                "admin",
                "restore",
                "--from",
                &out,
                "--data-dir",
                &data.display().to_string(),
                "--node-id",
                &id.to_string(),
            ],
        );
        assert!(restored, "restore of node {id}: {err}");
        let slot = c.idx(id);
        c.nodes[slot].spec.data_dir = data;
    }
    eprintln!(
        "restore of 3 nodes: {} ms",
        restore_started.elapsed().as_millis()
    );
    for id in 1..=3 {
        c.restart(id);
    }
    let leader = c.leader().await;
    eprintln!("restored cluster elected node {leader}");

    // Exactly the backed-up writes: every acknowledged write at or below the revision, none
    // above it.
    let all = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut expected: Vec<(u32, bool)> = (0..100).map(|n| (n, true)).collect();
    expected.extend(all.iter().map(|(n, r)| (*n, *r <= revision)));
    for (n, present) in &expected {
        let got = ok(client
            .lookup_locator(LookupLocatorRequest {
                patient: patient(*n),
                ..Default::default()
            })
            .await);
        let found = got.entries.iter().any(|e| e.system == format!("ehr-{n}"));
        assert_eq!(found, *present, "write {n} (backup at revision {revision})");
    }
    let (counted, count, err) = run(
        &endpoints,
        &["locator", "list", "--org", &org(8), "--count"],
    );
    assert!(counted, "{err}");
    assert_eq!(
        count.trim(),
        bulk.to_string(),
        "imported entries after the restore"
    );
    eprintln!(
        "checked {} writes ({} acked during the backup run, {} after its revision)",
        expected.len(),
        all.len(),
        expected.iter().filter(|(_, p)| !p).count()
    );

    // The change feed continues from the backed-up revision: a watch from it gets the last
    // backed-up change first, then a write made now.
    let mut watch = client.watch_locators(WatchLocatorsRequest {
        from_revision: revision,
        ..Default::default()
    });
    let new = ok(client.register_locator(register(14_000)).await);
    let new_revision = new.header.map_or(0, |h| h.revision);
    assert_eq!(
        new_revision,
        revision + 1,
        "the restored feed skipped revisions"
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|(r, _)| *r == new_revision) {
        assert!(Instant::now() < deadline, "watch delivered only {seen:?}");
        let msg = ok(tokio::time::timeout(Duration::from_secs(20), watch.next()).await);
        for e in ok(msg).events {
            if let Some(change_event::Record::Locator(l)) = e.record {
                seen.push((e.revision, l.system));
            }
        }
    }
    assert_eq!(seen.first().map(|(r, _)| *r), Some(revision), "{seen:?}");
    assert_eq!(
        seen.last().map(|(_, s)| s.as_str()),
        Some("ehr-14000"),
        "{seen:?}"
    );

    // The audit chain (the backed-up part and what the checks above added) verifies, and
    // every node's head agrees.
    let (audited, aout, aerr) = run(&endpoints, &["--json", "audit", "verify"]);
    assert!(audited, "audit verify: {aerr}");
    let v: serde_json::Value = ok(serde_json::from_str(&aout));
    assert_eq!(v["ok"], true, "{v}");
    let head_seq = m["audit_head"]["seq"].as_u64().unwrap_or(u64::MAX);
    assert!(v["events"].as_u64().unwrap_or(0) >= head_seq, "{v} vs {m}");
    // Events made after the restore come from new journals (a restored data dir draws a new
    // journal id), so no origin repeats one from before the backup, under the same node ids.
    let (queried, qout, qerr) = run(&endpoints, &["--json", "audit", "query"]);
    assert!(queried, "audit query: {qerr}");
    let q: serde_json::Value = ok(serde_json::from_str(&qout));
    let mut origins: Vec<String> = q["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["served_by"].is_u64())
        .map(|e| {
            format!(
                "{}/{}/{}",
                e["served_by"], e["served_journal_id"], e["served_journal_seq"]
            )
        })
        .collect();
    let node_made = origins.len();
    assert!(node_made > 0, "{q}");
    origins.sort_unstable();
    origins.dedup();
    assert_eq!(
        origins.len(),
        node_made,
        "an origin twice after the restore: {q}"
    );
}
