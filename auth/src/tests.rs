//! Round trips and every refusal reason of [`TokenVerifier`] and [`verify_client_assertion`],
//! a replay-cache check, a rough cost of one `verify`, and a property test that arbitrary
//! input never panics either.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::b64;
use crate::*;

const ISS: &str = "http://127.0.0.1:8080";
const AUD: &str = "kartotek";
const NOW: i64 = 1_800_000_000;

fn claims() -> AccessClaims {
    AccessClaims {
        iss: ISS.into(),
        sub: "ehr-1".into(),
        aud: vec![AUD.into()],
        exp: NOW + 300,
        nbf: Some(NOW),
        iat: NOW,
        jti: new_jti().unwrap(),
        client_id: "ehr-1".into(),
        scope: format!("{} {}", scopes::LOCATOR_READ, scopes::AUDIT_WRITE),
        org_parent: Some("974760673".into()),
        org_child: Some("983044778".into()),
        hpr_number: Some("1234567".into()),
        purpose_of_use: Some("treatment".into()),
        security_level: Some("4".into()),
        representation_area: None,
        act: Some(Actor {
            sub: "15076500565".into(),
        }),
        cnf: None,
    }
}

struct Fixture {
    issuer: Issuer,
    verifier: TokenVerifier,
}

fn fixture(key: SigningKey) -> Fixture {
    let issuer = Issuer::new(ISS, SigningKeySet::single(key), 3600);
    let trusted = issuer.trusted_issuer(AUD, NOW).unwrap();
    let verifier = TokenVerifier::new(vec![trusted], VerifierOptions::default());
    Fixture { issuer, verifier }
}

fn es256() -> Fixture {
    fixture(SigningKey::generate_es256().unwrap())
}

/// Signs arbitrary claims JSON with `key` and a custom header (to build bad tokens).
fn sign_raw(key: &SigningKey, typ: Option<&str>, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(key.alg().jwt());
    h.typ = typ.map(str::to_owned);
    h.kid = kid.map(str::to_owned);
    encode(&h, claims, key.encoding_key()).unwrap()
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64::encode(header.to_string().as_bytes()),
        b64::encode(claims.to_string().as_bytes())
    )
}

#[test]
fn es256_and_eddsa_round_trip() {
    for f in [es256(), fixture(SigningKey::generate_ed25519().unwrap())] {
        let c = claims();
        let token = f.issuer.sign(&c).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(
            header.kid.as_deref(),
            Some(f.issuer.keys().signing_key(NOW).unwrap().kid())
        );
        let back = f.verifier.verify(&token, NOW + 10).unwrap();
        assert_eq!(back, c);
        assert!(back.has_scope(scopes::LOCATOR_READ));
        // Within the leeway on both ends.
        f.verifier.verify(&token, NOW - 30).unwrap();
        f.verifier.verify(&token, NOW + 300 + 29).unwrap();
    }
}

