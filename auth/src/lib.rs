//! Kartotek's security tokens, as pure logic: what an access token says, how the frontend's
//! token service signs one, how a node (or any API owner) verifies one, and how a client
//! proves who it is with an RFC 7523 `private_key_jwt` assertion.
//!
//! No async runtime, no network, no storage: the frontend (`kartotek-frontend`) issues with
//! it and the node verifies with it; both load keys and client records their own way and hand
//! them in. Time is always passed in (`now_s`, seconds since the Unix epoch), never read here,
//! so every rule is testable without a clock.
//!
//! # Module map
//!
//! - [`claims`]: [`AccessClaims`], the claims of an access token (RFC 9068 plus the
//!   HelseID-style claims an API owner needs for purpose of use and audit), with
//!   [`AccessClaims::scopes`] and [`AccessClaims::has_scope`].
//! - [`scopes`]: the named Kartotek scopes (`kartotek:locator.read`, ...) the node maps its
//!   methods onto.
//! - [`keys`]: [`SigningKey`] (ES256 or EdDSA; from a private JWK or PKCS#8 PEM; generated in
//!   dev), [`SigningKeySet`] (current and retired keys, rotation, the published JWK Set) and
//!   [`PublicKey`] (a parsed, checked public JWK).
//! - [`issue`]: [`Issuer::sign`] signs [`AccessClaims`] as an `at+jwt`.
//! - [`verify`]: [`TokenVerifier`] checks a bearer token against [`TrustedIssuer`]s and returns
//!   its [`AccessClaims`] or a [`VerifyError`] that names the reason.
//! - [`assertion`]: [`verify_client_assertion`] (RFC 7523 client authentication) and the
//!   [`ReplayGuard`] trait with its in-process implementation [`JtiReplayCache`].
//! - [`login`]: [`LoginVerifier`], the citizen login tokens (OpenID Connect ID tokens from
//!   ID-porten or the dev login) the token service exchanges, and the [`Citizen`] they name.
//! - [`dpop`]: DPoP proofs (RFC 9449): [`dpop::sign_proof`], [`dpop::verify_proof`] and
//!   the proof replay cache.
//! - [`error`]: [`KeyError`] and [`IssueError`].
//! - [`fuzzing`]: the bodies of the fuzz targets (`fuzz/`), also run as property tests.
//!
//! Algorithms: only ES256 and EdDSA (Ed25519) are ever accepted for access tokens and client
//! assertions ([`TokenAlg`]); `none`, HMAC (a shared secret) and RSA are refused before any key
//! is looked at. A citizen's login token may also be RS256 (ID-porten signs with it), and
//! only that ([`login`]).

pub mod assertion;
pub mod claims;
pub mod dpop;
pub mod error;
pub mod fuzzing;
pub mod issue;
pub mod keys;
pub mod login;
pub mod scopes;
pub mod verify;

mod b64;

pub use assertion::{
    ASSERTION_BYTES_MAX, ASSERTION_LEEWAY_S, ASSERTION_LIFETIME_S_MAX, ASSERTION_TYPE,
    AssertionClaims, AssertionError, CLIENT_ASSERTION_TYPE, JTI_BYTES_MAX, JtiReplayCache,
    ReplayError, ReplayGuard, assertion_client_id, sign_client_assertion, verify_client_assertion,
};
pub use claims::{AccessClaims, Actor, Confirmation};
pub use error::{IssueError, KeyError};
pub use issue::{ACCESS_TOKEN_LIFETIME_S_MAX, ACCESS_TOKEN_TYPE, Issuer, new_jti};
pub use keys::{PublicKey, SigningKey, SigningKeySet, TokenAlg};
pub use login::{Citizen, LoginProvider, LoginVerifier, sign_login_token};
pub use verify::{
    LEEWAY_S_DEFAULT, LEEWAY_S_MAX, TOKEN_BYTES_MAX, TokenVerifier, TrustedIssuer, VerifierOptions,
    VerifyError,
};

#[cfg(test)]
mod tests;
