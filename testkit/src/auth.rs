//! A token issuer for test clusters: one ES256 key, its public JWK Set written to a file the
//! nodes' `[auth]` section trusts, and token sources that sign with it. A harness's clients
//! then call with verified tokens, as production clients do, instead of nodes taking calls
//! without them. Test use only: the private key lives in memory of the harness.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use kartotek_auth::{AccessClaims, Issuer, SigningKey, SigningKeySet, scopes};
use kartotek_client::{SelfIssued, TokenSource};

/// The issuer URL test tokens name.
pub const TEST_ISSUER: &str = "https://issuer.test.kartotek";
/// The audience test tokens name.
pub const TEST_AUDIENCE: &str = "kartotek";
/// The client id of the harness's own (all-scopes) token.
pub const HARNESS_CLIENT_ID: &str = "kartotek-testkit";
/// Lifetime of test tokens, seconds.
pub const TEST_TOKEN_LIFETIME_S: i64 = 3600;

/// Every Kartotek scope (the harness's token).
pub fn all_scopes() -> Vec<&'static str> {
    scopes::ALL.iter().map(|(s, _)| *s).collect()
}

/// A test issuer (see the [module docs](self)). Cheap to clone.
#[derive(Debug, Clone)]
pub struct TestIssuer {
    issuer: Issuer,
    jwks_file: PathBuf,
}

impl TestIssuer {
    /// A new key; its public JWK Set written to `dir/issuer-jwks.json`.
    pub fn new(dir: &Path) -> anyhow::Result<TestIssuer> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let key = SigningKey::generate_es256()?;
        let issuer = Issuer::new(
            TEST_ISSUER,
            SigningKeySet::single(key),
            TEST_TOKEN_LIFETIME_S,
        );
        let jwks_file = dir.join("issuer-jwks.json");
        let jwks = issuer.public_jwks(now_s());
        std::fs::write(&jwks_file, jwks.to_string())
            .with_context(|| format!("writing {}", jwks_file.display()))?;
        Ok(TestIssuer { issuer, jwks_file })
    }

    /// The node TOML that makes tokens of this issuer required.
    pub fn node_toml(&self) -> String {
        format!(
            "[auth]\nrequired = true\n\n[[auth.trusted_issuers]]\nissuer = \"{TEST_ISSUER}\"\naudience = \"{TEST_AUDIENCE}\"\njwks_file = \"{}\"\n",
            self.jwks_file.display()
        )
    }

    /// Writes the private signing keys to `path` (a JWK Set, `token.signing_keys_file`), so
    /// that a `kartotek frontend` under test issues tokens the nodes trust.
    pub fn write_signing_keys(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.issuer.keys().to_jwks_json().as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The public JWK Set file.
    pub fn jwks_file(&self) -> &Path {
        &self.jwks_file
    }

    /// The issuer (to sign hand-made claims).
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// Claims for client `client_id` with `scopes` (org, HPR number, purpose unset), to
    /// adjust and pass to [`tokens_for`](Self::tokens_for).
    pub fn claims(&self, client_id: &str, scopes: &[&str]) -> AccessClaims {
        AccessClaims::for_client(TEST_ISSUER, TEST_AUDIENCE, client_id, scopes.join(" "))
    }

    /// Tokens that are copies of `claims` (fresh times and `jti`).
    pub fn tokens_for(&self, claims: AccessClaims) -> Arc<dyn TokenSource> {
        Arc::new(SelfIssued::from_template(self.issuer.clone(), claims))
    }

    /// The harness's own tokens: every scope.
    pub fn harness_tokens(&self) -> Arc<dyn TokenSource> {
        self.tokens_for(self.claims(HARNESS_CLIENT_ID, &all_scopes()))
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
