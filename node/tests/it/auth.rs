//! Every public call is authenticated and authorised on the node (`[auth] required = true`):
//! an authorisation matrix calls every described `kartotek.v1` method with no token, an
//! expired one, one for another audience, one from an untrusted issuer, one with a broken
//! signature, an `alg=none` one, a valid token without the method's scope and a valid token
//! with it, and checks the status code of each and that nothing the refused calls sent
//! changed the state (the revision is the same after them). Then the audit event of a lookup
//! names the token's client, HPR number and purpose, not what the caller's headers claim.

use crate::common;

use std::sync::OnceLock;

use base64::Engine;
use common::raw::{call, described_methods};
use common::{TestCluster, org, patient};
use kartotek_auth::{AccessClaims, Issuer, SigningKey, SigningKeySet, scopes};
use kartotek_testkit::NodeSpec;
use tonic::Code;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;

const ISSUER: &str = "https://token.kartotek.test";
const AUDIENCE: &str = "kartotek";

/// The test's token service (one per test binary) and the JWK Set file the nodes trust.
struct Tokens {
    issuer: Issuer,
    other: Issuer,
    _dir: tempfile::TempDir,
    jwks_file: std::path::PathBuf,
}

fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let key = SigningKey::generate_es256().unwrap_or_else(|e| panic!("{e}"));
        let issuer = Issuer::new(ISSUER, SigningKeySet::single(key), 3600);
        let other_key = SigningKey::generate_es256().unwrap_or_else(|e| panic!("{e}"));
        let other = Issuer::new(
            "https://elsewhere.example",
            SigningKeySet::single(other_key),
            3600,
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let jwks_file = dir.path().join("jwks.json");
        std::fs::write(&jwks_file, issuer.public_jwks(now_s()).to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        Tokens {
            issuer,
            other,
            _dir: dir,
            jwks_file,
        }
    })
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn with_auth(spec: &mut NodeSpec) {
    spec.extra_toml = format!(
        "[auth]\nrequired = true\n\n[[auth.trusted_issuers]]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\n",
        tokens().jwks_file.display()
    );
}

fn claims(scope: &str) -> AccessClaims {
    let now = now_s();
    AccessClaims {
        iss: ISSUER.into(),
        sub: "ehr-test".into(),
        aud: vec![AUDIENCE.into()],
        exp: now + 300,
        nbf: Some(now - 5),
        iat: now - 5,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: "ehr-test".into(),
        scope: scope.into(),
        org_parent: Some(org(1)),
        org_child: None,
        hpr_number: Some("1234567".into()),
        purpose_of_use: Some("treatment".into()),
        security_level: Some("4".into()),
        representation_area: None,
        act: None,
        cnf: None,
    }
}

fn sign(issuer: &Issuer, c: &AccessClaims) -> String {
    issuer.sign(c).unwrap_or_else(|e| panic!("{e}"))
}

fn b64(json: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
}

fn bearer(token: &str) -> MetadataMap {
    let mut md = MetadataMap::new();
    if let Ok(v) = MetadataValue::try_from(format!("Bearer {token}")) {
        md.insert("authorization", v);
    }
    md
}

/// Every scope but `except`.
fn all_scopes_but(except: &str) -> String {
    scopes::ALL
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s != except)
        .collect::<Vec<_>>()
        .join(" ")
}

