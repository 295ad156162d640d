//! The fuzz entry point of the token endpoint ([`token_form`]): arbitrary bytes as the body
//! of `POST /connect/token`, parsed as the route parses it and handed to the [`TokenService`]
//! with an in-memory directory. No input may panic, and none may get a token: every grant
//! needs a client assertion signed with the client's private key, which the fuzzer does not
//! have. Driven by `cargo fuzz` (`fuzz/`, long runs) and by a property test (every CI run).

use std::sync::{Arc, OnceLock};

use kartotek_auth::{JtiReplayCache, SigningKey, SigningKeySet, scopes};

use super::TokenService;
use super::directory::{DirectoryClient, MemoryDirectory};
use crate::config::FrontendConfig;
use crate::metrics::Metrics;

/// The clock of every request.
pub const FUZZ_NOW_S: i64 = 1_800_000_000;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    service: TokenService,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
            unreachable!("a current-thread runtime")
        };
        let Ok(client_key) = SigningKey::generate_es256() else {
            unreachable!("generating a P-256 key")
        };
        let Ok(signing) = SigningKey::generate_es256() else {
            unreachable!("generating a P-256 key")
        };
        let directory = MemoryDirectory::new();
        directory.insert(DirectoryClient {
            client_id: "fuzz-client".into(),
            org: "974760673".into(),
            active: true,
            public_keys: vec![client_key.public_key().jwk().to_string()],
            allowed_scopes: vec![scopes::CITIZEN.into(), scopes::LOCATOR_READ.into()],
        });
        directory.represent("01017012345", "01012012345", "*");
        let config = FrontendConfig::default();
        let service = TokenService::new(
            &config,
            SigningKeySet::single(signing),
            Arc::new(directory),
            Arc::new(JtiReplayCache::default()),
            Metrics::new(),
        );
        Fixture { runtime, service }
    })
}

/// One token request with body `data`.
pub fn token_form(data: &[u8]) {
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else {
        return;
    };
    let f = fixture();
    let answer = f.runtime.block_on(f.service.token(&params, FUZZ_NOW_S));
    assert!(
        answer.is_err(),
        "a token without a signed client assertion: {params:?}"
    );
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    fn form_like() -> impl Strategy<Value = Vec<u8>> {
        let names = prop::sample::select(vec![
            "grant_type",
            "client_assertion_type",
            "client_assertion",
            "subject_token",
            "subject_token_type",
            "scope",
            "act_for",
            "audience",
            "area",
            "client_id",
            "client_secret",
            "x",
        ]);
        let values = prop_oneof![
            Just("client_credentials".to_owned()),
            Just(super::super::GRANT_TOKEN_EXCHANGE.to_owned()),
            Just(kartotek_auth::CLIENT_ASSERTION_TYPE.to_owned()),
            Just("eyJhbGciOiJub25lIn0.e30.".to_owned()),
            "[ -~]{0,60}",
        ];
        proptest::collection::vec((names, values), 0..20).prop_map(|pairs| {
            serde_urlencoded::to_string(pairs)
                .unwrap_or_default()
                .into_bytes()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn arbitrary_bodies_get_no_token(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            super::token_form(&data);
        }

        #[test]
        fn form_shaped_bodies_get_no_token(data in form_like()) {
            super::token_form(&data);
        }
    }
}
