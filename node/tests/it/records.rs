//! The record families end to end on a real multi-process cluster, through the client and
//! through the CLI:
//! - blocks and the access decision: an absolute block denies even with an override; an
//!   overridable block is passed by an override with a justification (permit by override), which
//!   queues a patient notification that is listed and then acknowledged;
//! - consents: a client's access needs one; withdrawing it removes the permit;
//! - reservations: an opt-out denies the service;
//! - representation: parental responsibility narrows from 12 and stops at 16;
//! - the API catalog: register, publish, text search; token-issuance clients.

use crate::common;

use chrono::{Datelike, Days, Utc};
use common::{TestCluster, block, citizen, ok, org, patient};
use kartotek_client::KartotekClient;
use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::national_id_from_parts;
use kartotek_proto::v1::*;

/// A national id of someone born on `date`.
fn born(date: chrono::NaiveDate) -> String {
    (0..1000u16)
        .find_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| panic!("no id for {date}"))
}

fn access(p: &str, personnel: &str, service: &str) -> AccessDecisionRequest {
    AccessDecisionRequest {
        patient: p.to_owned(),
        personnel: personnel.to_owned(),
        org: org(1),
        service: service.to_owned(),
        purpose: "treatment".into(),
        ..Default::default()
    }
}

fn with_override(r: AccessDecisionRequest) -> AccessDecisionRequest {
    AccessDecisionRequest {
        emergency_override: true,
        justification: "unconscious patient in the emergency room".into(),
        ..r
    }
}

async fn blocks_and_override(c: &KartotekClient) {
    let p = patient(101);
    let absolute = ok(c.add_block(block(&p, "1111", BlockLevel::Absolute)).await);
    let overridable = ok(c
        .add_block(block(&p, "2222", BlockLevel::Overridable))
        .await);
    assert!(absolute.changed && overridable.changed);
    let abs_id = absolute.block.map(|b| b.id).unwrap_or_default();
    let ovr_id = overridable.block.map(|b| b.id).unwrap_or_default();
    // Adding the same block again changes nothing.
    let again = ok(c
        .add_block(block(&p, "2222", BlockLevel::Overridable))
        .await);
    assert!(!again.changed);
    assert_eq!(again.block.map(|b| b.id), Some(ovr_id));

    // Absolute: denied, also with an override, and nothing is queued.
    let d = ok(c.decide_access(access(&p, "1111", "kjernejournal")).await);
    assert_eq!(d.effect, AccessEffect::Deny as i32);
    assert!(!d.override_possible);
    let d = ok(c
        .decide_access(with_override(access(&p, "1111", "kjernejournal")))
        .await);
    assert_eq!(d.effect, AccessEffect::Deny as i32);
    assert_eq!(d.matching_block_ids, vec![abs_id]);
    assert_eq!(d.notification_id, 0);

    // Overridable: denied, an override could pass it; with one it is permitted by override.
    let d = ok(c.decide_access(access(&p, "2222", "kjernejournal")).await);
    assert_eq!(d.effect, AccessEffect::Deny as i32);
    assert!(d.override_possible);
    let d = ok(c
        .decide_access(with_override(access(&p, "2222", "kjernejournal")))
        .await);
    assert_eq!(d.effect, AccessEffect::PermitByOverride as i32);
    assert_eq!(d.matching_block_ids, vec![ovr_id]);
    assert!(d.notification_id > 0);
    let kinds: Vec<i32> = d.obligations.iter().map(|o| o.kind).collect();
    assert!(kinds.contains(&(ObligationKind::NotifyPatient as i32)));

    // The notification is queued, then acknowledged.
    let list = |pending_only| ListNotificationsRequest {
        patient: p.clone(),
        pending_only,
        ..Default::default()
    };
    let pending = ok(c.list_notifications(list(true)).await);
    assert_eq!(pending.notifications.len(), 1);
    assert_eq!(pending.notifications[0].id, d.notification_id);
    assert_eq!(pending.notifications[0].overridden_block_ids, vec![ovr_id]);
    let acked = ok(c
        .acknowledge_notification(AcknowledgeNotificationRequest {
            patient: p.clone(),
            notification_id: d.notification_id,
            by: citizen(&p),
            ..Default::default()
        })
        .await);
    assert!(acked.changed);
    assert!(
        ok(c.list_notifications(list(true)).await)
            .notifications
            .is_empty()
    );
    assert_eq!(
        ok(c.list_notifications(list(false)).await)
            .notifications
            .len(),
        1
    );

    // Revoking the block: permitted without override.
    ok(c.revoke_block(RevokeBlockRequest {
        patient: p.clone(),
        block_id: ovr_id,
        revoked_by: citizen(&p),
        ..Default::default()
    })
    .await);
    let d = ok(c.decide_access(access(&p, "2222", "kjernejournal")).await);
    assert_eq!(d.effect, AccessEffect::Permit as i32);
    let listed = ok(c
        .list_blocks(ListBlocksRequest {
            patient: p.clone(),
            in_force_only: true,
            ..Default::default()
        })
        .await);
    assert_eq!(
        listed.blocks.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![abs_id]
    );
}