fn all_scopes() -> String {
    scopes::ALL
        .iter()
        .map(|(s, _)| *s)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A channel to the cluster's first node.
async fn connect(cluster: &TestCluster) -> Channel {
    Channel::from_shared(format!("http://{}", cluster.nodes[0].addr))
        .unwrap_or_else(|e| panic!("{e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A token with every scope, for the harness's own admin client.
fn admin_token() -> String {
    let mut c = claims(&all_scopes());
    c.exp = c.iat + 3_000;
    sign(&tokens().issuer, &c)
}

async fn revision(channel: &Channel) -> u64 {
    let mut admin =
        kartotek_proto::v1::admin_service_client::AdminServiceClient::new(channel.clone());
    let mut r = tonic::Request::new(kartotek_proto::v1::StatusRequest {});
    *r.metadata_mut() = bearer(&sign(&tokens().issuer, &claims(scopes::ADMIN)));
    admin
        .status(r)
        .await
        .unwrap_or_else(|e| panic!("status with an admin token: {e}"))
        .into_inner()
        .revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_refuses_bad_tokens_and_missing_scopes() {
    let cluster = TestCluster::start_with_token(1, with_auth, Some(admin_token())).await;
    let channel = connect(&cluster).await;
    let t = tokens();
    let expired = {
        let mut c = claims(&all_scopes());
        c.iat = now_s() - 1_000;
        c.nbf = Some(c.iat);
        c.exp = now_s() - 500;
        sign(&t.issuer, &c)
    };
    let wrong_audience = sign(
        &t.issuer,
        &AccessClaims {
            aud: vec!["someone-else".into()],
            ..claims(&all_scopes())
        },
    );
    let wrong_issuer = sign(
        &t.other,
        &AccessClaims {
            iss: "https://elsewhere.example".into(),
            ..claims(&all_scopes())
        },
    );
    let bad_signature = {
        let good = sign(&t.issuer, &claims(&all_scopes()));
        let (head, sig) = good.rsplit_once('.').unwrap_or_else(|| panic!("{good}"));
        let flipped: String = sig
            .chars()
            .enumerate()
            .map(|(i, ch)| {
                if i == 5 {
                    if ch == 'A' { 'B' } else { 'A' }
                } else {
                    ch
                }
            })
            .collect();
        format!("{head}.{flipped}")
    };
    let alg_none = {
        let kid = t
            .issuer
            .public_jwks(now_s())
            .pointer("/keys/0/kid")
            .and_then(|k| k.as_str().map(str::to_owned))
            .unwrap_or_default();
        let header = serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid});
        let body = serde_json::to_value(claims(&all_scopes())).unwrap_or_default();
        format!("{}.{}.", b64(&header), b64(&body))
    };
    let refused: [(&str, MetadataMap); 6] = [
        ("no token", MetadataMap::new()),
        ("expired", bearer(&expired)),
        ("wrong audience", bearer(&wrong_audience)),
        ("wrong issuer", bearer(&wrong_issuer)),
        ("bad signature", bearer(&bad_signature)),
        ("alg=none", bearer(&alg_none)),
    ];
    let before = revision(&channel).await;
    let methods = described_methods();
    assert!(methods.len() > 40, "{} methods", methods.len());
    let mut wrong = Vec::new();
    for m in &methods {
        let method = kartotek_node::api::methods::by_path(&m.path)
            .unwrap_or_else(|| panic!("{} has no row in api::methods", m.path));
        for (what, md) in &refused {
            let code = call(&channel, m, md.clone()).await.err().map(|s| s.code());
            if code != Some(Code::Unauthenticated) {
                wrong.push(format!("{} with {what}: {code:?}", m.path));
            }
        }
        let lacking = bearer(&sign(&t.issuer, &claims(&all_scopes_but(method.scope))));
        let status = call(&channel, m, lacking).await.err();
        if status.as_ref().map(|s| s.code()) != Some(Code::PermissionDenied)
            || !status
                .as_ref()
                .is_some_and(|s| s.message().contains(method.scope))
        {
            wrong.push(format!("{} without {}: {status:?}", m.path, method.scope));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(
        revision(&channel).await,
        before,
        "refused calls changed the state"
    );
    // With the scope the call gets past the layer (an empty request is then the handler's
    // business: INVALID_ARGUMENT, NOT_FOUND, ... but not an authentication answer).
    for m in &methods {
        let method =
            kartotek_node::api::methods::by_path(&m.path).unwrap_or_else(|| panic!("{}", m.path));
        let allowed = bearer(&sign(&t.issuer, &claims(method.scope)));
        if let Err(s) = call(&channel, m, allowed).await {
            assert!(
                s.code() != Code::Unauthenticated
                    && !(s.code() == Code::PermissionDenied && s.message().contains("needs scope")),
                "{} with its scope: {s:?}",
                m.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_event_names_the_token_not_the_headers() {
    use kartotek_proto::v1::audit_service_client::AuditServiceClient;
    use kartotek_proto::v1::locator_service_client::LocatorServiceClient;
    use kartotek_proto::v1::*;

    let cluster = TestCluster::start_with_token(1, with_auth, Some(admin_token())).await;
    let channel = connect(&cluster).await;
    let t = tokens();
    let p = patient(41);
    let mut lookup = tonic::Request::new(LookupLocatorRequest {
        patient: p.clone(),
        ..Default::default()
    });
    let mut md = bearer(&sign(&t.issuer, &claims(scopes::LOCATOR_READ)));
    // What a caller might claim about itself; the node must not believe it.
    md.insert(
        kartotek_proto::ACTOR_HEADER,
        MetadataValue::from_static("personnel:9999999"),
    );
    md.insert(
        kartotek_proto::PURPOSE_HEADER,
        MetadataValue::from_static("research"),
    );
    *lookup.metadata_mut() = md;
    LocatorServiceClient::new(channel.clone())
        .lookup(lookup)
        .await
        .unwrap_or_else(|e| panic!("lookup with a token: {e}"));
    let mut query = tonic::Request::new(QueryAuditRequest {
        patient: p.clone(),
        ..Default::default()
    });
    *query.metadata_mut() = bearer(&sign(&t.issuer, &claims(scopes::AUDIT_READ)));
    let events = AuditServiceClient::new(channel.clone())
        .query(query)
        .await
        .unwrap_or_else(|e| panic!("audit query: {e}"))
        .into_inner()
        .events;
    let looked = events
        .iter()
        .find(|e| e.action.contains("lookup"))
        .unwrap_or_else(|| panic!("no lookup event in {events:?}"));
    assert_eq!(looked.actor, "personnel:1234567", "{looked:?}");
    assert_eq!(looked.purpose, "treatment", "{looked:?}");
    assert_eq!(looked.org, org(1), "{looked:?}");

    // An audit reader of org 1 reviews org 1's log, not org 2's, and not the whole log.
    let by_org = |o: String| {
        let mut q = tonic::Request::new(QueryAuditRequest {
            org: o,
            ..Default::default()
        });
        *q.metadata_mut() = bearer(&sign(&t.issuer, &claims(scopes::AUDIT_READ)));
        q
    };
    let own = AuditServiceClient::new(channel.clone())
        .query(by_org(org(1)))
        .await
        .unwrap_or_else(|e| panic!("own org's audit log: {e}"))
        .into_inner()
        .events;
    assert!(own.iter().any(|e| e.action.contains("lookup")), "{own:?}");
    let other = AuditServiceClient::new(channel.clone())
        .query(by_org(org(2)))
        .await
        .err()
        .unwrap_or_else(|| panic!("another org's audit log was answered"));
    assert_eq!(other.code(), tonic::Code::PermissionDenied, "{other:?}");
    let all = AuditServiceClient::new(channel)
        .query(by_org(String::new()))
        .await
        .err()
        .unwrap_or_else(|| panic!("the whole audit log was answered"));
    assert_eq!(all.code(), tonic::Code::PermissionDenied, "{all:?}");
}

/// A citizen's token (scope `kartotek:citizen`, `sub` the citizen) reaches the citizen's own
/// records and audit log, never anyone else's; a token exchanged to act for a child reaches the
/// child's, not the parent's; the change is always made by the token's citizen, whatever the
/// request names; and nothing a refused call sent is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizen_tokens_reach_only_their_own_data() {
    use kartotek_auth::claims::Actor as ActClaim;
    use kartotek_client::ClientError;
    use kartotek_proto::v1::*;

    let cluster = TestCluster::start(1, |_| {}).await;
    let admin = cluster.client_as(common::clinician("1234567", &org(1)));
    let parent = patient(611);
    let other = patient(612);
    let citizen_claims = |sub: &str, act: Option<&str>| {
        let mut c = common::issuer().claims("citizen-app", &[scopes::CITIZEN]);
        c.sub = sub.to_owned();
        c.act = act.map(|a| ActClaim { sub: a.to_owned() });
        c
    };
    let me = cluster.client_as(citizen_claims(&parent, None));
    fn denied<T>(r: Result<T, ClientError>, what: &str) -> String {
        match r {
            Err(e) if e.code() == Code::PermissionDenied => e.to_string(),
            Err(e) => panic!("{what}: expected PERMISSION_DENIED, got {e}"),
            Ok(_) => panic!("{what}: expected PERMISSION_DENIED, got an answer"),
        }
    }

    // Own data: a block the citizen adds (the request names nobody: the token's citizen made
    // it), their block list, their audit log.
    let mut add = common::block(&parent, "1234567", BlockLevel::Absolute);
    add.registered_by = None;
    let added = me
        .add_block(add)
        .await
        .unwrap_or_else(|e| panic!("own block: {e}"));
    let block = added.block.unwrap_or_else(|| panic!("no block"));
    assert_eq!(
        block.registered_by.map(|a| a.id),
        Some(parent.clone()),
        "made by the token's citizen"
    );
    let listed = me
        .list_blocks(ListBlocksRequest {
            patient: parent.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("own list: {e}"));
    assert_eq!(listed.blocks.len(), 1);
    me.query_audit(QueryAuditRequest {
        patient: parent.clone(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("own audit log: {e}"));

    // Someone else's: refused, and nothing is written.
    let before = admin
        .list_blocks(ListBlocksRequest {
            patient: other.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let revision = before.header.map(|h| h.revision).unwrap_or(0);
    let why = denied(
        me.list_blocks(ListBlocksRequest {
            patient: other.clone(),
            ..Default::default()
        })
        .await,
        "another patient's blocks",
    );
    assert!(why.contains("own data"), "{why}");
    denied(
        me.lookup_locator(LookupLocatorRequest {
            patient: other.clone(),
            ..Default::default()
        })
        .await,
        "another patient's locator entries",
    );
    denied(
        me.add_block(common::block(&other, "1234567", BlockLevel::Absolute))
            .await,
        "a block on another patient",
    );
    let mut forged = common::block(&parent, "7654321", BlockLevel::Absolute);
    forged.registered_by = common::citizen(&other);
    denied(
        me.add_block(forged).await,
        "a block said to be made by someone else",
    );
    denied(
        me.query_audit(QueryAuditRequest {
            org: org(1),
            ..Default::default()
        })
        .await,
        "an organisation's audit log",
    );
    denied(
        me.grant_representation(GrantRepresentationRequest {
            representative: other.clone(),
            represented: parent.clone(),
            kind: RepresentationKind::Guardianship as i32,
            areas: vec!["health".into()],
            source: RepresentationSource::PopulationRegister as i32,
            ..Default::default()
        })
        .await,
        "a population-register representation",
    );
    let why = denied(
        me.register_locator(RegisterLocatorRequest {
            patient: parent.clone(),
            org: org(1),
            system: "ehr".into(),
            categories: vec!["journal".into()],
            ..Default::default()
        })
        .await,
        "a locator write",
    );
    assert!(why.contains("needs scope"), "{why}");
    let after = admin
        .list_blocks(ListBlocksRequest {
            patient: other.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(after.blocks.is_empty(), "{after:?}");
    let own = admin
        .list_blocks(ListBlocksRequest {
            patient: parent.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(own.blocks.len(), 1, "the forged block was not written");
    assert!(after.header.map(|h| h.revision).unwrap_or(0) >= revision);

    // Acting for someone (a token from the token exchange: `sub` the person acted for, `act`
    // the citizen): that person's data, audited as the citizen on their behalf.
    let for_other = cluster.client_as(citizen_claims(&other, Some(&parent)));
    for_other
        .list_blocks(ListBlocksRequest {
            patient: other.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("the represented person's blocks: {e}"));
    denied(
        for_other
            .list_blocks(ListBlocksRequest {
                patient: parent.clone(),
                ..Default::default()
            })
            .await,
        "the representative's own blocks with a token acting for someone else",
    );
    let events = admin
        .query_audit(QueryAuditRequest {
            patient: other.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .events;
    let listed = events
        .iter()
        .rev()
        .find(|e| e.actor.starts_with("citizen:"))
        .unwrap_or_else(|| panic!("no citizen event in {events:?}"));
    assert_eq!(listed.actor, format!("citizen:{parent}"));
    assert_eq!(listed.on_behalf_of, other);
}

/// The JWK Set file of the rotation test's issuer (its own: the test rewrites it).
fn rotation_jwks() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")));
    Box::leak(dir.path().join("rotating-jwks.json").into_boxed_path())
}

const ROTATING_ISSUER: &str = "https://rotating.kartotek.test";

fn with_rotating_keys(spec: &mut NodeSpec) {
    spec.extra_toml = format!(
        "[auth]\nrequired = true\njwks_reload_interval_ms = 100\n\n[[auth.trusted_issuers]]\nissuer = \"{ROTATING_ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\n",
        rotation_jwks().display()
    );
}

/// Writes the JWK Set of `keys` the way an operator should: a new file renamed over the old.
fn publish(keys: &[&SigningKey]) {
    let jwks = serde_json::json!({ "keys": keys.iter().map(|k| k.public_key().jwk()).collect::<Vec<_>>() });
    let tmp = rotation_jwks().with_extension("tmp");
    std::fs::write(&tmp, jwks.to_string()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, rotation_jwks()).unwrap_or_else(|e| panic!("{e}"));
}

/// Key rotation without a restart: a new key published in the JWK Set file is taken in and
/// its tokens accepted, a token of the old key stays valid while the old key is still
/// published, and once the old key is taken out its tokens are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_keeps_old_tokens_until_the_key_is_retired() {
    use kartotek_proto::v1::QueryAuditRequest;
    use kartotek_proto::v1::audit_service_client::AuditServiceClient;

    let old = SigningKey::generate_es256().unwrap_or_else(|e| panic!("{e}"));
    let new = SigningKey::generate_es256().unwrap_or_else(|e| panic!("{e}"));
    publish(&[&old]);
    let issuer_of =
        |k: &SigningKey| Issuer::new(ROTATING_ISSUER, SigningKeySet::single(k.clone()), 3600);
    let token_of = |k: &SigningKey| {
        let mut c = claims(&all_scopes());
        c.iss = ROTATING_ISSUER.into();
        c.jti = uuid::Uuid::new_v4().to_string();
        sign(&issuer_of(k), &c)
    };
    let old_token = token_of(&old);
    let cluster =
        TestCluster::start_with_token(1, with_rotating_keys, Some(old_token.clone())).await;
    let channel = connect(&cluster).await;
    let query = |token: String| {
        let channel = channel.clone();
        async move {
            let mut r = tonic::Request::new(QueryAuditRequest {
                patient: patient(77),
                ..Default::default()
            });
            *r.metadata_mut() = bearer(&token);
            AuditServiceClient::new(channel)
                .query(r)
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
    };
    let until = |want: Result<(), Code>, token: String, what: &'static str| {
        let query = &query;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let got = query(token.clone()).await;
                if got == want {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what}: still {got:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(query(old_token.clone()).await, Ok(()));
    assert_eq!(
        query(token_of(&new)).await,
        Err(Code::Unauthenticated),
        "new key not yet published"
    );

    // Rotation: the new key is published beside the old one; both keys' tokens pass.
    publish(&[&old, &new]);
    until(Ok(()), token_of(&new), "a token of the newly published key").await;
    assert_eq!(
        query(old_token.clone()).await,
        Ok(()),
        "the old key's token until it is retired"
    );
    assert_eq!(query(token_of(&old)).await, Ok(()));

    // Retired: the old key leaves the file; its tokens (cached ones too) are refused.
    publish(&[&new]);
    until(
        Err(Code::Unauthenticated),
        old_token.clone(),
        "the retired key's token",
    )
    .await;
    assert_eq!(query(token_of(&old)).await, Err(Code::Unauthenticated));
    assert_eq!(query(token_of(&new)).await, Ok(()));

    // A broken file keeps the keys in use.
    std::fs::write(rotation_jwks(), "{ not json").unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(query(token_of(&new)).await, Ok(()));
}

/// DPoP (RFC 9449): a token bound to a key (`cnf.jkt`) is refused as a plain bearer token,
/// without a proof, with a proof for another method, with a proof of another key and with a
/// replayed proof; a fresh proof of its key for this call passes. An unbound token is not
/// taken with the DPoP scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_tokens_need_a_fresh_proof_for_the_call() {
    use kartotek_auth::dpop::sign_proof;
    use kartotek_proto::v1::QueryAuditRequest;
    use kartotek_proto::v1::audit_service_client::AuditServiceClient;

    let cluster = TestCluster::start_with_token(1, with_auth, Some(admin_token())).await;
    let channel = connect(&cluster).await;
    let t = tokens();
    let holder = SigningKey::generate_es256().unwrap_or_else(|e| panic!("{e}"));
    let mut bound = claims(scopes::AUDIT_READ);
    bound.cnf = Some(kartotek_auth::Confirmation {
        jkt: holder.public_key().thumbprint(),
    });
    let token = sign(&t.issuer, &bound);
    const QUERY: &str = "https://kartotek/kartotek.v1.AuditService/Query";
    let query = |scheme: &'static str, token: String, proof: Option<String>| {
        let channel = channel.clone();
        async move {
            let mut r = tonic::Request::new(QueryAuditRequest {
                patient: patient(88),
                ..Default::default()
            });
            let md = r.metadata_mut();
            md.insert(
                "authorization",
                MetadataValue::try_from(format!("{scheme} {token}"))
                    .unwrap_or_else(|e| panic!("{e}")),
            );
            if let Some(p) = proof {
                md.insert(
                    "dpop",
                    MetadataValue::try_from(p).unwrap_or_else(|e| panic!("{e}")),
                );
            }
            AuditServiceClient::new(channel)
                .query(r)
                .await
                .map(|_| ())
                .map_err(|s| (s.code(), s.message().to_owned()))
        }
    };
    let proof = |key: &SigningKey, htu: &str| {
        sign_proof(key, "POST", htu, Some(&token), now_s()).unwrap_or_else(|e| panic!("{e}"))
    };
    let refused = |r: Result<(), (Code, String)>, want: &str| match r {
        Err((Code::Unauthenticated, m)) => assert!(m.contains(want), "{m}"),
        other => panic!("expected UNAUTHENTICATED ({want}), got {other:?}"),
    };

    refused(query("Bearer", token.clone(), None).await, "DPoP-bound");
    refused(
        query("DPoP", token.clone(), None).await,
        "needs a `dpop` proof",
    );
    refused(
        query(
            "DPoP",
            token.clone(),
            Some(proof(
                &holder,
                "https://kartotek/kartotek.v1.AdminService/Remove",
            )),
        )
        .await,
        "not this request",
    );
    let stranger = SigningKey::generate_es256().unwrap_or_else(|e| panic!("{e}"));
    refused(
        query("DPoP", token.clone(), Some(proof(&stranger, QUERY))).await,
        "another key",
    );
    let good = proof(&holder, QUERY);
    assert_eq!(
        query("DPoP", token.clone(), Some(good.clone())).await,
        Ok(())
    );
    refused(
        query("DPoP", token.clone(), Some(good)).await,
        "already used",
    );
    assert_eq!(
        query("DPoP", token.clone(), Some(proof(&holder, QUERY))).await,
        Ok(()),
        "a fresh proof passes again"
    );
    // An unbound token is a bearer token only.
    let plain = sign(&t.issuer, &claims(scopes::AUDIT_READ));
    refused(query("DPoP", plain.clone(), None).await, "not DPoP-bound");
    assert_eq!(query("Bearer", plain, None).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_ledger_spends_once_and_revoked_tokens_fail_on_every_node() {
    use kartotek_proto::v1::token_ledger_service_client::TokenLedgerServiceClient;
    use kartotek_proto::v1::{
        RevokeTokenRequest, SpendTokenIdsRequest, TokenIdEntry, TokenIdKind, TokenIdStatusRequest,
    };

    let cluster = TestCluster::start_with_token(3, with_auth, Some(admin_token())).await;
    let t = tokens();
    let ledger_token = sign(&t.issuer, &claims(scopes::TOKENS_LEDGER));
    let ledger = |channel: &Channel| TokenLedgerServiceClient::new(channel.clone());
    fn with_token<T>(token: &str, body: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(body);
        *r.metadata_mut() = bearer(token);
        r
    }
    let channels = {
        let mut out = Vec::new();
        for n in &cluster.nodes {
            let c = Channel::from_shared(format!("http://{}", n.addr))
                .unwrap_or_else(|e| panic!("{e}"))
                .connect()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            out.push(c);
        }
        out
    };
    let before = revision(&channels[0]).await;
    // Writes go to the leader (the client library follows redirects; raw calls do not).
    let mut leader = None;
    for (i, c) in channels.iter().enumerate() {
        let mut admin =
            kartotek_proto::v1::admin_service_client::AdminServiceClient::new(c.clone());
        let status = admin
            .status(with_token(
                &admin_token(),
                kartotek_proto::v1::StatusRequest {},
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        if status.role == "leader" {
            leader = Some(i);
        }
    }
    let leader = leader.unwrap_or_else(|| panic!("no leader"));

    // Spend: all or none, and once.
    let entry = |kind: TokenIdKind, jti: &str| TokenIdEntry {
        kind: kind as i32,
        client_id: "ehr-test".into(),
        jti: jti.into(),
        expires_at_ms: (now_s() + 60) * 1000,
    };
    let spend = |ids: Vec<TokenIdEntry>| SpendTokenIdsRequest {
        request_id: String::new(),
        ids,
    };
    ledger(&channels[leader])
        .spend(with_token(
            &ledger_token,
            spend(vec![
                entry(TokenIdKind::ClientAssertion, "assertion-1"),
                entry(TokenIdKind::DpopProof, "proof-1"),
            ]),
        ))
        .await
        .unwrap_or_else(|e| panic!("a fresh spend: {e}"));
    // A second spend (another frontend) of the same assertion is refused whole.
    let again = ledger(&channels[leader])
        .spend(with_token(
            &ledger_token,
            spend(vec![
                entry(TokenIdKind::ClientAssertion, "assertion-1"),
                entry(TokenIdKind::DpopProof, "proof-2"),
            ]),
        ))
        .await
        .err()
        .unwrap_or_else(|| panic!("a replayed assertion was spent"));
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert!(
        again
            .message()
            .contains("client_assertion jti was already used")
    );
    let status = ledger(&channels[0])
        .status(with_token(
            &ledger_token,
            TokenIdStatusRequest {
                kind: TokenIdKind::DpopProof as i32,
                client_id: "ehr-test".into(),
                jti: "proof-2".into(),
                read: None,
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(!status.present, "the refused spend stored nothing");
    // Bad entries change nothing either.
    for bad in [
        spend(vec![]),
        spend(vec![TokenIdEntry {
            expires_at_ms: (now_s() + 3 * 86_400) * 1000,
            ..entry(TokenIdKind::ClientAssertion, "far")
        }]),
        spend(vec![entry(TokenIdKind::RevokedToken, "r")]),
        spend(vec![entry(TokenIdKind::ClientAssertion, "sp ace")]),
    ] {
        let e = ledger(&channels[leader])
            .spend(with_token(&ledger_token, bad))
            .await
            .err();
        assert_eq!(e.map(|e| e.code()), Some(Code::InvalidArgument));
    }

    // Revocation: the token works on every node, is revoked, then fails on every node.
    let victim_claims = claims(scopes::ADMIN);
    let victim = sign(&t.issuer, &victim_claims);
    for c in &channels {
        let mut admin =
            kartotek_proto::v1::admin_service_client::AdminServiceClient::new(c.clone());
        let mut r = tonic::Request::new(kartotek_proto::v1::StatusRequest {});
        *r.metadata_mut() = bearer(&victim);
        admin
            .status(r)
            .await
            .unwrap_or_else(|e| panic!("before revocation: {e}"));
    }
    let revoked = ledger(&channels[leader])
        .revoke(with_token(
            &ledger_token,
            RevokeTokenRequest {
                request_id: String::new(),
                token: Some(TokenIdEntry {
                    kind: 0,
                    client_id: victim_claims.client_id.clone(),
                    jti: victim_claims.jti.clone(),
                    expires_at_ms: victim_claims.exp * 1000,
                }),
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("revoke: {e}"))
        .into_inner();
    assert!(revoked.changed);
    for (i, c) in channels.iter().enumerate() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mut admin =
                kartotek_proto::v1::admin_service_client::AdminServiceClient::new(c.clone());
            let mut r = tonic::Request::new(kartotek_proto::v1::StatusRequest {});
            *r.metadata_mut() = bearer(&victim);
            match admin.status(r).await {
                Err(s) if s.code() == Code::Unauthenticated => {
                    assert!(s.message().contains("revoked"), "{s:?}");
                    break;
                }
                other if std::time::Instant::now() > deadline => {
                    panic!("node {i} still takes the revoked token: {other:?}")
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }
    // Another token of the same client is untouched.
    let mut admin =
        kartotek_proto::v1::admin_service_client::AdminServiceClient::new(channels[0].clone());
    let mut r = tonic::Request::new(kartotek_proto::v1::StatusRequest {});
    *r.metadata_mut() = bearer(&sign(&t.issuer, &claims(scopes::ADMIN)));
    admin
        .status(r)
        .await
        .unwrap_or_else(|e| panic!("another token: {e}"));
    assert_eq!(
        revision(&channels[0]).await,
        before,
        "the ledger moves no revision"
    );
}

/// `AuditService.Record` records events only in the caller's own organisation's name: an
/// event naming another org (or none) is refused, naming `events[i].org`, and nothing of the
/// batch is written; the caller's own org is recorded; an admin token may record for any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_takes_events_only_in_the_callers_organisations_name() {
    use kartotek_proto::v1::audit_service_client::AuditServiceClient;
    use kartotek_proto::v1::*;

    let cluster = TestCluster::start_with_token(1, with_auth, Some(admin_token())).await;
    let channel = connect(&cluster).await;
    let t = tokens();
    let p = patient(43);
    let event = |org: &str| AuditEvent {
        actor: "personnel:1234567".into(),
        org: org.into(),
        patient: p.clone(),
        action: "patient.read".into(),
        resource: "DocumentReference/1".into(),
        ..Default::default()
    };
    let record = |events: Vec<AuditEvent>, token: String| {
        let mut r = tonic::Request::new(RecordAuditEventsRequest {
            events,
            request_id: String::new(),
        });
        *r.metadata_mut() = bearer(&token);
        let channel = channel.clone();
        async move { AuditServiceClient::new(channel).record(r).await }
    };
    let writer = || sign(&t.issuer, &claims(scopes::AUDIT_WRITE));
    // Token of org(1); the second event claims org(2): the whole batch is refused.
    let err = record(vec![event(&org(1)), event(&org(2))], writer())
        .await
        .expect_err("another organisation's name");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("events[1].org"), "{err:?}");
    let err = record(vec![event("")], writer())
        .await
        .expect_err("no organisation");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("events[0].org"), "{err:?}");
    let count = |org_of: &'static str| {
        let channel = channel.clone();
        let p = p.clone();
        async move {
            let mut q = tonic::Request::new(QueryAuditRequest {
                patient: p,
                ..Default::default()
            });
            *q.metadata_mut() = bearer(&admin_token());
            AuditServiceClient::new(channel)
                .query(q)
                .await
                .unwrap_or_else(|e| panic!("query: {e}"))
                .into_inner()
                .events
                .iter()
                .filter(|e| e.action == "patient.read" && (org_of.is_empty() || e.org == org_of))
                .count()
        }
    };
    assert_eq!(count("").await, 0, "a refused batch wrote nothing");
    // Its own organisation: recorded.
    record(vec![event(&org(1))], writer())
        .await
        .unwrap_or_else(|e| panic!("own org: {e}"));
    // An admin token may record for another organisation.
    record(vec![event(&org(2))], admin_token())
        .await
        .unwrap_or_else(|e| panic!("admin: {e}"));
    assert_eq!(count("").await, 2);
}
