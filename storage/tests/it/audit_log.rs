//! The audit log in the state machine: one chain across appends, indexes by patient and
//! organisation, and retention that keeps the remaining chain verifiable.

use kartotek_domain::audit::{AuditEvent, AuditEventInput, verify_chain};
use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::{national_id_from_parts, org_number_from_prefix};
use kartotek_domain::{Command, NationalId, Op, Outcome, Timestamp};
use kartotek_storage::{AuditSelector, Store, StoreConfig};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

fn patient(day: u64) -> String {
    let date = chrono::NaiveDate::from_ymd_opt(1950, 1, 1)
        .and_then(|d| d.checked_add_days(chrono::Days::new(day)))
        .unwrap_or_default();
    (0..1000u16)
        .find_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default()
}

fn org() -> String {
    (70_000_000..70_000_100u32)
        .find_map(org_number_from_prefix)
        .map(|o| o.as_str().to_owned())
        .unwrap_or_default()
}

fn event(p: &str, t: i64) -> AuditEvent {
    let o = org();
    AuditEvent::parse(
        &AuditEventInput {
            actor_kind: "personnel",
            actor: "1234567",
            patient: p,
            org: &o,
            action: "locator.lookup",
            resource: "locator",
            purpose: "treatment",
            ..AuditEventInput::default()
        },
        Timestamp(t),
    )
    .unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// Runs a test body on a current-thread runtime.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .block_on(f)
}

fn entry(index: u64, op: Op) -> Entry<kartotek_storage::TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Command {
            request_id: None,
            stamped_at: Timestamp(1_000 + index as i64),
            op,
        }),
    }
}

#[test]
fn appends_chain_and_retention_keeps_the_rest_verifiable() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store =
            Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (patient(1), patient(2));
        // Two appends: seqs continue across entries.
        let first: Vec<_> = (1..=4)
            .map(|t| event(if t % 2 == 0 { &b } else { &a }, t))
            .collect();
        let second: Vec<_> = (5..=10).map(|t| event(&a, t)).collect();
        let answers = store
            .state_machine
            .apply([
                entry(1, Op::AuditAppend(first)),
                entry(2, Op::AuditAppend(second)),
            ])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            answers[1].result,
            Ok(Outcome::AuditAppended {
                first_seq: 5,
                last_seq: 10
            })
        );
        let all = store
            .reader
            .audit_events(&AuditSelector::All, 1, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.value.events.len(), 10);
        verify_chain([0; 32], &all.value.events).unwrap_or_else(|b| panic!("{b}"));
        let head = store.reader.audit_head().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.seq, 10);
        assert_eq!(Some(head.hash), all.value.events.last().map(|e| e.hash));
        let pb = NationalId::parse(&b).unwrap_or_else(|e| panic!("{e}"));
        let of_b = store
            .reader
            .audit_events(&AuditSelector::Patient(pb.clone()), 0, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            of_b.value.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 4]
        );
        // Paging.
        let page = store
            .reader
            .audit_events(&AuditSelector::All, 3, 2)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            page.value.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(page.value.next_seq, Some(5));

        // Retention: events before t=6, at most 3 per command.
        let pruned = store
            .state_machine
            .apply([
                entry(
                    3,
                    Op::AuditPrune {
                        before: Timestamp(6),
                        max: 3,
                    },
                ),
                entry(
                    4,
                    Op::AuditPrune {
                        before: Timestamp(6),
                        max: 3,
                    },
                ),
            ])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            pruned[0].result,
            Ok(Outcome::AuditPruned {
                removed: 3,
                pruned_seq: 3
            })
        );
        assert_eq!(
            pruned[1].result,
            Ok(Outcome::AuditPruned {
                removed: 2,
                pruned_seq: 5
            })
        );
        let head = store.reader.audit_head().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((head.seq, head.pruned_seq), (10, 5));
        let rest = store
            .reader
            .audit_events(&AuditSelector::All, 1, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rest.value.events.first().map(|e| e.seq), Some(6));
        verify_chain(head.pruned_hash, &rest.value.events).unwrap_or_else(|b| panic!("{b}"));
        let of_b = store
            .reader
            .audit_events(&AuditSelector::Patient(pb), 0, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            of_b.value.events.is_empty(),
            "index entries go with their events"
        );
    });
}

