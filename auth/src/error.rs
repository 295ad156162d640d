//! Errors of loading keys ([`KeyError`]) and of signing tokens ([`IssueError`]). Verification
//! and assertion errors live with their checks: [`crate::VerifyError`],
//! [`crate::AssertionError`].

use crate::claims::ClaimError;

/// A key or key set that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not JSON, not PEM, or not the shape of a JWK / JWK Set.
    #[error("key {key}: not a usable key: {reason}")]
    Malformed {
        /// Which key (`kid`, index or file).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A key type or curve other than EC P-256 or OKP Ed25519 (or an `alg` that disagrees).
    #[error("key {key}: unsupported: {reason}; only ES256 (EC P-256) and EdDSA (Ed25519) keys")]
    Unsupported {
        /// Which key.
        key: String,
        /// What it is.
        reason: String,
    },
    /// Two keys share a `kid`.
    #[error("kid {0:?} appears twice")]
    DuplicateKid(String),
    /// More keys than allowed, or none.
    #[error("{0}")]
    Count(String),
    /// The file could not be read.
    #[error("reading {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        reason: String,
    },
    /// No key may sign at this time (all retired, or none active yet).
    #[error("no signing key is active at {now_s}")]
    NoActiveKey {
        /// The time asked about, seconds since the epoch.
        now_s: i64,
    },
    /// Randomness or encoding failed while generating a key.
    #[error("generating a key: {0}")]
    Generate(String),
}

/// Why a token could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The claims break a rule (see [`crate::AccessClaims::check`]).
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// `iss` is not this issuer.
    #[error("iss {got:?} is not this issuer ({want:?})")]
    WrongIssuer {
        /// The claims' `iss`.
        got: String,
        /// The issuer's URL.
        want: String,
    },
    /// `exp - iat` exceeds the issuer's lifetime maximum.
    #[error("lifetime {lifetime_s} s exceeds {max_s} s")]
    LifetimeTooLong {
        /// Requested lifetime.
        lifetime_s: i64,
        /// The maximum.
        max_s: i64,
    },
    /// No key to sign with.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The JWT library refused to sign.
    #[error("signing: {0}")]
    Sign(String),
}
