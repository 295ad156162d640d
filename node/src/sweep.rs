//! Leader-only housekeeping that proposes commands of its own, over [`NodeContext`]: the
//! consent-expiry sweep and the token-ledger sweep.
//!
//! Every `records.consent_sweep_interval_ms`, while this node leads, the sweep reads the
//! consent due index from its local state (candidates due by now, at most
//! `records.consent_expire_per_command_max`) and proposes them as one
//! [`RecordOp::ConsentExpireDue`]. Applying re-checks each candidate against the command's
//! stamp, so a stale local view or a deposed leader's late proposal only picks candidates and
//! cannot expire a consent early; lists then show `expired` (with `expired_at`) from the stored
//! record, and the change feed carries the change. While a full batch was proposed it goes
//! again at once, so a backlog (a leader that was down for a day) drains in batches without
//! waiting an interval between them.

use std::time::Duration;

use kartotek_domain::consent::ConsentExpireDue;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::token_ids::{TOKEN_IDS_FORGET_PER_COMMAND_MAX, TokenIdsForget};
use kartotek_domain::{Op, Outcome, Timestamp};

use crate::context::NodeContext;
use crate::error::NodeError;

/// Starts the consent-expiry sweep (no-op when `records.consent_sweep_interval_ms` is 0).
pub fn spawn_consent_sweep(ctx: NodeContext) {
    let settings = ctx.config().records.clone();
    let max = settings.consent_expire_per_command_max as usize;
    spawn_leader_sweep(
        ctx,
        "consent expiry sweep",
        settings.consent_sweep_interval_ms,
        max,
        move |ctx| async move { sweep_once(&ctx, max).await },
    );
}

/// Starts the token-ledger sweep (no-op when `records.token_id_sweep_interval_ms` is 0):
/// every interval, while this node leads, it proposes the ledger entries whose expiry has
/// passed by its local view as one [`RecordOp::TokenIdsForget`]; applying re-checks each
/// against the command's stamp.
pub fn spawn_token_id_sweep(ctx: NodeContext) {
    let every_ms = ctx.config().records.token_id_sweep_interval_ms;
    spawn_leader_sweep(
        ctx,
        "token ledger sweep",
        every_ms,
        TOKEN_IDS_FORGET_PER_COMMAND_MAX,
        |ctx| async move { forget_once(&ctx).await },
    );
}

/// Every `every_ms`, while this node leads, runs `round` until it proposes less than `max`.
fn spawn_leader_sweep<F, Fut>(
    ctx: NodeContext,
    what: &'static str,
    every_ms: u64,
    max: usize,
    round: F,
) where
    F: Fn(NodeContext) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<usize, NodeError>> + Send,
{
    if every_ms == 0 {
        return;
    }
    let every = Duration::from_millis(every_ms);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            while ctx.is_leader() {
                match round(ctx.clone()).await {
                    Ok(proposed) if proposed == max => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "{what}");
                        break;
                    }
                }
            }
        }
    });
}

/// One token-ledger round: proposes the expired entries (if any); returns how many.
async fn forget_once(ctx: &NodeContext) -> Result<usize, NodeError> {
    let ids = ctx
        .reader()
        .token_ids_expired(Timestamp::now(), TOKEN_IDS_FORGET_PER_COMMAND_MAX)?;
    if ids.is_empty() {
        return Ok(0);
    }
    let proposed = ids.len();
    let cmd = TokenIdsForget::new(ids).map_err(|e| NodeError::Internal(e.to_string()))?;
    let response = ctx
        .write(None, Op::Record(RecordOp::TokenIdsForget(cmd)))
        .await?;
    if let Ok(Outcome::Record(RecordOutcome::TokenIdsForgotten { forgotten })) = response.result {
        tracing::debug!(forgotten, "token ledger sweep");
    }
    Ok(proposed)
}

/// One sweep round: proposes the due candidates (if any); returns how many it proposed.
async fn sweep_once(ctx: &NodeContext, max: usize) -> Result<usize, NodeError> {
    let due = ctx.reader().consents_due(Timestamp::now(), max)?;
    if due.is_empty() {
        return Ok(0);
    }
    let proposed = due.len();
    let cmd = ConsentExpireDue::new(due).map_err(|e| NodeError::Internal(e.to_string()))?;
    let response = ctx
        .write(None, Op::Record(RecordOp::ConsentExpireDue(cmd)))
        .await?;
    if let Ok(Outcome::Record(RecordOutcome::ConsentsExpired {
        expired,
        index_removed,
    })) = response.result
    {
        ctx.metrics()
            .consents_expired_total
            .inc_by(u64::from(expired));
        if expired > 0 {
            tracing::info!(
                expired,
                index_removed,
                "consent expiry sweep stored expired consents"
            );
        }
    }
    Ok(proposed)
}
