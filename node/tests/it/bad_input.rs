//! Bad input, table-driven, against a real node: every record-family operation gets malformed
//! ids, oversized fields and lists, unset or unknown enum values and inverted validity periods.
//! Each must answer INVALID_ARGUMENT naming the offending field, and nothing may change (the
//! state revision is the same before and after the whole table).

use crate::common;

use common::{TestCluster, citizen, org, patient};
use kartotek_client::{ClientError, KartotekClient};
use kartotek_domain::limits::{
    AREAS_PER_REPRESENTATION_MAX, CATALOG_DESCRIPTION_BYTES_MAX, GROUPS_PER_REQUEST_MAX,
    REASON_BYTES_MAX, SCOPES_PER_CATALOG_ENTRY_MAX, SCOPES_PER_CONSENT_MAX,
};
use kartotek_proto::v1::*;

/// One row: the operation, the field the error must name, and what the node answered.
type Row = (&'static str, &'static str, Result<(), ClientError>);

/// Runs one call and keeps only whether it failed and how.
macro_rules! row {
    ($c:expr, $method:ident, $field:literal, $req:expr) => {
        (
            stringify!($method),
            $field,
            $c.$method($req).await.map(|_| ()),
        )
    };
}

async fn revision(cluster: &TestCluster) -> u64 {
    let status = cluster.status(1).await;
    status
        .map(|s| s.revision)
        .unwrap_or_else(|| panic!("no status"))
}

