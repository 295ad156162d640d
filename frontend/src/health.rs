//! Liveness and readiness: `GET /healthz` and `GET /readyz`.
//!
//! `/healthz` says the process serves HTTP (always 200 `ok`): restarting the frontend would
//! not help when the cluster is away. `/readyz` says whether requests can be served: 200 when
//! the cluster answers a linearizable read of the token ledger with this frontend's own
//! token (so a leader confirmed it with a quorum, and the nodes accept the frontend's
//! tokens) within `cluster.readiness_timeout_ms`; 503 with a problem document otherwise (the
//! node-level reasons go to the log, not to the caller: they name internal addresses).
//!
//! The read is the ledger's, not `AdminService.Status`: the frontend's tokens carry the
//! ledger scope its token service needs, never the admin scope (which Status requires), so
//! a readiness check through Status answered 503 for ever on a healthy cluster.

use axum::extract::State;
use kartotek_client::KartotekClient;
use kartotek_client::proto::{TokenIdKind, TokenIdStatusRequest};

use crate::AppState;
use crate::problem::HttpError;

/// `GET /healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "`ok`: the process serves HTTP", content_type = "text/plain"))
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "`ready`: the cluster answers a linearizable read with the frontend's token", content_type = "text/plain"),
        (status = 503, description = "The cluster did not answer such a read in time", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn readyz(State(s): State<AppState>) -> Result<&'static str, HttpError> {
    let timeout_ms = s.config.cluster.readiness_timeout_ms;
    match tokio::time::timeout(s.config.readiness_timeout(), cluster_ready(&s.client)).await {
        Ok(Ok(answered_by)) => {
            tracing::debug!(%answered_by, "cluster ready");
            Ok("ready")
        }
        Ok(Err(reason)) => {
            tracing::warn!(%reason, "not ready");
            Err(HttpError::ClusterUnavailable(
                "the cluster does not answer (no leader with a quorum, or it refuses this frontend's token)".into(),
            ))
        }
        Err(_) => {
            tracing::warn!(timeout_ms, "not ready: no cluster node answered in time");
            Err(HttpError::ClusterUnavailable(format!(
                "the cluster did not answer within {timeout_ms} ms"
            )))
        }
    }
}

/// A linearizable read of the token ledger (is this frontend's probe id revoked?) through
/// the client's routing; on success, the node that answered.
async fn cluster_ready(client: &KartotekClient) -> Result<String, String> {
    let request = TokenIdStatusRequest {
        kind: TokenIdKind::RevokedToken as i32,
        client_id: crate::token::FRONTEND_CLIENT_ID.to_owned(),
        jti: "kartotek-frontend-readiness-probe".to_owned(),
        read: None,
    };
    match client.token_id_status(request).await {
        Ok(r) => Ok(format!(
            "node {}",
            r.header.map(|h| h.node_id).unwrap_or_default()
        )),
        Err(e) => Err(e.to_string()),
    }
}
