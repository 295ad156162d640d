//! Leader-only housekeeping that proposes commands of its own, over [`NodeContext`]: today the
//! consent-expiry sweep.
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
use kartotek_domain::{Op, Outcome, Timestamp};

use crate::context::NodeContext;
use crate::error::NodeError;

/// Starts the consent-expiry sweep (no-op when `records.consent_sweep_interval_ms` is 0).
pub fn spawn_consent_sweep(ctx: NodeContext) {
    let settings = ctx.config().records.clone();
    if settings.consent_sweep_interval_ms == 0 {
        return;
    }
    let every = Duration::from_millis(settings.consent_sweep_interval_ms);
    let max = settings.consent_expire_per_command_max as usize;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            while ctx.is_leader() {
                match sweep_once(&ctx, max).await {
                    Ok(proposed) if proposed == max => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "consent expiry sweep");
                        break;
                    }
                }
            }
        }
    });
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
