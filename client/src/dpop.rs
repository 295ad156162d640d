//! DPoP (RFC 9449) on gRPC calls: [`ProofChannel`] wraps a tonic channel and, when the call's
//! `authorization` is `DPoP <token>`, adds a `dpop` proof made with the token's key for that one
//! call (`htm` POST, `htu` `https://kartotek` + the gRPC method path, which is what a node
//! compares; `ath` the token's hash; a fresh `jti`). A bearer call passes unchanged.
//!
//! The key is the one the token was bound to when the token service issued it
//! ([`crate::token::ClientCredentials::with_dpop`]); it never leaves the process.

use std::sync::Arc;
use std::task::{Context, Poll};

use kartotek_auth::SigningKey;
use tonic::codegen::http;
use tonic::transport::Channel;
use tower::Service;

/// The authority a proof's `htu` names: nodes compare the path only (a node has several names
/// and cannot know which one a client dialled).
pub const PROOF_AUTHORITY: &str = "https://kartotek";

/// A channel that signs a DPoP proof for each call that presents a DPoP-bound token.
#[derive(Clone, Debug)]
pub struct ProofChannel {
    inner: Channel,
    key: Option<Arc<SigningKey>>,
}

impl ProofChannel {
    /// `inner`, signing with `key` when set.
    pub fn new(inner: Channel, key: Option<Arc<SigningKey>>) -> ProofChannel {
        ProofChannel { inner, key }
    }
}

/// The proof for a call to `path` with `authorization` (none when it is not `DPoP <token>`).
fn proof_for(key: &SigningKey, authorization: Option<&str>, path: &str) -> Option<String> {
    let token = authorization?.strip_prefix("DPoP ")?;
    let now_s = crate::token::unix_now_s();
    let htu = format!("{PROOF_AUTHORITY}{path}");
    match kartotek_auth::dpop::sign_proof(key, "POST", &htu, Some(token), now_s) {
        Ok(p) => Some(p),
        Err(e) => {
            // The node then refuses the call with a reason; nothing secret in this error.
            tracing::warn!(error = %e, "signing a DPoP proof");
            None
        }
    }
}

impl Service<http::Request<tonic::body::Body>> for ProofChannel {
    type Response = <Channel as Service<http::Request<tonic::body::Body>>>::Response;
    type Error = <Channel as Service<http::Request<tonic::body::Body>>>::Error;
    type Future = <Channel as Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(key) = &self.key {
            let authorization = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if let Some(proof) = proof_for(key, authorization, request.uri().path())
                && let Ok(value) = http::HeaderValue::try_from(proof)
            {
                request.headers_mut().insert("dpop", value);
            }
        }
        Service::call(&mut self.inner, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kartotek_auth::dpop::{HtuMatch, verify_proof};

    #[test]
    fn proofs_are_made_for_dpop_calls_only_and_name_the_method() {
        let key = SigningKey::generate_es256().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(proof_for(&key, None, "/x"), None);
        assert_eq!(proof_for(&key, Some("Bearer abc"), "/x"), None);
        let path = "/kartotek.v1.LocatorService/Lookup";
        let proof = proof_for(&key, Some("DPoP abc"), path).unwrap_or_default();
        let now_s = crate::token::unix_now_s();
        let checked = verify_proof(
            &proof,
            "POST",
            &format!("http://node-3:7401{path}"),
            HtuMatch::Path,
            Some("abc"),
            now_s,
        );
        let checked = checked.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checked.jkt, key.public_key().thumbprint());
        let other = verify_proof(
            &proof,
            "POST",
            "http://node-3:7401/kartotek.v1.AdminService/Remove",
            HtuMatch::Path,
            Some("abc"),
            now_s,
        );
        assert!(other.is_err());
    }
}
