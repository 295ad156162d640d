//! Liveness and readiness: `GET /healthz` and `GET /readyz`.
//!
//! `/healthz` says the process serves HTTP (always 200 `ok`): restarting the frontend would
//! not help when the cluster is away. `/readyz` says whether requests can be served: 200 when
//! some cluster node answers an admin status call through `kartotek-client` and knows a
//! leader, within `cluster.readiness_timeout_ms`; 503 with a problem document otherwise (the
//! node-level reasons go to the log, not to the caller: they name internal addresses).

use axum::extract::State;
use futures::future::{BoxFuture, FutureExt, select_ok};
use kartotek_client::KartotekClient;

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
        (status = 200, description = "`ready`: a cluster node answers and knows a leader", content_type = "text/plain"),
        (status = 503, description = "No node reported a leader in time", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn readyz(State(s): State<AppState>) -> Result<&'static str, HttpError> {
    let timeout_ms = s.config.cluster.readiness_timeout_ms;
    match tokio::time::timeout(s.config.readiness_timeout(), cluster_ready(&s.client)).await {
        Ok(Ok(endpoint)) => {
            tracing::debug!(%endpoint, "cluster ready");
            Ok("ready")
        }
        Ok(Err(reason)) => {
            tracing::warn!(%reason, "not ready");
            Err(HttpError::ClusterUnavailable(
                "no cluster node reported a leader".into(),
            ))
        }
        Err(_) => {
            tracing::warn!(timeout_ms, "not ready: no cluster node answered in time");
            Err(HttpError::ClusterUnavailable(format!(
                "no cluster node reported a leader within {timeout_ms} ms"
            )))
        }
    }
}

/// Asks every known node at once; the first that answers and knows a leader wins (its
/// endpoint is returned). Otherwise the last failure.
async fn cluster_ready(client: &KartotekClient) -> Result<String, String> {
    let asks: Vec<BoxFuture<'_, Result<String, String>>> = client
        .endpoints()
        .into_iter()
        .map(|endpoint| {
            async move {
                match client.status(&endpoint).await {
                    Ok(status) if status.leader_id.is_some() => Ok(endpoint),
                    Ok(_) => Err(format!("{endpoint}: no leader known")),
                    Err(e) => Err(e.to_string()),
                }
            }
            .boxed()
        })
        .collect();
    if asks.is_empty() {
        return Err("no endpoints".into());
    }
    select_ok(asks).await.map(|(endpoint, _)| endpoint)
}
