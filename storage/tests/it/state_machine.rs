//! State machine behaviour that the openraft suite cannot see: domain commands, exactly-once
//! request ids with bounded expiry, determinism across apply batching, persistence across a
//! reopen, and snapshot transfer of real data.

use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::{national_id_from_parts, org_number_from_prefix};
use kartotek_domain::{Command, LocatorRegister, Op, RequestId, Response, Timestamp};
use kartotek_storage::{StateMachineConfig, Store, StoreConfig};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use proptest::prelude::*;

fn patient(n: u16) -> String {
    let date = chrono_date();
    (n..1000)
        .find_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default()
}

fn chrono_date() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(1985, 6, 15).unwrap_or_default()
}

fn org() -> String {
    (90_000_000..90_000_100u32)
        .find_map(org_number_from_prefix)
        .map(|o| o.as_str().to_owned())
        .unwrap_or_default()
}

fn register(patient_n: u16, system: &str, req: Option<&str>, at: i64) -> Command {
    let reg = LocatorRegister::parse(
        &patient(patient_n),
        &org(),
        system,
        &["Observation".into()],
        "",
    )
    .unwrap_or_else(|e| panic!("fixture: {e}"));
    Command {
        request_id: req.map(|r| RequestId::parse(r).unwrap_or_else(|e| panic!("{e}"))),
        stamped_at: Timestamp(at),
        op: Op::LocatorRegister(reg),
    }
}

fn entry(index: u64, cmd: Command) -> Entry<kartotek_storage::TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(cmd),
    }
}