async fn consents(c: &KartotekClient) {
    let p = patient(102);
    let app = |p: &str| AccessDecisionRequest {
        patient: p.to_owned(),
        client: "helse-app".into(),
        service: "kjernejournal".into(),
        purpose: "treatment".into(),
        ..Default::default()
    };
    // A client's access needs a consent.
    assert_eq!(
        ok(c.decide_access(app(&p)).await).effect,
        AccessEffect::Deny as i32
    );
    let granted = ok(c
        .grant_consent(GrantConsentRequest {
            patient: p.clone(),
            grantee_kind: GranteeKind::Client as i32,
            grantee: "helse-app".into(),
            scopes: vec!["kjernejournal".into()],
            purpose: "treatment".into(),
            by: citizen(&p),
            ..Default::default()
        })
        .await);
    let consent = granted.consent.unwrap_or_default();
    assert_eq!(consent.status, ConsentStatus::Granted as i32);
    let d = ok(c.decide_access(app(&p)).await);
    assert_eq!(d.effect, AccessEffect::Permit as i32);
    assert_eq!(d.matching_consent_ids, vec![consent.id]);
    let check = CheckConsentRequest {
        patient: p.clone(),
        grantee_kind: GranteeKind::Client as i32,
        grantee: "helse-app".into(),
        scope: "kjernejournal".into(),
        read: None,
    };
    assert!(ok(c.check_consent(check.clone()).await).allowed);

    // Withdrawing removes the permit.
    let w = ok(c
        .withdraw_consent(AnswerConsentRequest {
            patient: p.clone(),
            consent_id: consent.id,
            by: citizen(&p),
            ..Default::default()
        })
        .await);
    assert_eq!(
        w.consent.map(|c| c.status),
        Some(ConsentStatus::Withdrawn as i32)
    );
    assert_eq!(
        ok(c.decide_access(app(&p)).await).effect,
        AccessEffect::Deny as i32
    );
    assert!(!ok(c.check_consent(check).await).allowed);

    // A request from personnel with a deadline, then denied by the patient.
    let req = ok(c
        .request_consent(personnel_request(&p, chrono::Duration::days(7)))
        .await);
    let rid = req.consent.map(|c| c.id).unwrap_or_default();
    let denied = ok(c
        .deny_consent(AnswerConsentRequest {
            patient: p.clone(),
            consent_id: rid,
            by: citizen(&p),
            ..Default::default()
        })
        .await);
    assert_eq!(
        denied.consent.map(|c| c.status),
        Some(ConsentStatus::Denied as i32)
    );
    let listed = ok(c
        .list_consents(ListConsentsRequest {
            patient: p.clone(),
            ..Default::default()
        })
        .await);
    assert_eq!(listed.consents.len(), 2);
}

/// A consent request from personnel 4242 for `kjernejournal`, answerable for `within`.
fn personnel_request(p: &str, within: chrono::Duration) -> RequestConsentRequest {
    RequestConsentRequest {
        patient: p.to_owned(),
        grantee_kind: GranteeKind::Personnel as i32,
        grantee: "4242".into(),
        scopes: vec!["kjernejournal".into()],
        purpose: "treatment".into(),
        deadline: (Utc::now() + within).to_rfc3339(),
        ..Default::default()
    }
}