#[test]
fn refusal_reasons() {
    let f = es256();
    let key = f.issuer.keys().signing_key(NOW).unwrap().clone();
    let kid = key.kid().to_owned();
    let good = serde_json::to_value(claims()).unwrap();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        change(&mut c);
        sign_raw(&key, Some("at+jwt"), Some(&kid), &c)
    };
    let v = |t: &str| f.verifier.verify(t, NOW + 10).unwrap_err();

    assert_eq!(f.verifier.verify("", NOW), Err(VerifyError::Missing));
    assert!(matches!(v("abc"), VerifyError::Malformed(_)));
    assert!(matches!(v("a.b.c"), VerifyError::Malformed(_)));
    assert!(matches!(
        v(&"x".repeat(TOKEN_BYTES_MAX + 1)),
        VerifyError::Malformed(_)
    ));

    // Expired (beyond the leeway), not yet valid.
    let token = f.issuer.sign(&claims()).unwrap();
    assert_eq!(
        f.verifier.verify(&token, NOW + 330),
        Err(VerifyError::Expired { exp: NOW + 300 })
    );
    assert_eq!(
        f.verifier.verify(&token, NOW - 31),
        Err(VerifyError::NotYetValid { nbf: NOW })
    );
    let future_iat = with(&|c| {
        c["iat"] = json!(NOW + 100);
        c["nbf"] = Value::Null;
    });
    assert!(matches!(
        v(&future_iat),
        VerifyError::NotYetValid { .. } | VerifyError::Malformed(_)
    ));

    // Wrong audience, wrong issuer (signed by the trusted key but claiming another iss).
    assert_eq!(
        v(&with(&|c| c["aud"] = json!(["other"]))),
        VerifyError::WrongAudience(AUD.into())
    );
    assert_eq!(
        v(&with(&|c| c["iss"] = json!("https://evil.example"))),
        VerifyError::UnknownIssuer("https://evil.example".into())
    );

    // A token of an issuer we do not trust at all (its own key).
    let stranger = SigningKey::generate_es256().unwrap();
    let mut other = good.clone();
    other["iss"] = json!("https://stranger.example");
    let t = sign_raw(&stranger, Some("at+jwt"), Some(stranger.kid()), &other);
    assert_eq!(
        v(&t),
        VerifyError::UnknownIssuer("https://stranger.example".into())
    );

    // Bad signature: another key under the trusted kid; a flipped signature byte.
    let t = sign_raw(&stranger, Some("at+jwt"), Some(&kid), &good);
    assert_eq!(v(&t), VerifyError::BadSignature);
    let good_token = with(&|_| {});
    let (msg, sig) = good_token.rsplit_once('.').unwrap();
    let mut sig = b64::decode(sig).unwrap();
    sig[5] ^= 1;
    assert_eq!(
        v(&format!("{msg}.{}", b64::encode(&sig))),
        VerifyError::BadSignature
    );
    // A payload swapped under a valid signature.
    let mut parts: Vec<&str> = good_token.split('.').collect();
    let admin_payload = with(&|c| c["scope"] = json!("kartotek:admin"));
    parts[1] = admin_payload.split('.').nth(1).unwrap();
    assert_eq!(v(&parts.join(".")), VerifyError::BadSignature);

    // alg none, with and without a signature.
    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
    assert_eq!(
        v(&unsigned(&none_header, &good)),
        VerifyError::AlgNotAllowed("none".into())
    );
    assert!(matches!(
        v(&format!("{}AAAA", unsigned(&none_header, &good))),
        VerifyError::AlgNotAllowed(_)
    ));

    // HS256 with the public key as the secret (the classic key-confusion attack).
    for secret in [
        key.public_key().jwk().to_string().into_bytes(),
        b64::decode(key.public_key().jwk()["x"].as_str().unwrap()).unwrap(),
    ] {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.clone());
        let t = encode(&h, &good, &EncodingKey::from_secret(&secret).unwrap()).unwrap();
        assert!(
            matches!(v(&t), VerifyError::AlgNotAllowed(_)),
            "{:?}",
            v(&t)
        );
    }
    // RS256 / ES384 headers are refused before any key is used.
    for alg in ["RS256", "ES384", "PS256"] {
        let t = unsigned(&json!({"alg": alg, "typ": "at+jwt", "kid": kid}), &good) + "AAAA";
        assert!(matches!(v(&t), VerifyError::AlgNotAllowed(_)), "{alg}");
    }

    // Wrong or missing typ (an ID token or a client assertion is not an access token).
    for typ in [Some("JWT"), Some("client-authentication+jwt"), None] {
        let t = sign_raw(&key, typ, Some(&kid), &good);
        assert_eq!(v(&t), VerifyError::WrongType(typ.unwrap_or("").into()));
    }
    let t = sign_raw(&key, Some("application/AT+JWT"), Some(&kid), &good);
    f.verifier.verify(&t, NOW + 10).unwrap();

    // Unknown or missing kid.
    let t = sign_raw(&key, Some("at+jwt"), Some("nope"), &good);
    assert_eq!(v(&t), VerifyError::UnknownKey("nope".into()));
    let t = sign_raw(&key, Some("at+jwt"), None, &good);
    assert_eq!(v(&t), VerifyError::UnknownKey("".into()));

    // CVE-2026-25537: a string exp (or nbf) must not skip the time check.
    for (claim, value) in [
        ("exp", json!("9999999999")),
        ("nbf", json!("0")),
        ("iat", json!("1")),
        ("exp", json!(null)),
        ("exp", json!(1.8e9)),
    ] {
        let t = with(&|c| c[claim] = value.clone());
        assert!(
            matches!(v(&t), VerifyError::Malformed(_)),
            "{claim}={value}: {:?}",
            v(&t)
        );
    }
    // A missing exp is refused too.
    let t = with(&|c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    assert!(matches!(v(&t), VerifyError::Malformed(_)));

    // Claims out of bounds.
    let t = with(&|c| c["helseid://claims/client/claims/orgnr_parent"] = json!("974760674"));
    assert!(matches!(v(&t), VerifyError::BadClaim { .. }));
}