async fn table(c: &KartotekClient) -> Vec<Row> {
    let p = patient(7);
    let q = patient(8);
    let o = org(3);
    let long_reason = "x".repeat(REASON_BYTES_MAX + 1);
    let too_many_groups: Vec<String> = (0..=GROUPS_PER_REQUEST_MAX)
        .map(|i| format!("g{i}"))
        .collect();
    let too_many_scopes: Vec<String> = (0..=SCOPES_PER_CONSENT_MAX)
        .map(|i| format!("s{i}"))
        .collect();
    let too_many_areas: Vec<String> = (0..=AREAS_PER_REPRESENTATION_MAX)
        .map(|i| format!("a{i}"))
        .collect();
    let too_many_catalog_scopes: Vec<String> = (0..=SCOPES_PER_CATALOG_ENTRY_MAX)
        .map(|i| format!("s{i}"))
        .collect();
    let long_description = "d".repeat(CATALOG_DESCRIPTION_BYTES_MAX + 1);
    let many_words = (0..17)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");

    let block = || AddBlockRequest {
        patient: p.clone(),
        target_kind: BlockTargetKind::Personnel as i32,
        target: "1234".into(),
        level: BlockLevel::Overridable as i32,
        registered_by: citizen(&p),
        ..Default::default()
    };
    let decide = || AccessDecisionRequest {
        patient: p.clone(),
        personnel: "1234".into(),
        service: "kjernejournal".into(),
        purpose: "treatment".into(),
        ..Default::default()
    };
    let consent = || RequestConsentRequest {
        patient: p.clone(),
        grantee_kind: GranteeKind::Client as i32,
        grantee: "app".into(),
        scopes: vec!["kjernejournal".into()],
        purpose: "treatment".into(),
        deadline: "2099-01-01T00:00:00Z".into(),
        ..Default::default()
    };
    let rep = || GrantRepresentationRequest {
        representative: p.clone(),
        represented: q.clone(),
        kind: RepresentationKind::PowerOfAttorney as i32,
        areas: vec!["health".into()],
        source: RepresentationSource::PatientGranted as i32,
        granted_by: citizen(&q),
        ..Default::default()
    };
    let entry = || CatalogEntryRequest {
        id: "api.x".into(),
        owner: o.clone(),
        title: "X".into(),
        base_url: "https://x.example".into(),
        audience: Audience::Personnel as i32,
        ..Default::default()
    };
    let client = || ClientRequest {
        client_id: "app".into(),
        org: o.clone(),
        public_keys: vec!["{}".into()],
        ..Default::default()
    };

    vec![
        // ---- blocks ----
        row!(
            c,
            add_block,
            "patient",
            AddBlockRequest {
                patient: "123".into(),
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "patient",
            AddBlockRequest {
                patient: "01010112345".into(),
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "target_kind",
            AddBlockRequest {
                target_kind: 0,
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "target_kind",
            AddBlockRequest {
                target_kind: 99,
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "level",
            AddBlockRequest {
                level: 0,
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "level",
            AddBlockRequest {
                level: 42,
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "target",
            AddBlockRequest {
                target: "12a".into(),
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "target",
            AddBlockRequest {
                target: "1234567890".into(),
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "reason",
            AddBlockRequest {
                reason: long_reason.clone(),
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "scope_service",
            AddBlockRequest {
                scope_service: "s".repeat(65),
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "scope_element",
            AddBlockRequest {
                scope_element: "doc-1".into(),
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "valid_to",
            AddBlockRequest {
                valid_from: "2030-02-01T00:00:00Z".into(),
                valid_to: "2030-01-01T00:00:00Z".into(),
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "valid_from",
            AddBlockRequest {
                valid_from: "tomorrow".into(),
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "registered_by_kind",
            AddBlockRequest {
                registered_by: None,
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "registered_by_kind",
            AddBlockRequest {
                registered_by: Some(Actor {
                    kind: ActorKind::Client as i32,
                    id: "app".into()
                }),
                ..block()
            }
        ),
        row!(
            c,
            add_block,
            "request_id",
            AddBlockRequest {
                request_id: "a b".into(),
                ..block()
            }
        ),
        row!(
            c,
            revoke_block,
            "block_id",
            RevokeBlockRequest {
                patient: p.clone(),
                block_id: 0,
                revoked_by: citizen(&p),
                ..Default::default()
            }
        ),
        row!(
            c,
            revoke_block,
            "patient",
            RevokeBlockRequest {
                patient: "x".into(),
                block_id: 1,
                revoked_by: citizen(&p),
                ..Default::default()
            }
        ),
        row!(
            c,
            list_blocks,
            "patient",
            ListBlocksRequest {
                patient: "1".into(),
                ..Default::default()
            }
        ),
        row!(
            c,
            list_blocks,
            "read.consistency",
            ListBlocksRequest {
                patient: p.clone(),
                read: Some(ReadOptions {
                    consistency: 99,
                    max_staleness_ms: 0
                }),
                ..Default::default()
            }
        ),
        // ---- access decision ----
        row!(
            c,
            decide_access,
            "patient",
            AccessDecisionRequest {
                patient: "".into(),
                ..decide()
            }
        ),
        row!(
            c,
            decide_access,
            "groups",
            AccessDecisionRequest {
                groups: too_many_groups.clone(),
                ..decide()
            }
        ),
        row!(
            c,
            decide_access,
            "groups[0]",
            AccessDecisionRequest {
                groups: vec!["a b".into()],
                ..decide()
            }
        ),
        row!(
            c,
            decide_access,
            "service",
            AccessDecisionRequest {
                service: "".into(),
                ..decide()
            }
        ),
        row!(
            c,
            decide_access,
            "time",
            AccessDecisionRequest {
                time: "now".into(),
                ..decide()
            }
        ),
        row!(
            c,
            decide_access,
            "justification",
            AccessDecisionRequest {
                emergency_override: true,
                ..decide()
            }
        ),
        row!(
            c,
            decide_access,
            "justification",
            AccessDecisionRequest {
                emergency_override: true,
                justification: "j".repeat(3000),
                ..decide()
            }
        ),
        row!(
            c,
            decide_access,
            "emergency_override",
            AccessDecisionRequest {
                personnel: "".into(),
                org: o.clone(),
                emergency_override: true,
                justification: "why".into(),
                ..decide()
            }
        ),
        row!(
            c,
            decide_access,
            "on_behalf_of",
            AccessDecisionRequest {
                on_behalf_of: "123".into(),
                ..decide()
            }
        ),
        // ---- notifications ----
        row!(
            c,
            list_notifications,
            "limit",
            ListNotificationsRequest {
                patient: p.clone(),
                limit: 5000,
                ..Default::default()
            }
        ),
        row!(
            c,
            acknowledge_notification,
            "notification_id",
            AcknowledgeNotificationRequest {
                patient: p.clone(),
                notification_id: 0,
                by: citizen(&p),
                ..Default::default()
            }
        ),
        // ---- consents ----
        row!(
            c,
            request_consent,
            "scopes",
            RequestConsentRequest {
                scopes: too_many_scopes.clone(),
                ..consent()
            }
        ),
        row!(
            c,
            request_consent,
            "scopes",
            RequestConsentRequest {
                scopes: vec![],
                ..consent()
            }
        ),
        row!(
            c,
            request_consent,
            "scopes[0]",
            RequestConsentRequest {
                scopes: vec!["a b".into()],
                ..consent()
            }
        ),
        row!(
            c,
            request_consent,
            "deadline",
            RequestConsentRequest {
                deadline: "".into(),
                ..consent()
            }
        ),
        row!(
            c,
            request_consent,
            "grantee_kind",
            RequestConsentRequest {
                grantee_kind: 7,
                ..consent()
            }
        ),
        row!(
            c,
            request_consent,
            "grantee",
            RequestConsentRequest {
                grantee_kind: GranteeKind::Organisation as i32,
                grantee: "123456789".into(),
                ..consent()
            }
        ),
        row!(
            c,
            request_consent,
            "valid_to",
            RequestConsentRequest {
                valid_from: "2030-01-02T00:00:00Z".into(),
                valid_to: "2030-01-01T00:00:00Z".into(),
                ..consent()
            }
        ),
        row!(
            c,
            grant_consent,
            "consent_id",
            GrantConsentRequest {
                patient: p.clone(),
                consent_id: 5,
                scopes: vec!["x".into()],
                by: citizen(&p),
                ..Default::default()
            }
        ),
        row!(
            c,
            grant_consent,
            "by_kind",
            GrantConsentRequest {
                patient: p.clone(),
                consent_id: 5,
                ..Default::default()
            }
        ),
        row!(
            c,
            deny_consent,
            "consent_id",
            AnswerConsentRequest {
                patient: p.clone(),
                consent_id: 0,
                by: citizen(&p),
                ..Default::default()
            }
        ),
        row!(
            c,
            withdraw_consent,
            "patient",
            AnswerConsentRequest {
                patient: "0".into(),
                consent_id: 1,
                by: citizen(&p),
                ..Default::default()
            }
        ),
        row!(
            c,
            list_consents,
            "status",
            ListConsentsRequest {
                patient: p.clone(),
                status: 42,
                ..Default::default()
            }
        ),
        row!(
            c,
            check_consent,
            "scope",
            CheckConsentRequest {
                patient: p.clone(),
                grantee_kind: GranteeKind::Client as i32,
                grantee: "app".into(),
                scope: "a b".into(),
                read: None
            }
        ),
        // ---- reservations ----
        row!(
            c,
            reserve,
            "service",
            ReserveRequest {
                patient: p.clone(),
                service: "a b".into(),
                registered_by: citizen(&p),
                ..Default::default()
            }
        ),
        row!(
            c,
            reserve,
            "reason",
            ReserveRequest {
                patient: p.clone(),
                service: "kj".into(),
                reason: long_reason.clone(),
                registered_by: citizen(&p),
                ..Default::default()
            }
        ),
        row!(
            c,
            withdraw_reservation,
            "withdrawn_by_kind",
            WithdrawReservationRequest {
                patient: p.clone(),
                service: "kj".into(),
                withdrawn_by: Some(Actor {
                    kind: ActorKind::System as i32,
                    id: "x".into()
                }),
                ..Default::default()
            }
        ),
        row!(
            c,
            check_reservation,
            "patient",
            CheckReservationRequest {
                patient: "12".into(),
                service: "kj".into(),
                read: None
            }
        ),
        row!(
            c,
            list_reservations,
            "patient",
            ListReservationsRequest {
                patient: "12".into(),
                ..Default::default()
            }
        ),
        // ---- representation ----
        row!(
            c,
            grant_representation,
            "kind",
            GrantRepresentationRequest { kind: 0, ..rep() }
        ),
        row!(
            c,
            grant_representation,
            "source",
            GrantRepresentationRequest { source: 9, ..rep() }
        ),
        row!(
            c,
            grant_representation,
            "areas",
            GrantRepresentationRequest {
                areas: too_many_areas.clone(),
                ..rep()
            }
        ),
        row!(
            c,
            grant_representation,
            "represented",
            GrantRepresentationRequest {
                represented: p.clone(),
                ..rep()
            }
        ),
        row!(
            c,
            grant_representation,
            "valid_to",
            GrantRepresentationRequest {
                valid_from: "2030-01-02T00:00:00Z".into(),
                valid_to: "2030-01-01T00:00:00Z".into(),
                ..rep()
            }
        ),
        row!(
            c,
            revoke_representation,
            "representation_id",
            RevokeRepresentationRequest {
                represented: q.clone(),
                representation_id: 0,
                revoked_by: citizen(&q),
                ..Default::default()
            }
        ),
        row!(
            c,
            list_represented_by,
            "person",
            ListRepresentationsRequest {
                person: "abc".into(),
                ..Default::default()
            }
        ),
        row!(
            c,
            list_representatives_of,
            "time",
            ListRepresentationsRequest {
                person: q.clone(),
                time: "yesterday".into(),
                ..Default::default()
            }
        ),
        row!(
            c,
            check_representation,
            "area",
            CheckRepresentationRequest {
                representative: p.clone(),
                represented: q.clone(),
                area: "a b".into(),
                time: String::new(),
                read: None
            }
        ),
        // ---- API catalog ----
        row!(
            c,
            register_catalog_entry,
            "base_url",
            CatalogEntryRequest {
                base_url: "ftp://x".into(),
                ..entry()
            }
        ),
        row!(
            c,
            register_catalog_entry,
            "title",
            CatalogEntryRequest {
                title: " ".into(),
                ..entry()
            }
        ),
        row!(
            c,
            register_catalog_entry,
            "description",
            CatalogEntryRequest {
                description: long_description.clone(),
                ..entry()
            }
        ),
        row!(
            c,
            register_catalog_entry,
            "audience",
            CatalogEntryRequest {
                audience: 0,
                ..entry()
            }
        ),
        row!(
            c,
            register_catalog_entry,
            "scopes",
            CatalogEntryRequest {
                scopes: too_many_catalog_scopes.clone(),
                ..entry()
            }
        ),
        row!(
            c,
            register_catalog_entry,
            "owner",
            CatalogEntryRequest {
                owner: "123456789".into(),
                ..entry()
            }
        ),
        row!(
            c,
            update_catalog_entry,
            "id",
            CatalogEntryRequest {
                id: "a b".into(),
                ..entry()
            }
        ),
        row!(
            c,
            set_catalog_lifecycle,
            "lifecycle",
            SetCatalogLifecycleRequest {
                id: "api.x".into(),
                lifecycle: 0,
                owner: o.clone(),
                ..Default::default()
            }
        ),
        row!(
            c,
            get_catalog_entry,
            "id",
            GetCatalogEntryRequest {
                id: "".into(),
                read: None
            }
        ),
        row!(
            c,
            search_catalog,
            "text",
            SearchCatalogRequest {
                text: many_words.clone(),
                ..Default::default()
            }
        ),
        row!(
            c,
            search_catalog,
            "audience",
            SearchCatalogRequest {
                audience: 9,
                ..Default::default()
            }
        ),
        row!(
            c,
            search_catalog,
            "limit",
            SearchCatalogRequest {
                limit: 5000,
                ..Default::default()
            }
        ),
        // ---- clients ----
        row!(c, register_client, "public_keys[0]", client()),
        row!(
            c,
            register_client,
            "public_keys",
            ClientRequest {
                public_keys: vec![],
                ..client()
            }
        ),
        row!(
            c,
            register_client,
            "status",
            ClientRequest {
                status: ClientStatus::Disabled as i32,
                ..client()
            }
        ),
        row!(
            c,
            update_client,
            "status",
            ClientRequest {
                status: 7,
                ..client()
            }
        ),
        row!(
            c,
            get_client,
            "client_id",
            GetClientRequest {
                client_id: "".into(),
                read: None
            }
        ),
        row!(
            c,
            list_clients,
            "org",
            ListClientsRequest {
                org: "123".into(),
                ..Default::default()
            }
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_operation_refuses_bad_input_naming_the_field() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let c = cluster.client();
    let before = revision(&cluster).await;
    let rows = table(&c).await;
    let mut failures = Vec::new();
    for (op, field, result) in &rows {
        match result {
            Err(ClientError::InvalidArgument { field: Some(f), .. }) if f == field => {}
            other => failures.push(format!(
                "{op}: expected INVALID_ARGUMENT on {field}, got {other:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows wrong:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert_eq!(
        revision(&cluster).await,
        before,
        "bad input changed the state"
    );
}