/// The leader's sweep stores a request past its deadline as expired: a new revision with
/// `expired_at`, not only an expired reading of the old record.
async fn consent_expiry_sweep(c: &KartotekClient) {
    let p = patient(103);
    let req = ok(c
        .request_consent(personnel_request(&p, chrono::Duration::milliseconds(1_500)))
        .await)
    .consent
    .unwrap_or_default();
    assert_eq!(req.status, ConsentStatus::Requested as i32);
    assert!(req.expired_at.is_empty());
    let started = std::time::Instant::now();
    let stored = loop {
        let listed = ok(c
            .list_consents(ListConsentsRequest {
                patient: p.clone(),
                ..Default::default()
            })
            .await);
        let now = listed.consents.into_iter().find(|x| x.id == req.id);
        if let Some(x) = now.filter(|x| !x.expired_at.is_empty()) {
            break x;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the sweep did not store the request as expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(stored.status, ConsentStatus::Expired as i32);
    assert!(stored.mod_revision > req.mod_revision, "{stored:?}");
}

async fn reservations(c: &KartotekClient) {
    let p = patient(103);
    let r = ok(c
        .reserve(ReserveRequest {
            patient: p.clone(),
            service: "kjernejournal".into(),
            reason: "opt out".into(),
            registered_by: citizen(&p),
            ..Default::default()
        })
        .await);
    let rid = r.reservation.map(|r| r.id).unwrap_or_default();
    let d = ok(c.decide_access(access(&p, "3333", "kjernejournal")).await);
    assert_eq!(d.effect, AccessEffect::Deny as i32);
    assert_eq!(d.matching_reservation_ids, vec![rid]);
    // No override passes a reservation.
    let d = ok(c
        .decide_access(with_override(access(&p, "3333", "kjernejournal")))
        .await);
    assert_eq!(d.effect, AccessEffect::Deny as i32);
    // Other services are not concerned.
    let d = ok(c.decide_access(access(&p, "3333", "e-resept")).await);
    assert_eq!(d.effect, AccessEffect::Permit as i32);
    let check = CheckReservationRequest {
        patient: p.clone(),
        service: "kjernejournal".into(),
        read: None,
    };
    assert!(ok(c.check_reservation(check.clone()).await).reserved);
    ok(c.withdraw_reservation(WithdrawReservationRequest {
        patient: p.clone(),
        service: "kjernejournal".into(),
        withdrawn_by: citizen(&p),
        ..Default::default()
    })
    .await);
    assert!(!ok(c.check_reservation(check).await).reserved);
    let all = ok(c
        .list_reservations(ListReservationsRequest {
            patient: p.clone(),
            ..Default::default()
        })
        .await);
    assert_eq!(all.reservations.len(), 1);
}

async fn representation(c: &KartotekClient) {
    // A child who turns 16 in 10 days: limited areas now, nothing after the birthday.
    let today = Utc::now().date_naive();
    let birthday = today + Days::new(10);
    let child_born =
        chrono::NaiveDate::from_ymd_opt(birthday.year() - 16, birthday.month(), birthday.day())
            .unwrap_or_else(|| panic!("no date"));
    let child = born(child_born);
    let parent = patient(104);
    let g = ok(c
        .grant_representation(GrantRepresentationRequest {
            representative: parent.clone(),
            represented: child.clone(),
            kind: RepresentationKind::ParentalResponsibility as i32,
            areas: vec!["*".into()],
            source: RepresentationSource::PopulationRegister as i32,
            granted_by: Some(Actor {
                kind: ActorKind::System as i32,
                id: "folkeregisteret".into(),
            }),
            ..Default::default()
        })
        .await);
    let rep = g.representation.unwrap_or_default();
    assert!(rep.effective_areas.contains(&"vaccinations".to_owned()));
    let check = |area: &str, days: u64| CheckRepresentationRequest {
        representative: parent.clone(),
        represented: child.clone(),
        area: area.into(),
        time: format!("{}T12:00:00Z", today + Days::new(days)),
        read: None,
    };
    // Age 15: limited to the policy's areas.
    assert!(ok(c.check_representation(check("vaccinations", 1)).await).allowed);
    assert!(!ok(c.check_representation(check("health", 1)).await).allowed);
    // Age 16: parental responsibility has ended.
    let after = ok(c.check_representation(check("vaccinations", 11)).await);
    assert!(!after.allowed, "{}", after.reason);
    assert!(after.reason.contains("16"), "{}", after.reason);

    let whom = ok(c
        .list_represented_by(ListRepresentationsRequest {
            person: parent.clone(),
            ..Default::default()
        })
        .await);
    assert_eq!(whom.representations.len(), 1);
    let who = ok(c
        .list_representatives_of(ListRepresentationsRequest {
            person: child.clone(),
            time: format!("{}T12:00:00Z", today + Days::new(11)),
            ..Default::default()
        })
        .await);
    assert!(who.representations.is_empty());
}

async fn catalog_and_clients(c: &KartotekClient) {
    let owner = org(2);
    let reg = ok(c
        .register_catalog_entry(CatalogEntryRequest {
            id: "nhn.kjernejournal".into(),
            owner: owner.clone(),
            title: "Kjernejournal FHIR API".into(),
            description: "Critical information, allergies and the medication list".into(),
            base_url: "https://kj.nhn.no/fhir".into(),
            scopes: vec!["kj/read".into()],
            audience: Audience::Personnel as i32,
            ..Default::default()
        })
        .await);
    assert_eq!(
        reg.entry.map(|e| e.lifecycle),
        Some(CatalogLifecycle::Draft as i32)
    );
    ok(c.set_catalog_lifecycle(SetCatalogLifecycleRequest {
        id: "nhn.kjernejournal".into(),
        lifecycle: CatalogLifecycle::Published as i32,
        owner: owner.clone(),
        ..Default::default()
    })
    .await);
    let found = ok(c
        .search_catalog(SearchCatalogRequest {
            text: "medication FHIR".into(),
            ..Default::default()
        })
        .await);
    assert_eq!(
        found
            .entries
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        vec!["nhn.kjernejournal"]
    );
    let none = ok(c
        .search_catalog(SearchCatalogRequest {
            text: "radiology".into(),
            ..Default::default()
        })
        .await);
    assert!(none.entries.is_empty());
    let got = ok(c
        .get_catalog_entry(GetCatalogEntryRequest {
            id: "nhn.kjernejournal".into(),
            read: None,
        })
        .await);
    assert_eq!(
        got.entry.map(|e| e.title),
        Some("Kjernejournal FHIR API".into())
    );

    const EC: &str = r#"{"kty":"EC","kid":"k2","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
    let client = ok(c
        .register_client(ClientRequest {
            client_id: "helse-app".into(),
            org: owner.clone(),
            public_keys: vec![EC.into()],
            allowed_scopes: vec!["kj/read".into()],
            approved_third_party: true,
            ..Default::default()
        })
        .await);
    assert!(client.changed);
    let listed = ok(c
        .list_clients(ListClientsRequest {
            org: owner.clone(),
            ..Default::default()
        })
        .await);
    assert_eq!(listed.clients.len(), 1);
    let got = ok(c
        .get_client(GetClientRequest {
            client_id: "helse-app".into(),
            read: None,
        })
        .await);
    assert_eq!(got.client.map(|c| c.public_keys.len()), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_through_the_client() {
    let cluster = TestCluster::start(3, |spec| {
        spec.env.push((
            "KARTOTEK_RECORDS__CONSENT_SWEEP_INTERVAL_MS".into(),
            "200".into(),
        ))
    })
    .await;
    let c = cluster.client();
    blocks_and_override(&c).await;
    consents(&c).await;
    consent_expiry_sweep(&c).await;
    reservations(&c).await;
    representation(&c).await;
    catalog_and_clients(&c).await;
}

/// Runs the CLI against `endpoints` with `--json` and returns its parsed stdout.
fn cli(endpoints: &str, args: &[&str]) -> serde_json::Value {
    let out = ok(common::cli_command()
        .arg("--endpoints")
        .arg(endpoints)
        .arg("--json")
        .args(args)
        .output());
    assert!(
        out.status.success(),
        "kartotek {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(serde_json::from_slice(&out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_override_through_the_cli() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let ep = cluster.nodes[0].addr.clone();
    let p = patient(201);
    let added = cli(
        &ep,
        &[
            "block",
            "add",
            "--patient",
            &p,
            "--target-kind",
            "personnel",
            "--target",
            "5555",
            "--level",
            "overridable",
            "--reason",
            "privacy",
        ],
    );
    assert_eq!(added["changed"], true);
    assert_eq!(added["block"]["level"], "overridable");
    let listed = cli(&ep, &["block", "list", "--patient", &p]);
    assert_eq!(listed["blocks"].as_array().map(Vec::len), Some(1));

    let check = |extra: &[&str]| {
        let mut args = vec![
            "--purpose",
            "treatment",
            "access",
            "check",
            "--patient",
            &p,
            "--personnel",
            "5555",
            "--service",
            "kjernejournal",
        ];
        args.extend_from_slice(extra);
        cli(&ep, &args)
    };
    let d = check(&[]);
    assert_eq!(d["effect"], "deny");
    assert_eq!(d["override_possible"], true);
    let d = check(&["--override", "--justification", "cardiac arrest"]);
    assert_eq!(d["effect"], "permit_by_override");
    let nid = d["notification_id"].as_u64().unwrap_or_default();
    assert!(nid > 0);

    let pending = cli(
        &ep,
        &[
            "access",
            "notifications",
            "list",
            "--patient",
            &p,
            "--pending",
        ],
    );
    assert_eq!(pending["notifications"][0]["id"].as_u64(), Some(nid));
    let acked = cli(
        &ep,
        &[
            "access",
            "notifications",
            "ack",
            "--patient",
            &p,
            "--id",
            &nid.to_string(),
        ],
    );
    assert_eq!(acked["changed"], true);
    let pending = cli(
        &ep,
        &[
            "access",
            "notifications",
            "list",
            "--patient",
            &p,
            "--pending",
        ],
    );
    assert_eq!(pending["notifications"].as_array().map(Vec::len), Some(0));

    // An absolute block is never passed.
    cli(
        &ep,
        &[
            "block",
            "add",
            "--patient",
            &p,
            "--target-kind",
            "organisation",
            "--target",
            &org(1),
            "--level",
            "absolute",
        ],
    );
    let d = check(&[
        "--org",
        &org(1),
        "--override",
        "--justification",
        "cardiac arrest",
    ]);
    assert_eq!(d["effect"], "deny");

    // Consent, reservation and the catalog through the CLI.
    let g = cli(
        &ep,
        &[
            "consent",
            "grant",
            "--patient",
            &p,
            "--grantee-kind",
            "client",
            "--grantee",
            "app-1",
            "--scope",
            "kjernejournal",
            "--for",
            "treatment",
        ],
    );
    assert_eq!(g["consent"]["status"], "granted");
    let c = cli(
        &ep,
        &[
            "consent",
            "check",
            "--patient",
            &p,
            "--grantee-kind",
            "client",
            "--grantee",
            "app-1",
            "--scope",
            "kjernejournal",
        ],
    );
    assert_eq!(c["allowed"], true);
    let r = cli(
        &ep,
        &[
            "reservation",
            "add",
            "--patient",
            &p,
            "--service",
            "e-resept",
        ],
    );
    assert_eq!(r["reservation"]["status"], "active");
    let r = cli(
        &ep,
        &[
            "reservation",
            "check",
            "--patient",
            &p,
            "--service",
            "e-resept",
        ],
    );
    assert_eq!(r["reserved"], true);
    let owner = org(4);
    cli(
        &ep,
        &[
            "catalog",
            "register",
            "--id",
            "nhn.e-resept",
            "--owner",
            &owner,
            "--title",
            "Reseptformidleren",
            "--description",
            "Electronic prescriptions",
            "--base-url",
            "https://rf.nhn.no",
        ],
    );
    cli(
        &ep,
        &[
            "catalog",
            "lifecycle",
            "--id",
            "nhn.e-resept",
            "--to",
            "published",
            "--owner",
            &owner,
        ],
    );
    let found = cli(&ep, &["catalog", "search", "prescriptions"]);
    assert_eq!(found["entries"][0]["id"], "nhn.e-resept");
}