#[test]
fn a_verifier_only_uses_allowed_algorithms() {
    let f = fixture(SigningKey::generate_ed25519().unwrap());
    let trusted = f.issuer.trusted_issuer(AUD, NOW).unwrap();
    let es_only = TokenVerifier::new(
        vec![trusted],
        VerifierOptions {
            algs: vec![TokenAlg::Es256],
            leeway_s: 0,
        },
    );
    let t = f.issuer.sign(&claims()).unwrap();
    assert!(matches!(
        es_only.verify(&t, NOW),
        Err(VerifyError::AlgNotAllowed(_))
    ));
}

#[test]
fn rotated_keys_verify_until_they_leave_the_published_set() {
    let old = SigningKey::generate_es256().unwrap();
    let mut keys = SigningKeySet::single(old.clone());
    let before = Issuer::new(ISS, keys.clone(), 300).sign(&claims()).unwrap();
    keys.rotate(SigningKey::generate_es256().unwrap(), NOW + 1)
        .unwrap();
    let issuer = Issuer::new(ISS, keys, 300);
    let mut c = claims();
    c.iat = NOW + 1;
    c.nbf = Some(NOW + 1);
    let after = issuer.sign(&c).unwrap();
    assert_ne!(
        jsonwebtoken::decode_header(&after).unwrap().kid.as_deref(),
        Some(old.kid())
    );
    // A verifier built from the published set at NOW + 2 accepts both.
    let jwks = issuer.public_jwks(NOW + 2).to_string();
    let verifier = TokenVerifier::new(
        vec![TrustedIssuer::from_jwks_json(ISS, AUD, &jwks).unwrap()],
        VerifierOptions::default(),
    );
    verifier.verify(&before, NOW + 2).unwrap();
    verifier.verify(&after, NOW + 2).unwrap();
    // Long after, the old key is gone from the set.
    let later = issuer.public_jwks(NOW + 1 + 300 + LEEWAY_S_MAX).to_string();
    assert!(!later.contains(old.kid()));
}

#[test]
fn the_issuer_refuses_bad_claims() {
    let f = es256();
    let mut c = claims();
    c.iss = "https://other".into();
    assert!(matches!(
        f.issuer.sign(&c),
        Err(IssueError::WrongIssuer { .. })
    ));
    let mut c = claims();
    c.exp = c.iat + 3601;
    assert!(matches!(
        f.issuer.sign(&c),
        Err(IssueError::LifetimeTooLong { .. })
    ));
    let mut c = claims();
    c.client_id = "bad id".into();
    assert!(matches!(f.issuer.sign(&c), Err(IssueError::Claim(_))));
}