fn shipped(
    journal_through: u64,
    appended: u32,
    gap: u64,
) -> Result<Outcome, kartotek_domain::ApplyError> {
    Ok(Outcome::AuditShipped {
        journal_through,
        appended,
        gap,
    })
}

#[test]
fn a_journal_batch_is_chained_once_per_journal_seq() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store =
            Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let a = patient(1);
        let ev = |t: std::ops::RangeInclusive<i64>| t.map(|t| event(&a, t)).collect::<Vec<_>>();
        let ship = |journal, first_seq, events| Op::AuditShip {
            journal,
            first_seq,
            events,
        };
        let answers = store
            .state_machine
            .apply([
                // Journal 7: seqs 1..=3, then the same batch again (a resend after a lost
                // answer), then 2..=5 (overlapping: only 4 and 5 are new).
                entry(1, ship(7, 1, ev(1..=3))),
                entry(2, ship(7, 1, ev(1..=3))),
                entry(3, ship(7, 2, ev(2..=5))),
                // Another journal with the same seqs is another node: chained.
                entry(4, ship(9, 1, ev(11..=12))),
                // Journal 7 skips 6 and 7: chained, and the gap is told.
                entry(5, ship(7, 8, ev(8..=8))),
                // An old batch after that: nothing.
                entry(6, ship(7, 4, ev(4..=5))),
            ])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let results: Vec<_> = answers.iter().map(|r| r.result.clone()).collect();
        assert_eq!(
            results,
            vec![
                shipped(3, 3, 0),
                shipped(3, 0, 0),
                shipped(5, 2, 0),
                shipped(2, 2, 0),
                shipped(8, 1, 2),
                shipped(8, 0, 0),
            ]
        );
        let all = store
            .reader
            .audit_events(&AuditSelector::All, 1, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        let times: Vec<i64> = all.value.events.iter().map(|e| e.event.time.0).collect();
        assert_eq!(
            times,
            vec![1, 2, 3, 4, 5, 11, 12, 8],
            "each journal event chained once"
        );
        verify_chain([0; 32], &all.value.events).unwrap_or_else(|b| panic!("{b}"));
        assert_eq!(store.reader.audit_journal_through(7).ok(), Some(8));
        assert_eq!(store.reader.audit_journal_through(9).ok(), Some(2));
        assert_eq!(store.reader.audit_journal_through(1).ok(), Some(0));
    });
}

/// Many concurrent appenders and a shipper that takes what is pending and removes it, as the
/// node's does: every event is shipped exactly once and in seq order, with no seq skipped,
/// even while writes are still landing (the outbox this journal replaced took its seqs before
/// writing, so a shipper could move past a slow writer's events and never ship them).
#[test]
fn the_journal_gives_contiguous_seqs_in_write_order_and_loses_nothing_under_concurrency() {
    contiguous_under_concurrency(kartotek_storage::JournalLimits::default());
}

/// The same with the smallest segments, so that writes rotate through (and reuse) segment
/// files while the shipper removes behind them; then a restart reads back what is left.
#[test]
fn the_journal_rotates_segments_under_concurrency_without_losing_an_event() {
    contiguous_under_concurrency(kartotek_storage::JournalLimits {
        segment_bytes: 0,
        ..kartotek_storage::JournalLimits::default()
    });
}

/// The same with the writer gathering appends before each write (`audit.journal_gather_us`).
#[test]
fn the_journal_gathering_appends_still_gives_contiguous_seqs_and_loses_nothing() {
    contiguous_under_concurrency(kartotek_storage::JournalLimits {
        gather: std::time::Duration::from_micros(500),
        ..kartotek_storage::JournalLimits::default()
    });
}

