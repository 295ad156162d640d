//! The record families in the state machine: apply and read back each family (blocks,
//! consents, reservations, representations, catalog, clients, override notifications), change
//! events with contiguous revisions, read-your-writes inside one batched log entry, and
//! determinism (two stores fed the same log in different apply groupings end equal).

use kartotek_domain::access::AccessPolicy;
use kartotek_domain::consent::ConsentExpireDue;
use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::{national_id_from_parts, org_number_from_prefix};
use kartotek_domain::notification::NotificationAck;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{
    AccessRequest, AccessRequestInput, ApplyError, BatchItem, BlockAdd, BlockAddInput, BlockRevoke,
    CatalogId, CatalogInput, CatalogQuery, CatalogRegister, Change, Command, ConsentAnswer,
    ConsentGrant, ConsentInput, ConsentRequest, ConsentStatus, Effect, NationalId, Op, Outcome,
    RepresentationGrant, RepresentationInput, ReservationReserve, Response, ServiceName, Timestamp,
};
use kartotek_storage::{StateMachineConfig, Store, StoreConfig};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const DAY_MS: i64 = 86_400_000;

fn person(y: i32, n: usize) -> NationalId {
    let date = chrono::NaiveDate::from_ymd_opt(y, 3, 1).unwrap_or_default();
    (0..1000u16)
        .filter_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
        .nth(n)
        .unwrap_or_else(|| panic!("no id"))
}

fn org() -> String {
    (90_000_000..90_000_100u32)
        .find_map(org_number_from_prefix)
        .map(|o| o.as_str().to_owned())
        .unwrap_or_default()
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn cmd(op: RecordOp, at: i64) -> Command {
    Command {
        request_id: None,
        stamped_at: Timestamp(at),
        op: Op::Record(op),
    }
}

fn entry(index: u64, c: Command) -> Entry<kartotek_storage::TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(c),
    }
}

fn open(dir: &std::path::Path) -> Store {
    ok(Store::open(
        dir,
        StoreConfig {
            state_machine: StateMachineConfig::default(),
            ..StoreConfig::default()
        },
    ))
}

fn rt() -> tokio::runtime::Runtime {
    ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build())
}

fn block_add(p: &NationalId, target: &str, level: &str) -> RecordOp {
    RecordOp::BlockAdd(ok(BlockAdd::parse(&BlockAddInput {
        patient: p.as_str(),
        target_kind: "personnel",
        target,
        level,
        registered_by_kind: "citizen",
        registered_by: p.as_str(),
        ..Default::default()
    })))
}

fn consent_input<'a>(p: &'a NationalId, scopes: &'a [String]) -> ConsentInput<'a> {
    ConsentInput {
        patient: p.as_str(),
        grantee_kind: "personnel",
        grantee: "4242",
        scopes,
        purpose: "treatment",
        ..Default::default()
    }
}

fn override_req(p: &NationalId, at: i64) -> RecordOp {
    RecordOp::AccessOverride {
        request: ok(AccessRequest::parse(
            &AccessRequestInput {
                patient: p.as_str(),
                personnel: "4242",
                service: "kjernejournal",
                purpose: "emergency",
                emergency_override: true,
                justification: "bevisstløs i akuttmottak",
                ..Default::default()
            },
            Timestamp(at),
        )),
        policy: AccessPolicy::default(),
    }
}

