//! The locator service's streaming calls: bulk import and the change feed (watch).
//!
//! **Import**: each incoming batch is validated entry by entry (bad entries are reported with
//! the field and reason, never proposed); the valid rest becomes one `Op::LocatorImport` Raft
//! entry under the batch's id, so a batch is applied atomically and a resent batch at most
//! once. Up to `api.import_batches_in_flight_max` batches of one stream are committed at once;
//! answers go back in the order the batches came.
//!
//! **Watch**: reads the change history from the requested revision in revision order from this
//! node's state, then waits for new revisions. Revisions are contiguous and every replica has
//! the same history, so a client that resumes from `progress_revision + 1` on any node sees
//! no gap and no duplicate. A watcher that cannot keep up is held back by the bounded send
//! queue, never by the state machine. The stream's opening is audited (who watches what), and
//! so is every message: one `locator.watch` event for each patient whose changes it carries,
//! durable before the message is sent, so each patient sees the watch in their audit log.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kartotek_domain::audit::actions;
use kartotek_domain::limits::{IMPORT_ENTRIES_PER_BATCH_MAX, WATCH_EVENTS_PER_MESSAGE_MAX};
use kartotek_domain::locator::{parse_national_id, parse_org_number};
use kartotek_domain::{
    ChangeEvent, ChangeFilter, LocatorRegister, NationalId, Op, Outcome, ValidationError,
};
use kartotek_proto::v1::{
    ImportLocatorsRequest, ImportLocatorsResponse, RejectedEntry, WatchLocatorsRequest,
    WatchLocatorsResponse,
};
use tokio::sync::mpsc;
use tonic::Status;

use std::sync::Arc;

use super::convert::change_event;
use super::layer::{Call, request_id};
use crate::error::NodeError;

/// The answer stream of an import.
pub type ImportStream = Pin<Box<dyn Stream<Item = Result<ImportLocatorsResponse, Status>> + Send>>;
/// The message stream of a watch.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchLocatorsResponse, Status>> + Send>>;

/// Messages a watch may have queued for a slow receiver.
const WATCH_QUEUE_MESSAGES_MAX: usize = 16;

/// Validates a batch: the valid entries, and the rejected ones with their reasons.
pub fn validate_batch(
    r: &ImportLocatorsRequest,
) -> Result<(Vec<LocatorRegister>, Vec<RejectedEntry>), NodeError> {
    if r.entries.len() > IMPORT_ENTRIES_PER_BATCH_MAX {
        return Err(ValidationError::new(
            "entries",
            format!(
                "has {} entries, at most {IMPORT_ENTRIES_PER_BATCH_MAX} per batch",
                r.entries.len()
            ),
        )
        .into());
    }
    let mut valid = Vec::with_capacity(r.entries.len());
    let mut rejected = Vec::new();
    for (i, e) in r.entries.iter().enumerate() {
        match LocatorRegister::parse(
            &e.patient,
            &e.org,
            &e.system,
            &e.categories,
            &e.endpoint_ref,
        ) {
            Ok(reg) => valid.push(reg),
            Err(err) => rejected.push(RejectedEntry {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                field: err.field,
                reason: err.reason,
            }),
        }
    }
    Ok((valid, rejected))
}

/// Commits one batch and builds its answer.
async fn import_batch(
    call: Arc<Call>,
    r: ImportLocatorsRequest,
) -> Result<ImportLocatorsResponse, NodeError> {
    let Some(_) = request_id(&r.batch_id)? else {
        return Err(
            ValidationError::new("batch_id", "is required (the batch's request id)").into(),
        );
    };
    let (valid, rejected) = validate_batch(&r)?;
    let mut answer = ImportLocatorsResponse {
        batch_id: r.batch_id.clone(),
        sequence: r.sequence,
        rejected,
        ..Default::default()
    };
    if valid.is_empty() {
        answer.revision = call.state()?.position()?.1;
        return Ok(answer);
    }
    let response = call
        .write_for(&r, &r.batch_id, Op::LocatorImport(valid))
        .await?;
    match response.result {
        Ok(Outcome::Imported { changed, unchanged }) => {
            answer.changed = u32::try_from(changed).unwrap_or(u32::MAX);
            answer.unchanged = u32::try_from(unchanged).unwrap_or(u32::MAX);
        }
        Ok(other) => return Err(NodeError::Internal(format!("unexpected outcome {other:?}"))),
        Err(e) => return Err(e.into()),
    }
    answer.revision = response.revision;
    answer.deduplicated = response.deduplicated;
    call.metrics()
        .import_entries(u64::from(answer.changed) + u64::from(answer.unchanged));
    Ok(answer)
}