fn contiguous_under_concurrency(limits: kartotek_storage::JournalLimits) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = StoreConfig {
            journal: limits,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config.clone()).unwrap_or_else(|e| panic!("{e}"));
        let journal = store.journal.clone();
        let a = patient(3);
        const WRITERS: i64 = 32;
        const APPENDS: i64 = 40;
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (j, a) = (journal.clone(), a.clone());
            writers.push(tokio::spawn(async move {
                for i in 0..APPENDS {
                    // Events carry their writer and index in the time, 1 or 2 per append.
                    let n = 1 + (i % 2);
                    let events: Vec<_> =
                        (0..n).map(|k| event(&a, (w * 1000 + i) * 10 + k)).collect();
                    j.append(events).await.unwrap_or_else(|e| panic!("{e}"));
                }
            }));
        }
        let total = (WRITERS * (APPENDS / 2) * 3) as usize;
        let mut seen: Vec<(u64, i64)> = Vec::new();
        let started = std::time::Instant::now();
        while seen.len() < total {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "shipped {} of {total}",
                seen.len()
            );
            let pending = journal.pending(50).unwrap_or_else(|e| panic!("{e}"));
            let Some(last) = pending.last().map(|p| p.0) else {
                journal.written(std::time::Duration::from_millis(20)).await;
                continue;
            };
            seen.extend(pending.iter().map(|(s, e)| (*s, e.time.0)));
            journal
                .remove_through(last)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for w in writers {
            w.await.unwrap_or_else(|e| panic!("{e}"));
        }
        let left = journal.pending(10).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            left.is_empty(),
            "seen {} of {total}, left {:?}",
            seen.len(),
            left.iter().map(|l| l.0).collect::<Vec<_>>()
        );
        let seqs: Vec<u64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(
            seqs,
            (1..=total as u64).collect::<Vec<_>>(),
            "contiguous, in order, once"
        );
        let mut times: Vec<i64> = seen.iter().map(|s| s.1).collect();
        times.sort_unstable();
        times.dedup();
        assert_eq!(times.len(), total, "every event once");
        // Group commit: fewer synced writes than appends.
        let (writes, events) = journal.write_counts();
        assert_eq!(events, total as u64);
        assert!(writes <= (WRITERS * APPENDS) as u64, "{writes} writes");
        assert_eq!(journal.depth(), 0);
        assert!(
            journal
                .wait_removed(total as u64, std::time::Duration::from_millis(10))
                .await
        );
        // More, one at a time (a block each: with small segments, several segments' worth),
        // all but the last shipped; after a restart the last is what waits, and seqs go on
        // after it.
        let more: i64 = if limits.segment_bytes == 0 { 300 } else { 3 };
        for t in 0..more {
            journal
                .append(vec![event(&a, 900_000 + t)])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        journal
            .remove_through(total as u64 + more as u64 - 1)
            .unwrap_or_else(|e| panic!("{e}"));
        if limits.segment_bytes == 0 {
            let newest = std::fs::read_dir(dir.path().join("journal"))
                .unwrap_or_else(|e| panic!("{e}"))
                .filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .to_str()?
                        .strip_prefix("seg-")?
                        .parse()
                        .ok()
                })
                .max()
                .unwrap_or(0u64);
            assert!(newest > 1, "the writes went through more than one segment");
        }
        drop(journal);
        drop(store);
        let store = Store::open(dir.path(), config).unwrap_or_else(|e| panic!("{e}"));
        let left = store.journal.pending(10).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            left.iter().map(|l| (l.0, l.1.time.0)).collect::<Vec<_>>(),
            vec![(total as u64 + more as u64, 900_000 + more - 1)]
        );
        let next = store
            .journal
            .append(vec![event(&a, 1)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next, total as u64 + more as u64 + 1);
    });
}

