//! The frontend's own access tokens for its calls to the cluster.
//!
//! The token service reads client records from the cluster, and the cluster wants a token on
//! every call: the frontend is an issuer the nodes trust, so it signs its own, with the same
//! keys as the tokens it issues to clients, instead of needing a client of its own. The token
//! names the client [`FRONTEND_CLIENT_ID`] (so the audit log says who read a client record)
//! and carries only [`FRONTEND_SCOPES`]. It is cached and renewed 30 s before it expires (at
//! half its life if it lives less than a minute). A frontend that should get its tokens
//! elsewhere sets `cluster.client_file` instead.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kartotek_auth::{AccessClaims, Issuer, new_jti, scopes};
use kartotek_client::{BearerToken, ClientError, TokenSource};

/// The `client_id` and `sub` of the frontend's own tokens.
pub const FRONTEND_CLIENT_ID: &str = "kartotek-frontend";
/// What the frontend's own tokens allow: reading client records (the token service) and
/// forwarding audit events.
pub const FRONTEND_SCOPES: [&str; 2] = [scopes::CLIENTS_READ, scopes::AUDIT_WRITE];

/// Tokens the frontend signs for itself (see the [module docs](self)).
pub struct SelfIssued {
    issuer: Issuer,
    audience: String,
    client_id: String,
    scope: String,
    cached: Mutex<Option<(BearerToken, Instant)>>,
}

impl std::fmt::Debug for SelfIssued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfIssued")
            .field("issuer", &self.issuer.issuer())
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl SelfIssued {
    /// The frontend's tokens from `issuer` for the nodes' `audience`.
    pub fn new(issuer: Issuer, audience: impl Into<String>) -> SelfIssued {
        SelfIssued::for_client(issuer, audience, FRONTEND_CLIENT_ID, &FRONTEND_SCOPES)
    }

    /// Tokens for another of the issuer's own clients (`kartotek dev`'s supervisor signs an
    /// admin token this way to set the cluster up).
    pub fn for_client(
        issuer: Issuer,
        audience: impl Into<String>,
        client_id: &str,
        scopes: &[&str],
    ) -> SelfIssued {
        SelfIssued {
            issuer,
            audience: audience.into(),
            client_id: client_id.to_owned(),
            scope: scopes.join(" "),
            cached: Mutex::new(None),
        }
    }

    fn get(&self) -> Result<BearerToken, ClientError> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, renew_at)) = cached.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let fail = |reason: String| ClientError::Token {
            endpoint: format!("{} (self-issued)", self.issuer.issuer()),
            reason,
        };
        let now_s = crate::token::routes::now_s();
        let lifetime_s = self.issuer.lifetime_s_max().max(1);
        let claims = AccessClaims {
            iss: self.issuer.issuer().to_owned(),
            sub: self.client_id.clone(),
            aud: vec![self.audience.clone()],
            exp: now_s.saturating_add(lifetime_s),
            nbf: Some(now_s),
            iat: now_s,
            jti: new_jti().map_err(|e| fail(e.to_string()))?,
            client_id: self.client_id.clone(),
            scope: self.scope.clone(),
            org_parent: None,
            org_child: None,
            hpr_number: None,
            purpose_of_use: None,
            security_level: None,
            act: None,
            cnf: None,
        };
        let jwt = self.issuer.sign(&claims).map_err(|e| fail(e.to_string()))?;
        let token = BearerToken::new(&jwt)?;
        let lifetime = Duration::from_secs(u64::try_from(lifetime_s).unwrap_or(1));
        let early = Duration::from_secs(30).min(lifetime / 2);
        *cached = Some((token.clone(), Instant::now() + lifetime - early));
        Ok(token)
    }
}

impl TokenSource for SelfIssued {
    fn token(&self) -> BoxFuture<'_, Result<BearerToken, ClientError>> {
        let result = self.get();
        Box::pin(async move { result })
    }

    fn invalidate(&self, rejected: &BearerToken) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(|(t, _)| t == rejected) {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use kartotek_auth::{SigningKey, SigningKeySet, TokenVerifier, VerifierOptions};

    use super::*;

    #[tokio::test]
    async fn its_tokens_verify_carry_only_its_scopes_and_are_cached() {
        let issuer = Issuer::new(
            "http://127.0.0.1:8080",
            SigningKeySet::single(SigningKey::generate_es256().unwrap()),
            300,
        );
        let now_s = crate::token::routes::now_s();
        let trusted = issuer.trusted_issuer("kartotek", now_s).unwrap();
        let source = SelfIssued::new(issuer, "kartotek");
        let first = source.token().await.unwrap();
        assert_eq!(source.token().await.unwrap(), first, "cached");
        let verifier = TokenVerifier::new(vec![trusted], VerifierOptions::default());
        let claims = verifier.verify(first.secret(), now_s).unwrap();
        assert_eq!(claims.client_id, FRONTEND_CLIENT_ID);
        assert!(claims.has_scope(scopes::CLIENTS_READ));
        assert!(!claims.has_scope(scopes::ADMIN));
        source.invalidate(&first);
        assert_ne!(
            source.token().await.unwrap(),
            first,
            "renewed after a refusal"
        );
    }
}