/// Serves an import stream: batches in, answers out in order, several committing at once.
pub fn import(
    call: Call,
    batches: impl Stream<Item = Result<ImportLocatorsRequest, Status>> + Send + 'static,
) -> ImportStream {
    let in_flight = usize::try_from(call.config().api.import_batches_in_flight_max).unwrap_or(1);
    let call = Arc::new(call);
    let answers = batches
        .map(move |batch| {
            let call = call.clone();
            async move {
                let batch = batch?;
                import_batch(call, batch).await.map_err(Status::from)
            }
        })
        .buffered(in_flight)
        // The first error ends the stream: the client resumes after its last answer.
        .scan(false, |failed, item| {
            if *failed {
                return futures::future::ready(None);
            }
            *failed = item.is_err();
            futures::future::ready(Some(item))
        });
    Box::pin(answers)
}

/// Parses a watch request into its filter and first revision (0: after the current one).
pub fn watch_filter(r: &WatchLocatorsRequest) -> Result<ChangeFilter, NodeError> {
    let patient = if r.patient.is_empty() {
        None
    } else {
        Some(parse_national_id("patient", &r.patient)?)
    };
    let org = if r.org.is_empty() {
        None
    } else {
        Some(parse_org_number("org", &r.org)?)
    };
    Ok(ChangeFilter { patient, org })
}

/// Audits a watch message's `changes` as one `locator.watch` event per patient they are about
/// (none when no change is about a patient), durably, before the message is sent.
async fn audit_delivery(call: &Call, changes: &[&ChangeEvent]) -> Result<(), NodeError> {
    let mut patients: std::collections::BTreeMap<&str, &NationalId> = Default::default();
    for c in changes {
        if let Some(p) = c.change.patient() {
            patients.insert(p.as_str(), p);
        }
    }
    let events: Vec<_> = patients
        .into_values()
        .map(|p| {
            call.caller()
                .event(actions::LOCATOR_WATCH, "locator", Some(p))
        })
        .collect();
    if events.is_empty() {
        return Ok(());
    }
    call.audit(events).await
}

/// Serves a watch stream until the client goes away or the node shuts down.
pub async fn watch(call: Call, r: WatchLocatorsRequest) -> Result<WatchStream, NodeError> {
    let filter = watch_filter(&r)?;
    // A watch reads patient data: audited once, when it starts.
    let mut event = call
        .caller()
        .event(actions::LOCATOR_WATCH, "locator", filter.patient.as_ref());
    event.org = filter.org.clone().or(event.org);
    call.audit(vec![event]).await?;
    let permit = call.admit_watch()?;
    let reader = call.state()?.clone();
    let mut next = if r.from_revision == 0 {
        reader.position()?.1 + 1
    } else {
        r.from_revision
    };
    // Refuse a compacted start right away, as a status on the call.
    reader.changes(next, 1)?;
    let (tx, rx) = mpsc::channel(WATCH_QUEUE_MESSAGES_MAX);
    let progress_every = Duration::from_millis(call.config().api.watch_progress_interval_ms);
    tokio::spawn(async move {
        let _permit = permit;
        let mut revisions = reader.subscribe();
        let mut last_sent = tokio::time::Instant::now();
        let mut sent_progress = next.saturating_sub(1);
        // The first message goes out at once, so the client learns where the feed starts.
        let mut first = true;
        loop {
            revisions.borrow_and_update();
            let slice = match reader.changes(next, WATCH_EVENTS_PER_MESSAGE_MAX) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(Status::from(NodeError::from(e)))).await;
                    return;
                }
            };
            let caught_up = slice.events.len() < WATCH_EVENTS_PER_MESSAGE_MAX;
            if let Some(last) = slice.events.last() {
                next = last.revision + 1;
            }
            let matching: Vec<_> = slice.events.iter().filter(|e| filter.matches(e)).collect();
            // What the stream delivers about a patient is audited for that patient, durably,
            // before it is sent (one event per patient per message).
            if let Err(e) = audit_delivery(&call, &matching).await {
                let _ = tx.send(Err(Status::from(e))).await;
                return;
            }
            let events: Vec<_> = matching.into_iter().map(change_event).collect();
            let progress = next - 1;
            let due = last_sent.elapsed() >= progress_every;
            if first || !events.is_empty() || (due && (progress > sent_progress || caught_up)) {
                first = false;
                let header = call.header(slice.revision, reader.position().map_or(0, |p| p.0));
                let msg = WatchLocatorsResponse {
                    header: Some(header),
                    events,
                    progress_revision: progress,
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return; // the client went away
                }
                last_sent = tokio::time::Instant::now();
                sent_progress = progress;
            }
            if !caught_up {
                continue;
            }
            let wait = progress_every.saturating_sub(last_sent.elapsed());
            tokio::select! {
                changed = revisions.changed() => {
                    if changed.is_err() {
                        let _ = tx.send(Err(Status::unavailable("node is shutting down"))).await;
                        return;
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}