/// A data directory of a version that kept the journal in the `outbox` column family: the
/// first open moves its waiting events (same seqs), its id and its removal mark into the
/// journal files and empties the family; the journal goes on from there.
#[test]
fn a_journal_kept_in_rocksdb_by_an_older_version_is_moved_into_files() {
    use kartotek_storage::codec::encode;
    use kartotek_storage::keys::CF_OUTBOX;
    block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = patient(7);
        {
            let db = kartotek_storage::db::open(&dir.path().join("db"), 1 << 20)
                .unwrap_or_else(|e| panic!("{e}"));
            let c = kartotek_storage::db::cf(&db, CF_OUTBOX).unwrap_or_else(|e| panic!("{e}"));
            let put = |k: &[u8], v: Vec<u8>| db.put_cf(c, k, v).unwrap_or_else(|e| panic!("{e}"));
            put(
                b"\xff\xff\xff\xff\xff\xff\xff\xffid",
                encode(&4242u64).unwrap_or_default(),
            );
            put(
                b"\xff\xff\xff\xff\xff\xff\xff\xffremoved",
                encode(&4u64).unwrap_or_default(),
            );
            for seq in 5u64..=7 {
                put(
                    &seq.to_be_bytes(),
                    encode(&event(&a, seq as i64 * 100)).unwrap_or_default(),
                );
            }
        }
        for round in 0..2 {
            let store =
                Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(store.journal.id(), 4242, "round {round}: the id is kept");
            let pending = store.journal.pending(10).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                pending
                    .iter()
                    .map(|p| (p.0, p.1.time.0))
                    .collect::<Vec<_>>(),
                vec![(5, 500), (6, 600), (7, 700)],
                "round {round}"
            );
            assert_eq!(store.journal.depth(), 3);
        }
        let store =
            Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let next = store
            .journal
            .append(vec![event(&a, 800)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next, 8);
        drop(store);
        let db = kartotek_storage::db::open(&dir.path().join("db"), 1 << 20)
            .unwrap_or_else(|e| panic!("{e}"));
        let c = kartotek_storage::db::cf(&db, CF_OUTBOX).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            db.iterator_cf(c, rocksdb::IteratorMode::Start)
                .next()
                .is_none(),
            "the family is emptied"
        );
    });
}

#[test]
fn the_journal_keeps_its_id_and_waiting_events_across_a_restart() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = patient(4);
        let (id, first) = {
            let store =
                Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
            let j = store.journal.clone();
            let first = j
                .append((1..=5).map(|t| event(&a, t)).collect())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            j.remove_through(2).unwrap_or_else(|e| panic!("{e}"));
            (j.id(), first)
        };
        assert_eq!(first, 1);
        let store =
            Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let j = store.journal.clone();
        assert_eq!(j.id(), id, "the id is kept with the journal");
        assert_ne!(id, 0);
        let pending = j.pending(100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            pending.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(j.depth(), 3);
        let next = j
            .append(vec![event(&a, 6)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next, 6, "seqs go on after a restart");
        // Emptied by its shipper, then restarted: seqs go on, never from 1 again (the chain
        // would take a seq given twice for a resend and drop the event).
        j.remove_through(6).unwrap_or_else(|e| panic!("{e}"));
        drop(j);
        drop(store);
        let store =
            Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let j = store.journal.clone();
        assert!(j.pending(10).unwrap_or_else(|e| panic!("{e}")).is_empty());
        assert_eq!(j.depth(), 0);
        let next = j
            .append(vec![event(&a, 7)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next, 7, "seqs go on after an emptied journal restarts");
        // A node-made event gets its journal seq as it is written (in memory and on disk);
        // one the node did not make is left alone.
        let mut made = event(&a, 8);
        made.served_by = Some(kartotek_domain::ServedBy {
            node: 2,
            journal: 0,
            journal_seq: 0,
        });
        let next = j
            .append(vec![made, event(&a, 9)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next, 8);
        let pending = j.pending(10).unwrap_or_else(|e| panic!("{e}"));
        let origins: Vec<_> = pending.iter().map(|p| p.1.served_by).collect();
        let expected = Some(kartotek_domain::ServedBy {
            node: 2,
            journal: id,
            journal_seq: 8,
        });
        assert_eq!(origins, vec![None, expected, None], "seqs 7 to 9");
        drop(j);
        drop(store);
        let store =
            Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let pending = store.journal.pending(10).unwrap_or_else(|e| panic!("{e}"));
        let at_8 = pending
            .iter()
            .find(|p| p.0 == 8)
            .and_then(|p| p.1.served_by);
        assert_eq!(at_8, expected);
        drop(store);
        // Another data directory is another journal.
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s2 =
            Store::open(other.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(s2.journal.id(), id);
    });
}

#[test]
fn a_full_journal_refuses_appends_and_takes_them_again_once_shipped() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = StoreConfig {
            journal: kartotek_storage::JournalLimits {
                events_max: 4,
                ..kartotek_storage::JournalLimits::default()
            },
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config).unwrap_or_else(|e| panic!("{e}"));
        let j = store.journal.clone();
        let a = patient(5);
        j.append((1..=3).map(|t| event(&a, t)).collect())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        match j.append((4..=5).map(|t| event(&a, t)).collect()).await {
            Err(kartotek_storage::StoreError::JournalFull(4)) => {}
            other => panic!("expected JournalFull, got {other:?}"),
        }
        assert_eq!(j.depth(), 3, "a refused append writes nothing");
        j.remove_through(3).unwrap_or_else(|e| panic!("{e}"));
        let first = j
            .append((4..=5).map(|t| event(&a, t)).collect())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, 4);
        assert!(j.oldest_age() < std::time::Duration::from_secs(5));
    });
}