fn open(dir: &std::path::Path, sm: StateMachineConfig) -> Store {
    Store::open(
        dir,
        StoreConfig {
            state_machine: sm,
            ..StoreConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("open: {e}"))
}

/// Streams `snap` into `store` as a follower receives it, and installs it.
async fn install(store: &mut Store, snap: kartotek_storage::types::Snapshot) {
    let mut recv = store
        .state_machine
        .begin_receiving_snapshot()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut src = snap.snapshot;
    tokio::io::copy(&mut src, &mut *recv)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .state_machine
        .install_snapshot(&snap.meta, recv)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn retried_request_id_applies_once_and_replays_the_answer() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = open(dir.path(), StateMachineConfig::default());
        let first = store
            .state_machine
            .apply([entry(1, register(1, "a", Some("req-1"), 1000))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A different command in between, then the retry of the first.
        let _ = store
            .state_machine
            .apply([entry(2, register(2, "b", None, 1001))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let retry = store
            .state_machine
            .apply([entry(3, register(1, "a", Some("req-1"), 1002))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!first[0].deduplicated);
        assert!(retry[0].deduplicated);
        assert_eq!(retry[0].result, first[0].result);
        assert_eq!(retry[0].revision, first[0].revision);
        assert_eq!(
            store
                .stats
                .deduplicated_total
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    });
}

#[test]
fn request_ids_expire_by_leader_time_and_by_count() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cfg = StateMachineConfig {
            dedup_ttl_ms: 1000,
            dedup_entries_max: 3,
            dedup_evictions_per_entry_max: 64,
            ..StateMachineConfig::default()
        };
        let mut store = open(dir.path(), cfg);
        let sm = &mut store.state_machine;
        let _ = sm.apply([entry(1, register(1, "a", Some("old"), 0))]).await;
        // Past the TTL: "old" is forgotten, so the same id applies again (not deduplicated).
        let r = sm
            .apply([entry(2, register(1, "a", Some("old"), 5000))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!r[0].deduplicated);
        // Count bound: ids a, b, c, d within the TTL; only the newest 3 are kept.
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            let _ = sm
                .apply([entry(
                    3 + i as u64,
                    register(1, "a", Some(id), 5001 + i as i64),
                )])
                .await;
        }
        let r = sm
            .apply([entry(7, register(1, "a", Some("d"), 5010))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r[0].deduplicated, "newest id must still be remembered");
        let r = sm
            .apply([entry(8, register(1, "a", Some("old"), 5011))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !r[0].deduplicated,
            "oldest id must have been evicted by the count bound"
        );
    });
}

fn run_batched(commands: &[Command], split: &[usize]) -> Vec<Response> {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cfg = StateMachineConfig {
            dedup_ttl_ms: 50,
            dedup_entries_max: 4,
            dedup_evictions_per_entry_max: 2,
            ..StateMachineConfig::default()
        };
        let mut store = open(dir.path(), cfg);
        let entries: Vec<_> = commands
            .iter()
            .enumerate()
            .map(|(i, c)| entry(i as u64 + 1, c.clone()))
            .collect();
        let mut out = Vec::new();
        let mut rest = entries.as_slice();
        let mut splits = split.iter().cycle();
        while !rest.is_empty() {
            let n = (*splits.next().unwrap_or(&1)).clamp(1, rest.len());
            let (now, later) = rest.split_at(n);
            out.extend(
                store
                    .state_machine
                    .apply(now.to_vec())
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            );
            rest = later;
        }
        out
    })
}

/// Applies `commands` one entry per call, reopening the store after every `reopen_every`
/// entries (a reopened state machine scans the dedup expiry index from its start; a running
/// one from where its last eviction stopped).
fn run_with_reopens(commands: &[Command], reopen_every: usize) -> Vec<Response> {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // Many entries share a stamp, and one eviction per entry splits a stamp's entries
        // between scans: the case a scan that starts past the last evicted stamp gets wrong.
        let cfg = || StateMachineConfig {
            dedup_ttl_ms: 3,
            dedup_entries_max: 3,
            dedup_evictions_per_entry_max: 1,
            ..StateMachineConfig::default()
        };
        let mut store = open(dir.path(), cfg());
        let mut out = Vec::new();
        for (i, c) in commands.iter().enumerate() {
            if i > 0 && i % reopen_every.max(1) == 0 {
                drop(store);
                store = open(dir.path(), cfg());
            }
            out.extend(
                store
                    .state_machine
                    .apply([entry(i as u64 + 1, c.clone())])
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Where a dedup eviction scan starts is an optimisation only: a node that restarts (and
    /// scans from the start) evicts exactly what one that kept running does.
    #[test]
    fn dedup_eviction_is_independent_of_restarts(
        ops in proptest::collection::vec((0u16..3, proptest::option::of(0u8..12), 0i64..3), 1..60),
        reopen_every in 1usize..6,
    ) {
        let mut t = 0i64;
        let commands: Vec<Command> = ops.iter().map(|(p, req, dt)| {
            t += dt;
            let req = req.map(|r| format!("r{r}"));
            register(*p, "sys", req.as_deref(), t)
        }).collect();
        prop_assert_eq!(run_with_reopens(&commands, usize::MAX), run_with_reopens(&commands, reopen_every));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Replicas group entries into apply calls differently; the answers must not depend on it.
    #[test]
    fn apply_is_independent_of_batching(
        ops in proptest::collection::vec((0u16..3, 0u8..3, proptest::option::of(0u8..4), 0i64..40), 1..40),
        split_a in proptest::collection::vec(1usize..8, 1..4),
        split_b in proptest::collection::vec(1usize..8, 1..4),
    ) {
        let mut t = 0i64;
        let commands: Vec<Command> = ops.iter().map(|(p, s, req, dt)| {
            t += dt;
            let req = req.map(|r| format!("r{r}"));
            register(*p, &format!("sys{s}"), req.as_deref(), t)
        }).collect();
        prop_assert_eq!(run_batched(&commands, &split_a), run_batched(&commands, &split_b));
    }
}

#[test]
fn state_survives_reopen_and_snapshot_installs_elsewhere() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let mut store = open(dir.path(), StateMachineConfig::default());
            let entries: Vec<_> = (1..=50u64)
                .map(|i| {
                    entry(
                        i,
                        register((i % 7) as u16, &format!("s{i}"), None, i as i64),
                    )
                })
                .collect();
            let _ = store.state_machine.apply(entries).await;
        }
        let mut store = open(dir.path(), StateMachineConfig::default());
        let (applied, _) = store
            .state_machine
            .applied_state()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(applied.map(|l| l.index), Some(50));
        let (_, revision) = store.reader.position().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(revision, 50);

        let snap = store
            .state_machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let other_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut other = open(other_dir.path(), StateMachineConfig::default());
        install(&mut other, snap).await;
        let p = kartotek_domain::NationalId::parse(&patient(1)).unwrap_or_else(|e| panic!("{e}"));
        let here = store
            .reader
            .lookup_locator(&p, None, true, 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        let there = other
            .reader
            .lookup_locator(&p, None, true, 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!here.value.is_empty());
        assert_eq!(here, there);
        assert_eq!(here.value[0].categories, vec!["Observation".to_string()]);
    });
}

/// A crash in the middle of a snapshot install (marker written, file not yet renamed, state
/// half replaced) is finished at the next open: the state is exactly the snapshot's.
#[test]
fn interrupted_snapshot_install_is_finished_at_open() {
    rt().block_on(async {
        let a_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let b_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let snap_meta = {
            let mut a = open(a_dir.path(), StateMachineConfig::default());
            let entries: Vec<_> = (1..=40u64)
                .map(|i| {
                    entry(
                        i,
                        register((i % 5) as u16, &format!("a{i}"), None, i as i64),
                    )
                })
                .collect();
            let _ = a.state_machine.apply(entries).await;
            a.state_machine
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .meta
        };
        {
            let mut b = open(b_dir.path(), StateMachineConfig::default());
            let entries: Vec<_> = (1..=5u64)
                .map(|i| entry(i, register(1, &format!("stale{i}"), None, i as i64)))
                .collect();
            let _ = b.state_machine.apply(entries).await;
        }
        // The crash: the verified copy is in place as incoming.snap and the marker is durable.
        std::fs::copy(
            a_dir.path().join("snapshots/current.snap"),
            b_dir.path().join("snapshots/incoming.snap"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        {
            let db = kartotek_storage::db::open(&b_dir.path().join("db"), 1 << 20)
                .unwrap_or_else(|e| panic!("{e}"));
            let raft = kartotek_storage::db::cf(&db, kartotek_storage::keys::CF_RAFT)
                .unwrap_or_else(|e| panic!("{e}"));
            let marker = kartotek_storage::codec::encode(&snap_meta.snapshot_id)
                .unwrap_or_else(|e| panic!("{e}"));
            db.put_cf(raft, kartotek_storage::keys::RAFT_INSTALLING, marker)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut b = open(b_dir.path(), StateMachineConfig::default());
        let (applied, _) = b
            .state_machine
            .applied_state()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(applied, snap_meta.last_log_id);
        let a = open(a_dir.path(), StateMachineConfig::default());
        for n in 0..5u16 {
            let p =
                kartotek_domain::NationalId::parse(&patient(n)).unwrap_or_else(|e| panic!("{e}"));
            let want = a
                .reader
                .lookup_locator(&p, None, true, 1000)
                .unwrap_or_else(|e| panic!("{e}"));
            let got = b
                .reader
                .lookup_locator(&p, None, true, 1000)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got, want, "patient {n} differs after recovery");
        }
        assert!(!b_dir.path().join("snapshots/incoming.snap").exists());
        let current = b
            .state_machine
            .get_current_snapshot()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(current.map(|s| s.meta), Some(snap_meta));
    });
}

/// Reads bounded to their table step over no tombstones of the next one. The dedup expiry
/// index (`T`) follows the representation table (`S`) in key order; after many evictions a
/// prefix scan of `S` that finds nothing must stop at the end of `S`, not walk every deleted
/// `T` key (counted by RocksDB's perf context, deterministic unlike a timing).
#[test]
fn empty_prefix_scans_do_not_walk_evicted_dedup_keys() {
    use rocksdb::perf::{PerfContext, PerfMetric, PerfStatsLevel, set_perf_stats};
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cfg = StateMachineConfig {
            dedup_ttl_ms: 1,
            dedup_entries_max: 10,
            dedup_evictions_per_entry_max: 64,
            ..StateMachineConfig::default()
        };
        let mut store = open(dir.path(), cfg);
        const WRITES: u64 = 3_000;
        for i in 0..WRITES {
            let id = format!("req-{i}");
            let _ = store
                .state_machine
                .apply([entry(i + 1, register(1, "a", Some(&id), 10 * i as i64))])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let p = kartotek_domain::NationalId::parse(&patient(7)).unwrap_or_else(|e| panic!("{e}"));
        let svc = kartotek_domain::ServiceName::parse("service", "kjernejournal")
            .unwrap_or_else(|e| panic!("{e}"));
        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut ctx = PerfContext::default();
        ctx.reset();
        let facts = store
            .reader
            .access_facts(&p, &svc)
            .unwrap_or_else(|e| panic!("{e}"));
        let skipped = ctx.metric(PerfMetric::InternalDeleteSkippedCount);
        set_perf_stats(PerfStatsLevel::Disable);
        assert!(facts.value.representations.is_empty());
        assert!(
            skipped < 100,
            "an empty scan stepped over {skipped} deleted keys of {WRITES} evicted"
        );
    });
}

/// Installing a snapshot loads the state in batches that are not atomic together; a read in
/// between would see part of it (here: no applied index at all, which only the last batch
/// writes). Every read during an install is either of a whole state or refused with
/// `Installing`, and reads after it see the snapshot's state.
#[test]
fn reads_during_a_snapshot_install_see_a_whole_state_or_are_refused() {
    rt().block_on(async {
        // Enough data for several install batches (each at most 4 MiB).
        let mut patients: Vec<String> = (0..1000u16).map(patient).collect();
        patients.dedup();
        let regs = |system: usize| -> Vec<LocatorRegister> {
            patients
                .iter()
                .map(|p| {
                    LocatorRegister::parse(
                        p,
                        &org(),
                        &format!("system-{system}"),
                        &["Observation".into(), "Condition".into()],
                        "fhir-endpoint-with-a-long-enough-reference",
                    )
                    .unwrap_or_else(|e| panic!("fixture: {e}"))
                })
                .collect()
        };
        let history: Vec<_> = (0..50usize)
            .map(|s| {
                entry(
                    s as u64 + 1,
                    Command {
                        request_id: None,
                        stamped_at: Timestamp(1000 + s as i64),
                        op: Op::LocatorImport(regs(s)),
                    },
                )
            })
            .collect();
        let last_index = history.len() as u64;
        let a_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut a = open(a_dir.path(), StateMachineConfig::default());
        let _ = a.state_machine.apply(history.clone()).await;
        let snap = a
            .state_machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let b_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut b = open(b_dir.path(), StateMachineConfig::default());
        let _ = b.state_machine.apply(history).await;
        assert_eq!(b.reader.position().ok().map(|p| p.0), Some(last_index));

        let reader = b.reader.clone();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let watcher = std::thread::spawn(move || {
            let (mut whole, mut refused, mut torn) = (0u64, 0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match reader.position() {
                    Ok((applied, _)) if applied == last_index => whole += 1,
                    Ok(other) => torn.push(other),
                    Err(kartotek_storage::StoreError::Installing) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            (whole, refused, torn)
        });
        install(&mut b, snap).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let (whole, refused, torn) = watcher.join().unwrap_or_else(|_| panic!("watcher"));
        assert!(
            torn.is_empty(),
            "torn reads during the install: {:?}",
            &torn[..torn.len().min(5)]
        );
        assert!(
            refused > 0,
            "no read overlapped the install ({whole} reads)"
        );
        assert_eq!(b.reader.position().ok().map(|p| p.0), Some(last_index));
    });
}
