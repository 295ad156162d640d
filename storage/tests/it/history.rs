//! The change history (watch feed), bulk-import batches and paged listing by organisation.

use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::{national_id_from_parts, org_number_from_prefix};
use kartotek_domain::{
    Change, Command, LocatorKey, LocatorRegister, Op, OrgNumber, Outcome, Timestamp,
};
use kartotek_storage::{HistoryError, StateMachineConfig, Store, StoreConfig};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

fn patient(n: u32) -> String {
    let date = chrono::NaiveDate::from_ymd_opt(1960, 1, 1)
        .and_then(|d| d.checked_add_days(chrono::Days::new(u64::from(n))))
        .unwrap_or_default();
    (0..1000u16)
        .find_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default()
}

fn org(n: u32) -> String {
    (80_000_000 + n * 100..80_000_000 + n * 100 + 100)
        .find_map(org_number_from_prefix)
        .map(|o| o.as_str().to_owned())
        .unwrap_or_default()
}

fn reg(p: u32, o: u32, system: &str) -> LocatorRegister {
    LocatorRegister::parse(&patient(p), &org(o), system, &["Observation".into()], "")
        .unwrap_or_else(|e| panic!("fixture: {e}"))
}

fn cmd(op: Op, at: i64) -> Command {
    Command {
        request_id: None,
        stamped_at: Timestamp(at),
        op,
    }
}

fn entry(index: u64, c: Command) -> Entry<kartotek_storage::TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(c),
    }
}

fn open(dir: &std::path::Path, history: u64) -> Store {
    Store::open(
        dir,
        StoreConfig {
            state_machine: StateMachineConfig {
                change_history_max: history,
                ..StateMachineConfig::default()
            },
            ..StoreConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("open: {e}"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_change_gets_one_event_in_revision_order() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = open(dir.path(), 1_000);
        let mut rx = store.reader.subscribe();
        let ops = vec![
            Op::LocatorRegister(reg(1, 1, "a")),
            Op::LocatorRegister(reg(1, 1, "a")), // unchanged: no event
            Op::LocatorImport(vec![reg(2, 1, "a"), reg(3, 2, "b"), reg(2, 1, "a")]),
            Op::LocatorRetire(
                LocatorKey::parse(&patient(1), &org(1), "a").unwrap_or_else(|e| panic!("{e}")),
            ),
        ];
        let entries: Vec<_> = ops
            .into_iter()
            .enumerate()
            .map(|(i, op)| entry(i as u64 + 1, cmd(op, 1000 + i as i64)))
            .collect();
        let answers = store
            .state_machine
            .apply(entries)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            answers[2].result,
            Ok(Outcome::Imported {
                changed: 2,
                unchanged: 1
            }),
            "a duplicate inside a batch sees the batch's own earlier write"
        );
        assert!(rx.has_changed().unwrap_or(false), "watchers are notified");
        assert_eq!(*rx.borrow_and_update(), 4);
        let slice = store
            .reader
            .changes(1, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(slice.revision, 4);
        let revs: Vec<u64> = slice.events.iter().map(|e| e.revision).collect();
        assert_eq!(revs, vec![1, 2, 3, 4]);
        match &slice.events[3].change {
            Change::Locator(e) => {
                assert_eq!(e.status, kartotek_domain::LocatorStatus::Retired);
                assert_eq!(e.mod_revision, 4);
            }
            other => panic!("unexpected change {other:?}"),
        }
        let tail = store.reader.changes(3, 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tail.events.len(), 1);
        assert_eq!(tail.events[0].revision, 3);
        assert!(
            store
                .reader
                .changes(5, 10)
                .map(|s| s.events.is_empty())
                .unwrap_or(false)
        );
    });
}

#[test]
fn history_is_compacted_to_its_bound_and_old_revisions_are_refused() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = open(dir.path(), 10);
        let batch: Vec<_> = (0..25).map(|i| reg(i, 1, "s")).collect();
        store
            .state_machine
            .apply([entry(1, cmd(Op::LocatorImport(batch), 1))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        match store.reader.changes(15, 100) {
            Err(HistoryError::Compacted { requested, oldest }) => {
                assert_eq!((requested, oldest), (15, 16));
            }
            other => panic!("expected Compacted, got {other:?}"),
        }
        let kept = store
            .reader
            .changes(16, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept.events.len(), 10);
        assert_eq!(kept.events.last().map(|e| e.revision), Some(25));
        // Compaction survives a reopen.
        drop(store);
        let store = open(dir.path(), 10);
        assert!(matches!(
            store.reader.changes(1, 1),
            Err(HistoryError::Compacted { oldest: 16, .. })
        ));
    });
}

