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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
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
