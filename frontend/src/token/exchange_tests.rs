//! The token exchange (RFC 8693) against an in-memory registry: a citizen's own token, a
//! token acting for a represented person, and each refusal (no representation, a reservation
//! of the target service, a consent-gated scope without consent, a login for another app, an
//! expired or forged login, a personnel scope, a client that is no citizen app).

use std::sync::Arc;

use kartotek_auth::login::{ACR_HIGH, ID_TOKEN_TYPE};
use kartotek_auth::{
    AccessClaims, JtiReplayCache, LoginVerifier, SigningKey, SigningKeySet, TokenVerifier,
    VerifierOptions, scopes, sign_client_assertion, sign_login_token,
};
use kartotek_domain::NationalId;
use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::national_id_from_parts;

use super::dev_login::DevLogin;
use super::directory::{DirectoryClient, MemoryDirectory};
use super::{GRANT_TOKEN_EXCHANGE, OAuthError, TokenResponse, TokenService};
use crate::config::FrontendConfig;
use crate::metrics::Metrics;

const ISS: &str = "http://127.0.0.1:8080";
const APP: &str = "citizen-app";
const JOURNAL: &str = "helsenorge:journal.read";

fn person(year: i32) -> NationalId {
    let date = chrono::NaiveDate::from_ymd_opt(year, 3, 14).unwrap();
    (0..1000u16)
        .find_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
        .unwrap()
}

struct Fixture {
    service: TokenService,
    directory: Arc<MemoryDirectory>,
    app_key: SigningKey,
    dev: DevLogin,
    verifier: TokenVerifier,
}

fn fixture() -> Fixture {
    let mut config = FrontendConfig::default();
    config.token.consent_scopes = vec![JOURNAL.into()];
    let app_key = SigningKey::generate_es256().unwrap();
    let directory = Arc::new(MemoryDirectory::new());
    for (id, allowed) in [
        (APP, vec![scopes::CITIZEN, JOURNAL, scopes::RECORDS_READ]),
        ("ehr-1", vec![scopes::RECORDS_READ]),
    ] {
        directory.insert(DirectoryClient {
            client_id: id.into(),
            org: "974760673".into(),
            active: true,
            public_keys: vec![app_key.public_key().jwk().to_string()],
            allowed_scopes: allowed.into_iter().map(str::to_owned).collect(),
        });
    }
    let dev = DevLogin::new(ISS).unwrap();
    let keys = SigningKeySet::single(SigningKey::generate_es256().unwrap());
    let service = TokenService::new(
        &config,
        keys,
        directory.clone(),
        Arc::new(JtiReplayCache::default()),
        Metrics::new(),
    )
    .with_logins(LoginVerifier::new(vec![dev.provider().unwrap()], 30));
    let verifier = TokenVerifier::new(
        vec![service.issuer().trusted_issuer("kartotek", now()).unwrap()],
        VerifierOptions::default(),
    );
    Fixture {
        service,
        directory,
        app_key,
        dev,
        verifier,
    }
}

fn now() -> i64 {
    super::routes::now_s()
}

impl Fixture {
    fn login(&self, who: &NationalId) -> String {
        self.dev.login(who.as_str(), APP, ACR_HIGH, now()).unwrap()
    }

    async fn exchange(
        &self,
        client: &str,
        login: &str,
        extra: &[(&str, &str)],
    ) -> Result<(TokenResponse, AccessClaims), OAuthError> {
        self.exchange_of(client, login, ID_TOKEN_TYPE, extra).await
    }