#[test]
fn listing_by_org_pages_through_every_entry_once() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = open(dir.path(), 1_000);
        let mut batch: Vec<_> = (0..57).map(|i| reg(i, 7, "ehr")).collect();
        batch.extend((0..5).map(|i| reg(i, 7, "ehr-lab")));
        batch.extend((0..9).map(|i| reg(i, 8, "other-org")));
        store
            .state_machine
            .apply([
                entry(1, cmd(Op::LocatorImport(batch), 1)),
                entry(
                    2,
                    cmd(
                        Op::LocatorRetire(
                            LocatorKey::parse(&patient(3), &org(7), "ehr")
                                .unwrap_or_else(|e| panic!("{e}")),
                        ),
                        2,
                    ),
                ),
            ])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let o = OrgNumber::parse(&org(7)).unwrap_or_else(|e| panic!("{e}"));
        for (include_retired, want) in [(true, 62usize), (false, 61)] {
            let mut seen = std::collections::BTreeSet::new();
            let mut cursor: Option<Vec<u8>> = None;
            let mut pages = 0;
            loop {
                let page = store
                    .reader
                    .list_locator_by_org(&o, include_retired, cursor.as_deref(), 10)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(page.value.items.len() <= 10);
                for e in &page.value.items {
                    assert_eq!(e.key.org, o);
                    assert!(seen.insert(e.key.clone()), "an entry came twice");
                }
                pages += 1;
                match page.value.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
                assert!(pages < 100, "paging does not end");
            }
            assert_eq!(seen.len(), want, "include_retired={include_retired}");
        }
    });
}

#[test]
fn a_proposal_batch_answers_and_deduplicates_each_item() {
    use kartotek_domain::{BatchItem, RequestId};
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = open(dir.path(), 1_000);
        let rid = |s: &str| Some(RequestId::parse(s).unwrap_or_else(|e| panic!("{e}")));
        let items = vec![
            BatchItem {
                request_id: rid("a"),
                op: Op::LocatorRegister(reg(1, 1, "x")),
            },
            BatchItem {
                request_id: rid("b"),
                op: Op::LocatorRetire(
                    LocatorKey::parse(&patient(9), &org(1), "nope")
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
            },
            // The same request id again inside the batch: answered from the first.
            BatchItem {
                request_id: rid("a"),
                op: Op::LocatorRegister(reg(1, 1, "x")),
            },
            BatchItem {
                request_id: None,
                op: Op::Batch(vec![]),
            },
            BatchItem {
                request_id: rid("c"),
                op: Op::LocatorRegister(reg(2, 1, "x")),
            },
        ];
        let answers = store
            .state_machine
            .apply([entry(1, cmd(Op::Batch(items), 5))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Ok(Outcome::Batch(items)) = &answers[0].result else {
            panic!("expected a batch answer, got {:?}", answers[0]);
        };
        assert_eq!(items.len(), 5);
        assert_eq!(items[0].revision, 1);
        assert!(matches!(
            items[0].result,
            Ok(Outcome::Locator { changed: true, .. })
        ));
        assert!(matches!(
            items[1].result,
            Err(kartotek_domain::ApplyError::NotFound(_))
        ));
        assert!(items[2].deduplicated);
        assert_eq!(items[2].result, items[0].result);
        assert!(items[3].result.is_err(), "batches never nest");
        assert_eq!(items[4].revision, 2);
        assert_eq!(answers[0].revision, 2);
        // A retry of an item in a later single command replays its answer.
        let retry = store
            .state_machine
            .apply([entry(
                2,
                Command {
                    request_id: rid("c"),
                    stamped_at: Timestamp(6),
                    op: Op::LocatorRegister(reg(2, 1, "x")),
                },
            )])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(retry[0].deduplicated);
        assert_eq!(retry[0].result, items[4].result);
    });
}
