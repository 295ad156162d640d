//! Cursor paging of every record list (issue 15), on one real cluster: seven records per
//! list, listed with page size 3, come back as 3 + 3 + 1 in the order of the unpaged list,
//! with no duplicates or gaps and an empty token after the last page; a garbage token, a
//! token of another list and a page size above the limit are INVALID_ARGUMENT; each page of
//! a patient list is one audit event; and the CLI's `--count` and `--all` cross pages.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{TestCluster, block, citizen, ok, org, patient, stdout};
use kartotek_client::{ClientError, KartotekClient};
use kartotek_domain::limits::LIST_PAGE_SIZE_MAX;
use kartotek_proto::v1::*;
use tonic::Code;

/// One page as the checks see it: the records' ids (or keys) and `next_page_token`.
type Listed = Result<(Vec<String>, String), ClientError>;

/// How many records each list gets.
const N: usize = 7;

/// Pages through one list with page size 3 and checks it against the unpaged list; returns
/// the token of its first page (for the cross-list checks).
async fn check_paging<F, Fut>(name: &str, mut list: F) -> String
where
    F: FnMut(u32, String) -> Fut,
    Fut: Future<Output = Listed>,
{
    let (unpaged, last) = ok(list(0, String::new()).await);
    assert_eq!(unpaged.len(), N, "{name}: {unpaged:?}");
    assert_eq!(last, "", "{name}: one default page holds all seven");

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut first_token = String::new();
    let mut token = String::new();
    loop {
        let (items, next) = ok(list(3, token.clone()).await);
        sizes.push(items.len());
        seen.extend(items);
        if first_token.is_empty() {
            first_token = next.clone();
        }
        if next.is_empty() {
            break;
        }
        assert!(sizes.len() < 10, "{name}: pages do not end");
        token = next;
    }
    assert_eq!(sizes, vec![3, 3, 1], "{name}");
    assert_eq!(
        seen, unpaged,
        "{name}: paged order differs from the unpaged list"
    );

    for garbage in ["garbage", "00", "deadbeefdeadbeefdeadbeef"] {
        let e = list(3, garbage.into()).await.expect_err(name);
        assert_eq!(e.code(), Code::InvalidArgument, "{name} {garbage}: {e}");
        assert_eq!(e.field(), Some("page_token"), "{name}: {e}");
    }
    let e = list(LIST_PAGE_SIZE_MAX as u32 + 1, String::new())
        .await
        .expect_err(name);
    assert_eq!(e.code(), Code::InvalidArgument, "{name}: {e}");
    assert_eq!(e.field(), Some("page_size"), "{name}: {e}");
    first_token
}

/// A token of another list is refused, never answered.
async fn refuses<Fut: Future<Output = Listed>>(what: &str, answer: Fut) {
    let e = answer.await.expect_err(what);
    assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e}");
    assert!(e.to_string().contains("another list"), "{what}: {e}");
}

/// One page of a list call: `$c.$call($request { fields, page_size, page_token })`, its
/// records (`$records`) by `$key`.
macro_rules! page_of {
    ($c:expr, $call:ident, $records:ident, $key:expr,
     $request:ident { $($field:ident: $value:expr),* $(,)? }, $size:expr, $token:expr) => {{
        let request = $request {
            $($field: $value,)*
            page_size: $size,
            page_token: $token,
            ..Default::default()
        };
        let c: &KartotekClient = $c;
        async move {
            let r = c.$call(request).await?;
            Ok::<_, ClientError>((r.$records.iter().map($key).collect(), r.next_page_token))
        }
    }};
}

fn blocks(c: &KartotekClient, p: &str, size: u32, token: String) -> impl Future<Output = Listed> {
    page_of!(
        c,
        list_blocks,
        blocks,
        |b| b.id.to_string(),
        ListBlocksRequest {
            patient: p.to_owned()
        },
        size,
        token
    )
}

fn consents(c: &KartotekClient, p: &str, size: u32, token: String) -> impl Future<Output = Listed> {
    // A filter that keeps all seven: paging applies after it.
    page_of!(
        c,
        list_consents,
        consents,
        |x| x.id.to_string(),
        ListConsentsRequest {
            patient: p.to_owned(),
            status: ConsentStatus::Granted as i32
        },
        size,
        token
    )
}