#[test]
fn verify_cost() {
    let f = es256();
    let token = f.issuer.sign(&claims()).unwrap();
    let n = if cfg!(debug_assertions) { 200 } else { 5_000 };
    let started = std::time::Instant::now();
    for _ in 0..n {
        f.verifier.verify(&token, NOW + 1).unwrap();
    }
    let ns = started.elapsed().as_nanos() / n;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("TokenVerifier::verify (ES256): {ns} ns/op ({profile} build, {n} calls)");
}

// ---- client assertions ----

const CLIENT: &str = "ehr-1";

fn assertion_claims() -> Value {
    json!({
        "iss": CLIENT, "sub": CLIENT, "aud": ISS,
        "exp": NOW + 30, "iat": NOW, "nbf": NOW,
        "jti": new_jti().unwrap(),
    })
}

fn assertion(key: &SigningKey, claims: &Value) -> String {
    sign_raw(key, Some(ASSERTION_TYPE), Some(key.kid()), claims)
}

fn client_keys(key: &SigningKey) -> Vec<String> {
    vec![key.public_key().jwk().to_string()]
}

#[test]
fn assertions_round_trip() {
    for key in [
        SigningKey::generate_es256().unwrap(),
        SigningKey::generate_ed25519().unwrap(),
    ] {
        let c = assertion_claims();
        let jwt = assertion(&key, &c);
        assert_eq!(assertion_client_id(&jwt).unwrap(), CLIENT);
        let got = verify_client_assertion(&jwt, CLIENT, ISS, &client_keys(&key), NOW).unwrap();
        assert_eq!(got.client_id, CLIENT);
        assert_eq!(got.jti, c["jti"].as_str().unwrap());
        assert_eq!(got.exp_s, NOW + 30);
        // Without a kid, the client's keys of that algorithm are tried; aud may be an array.
        let mut c2 = assertion_claims();
        c2["aud"] = json!(["x", ISS]);
        let jwt = sign_raw(&key, Some(ASSERTION_TYPE), None, &c2);
        let other = SigningKey::generate_es256().unwrap();
        let keys = vec![
            other.public_key().jwk().to_string(),
            key.public_key().jwk().to_string(),
        ];
        verify_client_assertion(&jwt, CLIENT, ISS, &keys, NOW).unwrap();
    }
}

#[test]
fn signed_assertions_verify_and_live_at_most_a_minute() {
    let key = SigningKey::generate_es256().unwrap();
    let jwt = sign_client_assertion(&key, CLIENT, ISS, NOW, 3600).unwrap();
    let got = verify_client_assertion(&jwt, CLIENT, ISS, &client_keys(&key), NOW).unwrap();
    assert_eq!(got.exp_s, NOW + ASSERTION_LIFETIME_S_MAX);
    let other = sign_client_assertion(&key, CLIENT, ISS, NOW, 30).unwrap();
    let got2 = verify_client_assertion(&other, CLIENT, ISS, &client_keys(&key), NOW).unwrap();
    assert_ne!(got.jti, got2.jti);
}