/// The record outcome of one answer.
fn outcome(r: &Response) -> &RecordOutcome {
    match &r.result {
        Ok(Outcome::Record(o)) => o,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// A script touching every family, one op per entry.
fn script(p: &NationalId, child: &NationalId, parent: &NationalId) -> Vec<Command> {
    let scopes = vec!["kjernejournal".to_owned()];
    let o = org();
    let cat_scopes = vec!["kj/read".to_owned()];
    vec![
        cmd(block_add(p, "4242", "overridable"), T0),
        cmd(block_add(p, "777", "absolute"), T0 + 1),
        cmd(
            RecordOp::ConsentGrant(ok(ConsentGrant::parse(
                &consent_input(p, &scopes),
                "citizen",
                p.as_str(),
            ))),
            T0 + 2,
        ),
        cmd(
            RecordOp::ConsentRequest(ok(ConsentRequest::parse(
                &consent_input(p, &scopes[..]),
                "2026-01-03T00:00:00Z",
            )
            .map(|mut r| {
                r.terms.purpose = ok(kartotek_domain::Purpose::parse("purpose", "quality"));
                r
            }))),
            T0 + 3,
        ),
        cmd(
            RecordOp::Reserve(ok(ReservationReserve::parse(
                p.as_str(),
                "e-resept",
                "nei takk",
                "citizen",
                p.as_str(),
            ))),
            T0 + 4,
        ),
        cmd(
            RecordOp::RepresentationGrant(ok(RepresentationGrant::parse(&RepresentationInput {
                representative: parent.as_str(),
                represented: child.as_str(),
                kind: "parental_responsibility",
                areas: &["*".to_owned()],
                source: "population_register",
                granted_by_kind: "system",
                granted_by: "folkeregisteret",
                ..Default::default()
            }))),
            T0 + 5,
        ),
        cmd(
            RecordOp::CatalogRegister(ok(CatalogRegister::parse(&CatalogInput {
                id: "nhn.kjernejournal",
                owner: &o,
                title: "Kjernejournal FHIR API",
                description: "Critical information and medication list",
                base_url: "https://kj.nhn.no/fhir",
                scopes: &cat_scopes,
                audience: "personnel",
                ..Default::default()
            }))),
            T0 + 6,
        ),
        cmd(override_req(p, T0 + 7), T0 + 7),
    ]
}

async fn apply_one_per_entry(store: &mut Store, cmds: &[Command]) -> Vec<Response> {
    let mut out = Vec::new();
    for (i, c) in cmds.iter().enumerate() {
        let mut r = ok(store
            .state_machine
            .apply([entry(i as u64 + 1, c.clone())])
            .await);
        out.append(&mut r);
    }
    out
}

#[test]
fn every_family_applies_reads_back_and_feeds_the_change_history() {
    rt().block_on(async {
        let dir = ok(tempfile::tempdir());
        let mut store = open(dir.path());
        let (p, child, parent) = (person(1980, 0), person(2016, 0), person(1985, 1));
        let answers = apply_one_per_entry(&mut store, &script(&p, &child, &parent)).await;
        // Every op changed one record at the next revision, except the override, which also
        // stored its notification.
        let revisions: Vec<u64> = answers.iter().map(|a| a.revision).collect();
        assert_eq!(revisions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        match outcome(&answers[0]) {
            RecordOutcome::Block { block, changed } => {
                assert!(*changed);
                assert_eq!((block.id, block.mod_revision), (1, 1));
            }
            o => panic!("{o:?}"),
        }
        match outcome(&answers[7]) {
            RecordOutcome::AccessDecided {
                decision,
                notification,
            } => {
                assert_eq!(decision.effect, Effect::PermitByOverride);
                assert_eq!(decision.matching_blocks, vec![1]);
                let n = notification
                    .as_ref()
                    .unwrap_or_else(|| panic!("no notification"));
                assert_eq!((n.id, n.patient.clone()), (8, p.clone()));
                assert!(n.is_pending());
            }
            o => panic!("{o:?}"),
        }

        let r = &store.reader;
        let blocks = ok(r.blocks_of(&p));
        assert_eq!(blocks.revision, 8);
        assert_eq!(
            blocks.value.iter().map(|b| b.id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(ok(r.consents_of(&p)).value.len(), 2);
        assert_eq!(ok(r.reservations_of(&p)).value.len(), 1);
        let kj = ok(ServiceName::parse("service", "e-resept"));
        assert!(
            ok(r.reservation(&p, &kj))
                .value
                .is_some_and(|v| v.is_active())
        );
        assert_eq!(ok(r.representations_of_represented(&child)).value.len(), 1);
        assert_eq!(
            ok(r.representations_of_representative(&parent)).value.len(),
            1
        );
        assert!(
            ok(r.representations_of_representative(&child))
                .value
                .is_empty()
        );
        let id = ok(CatalogId::parse("id", "nhn.kjernejournal"));
        assert!(ok(r.catalog_entry(&id)).value.is_some());
        let q = ok(CatalogQuery::parse("", &org(), "", "", false));
        assert!(ok(r.catalog_entries()).value.iter().all(|e| q.matches(e)));
        let pending = ok(r.notifications_of(&p, true, 10));
        assert_eq!(pending.value.len(), 1);

        // The access facts come from one view and see the blocks and consents.
        let svc = ok(ServiceName::parse("service", "kjernejournal"));
        let facts = ok(r.access_facts(&p, &svc));
        assert_eq!(facts.value.blocks.len(), 2);
        assert_eq!(facts.value.consents.len(), 2);
        assert!(facts.value.reservations.is_empty());

        // One change event per revision, of the right family.
        let slice = ok(r.changes(1, 100));
        let kinds: Vec<&str> = slice
            .events
            .iter()
            .map(|e| match &e.change {
                Change::Block(_) => "block",
                Change::Consent(_) => "consent",
                Change::Reservation(_) => "reservation",
                Change::Representation(_) => "representation",
                Change::CatalogEntry(_) => "catalog",
                Change::Notification(_) => "notification",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "block",
                "block",
                "consent",
                "consent",
                "reservation",
                "representation",
                "catalog",
                "notification"
            ]
        );
        assert_eq!(slice.events[5].change.patient(), Some(&child));
    });
}

#[test]
fn revoke_ack_and_idempotent_repeats_move_the_revision_only_on_change() {
    rt().block_on(async {
        let dir = ok(tempfile::tempdir());
        let mut store = open(dir.path());
        let p = person(1980, 2);
        let revoke =
            RecordOp::BlockRevoke(ok(BlockRevoke::parse(p.as_str(), 1, "citizen", p.as_str())));
        let ack = RecordOp::NotificationAck(ok(NotificationAck::parse(
            p.as_str(),
            2,
            "citizen",
            p.as_str(),
        )));
        let cmds = vec![
            cmd(block_add(&p, "4242", "overridable"), T0),
            cmd(override_req(&p, T0 + 1), T0 + 1),
            cmd(block_add(&p, "4242", "overridable"), T0 + 2), // same block: no change
            cmd(ack.clone(), T0 + 3),
            cmd(ack, T0 + 4), // acknowledged already: no change
            cmd(revoke.clone(), T0 + 5),
            cmd(override_req(&p, T0 + 6), T0 + 6), // nothing to override now
            cmd(
                RecordOp::BlockRevoke(ok(BlockRevoke::parse(
                    p.as_str(),
                    99,
                    "citizen",
                    p.as_str(),
                ))),
                T0 + 7,
            ),
        ];
        let a = apply_one_per_entry(&mut store, &cmds).await;
        let revisions: Vec<u64> = a.iter().map(|a| a.revision).collect();
        assert_eq!(revisions, vec![1, 2, 2, 3, 3, 4, 4, 4]);
        match outcome(&a[6]) {
            RecordOutcome::AccessDecided {
                decision,
                notification,
            } => {
                assert_eq!(decision.effect, Effect::Permit);
                assert!(notification.is_none());
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(a[7].result, Err(ApplyError::NotFound(_))));
        assert!(
            ok(store.reader.notifications_of(&p, true, 10))
                .value
                .is_empty()
        );
        assert_eq!(
            ok(store.reader.notifications_of(&p, false, 10)).value.len(),
            1
        );
    });
}

#[test]
fn consent_deadline_uses_leader_time_and_withdraw_ends_the_permit() {
    rt().block_on(async {
        let dir = ok(tempfile::tempdir());
        let mut store = open(dir.path());
        let p = person(1980, 3);
        let scopes = vec!["kjernejournal".to_owned()];
        let answer = |id| ok(ConsentAnswer::parse(p.as_str(), id, "citizen", p.as_str()));
        let cmds = vec![
            cmd(
                RecordOp::ConsentRequest(ok(ConsentRequest::parse(
                    &consent_input(&p, &scopes),
                    "2026-01-02T00:00:00Z",
                ))),
                T0,
            ),
            // Past the deadline by the leader's stamp: refused on every replica.
            cmd(RecordOp::ConsentGrantRequest(answer(1)), T0 + 2 * DAY_MS),
            cmd(
                RecordOp::ConsentGrant(ok(ConsentGrant::parse(
                    &consent_input(&p, &scopes),
                    "citizen",
                    p.as_str(),
                ))),
                T0 + 2 * DAY_MS + 1,
            ),
            cmd(RecordOp::ConsentWithdraw(answer(2)), T0 + 2 * DAY_MS + 2),
        ];
        let a = apply_one_per_entry(&mut store, &cmds).await;
        assert!(matches!(
            a[1].result,
            Err(ApplyError::FailedPrecondition(_))
        ));
        let consents = ok(store.reader.consents_of(&p)).value;
        let now = Timestamp(T0 + 3 * DAY_MS);
        assert!(consents.iter().all(|c| !c.permits_at(now)));
        assert_eq!(
            kartotek_domain::consent::effective_status(&consents[0], now),
            kartotek_domain::ConsentStatus::Expired
        );
    });
}

#[test]
fn expiry_sweep_stores_due_consents_as_expired_and_drops_stale_index_entries() {
    rt().block_on(async {
        let dir = ok(tempfile::tempdir());
        let mut store = open(dir.path());
        let p = person(1981, 4);
        let scopes = vec!["kjernejournal".to_owned()];
        let other_scopes = vec!["pasientjournal".to_owned()];
        let request = |scopes: &[String]| {
            RecordOp::ConsentRequest(ok(ConsentRequest::parse(
                &consent_input(&p, scopes),
                "2026-01-02T00:00:00Z",
            )))
        };
        let bounded = ConsentInput {
            valid_to: "2026-01-03T00:00:00Z",
            ..consent_input(&p, &scopes)
        };
        let answer = |id| ok(ConsentAnswer::parse(p.as_str(), id, "citizen", p.as_str()));
        let cmds = vec![
            // 1: a request nobody answers (due at its deadline, day 1).
            cmd(request(&scopes), T0),
            // 2: a direct grant that ends on day 2.
            cmd(
                RecordOp::ConsentGrant(ok(ConsentGrant::parse(&bounded, "citizen", p.as_str()))),
                T0 + 1,
            ),
            // 3: a request granted in time: its deadline entry goes stale.
            cmd(request(&other_scopes), T0 + 2),
            cmd(RecordOp::ConsentGrantRequest(answer(3)), T0 + 3),
        ];
        let answers = apply_one_per_entry(&mut store, &cmds).await;
        assert!(answers.iter().all(|a| a.result.is_ok()), "{answers:?}");
        let sweep = |due, at, index| {
            let op = RecordOp::ConsentExpireDue(ok(ConsentExpireDue::new(due)));
            entry(index, cmd(op, at))
        };

        let day1 = T0 + DAY_MS + 1;
        let due = ok(store.reader.consents_due(Timestamp(day1), 100));
        let ids: Vec<u64> = due.iter().map(|d| d.consent_id).collect();
        assert_eq!(
            ids,
            vec![1, 3],
            "due by day 1: the open request and the stale entry"
        );
        let (_, revision_before) = ok(store.reader.position());
        let r = ok(store
            .state_machine
            .apply([sweep(due.clone(), day1, 10)])
            .await);
        assert_eq!(
            outcome(&r[0]),
            &RecordOutcome::ConsentsExpired {
                expired: 1,
                index_removed: 2
            }
        );
        let (_, revision_after) = ok(store.reader.position());
        assert_eq!(revision_after, revision_before + 1, "one change: consent 1");
        let consents = ok(store.reader.consents_of(&p)).value;
        assert_eq!(consents[0].status, ConsentStatus::Expired);
        assert_eq!(consents[0].expired_at, Some(Timestamp(day1)));
        assert_eq!(
            consents[2].status,
            ConsentStatus::Granted,
            "granted in time"
        );
        assert!(ok(store.reader.consents_due(Timestamp(day1), 100)).is_empty());

        // The same sweep again changes nothing; one proposed before its time neither.
        let r = ok(store.state_machine.apply([sweep(due, day1 + 1, 11)]).await);
        assert_eq!(
            outcome(&r[0]),
            &RecordOutcome::ConsentsExpired {
                expired: 0,
                index_removed: 0
            }
        );
        let day2 = T0 + 2 * DAY_MS;
        let early = ok(store.reader.consents_due(Timestamp(day2), 100));
        assert_eq!(early.len(), 1);
        let r = ok(store
            .state_machine
            .apply([sweep(early.clone(), day2 - 1, 12)])
            .await);
        assert_eq!(
            outcome(&r[0]),
            &RecordOutcome::ConsentsExpired {
                expired: 0,
                index_removed: 0
            }
        );
        assert_eq!(
            ok(store.reader.consents_of(&p)).value[1].status,
            ConsentStatus::Granted
        );
        let r = ok(store.state_machine.apply([sweep(early, day2, 13)]).await);
        assert_eq!(
            outcome(&r[0]),
            &RecordOutcome::ConsentsExpired {
                expired: 1,
                index_removed: 1
            }
        );
        assert_eq!(
            ok(store.reader.consents_of(&p)).value[1].status,
            ConsentStatus::Expired
        );
        assert!(ok(store.reader.consents_due(Timestamp(i64::MAX), 100)).is_empty());
    });
}

#[test]
fn batched_entries_read_their_own_writes_and_stores_agree() {
    rt().block_on(async {
        let (p, child, parent) = (person(1980, 4), person(2016, 1), person(1985, 2));
        let cmds = script(&p, &child, &parent);
        // Store A: one op per entry. Store B: all ops in one batched entry (the override must
        // see the block added earlier in the same entry).
        let dir_a = ok(tempfile::tempdir());
        let mut a = open(dir_a.path());
        let answers_a = apply_one_per_entry(&mut a, &cmds).await;
        let dir_b = ok(tempfile::tempdir());
        let mut b = open(dir_b.path());
        let batch = Command {
            request_id: None,
            stamped_at: Timestamp(T0 + 7),
            op: Op::Batch(
                cmds.iter()
                    .map(|c| BatchItem {
                        request_id: None,
                        op: c.op.clone(),
                    })
                    .collect(),
            ),
        };
        let answers_b = ok(b.state_machine.apply([entry(1, batch)]).await);
        let Ok(Outcome::Batch(items)) = &answers_b[0].result else {
            panic!("not a batch answer: {:?}", answers_b[0]);
        };
        assert_eq!(items.len(), answers_a.len());
        match outcome(&items[7]) {
            RecordOutcome::AccessDecided { decision, .. } => {
                assert_eq!(decision.effect, Effect::PermitByOverride)
            }
            o => panic!("{o:?}"),
        }
        // Same records (times differ only by stamp; compare ids and revisions).
        let ids = |s: &Store| {
            let r = &s.reader;
            (
                ok(r.blocks_of(&p))
                    .value
                    .iter()
                    .map(|b| (b.id, b.mod_revision))
                    .collect::<Vec<_>>(),
                ok(r.consents_of(&p))
                    .value
                    .iter()
                    .map(|c| c.id)
                    .collect::<Vec<_>>(),
                ok(r.representations_of_representative(&parent)).value.len(),
                ok(r.notifications_of(&p, false, 10))
                    .value
                    .iter()
                    .map(|n| n.id)
                    .collect::<Vec<_>>(),
                ok(r.position()).1,
            )
        };
        assert_eq!(ids(&a), ids(&b));
    });
}

#[test]
fn the_token_ledger_spends_once_revokes_and_forgets_after_expiry() {
    use kartotek_domain::token_ids::{
        TokenId, TokenIdKind, TokenIdsForget, TokenIdsSpend, TokenJti, TokenRevoke,
    };
    rt().block_on(async {
        let dir = ok(tempfile::tempdir());
        let mut store = open(dir.path());
        let id = |kind, jti: &str, exp_ms: i64| {
            ok(TokenId::parse(
                kind,
                "app-1",
                jti,
                T0 + exp_ms,
                Timestamp(T0),
            ))
        };
        let spend = |ids: Vec<TokenId>| RecordOp::TokenIdsSpend(ok(TokenIdsSpend::new(ids)));
        let assertion = id(TokenIdKind::Assertion, "a-1", 60_000);
        let proof = id(TokenIdKind::Proof, "p-1", 65_000);
        let other_proof = id(TokenIdKind::Proof, "p-2", 65_000);
        let revoked = id(TokenIdKind::Revoked, "t-1", 300_000);
        let (_, revision_before) = ok(store.reader.position());
        let answers = apply_one_per_entry(
            &mut store,
            &[
                cmd(spend(vec![assertion.clone(), proof.clone()]), T0),
                // A second frontend with the same assertion (and a new proof): refused whole.
                cmd(spend(vec![assertion.clone(), other_proof.clone()]), T0 + 1),
                // ... so the new proof was not spent by it.
                cmd(spend(vec![other_proof.clone()]), T0 + 2),
                cmd(
                    RecordOp::TokenRevoke(ok(TokenRevoke::new(revoked.clone()))),
                    T0 + 3,
                ),
                cmd(
                    RecordOp::TokenRevoke(ok(TokenRevoke::new(revoked.clone()))),
                    T0 + 4,
                ),
            ],
        )
        .await;
        assert_eq!(
            outcome(&answers[0]),
            &RecordOutcome::TokenIdsSpent { spent: 2 }
        );
        match &answers[1].result {
            Err(ApplyError::Conflict(why)) => assert!(why.contains("client_assertion"), "{why}"),
            other => panic!("a replayed assertion: {other:?}"),
        }
        assert_eq!(
            outcome(&answers[2]),
            &RecordOutcome::TokenIdsSpent { spent: 1 }
        );
        assert_eq!(
            outcome(&answers[3]),
            &RecordOutcome::TokenRevoked { changed: true }
        );
        assert_eq!(
            outcome(&answers[4]),
            &RecordOutcome::TokenRevoked { changed: false }
        );
        let (_, revision_after) = ok(store.reader.position());
        assert_eq!(
            revision_after, revision_before,
            "the ledger moves no revision"
        );
        let client = ok(kartotek_domain::ClientId::parse("c", "app-1"));
        let found = ok(store.reader.token_id(
            TokenIdKind::Revoked,
            &client,
            &ok(TokenJti::parse("j", "t-1")),
        ));
        assert_eq!(found.as_ref(), Some(&revoked));

        // After 65 s the assertion and both proofs may go; the revocation stays.
        let later = Timestamp(T0 + 70_000);
        let expired = ok(store.reader.token_ids_expired(later, 100));
        assert_eq!(
            expired,
            vec![assertion.clone(), proof.clone(), other_proof.clone()]
        );
        // A sweep stamped before the expiry forgets nothing (a stale local view).
        let early = RecordOp::TokenIdsForget(ok(TokenIdsForget::new(expired.clone())));
        let late = RecordOp::TokenIdsForget(ok(TokenIdsForget::new(expired.clone())));
        let r = ok(store
            .state_machine
            .apply([entry(6, cmd(early, T0 + 10)), entry(7, cmd(late, later.0))])
            .await);
        assert_eq!(
            outcome(&r[0]),
            &RecordOutcome::TokenIdsForgotten { forgotten: 0 }
        );
        assert_eq!(
            outcome(&r[1]),
            &RecordOutcome::TokenIdsForgotten { forgotten: 3 }
        );
        assert!(ok(store.reader.token_ids_expired(later, 100)).is_empty());
        assert!(
            ok(store.reader.token_id(
                TokenIdKind::Assertion,
                &client,
                &ok(TokenJti::parse("j", "a-1"))
            ))
            .is_none()
        );
        // Forgotten, the assertion could be spent again (its own exp check refuses it first).
        let again = ok(TokenId::parse(
            TokenIdKind::Assertion,
            "app-1",
            "a-1",
            later.0 + 60_000,
            later,
        ));
        let r = ok(store
            .state_machine
            .apply([entry(8, cmd(spend(vec![again]), later.0 + 1))])
            .await);
        assert_eq!(outcome(&r[0]), &RecordOutcome::TokenIdsSpent { spent: 1 });
    });
}