async fn audit_count(c: &KartotekClient, p: &str, action: &str) -> usize {
    let page = ok(c
        .query_audit(QueryAuditRequest {
            patient: p.to_owned(),
            limit: 1000,
            ..Default::default()
        })
        .await);
    page.events.iter().filter(|e| e.action == action).count()
}

fn json(endpoints: &str, args: &[&str]) -> serde_json::Value {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    let text = stdout(endpoints, &with_json);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("kartotek {args:?} --json is not one document ({e}):\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_list_pages_with_a_cursor() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let c = cluster.client();
    let p = patient(301);
    let other = patient(302);
    let noted = patient(303);
    let representative = patient(304);
    let represented = patient(305);
    let o = org(31);

    // Seven of everything.
    for i in 0..N {
        for who in [&p, &other] {
            let target = format!("{}", 7000 + i);
            ok(c.add_block(block(who, &target, BlockLevel::Overridable))
                .await);
        }
        ok(c.grant_consent(GrantConsentRequest {
            patient: p.clone(),
            grantee_kind: GranteeKind::Client as i32,
            grantee: format!("app-{i}"),
            scopes: vec!["kjernejournal".into()],
            purpose: "treatment".into(),
            by: citizen(&p),
            ..Default::default()
        })
        .await);
        // Services not in key order of creation: the list is by service.
        ok(c.reserve(ReserveRequest {
            patient: p.clone(),
            service: format!("svc-{}", (i * 3) % N),
            reason: "opt out".into(),
            registered_by: citizen(&p),
            ..Default::default()
        })
        .await);
        let grant = |representative: String, represented: String| GrantRepresentationRequest {
            granted_by: citizen(&represented),
            representative,
            represented,
            kind: RepresentationKind::PowerOfAttorney as i32,
            areas: vec!["health".into()],
            source: RepresentationSource::PatientGranted as i32,
            ..Default::default()
        };
        ok(
            c.grant_representation(grant(representative.clone(), patient(310 + i as u32)))
                .await,
        );
        ok(
            c.grant_representation(grant(patient(320 + i as u32), represented.clone()))
                .await,
        );
        ok(c.register_catalog_entry(CatalogEntryRequest {
            id: format!("pg.api-{}", (i * 5) % N),
            owner: o.clone(),
            title: format!("Paging API {i}"),
            // Some rank higher than others: the search pages in rank order.
            description: if i % 2 == 0 {
                "paging".into()
            } else {
                String::new()
            },
            base_url: "https://pg.example".into(),
            audience: Audience::Personnel as i32,
            ..Default::default()
        })
        .await);
        const EC: &str = r#"{"kty":"EC","kid":"k2","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        ok(c.register_client(ClientRequest {
            client_id: format!("pg-app-{}", (i * 3) % N),
            org: o.clone(),
            public_keys: vec![EC.into()],
            allowed_scopes: vec!["kj/read".into()],
            ..Default::default()
        })
        .await);
    }
    // Seven notifications: emergency overrides of an overridable block.
    ok(c.add_block(block(&noted, "9999", BlockLevel::Overridable))
        .await);
    for _ in 0..N {
        let d = ok(c
            .decide_access(AccessDecisionRequest {
                patient: noted.clone(),
                personnel: "9999".into(),
                org: org(1),
                service: "kjernejournal".into(),
                purpose: "treatment".into(),
                emergency_override: true,
                justification: "unconscious patient".into(),
                ..Default::default()
            })
            .await);
        assert!(d.notification_id > 0);
    }

    // Each page of a patient list is one audit event, as an unpaged list is.
    let before = audit_count(&c, &p, "block.list").await;
    let block_token = check_paging("blocks", |n, t| blocks(&c, &p, n, t)).await;
    // 1 unpaged + 3 pages + 3 garbage tokens + 1 oversized page: the refused ones are
    // refused before the read, so they record nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = audit_count(&c, &p, "block.list").await;
        if after == before + 4 || Instant::now() > deadline {
            assert_eq!(after, before + 4, "one audit event per page call");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let consent_token = check_paging("consents", |n, t| consents(&c, &p, n, t)).await;

    // A token belongs to its list: not another patient's, not another method's, not with
    // other filters.
    refuses(
        "blocks of another patient",
        blocks(&c, &other, 3, block_token.clone()),
    )
    .await;
    refuses(
        "a block token for consents",
        consents(&c, &p, 3, block_token.clone()),
    )
    .await;
    refuses(
        "a consent token for blocks",
        blocks(&c, &p, 3, consent_token),
    )
    .await;
    refuses(
        "blocks with another filter",
        page_of!(
            &c,
            list_blocks,
            blocks,
            |b| b.id.to_string(),
            ListBlocksRequest {
                patient: p.clone(),
                in_force_only: true
            },
            3,
            block_token.clone()
        ),
    )
    .await;
    // The other patient's own list pages on.
    let (theirs, _) = ok(blocks(&c, &other, 3, String::new()).await);
    assert_eq!(theirs.len(), 3);

    let c = &c;
    check_paging("reservations", |n, t| {
        page_of!(
            c,
            list_reservations,
            reservations,
            |x| x.service.clone(),
            ListReservationsRequest { patient: p.clone() },
            n,
            t
        )
    })
    .await;
    let by_representative = check_paging("representations by representative", |n, t| {
        page_of!(
            c,
            list_represented_by,
            representations,
            |x| x.id.to_string(),
            ListRepresentationsRequest {
                person: representative.clone()
            },
            n,
            t
        )
    })
    .await;
    check_paging("representations by represented", |n, t| {
        page_of!(
            c,
            list_representatives_of,
            representations,
            |x| x.id.to_string(),
            ListRepresentationsRequest {
                person: represented.clone()
            },
            n,
            t
        )
    })
    .await;
    // The two sides are two lists.
    refuses(
        "a by-representative token by represented",
        page_of!(
            c,
            list_representatives_of,
            representations,
            |x| x.id.to_string(),
            ListRepresentationsRequest {
                person: representative.clone()
            },
            3,
            by_representative
        ),
    )
    .await;
    check_paging("notifications", |n, t| {
        page_of!(
            c,
            list_notifications,
            notifications,
            |x| x.id.to_string(),
            ListNotificationsRequest {
                patient: noted.clone(),
                pending_only: true
            },
            n,
            t
        )
    })
    .await;
    check_paging("catalog search", |n, t| {
        page_of!(
            c,
            search_catalog,
            entries,
            |e| e.id.clone(),
            SearchCatalogRequest {
                text: "paging".into(),
                owner: o.clone()
            },
            n,
            t
        )
    })
    .await;
    check_paging("clients", |n, t| {
        page_of!(
            c,
            list_clients,
            clients,
            |x| x.client_id.clone(),
            ListClientsRequest { org: o.clone() },
            n,
            t
        )
    })
    .await;

    // The CLI: --count and --all cross pages; one page says how to go on.
    let ep = cluster.nodes[0].addr.clone();
    let list = ["block", "list", "--patient", &p, "--page-size", "3"];
    assert_eq!(stdout(&ep, &[&list[..], &["--count"]].concat()).trim(), "7");
    assert_eq!(
        stdout(&ep, &[&list[..], &["--all", "--count"]].concat()).trim(),
        "7"
    );
    let counted = json(&ep, &[&list[..], &["--count"]].concat());
    assert_eq!(counted["count"], 7, "{counted}");
    let all = json(&ep, &[&list[..], &["--all"]].concat());
    assert_eq!(all["blocks"].as_array().map(Vec::len), Some(7), "{all}");
    assert_eq!(all["next_page_token"], "");
    let first = json(&ep, &list);
    assert_eq!(first["blocks"].as_array().map(Vec::len), Some(3), "{first}");
    let token = first["next_page_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    let second = json(&ep, &[&list[..], &["--page-token", &token]].concat());
    assert_eq!(second["blocks"].as_array().map(Vec::len), Some(3));
    assert_ne!(second["blocks"][0]["id"], first["blocks"][0]["id"]);
    let text = stdout(&ep, &list);
    assert!(text.contains("3 blocks; more with --page-token "), "{text}");
    let help = stdout(&ep, &["client", "list", "--help"]);
    for flag in ["--page-size", "--page-token", "--all", "--count"] {
        assert!(
            help.contains(flag),
            "client list --help lacks {flag}:\n{help}"
        );
    }
}