/// A data directory of a version that kept the chain in the `sm` family opens with the chain
/// moved into the `audit` family, whole and verifiable, and nothing of it left in `sm`.
#[test]
fn a_chain_kept_in_the_state_family_by_an_older_version_is_moved_at_open() {
    use kartotek_storage::keys::{CF_AUDIT, CF_SM, is_audit_key};
    block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = patient(6);
        {
            let mut store =
                Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
            store
                .state_machine
                .apply([entry(
                    1,
                    Op::AuditAppend((1..=7).map(|t| event(&a, t)).collect()),
                )])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // Put the chain back where an older version kept it.
        {
            let db = kartotek_storage::db::open(&dir.path().join("db"), 8 << 20)
                .unwrap_or_else(|e| panic!("{e}"));
            let sm = kartotek_storage::db::cf(&db, CF_SM).unwrap_or_else(|e| panic!("{e}"));
            let audit = kartotek_storage::db::cf(&db, CF_AUDIT).unwrap_or_else(|e| panic!("{e}"));
            let mut batch = rocksdb::WriteBatch::default();
            let mut n = 0;
            for item in db.iterator_cf(audit, rocksdb::IteratorMode::Start) {
                let (k, v) = item.unwrap_or_else(|e| panic!("{e}"));
                batch.put_cf(sm, &k, &v);
                batch.delete_cf(audit, &k);
                n += 1;
            }
            assert!(n >= 7 * 3, "events, indexes and the head: {n} keys");
            db.write(batch).unwrap_or_else(|e| panic!("{e}"));
        }
        let store =
            Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let all = store
            .reader
            .audit_events(&AuditSelector::All, 1, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.value.events.len(), 7);
        verify_chain([0; 32], &all.value.events).unwrap_or_else(|b| panic!("{b}"));
        assert_eq!(store.reader.audit_head().map(|h| h.seq).ok(), Some(7));
        let pa = NationalId::parse(&a).unwrap_or_else(|e| panic!("{e}"));
        let of_a = store
            .reader
            .audit_events(&AuditSelector::Patient(pa), 0, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(of_a.value.events.len(), 7, "the patient index moved too");
        drop(store);
        let db = kartotek_storage::db::open(&dir.path().join("db"), 8 << 20)
            .unwrap_or_else(|e| panic!("{e}"));
        let sm = kartotek_storage::db::cf(&db, CF_SM).unwrap_or_else(|e| panic!("{e}"));
        let left = db
            .iterator_cf(sm, rocksdb::IteratorMode::Start)
            .filter_map(Result::ok)
            .filter(|(k, _)| is_audit_key(k))
            .count();
        assert_eq!(left, 0, "no audit key left in sm");
    });
}