    async fn exchange_of(
        &self,
        client: &str,
        login: &str,
        subject_type: &str,
        extra: &[(&str, &str)],
    ) -> Result<(TokenResponse, AccessClaims), OAuthError> {
        let assertion = sign_client_assertion(&self.app_key, client, ISS, now(), 30).unwrap();
        let mut params: Vec<(String, String)> = [
            ("grant_type", GRANT_TOKEN_EXCHANGE),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
            ("subject_token", login),
            ("subject_token_type", subject_type),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        params.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let answer = self.service.token(&params, now()).await?;
        let claims = self.verifier.verify(&answer.access_token, now()).unwrap();
        Ok((answer, claims))
    }
}

fn refused(r: Result<(TokenResponse, AccessClaims), OAuthError>, error: &str) -> String {
    match r {
        Err(e) => {
            assert_eq!(e.error, error, "{e}");
            e.description
        }
        Ok((_, claims)) => panic!("expected {error}, got a token {claims:?}"),
    }
}

#[tokio::test]
async fn a_citizen_gets_a_token_for_themself() {
    let f = fixture();
    let me = person(1980);
    let (answer, claims) = f.exchange(APP, &f.login(&me), &[]).await.unwrap();
    assert_eq!(
        answer.issued_token_type.as_deref(),
        Some(super::ACCESS_TOKEN_TYPE_URN)
    );
    assert_eq!(claims.sub, me.as_str());
    assert_eq!(claims.client_id, APP);
    assert_eq!(claims.scope, scopes::CITIZEN);
    assert_eq!(claims.act, None);
    assert_eq!(claims.representation_area, None);
    assert_eq!(claims.security_level.as_deref(), Some("4"));
}

#[tokio::test]
async fn acting_for_someone_needs_a_representation_in_the_area() {
    let f = fixture();
    let (parent, child) = (person(1980), person(2020));
    let login = f.login(&parent);
    let why = refused(
        f.exchange(APP, &login, &[("act_for", child.as_str())])
            .await,
        "invalid_grant",
    );
    assert!(why.contains("may not act for"), "{why}");

    f.directory
        .represent(parent.as_str(), child.as_str(), "vaccinations");
    refused(
        f.exchange(APP, &login, &[("act_for", child.as_str())])
            .await,
        "invalid_grant",
    );
    let (_, claims) = f
        .exchange(
            APP,
            &login,
            &[("act_for", child.as_str()), ("area", "vaccinations")],
        )
        .await
        .unwrap();
    assert_eq!(claims.representation_area.as_deref(), Some("vaccinations"));

    f.directory.represent(parent.as_str(), child.as_str(), "*");
    let (_, claims) = f
        .exchange(APP, &login, &[("act_for", child.as_str())])
        .await
        .unwrap();
    assert_eq!(claims.sub, child.as_str(), "the token is about the child");
    assert_eq!(
        claims.act.map(|a| a.sub),
        Some(parent.as_str().to_owned()),
        "and names the parent as actor"
    );
    assert_eq!(claims.representation_area.as_deref(), Some("*"));
}

#[tokio::test]
async fn the_citizens_own_token_acts_for_whom_they_represent_and_no_longer() {
    let f = fixture();
    let (parent, child, stranger) = (person(1980), person(2020), person(2019));
    f.directory.represent(parent.as_str(), child.as_str(), "*");
    let (own, _) = f.exchange(APP, &f.login(&parent), &[]).await.unwrap();
    let access = super::ACCESS_TOKEN_TYPE_URN;
    let (answer, claims) = f
        .exchange_of(
            APP,
            &own.access_token,
            access,
            &[("act_for", child.as_str())],
        )
        .await
        .unwrap();
    assert_eq!(claims.sub, child.as_str());
    assert_eq!(claims.act.map(|a| a.sub), Some(parent.as_str().to_owned()));
    assert_eq!(
        claims.security_level.as_deref(),
        Some("4"),
        "the login's level"
    );
    let own_claims = f.verifier.verify(&own.access_token, now()).unwrap();
    assert!(
        claims.exp <= own_claims.exp,
        "never outlives the citizen's token"
    );
    assert!(answer.expires_in <= own.expires_in);
    // The registry's rules still apply.
    let why = refused(
        f.exchange_of(
            APP,
            &own.access_token,
            access,
            &[("act_for", stranger.as_str())],
        )
        .await,
        "invalid_grant",
    );
    assert!(why.contains("may not act for"), "{why}");
    // Never a renewal of the citizen's own token from itself.
    refused(
        f.exchange_of(APP, &own.access_token, access, &[]).await,
        "invalid_request",
    );
    // Not another client's token, not a token acting for someone, not garbage.
    let (other, _) = f.exchange(APP, &f.login(&parent), &[]).await.unwrap();
    refused(
        f.exchange_of(
            "ehr-1",
            &other.access_token,
            access,
            &[("act_for", child.as_str())],
        )
        .await,
        "unauthorized_client",
    );
    let (acting, _) = f
        .exchange(APP, &f.login(&parent), &[("act_for", child.as_str())])
        .await
        .unwrap();
    let why = refused(
        f.exchange_of(
            APP,
            &acting.access_token,
            access,
            &[("act_for", child.as_str())],
        )
        .await,
        "invalid_grant",
    );
    assert!(why.contains("own bearer token"), "{why}");
    refused(
        f.exchange_of(APP, "ey.garbage.x", access, &[("act_for", child.as_str())])
            .await,
        "invalid_grant",
    );
}

#[tokio::test]
async fn a_reservation_of_the_target_service_refuses_the_exchange() {
    let f = fixture();
    let me = person(1975);
    let login = f.login(&me);
    let (_, claims) = f
        .exchange(APP, &login, &[("audience", "kjernejournal")])
        .await
        .unwrap();
    assert!(
        claims.aud.contains(&"kjernejournal".to_owned()),
        "{claims:?}"
    );
    f.directory.reserve(me.as_str(), "kjernejournal");
    let why = refused(
        f.exchange(APP, &login, &[("audience", "kjernejournal")])
            .await,
        "invalid_target",
    );
    assert!(why.contains("reservation"), "{why}");
}

#[tokio::test]
async fn a_consent_gated_scope_needs_the_persons_consent() {
    let f = fixture();
    let me = person(1990);
    let login = f.login(&me);
    let why = refused(
        f.exchange(APP, &login, &[("scope", JOURNAL)]).await,
        "invalid_grant",
    );
    assert!(why.contains("consent"), "{why}");
    f.directory.consent(me.as_str(), APP, JOURNAL);
    let (_, claims) = f
        .exchange(APP, &login, &[("scope", JOURNAL)])
        .await
        .unwrap();
    assert_eq!(claims.scope, JOURNAL);
}

#[tokio::test]
async fn bad_logins_clients_and_scopes_are_refused() {
    let f = fixture();
    let me = person(1985);
    // A login addressed to another app.
    let elsewhere = f
        .dev
        .login(me.as_str(), "other-app", ACR_HIGH, now())
        .unwrap();
    let why = refused(f.exchange(APP, &elsewhere, &[]).await, "invalid_grant");
    assert!(why.contains("audience"), "{why}");
    // Expired (signed an hour ago, lived ten minutes).
    let old = {
        let then = now() - 3600;
        f.dev.login(me.as_str(), APP, ACR_HIGH, then).unwrap()
    };
    let why = refused(f.exchange(APP, &old, &[]).await, "invalid_grant");
    assert!(why.contains("expired"), "{why}");
    // Signed by a key no provider has.
    let forger = SigningKey::generate_es256().unwrap();
    let forged = sign_login_token(&forger, f.dev.issuer(), APP, &me, ACR_HIGH, now(), 60).unwrap();
    refused(f.exchange(APP, &forged, &[]).await, "invalid_grant");
    // Too low a level.
    let low = sign_login_token(
        &SigningKey::generate_es256().unwrap(),
        f.dev.issuer(),
        APP,
        &me,
        "idporten-loa-low",
        now(),
        60,
    )
    .unwrap();
    refused(f.exchange(APP, &low, &[]).await, "invalid_grant");
    assert!(
        f.dev
            .login(me.as_str(), APP, "idporten-loa-low", now())
            .is_err()
    );
    // A personnel scope, even one the client has.
    let why = refused(
        f.exchange(APP, &f.login(&me), &[("scope", scopes::RECORDS_READ)])
            .await,
        "invalid_scope",
    );
    assert!(why.contains("not for citizens"), "{why}");
    // A client that is not a citizen app.
    refused(
        f.exchange("ehr-1", &f.login(&me), &[]).await,
        "unauthorized_client",
    );
    // Not a national id.
    refused(
        f.exchange(APP, &f.login(&me), &[("act_for", "12345678901")])
            .await,
        "invalid_request",
    );
}

/// A token request with a `DPoP` proof (RFC 9449) gets a token bound to the proof's key
/// (`cnf.jkt`, `token_type` DPoP) once the proof carries the server's nonce (§8); a proof
/// without a nonce or with a forged one is answered `use_dpop_nonce`, a replayed proof and a
/// proof for another URL are refused.
#[tokio::test]
async fn a_dpop_proof_binds_the_token_to_its_key() {
    use kartotek_auth::dpop::sign_proof_with_nonce;
    let sign_proof = |key: &SigningKey, htm: &str, htu: &str, nonce: Option<&str>, at: i64| {
        sign_proof_with_nonce(key, htm, htu, None, nonce, at)
    };

    let fx = fixture();
    let f = &fx;
    let me = person(1970);
    let holder = SigningKey::generate_es256().unwrap();
    let endpoint = format!("{ISS}/connect/token");
    let request = |proof: &str| {
        let assertion = sign_client_assertion(&f.app_key, APP, ISS, now(), 30).unwrap();
        let login = f.login(&me);
        let params: Vec<(String, String)> = [
            ("grant_type", GRANT_TOKEN_EXCHANGE),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
            ("subject_token", login.as_str()),
            ("subject_token_type", ID_TOKEN_TYPE),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let proof = proof.to_owned();
        async move {
            f.service
                .token_with_proof(&params, Some(&proof), now())
                .await
        }
    };
    // No nonce yet: the answer says to use one (the route adds it as `DPoP-Nonce`).
    let first = sign_proof(&holder, "POST", &endpoint, None, now()).unwrap();
    let e = request(&first).await.unwrap_err();
    assert_eq!(e.error, "use_dpop_nonce", "{e}");
    let nonce = f.service.dpop_nonce(now()).unwrap();
    // A nonce of another token service (other keys), and a forged one, are not taken.
    let other = TokenService::new(
        &FrontendConfig::default(),
        SigningKeySet::single(SigningKey::generate_es256().unwrap()),
        f.directory.clone(),
        Arc::new(JtiReplayCache::default()),
        Metrics::new(),
    );
    for wrong in [
        other.dpop_nonce(now()).unwrap(),
        format!("{}.AAAA", nonce.split('.').next().unwrap()),
    ] {
        let p = sign_proof(&holder, "POST", &endpoint, Some(&wrong), now()).unwrap();
        let e = request(&p).await.unwrap_err();
        assert_eq!(e.error, "use_dpop_nonce", "{wrong}: {e}");
    }
    let proof = sign_proof(&holder, "POST", &endpoint, Some(&nonce), now()).unwrap();
    let answer = request(&proof).await.unwrap();
    assert_eq!(answer.token_type, "DPoP");
    let claims = f.verifier.verify(&answer.access_token, now()).unwrap();
    assert_eq!(
        claims.cnf.map(|c| c.jkt),
        Some(holder.public_key().thumbprint())
    );
    let replayed = request(&proof).await.unwrap_err();
    assert_eq!(replayed.error, "invalid_dpop_proof", "{replayed}");
    assert!(replayed.description.contains("already used"), "{replayed}");
    let elsewhere = sign_proof(
        &holder,
        "POST",
        "https://elsewhere/connect/token",
        Some(&nonce),
        now(),
    )
    .unwrap();
    let e = request(&elsewhere).await.unwrap_err();
    assert_eq!(e.error, "invalid_dpop_proof", "{e}");
}
