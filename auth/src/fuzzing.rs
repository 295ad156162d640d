//! Entry points for fuzzing everything here that parses bytes from strangers: an access token
//! ([`access_token`]), a client assertion ([`client_assertion`]) and a citizen's login token
//! ([`login_token`]). Each takes arbitrary bytes and must return without panicking; it also
//! checks what must hold whatever the input (nothing unsigned is accepted).
//!
//! Two drivers call them: the `cargo fuzz` targets in `fuzz/` (libFuzzer, for long runs) and
//! the property tests of this crate (`tests.rs`, a few thousand cases in every CI run).
//!
//! The first input byte picks a mode: even — the rest is the token text as it arrives; odd —
//! the rest is a claims document that is *signed with a trusted key* before it is verified,
//! so the fuzzer reaches the claims checks behind a valid signature too.

use std::sync::OnceLock;

use crate::keys::SigningKey;
use crate::login::{LoginProvider, LoginVerifier};
use crate::verify::{TokenVerifier, TrustedIssuer, VerifierOptions};
use crate::{ACCESS_TOKEN_TYPE, AccessClaims, verify_client_assertion};

/// The issuer of the fuzzed tokens.
pub const FUZZ_ISSUER: &str = "https://issuer.fuzz.kartotek";
/// The audience of the fuzzed tokens.
pub const FUZZ_AUDIENCE: &str = "kartotek";
/// The client id of the fuzzed assertions.
pub const FUZZ_CLIENT: &str = "fuzz-client";
/// The clock of every check.
pub const FUZZ_NOW_S: i64 = 1_800_000_000;

struct Fixture {
    key: SigningKey,
    verifier: TokenVerifier,
    login: LoginVerifier,
    client_jwk: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let Ok(key) = SigningKey::generate_es256() else {
            unreachable!("generating a P-256 key")
        };
        let jwks = serde_json::json!({ "keys": [key.public_key().jwk()] }).to_string();
        let Ok(issuer) = TrustedIssuer::from_jwks_json(FUZZ_ISSUER, FUZZ_AUDIENCE, &jwks) else {
            unreachable!("a generated key's JWK Set")
        };
        let Ok(provider) = LoginProvider::from_jwks_json(FUZZ_ISSUER, "", &jwks, &[]) else {
            unreachable!("a generated key's JWK Set")
        };
        Fixture {
            verifier: TokenVerifier::new(vec![issuer], VerifierOptions::default()),
            login: LoginVerifier::new(vec![provider], 30),
            client_jwk: key.public_key().jwk().to_string(),
            key,
        }
    })
}

/// The token text of `data` (mode in the first byte; see the module docs), or `None`.
fn token_of(data: &[u8], typ: &str) -> Option<String> {
    let (mode, rest) = data.split_first()?;
    if mode % 2 == 0 {
        return std::str::from_utf8(rest).ok().map(str::to_owned);
    }
    let claims: serde_json::Value = serde_json::from_slice(rest).ok()?;
    fixture().key.sign_jwt(typ, &claims).ok()
}

/// Verifies `data` as an access token. Whatever is accepted carries valid claims within the
/// verifier's rules.
pub fn access_token(data: &[u8]) {
    let Some(token) = token_of(data, ACCESS_TOKEN_TYPE) else {
        return;
    };
    if let Ok(claims) = fixture().verifier.verify(&token, FUZZ_NOW_S) {
        assert_accepted(&claims);
    }
}

fn assert_accepted(claims: &AccessClaims) {
    assert_eq!(claims.iss, FUZZ_ISSUER);
    assert!(claims.aud.iter().any(|a| a == FUZZ_AUDIENCE));
    assert!(claims.exp > FUZZ_NOW_S - crate::LEEWAY_S_MAX);
    assert!(claims.check().is_ok());
}

/// Verifies `data` as a client assertion of [`FUZZ_CLIENT`].
pub fn client_assertion(data: &[u8]) {
    let Some(token) = token_of(data, crate::ASSERTION_TYPE) else {
        return;
    };
    let _ = crate::assertion_client_id(&token);
    if let Ok(claims) = verify_client_assertion(
        &token,
        FUZZ_CLIENT,
        FUZZ_ISSUER,
        &[fixture().client_jwk.as_str()],
        FUZZ_NOW_S,
    ) {
        assert!(claims.exp_s > FUZZ_NOW_S - crate::ASSERTION_LEEWAY_S);
        assert!(!claims.jti.is_empty());
    }
}

/// Verifies `data` as a citizen's login token for the exchange of [`FUZZ_CLIENT`].
pub fn login_token(data: &[u8]) {
    let Some(token) = token_of(data, "JWT") else {
        return;
    };
    if let Ok(citizen) = fixture().login.verify(&token, FUZZ_CLIENT, FUZZ_NOW_S) {
        assert_eq!(citizen.issuer, FUZZ_ISSUER);
        assert!(matches!(citizen.security_level, "3" | "4"));
    }
}