#[test]
fn assertion_refusal_reasons() {
    let key = SigningKey::generate_es256().unwrap();
    let keys = client_keys(&key);
    let good = assertion_claims();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        change(&mut c);
        assertion(&key, &c)
    };
    let v = |jwt: &str| verify_client_assertion(jwt, CLIENT, ISS, &keys, NOW).unwrap_err();

    assert_eq!(
        v(&with(&|c| c["exp"] = json!(NOW - 11))),
        AssertionError::Expired { exp: NOW - 11 }
    );
    assert_eq!(
        v(&with(&|c| c["exp"] = json!(NOW + 71))),
        AssertionError::LifetimeTooLong { exp: NOW + 71 }
    );
    assert!(matches!(
        v(&with(&|c| c["nbf"] = json!(NOW + 60))),
        AssertionError::NotYetValid { .. }
    ));
    assert_eq!(
        v(&with(
            &|c| c["aud"] = json!("http://127.0.0.1:8080/connect/token")
        )),
        AssertionError::WrongAudience(ISS.into())
    );
    assert_eq!(
        v(&with(&|c| c["iss"] = json!("other"))),
        AssertionError::WrongClient
    );
    assert_eq!(
        v(&with(&|c| c["sub"] = json!("other"))),
        AssertionError::WrongClient
    );
    assert!(matches!(
        v(&with(&|c| c["jti"] = json!(""))),
        AssertionError::BadJti(_)
    ));
    assert!(matches!(
        v(&with(&|c| c["jti"] = json!("j".repeat(JTI_BYTES_MAX + 1)))),
        AssertionError::BadJti(_)
    ));
    assert!(matches!(
        v(&with(&|c| {
            c.as_object_mut().unwrap().remove("jti");
        })),
        AssertionError::BadJti(_)
    ));
    assert!(matches!(
        v(&with(&|c| c["exp"] = json!("9999999999"))),
        AssertionError::Malformed(_)
    ));
    // Signed by another key under the client's kid.
    let other = SigningKey::generate_es256().unwrap();
    let t = sign_raw(&other, Some(ASSERTION_TYPE), Some(key.kid()), &good);
    assert_eq!(v(&t), AssertionError::BadSignature);
    // Unknown kid, wrong typ, alg none, HS256 with the public key as secret.
    let t = sign_raw(&key, Some(ASSERTION_TYPE), Some("nope"), &good);
    assert_eq!(v(&t), AssertionError::UnknownKey("nope".into()));
    for typ in [Some("JWT"), Some("at+jwt"), None] {
        let t = sign_raw(&key, typ, Some(key.kid()), &good);
        assert_eq!(v(&t), AssertionError::WrongType(typ.unwrap_or("").into()));
    }
    let t = unsigned(&json!({"alg": "none", "typ": ASSERTION_TYPE}), &good);
    assert_eq!(v(&t), AssertionError::AlgNotAllowed("none".into()));
    let mut h = Header::new(Algorithm::HS256);
    h.typ = Some(ASSERTION_TYPE.into());
    let t = encode(
        &h,
        &good,
        &EncodingKey::from_secret(keys[0].as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(matches!(v(&t), AssertionError::AlgNotAllowed(_)));
    // A client whose only key is RSA (allowed in the registry) cannot use it here.
    let rsa = vec![r#"{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}"#.to_owned()];
    let t = assertion(&key, &good);
    assert!(matches!(
        verify_client_assertion(&t, CLIENT, ISS, &rsa, NOW),
        Err(AssertionError::UnknownKey(_))
    ));
    assert!(matches!(v(""), AssertionError::Malformed(_)));
    assert!(matches!(
        v(&"a".repeat(ASSERTION_BYTES_MAX + 1)),
        AssertionError::Malformed(_)
    ));
    // assertion_client_id refuses iss != sub and bad ids.
    assert_eq!(
        assertion_client_id(&with(&|c| c["sub"] = json!("x"))),
        Err(AssertionError::WrongClient)
    );
    assert!(
        assertion_client_id(&with(&|c| {
            c["iss"] = json!("a b");
            c["sub"] = json!("a b");
        }))
        .is_err()
    );
}

#[test]
fn the_replay_cache_is_single_use_bounded_and_forgets_expired() {
    let cache = JtiReplayCache::new(2, 2);
    cache.check_and_record("a", "j1", NOW + 30, NOW).unwrap();
    assert_eq!(
        cache.check_and_record("a", "j1", NOW + 30, NOW + 1),
        Err(ReplayError::Replayed)
    );
    // Another client may use the same jti.
    cache.check_and_record("b", "j1", NOW + 30, NOW).unwrap();
    cache.check_and_record("a", "j2", NOW + 40, NOW).unwrap();
    assert_eq!(
        cache.check_and_record("a", "j3", NOW + 40, NOW),
        Err(ReplayError::Full)
    );
    assert_eq!(
        cache.check_and_record("c", "j1", NOW + 40, NOW),
        Err(ReplayError::Full)
    );
    assert_eq!(cache.len(), 3);
    // Once j1 has expired (exp + leeway) it is dropped and the slot is free again.
    let later = NOW + 30 + ASSERTION_LEEWAY_S;
    cache.check_and_record("a", "j3", NOW + 90, later).unwrap();
    // Still replayed while live.
    assert_eq!(
        cache.check_and_record("a", "j2", NOW + 40, later),
        Err(ReplayError::Replayed)
    );
    // Clients whose entries all expired make room for new ones.
    cache
        .check_and_record("c", "j1", NOW + 200, NOW + 100)
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let f = es256_static();
        let text = String::from_utf8_lossy(&bytes);
        let _ = f.verifier.verify(&text, NOW);
        let keys = client_keys(f.issuer.keys().signing_key(NOW).unwrap());
        let _ = verify_client_assertion(&text, CLIENT, ISS, &keys, NOW);
        let _ = assertion_client_id(&text);
        let _ = PublicKey::from_jwk_json(&text);
        let _ = SigningKeySet::from_jwks_json(&text);
    }

    #[test]
    fn arbitrary_jose_parts_never_panic(
        header in proptest::collection::vec(any::<u8>(), 0..200),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        sig in proptest::collection::vec(any::<u8>(), 0..80),
        alg in prop::sample::select(vec!["ES256", "EdDSA", "none", "HS256", "RS256", "x"]),
    ) {
        let f = es256_static();
        let kid = f.issuer.keys().signing_key(NOW).unwrap().kid().to_owned();
        let keys = client_keys(f.issuer.keys().signing_key(NOW).unwrap());
        for h in [
            b64::encode(&header),
            b64::encode(json!({"alg": alg, "typ": "at+jwt", "kid": kid}).to_string().as_bytes()),
            b64::encode(json!({"alg": alg, "typ": ASSERTION_TYPE, "kid": kid}).to_string().as_bytes()),
        ] {
            let t = format!("{h}.{}.{}", b64::encode(&payload), b64::encode(&sig));
            let _ = f.verifier.verify(&t, NOW);
            let _ = verify_client_assertion(&t, CLIENT, ISS, &keys, NOW);
        }
    }
}

/// The fuzz targets' bodies (`crate::fuzzing`, driven for long runs by `cargo fuzz` in
/// `fuzz/`), a few thousand cases in every test run: raw bytes, and claims documents signed
/// with the trusted key (odd first byte), including ones shaped like real claims.
fn claims_like() -> impl Strategy<Value = Vec<u8>> {
    let text = "[ -~]{0,40}";
    let number = prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(1_800_000_100)),
        Just(json!("1800000100")),
        Just(json!(null)),
        Just(json!(1.5e9))
    ];
    (
        text,
        number.clone(),
        number,
        prop::sample::select(vec!["kartotek", "other"]),
        prop::sample::select(vec![crate::fuzzing::FUZZ_ISSUER, "https://x"]),
    )
        .prop_map(|(sub, exp, iat, aud, iss)| {
            let mut out = vec![1u8];
            out.extend(
                json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp, "iat": iat,
                       "jti": "j", "client_id": crate::fuzzing::FUZZ_CLIENT, "scope": sub,
                       "pid": sub, "acr": "idporten-loa-high"})
                .to_string()
                .into_bytes(),
            );
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_fuzz_targets_hold_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        crate::fuzzing::access_token(&bytes);
        crate::fuzzing::client_assertion(&bytes);
        crate::fuzzing::login_token(&bytes);
    }

    #[test]
    fn the_fuzz_targets_hold_on_signed_claims(bytes in claims_like()) {
        crate::fuzzing::access_token(&bytes);
        crate::fuzzing::client_assertion(&bytes);
        crate::fuzzing::login_token(&bytes);
    }
}

fn es256_static() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(es256)
}
