//! The streaming calls: bulk import and the change feed, each surviving node failures.
//!
//! - [`KartotekClient::import_locators`] keeps a window of sent, unanswered batches. When the
//!   stream breaks (leader change, node killed) it reconnects to the leader and resends that
//!   window with the same batch ids; the server applies a batch at most once, so the final
//!   state is as if nothing had happened.
//! - [`KartotekClient::watch_locators`] returns a [`LocatorWatch`] that reconnects to any node
//!   and resumes from the last `progress_revision + 1` it saw: no gap, no duplicate.

use std::collections::VecDeque;
use std::time::Duration;

use kartotek_proto::OLDEST_REVISION_HEADER;
use kartotek_proto::v1::locator_service_client::LocatorServiceClient;
use kartotek_proto::v1::{
    ImportLocatorsRequest, ImportLocatorsResponse, WatchLocatorsRequest, WatchLocatorsResponse,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Status, Streaming};
use tracing::debug;

use crate::client::KartotekClient;
use crate::config::normalize_endpoint;
use crate::error::ClientError;
use crate::retry::{Backoff, Refusals, Verdict, classify};

/// An import gives up after no batch was answered for the client deadline, but never sooner
/// than this.
pub const IMPORT_STALL_MIN: Duration = Duration::from_secs(60);

/// Most batches an import keeps sent but unanswered.
pub const IMPORT_WINDOW_BATCHES_MAX: usize = 64;

/// What a broken import or watch stream means for the next attempt.
enum Broken {
    /// Final: give up with this error.
    Fatal(ClientError),
    /// Retry, at the named leader if there is one.
    Retry(Status, Option<String>),
}

fn broken(status: Status, endpoint: &str) -> Broken {
    match classify(&status) {
        Verdict::Fatal => Broken::Fatal(ClientError::from_status(status, 1, endpoint)),
        Verdict::Retry { leader_hint } => Broken::Retry(status, leader_hint),
    }
}

impl KartotekClient {
    /// Imports locator batches from `batches`, sending each answer (in order) to `answers`.
    ///
    /// Every batch needs a `batch_id` that is stable across restarts of the import (derive it
    /// from the source and the batch number) and a `sequence` that increases by one. At most
    /// `window` batches (1..=[`IMPORT_WINDOW_BATCHES_MAX`]) are in flight. Returns when every
    /// batch has been answered, or with the error that stopped the import; batches answered
    /// before an error stay applied, so a caller can resume after its last answer.
    pub async fn import_locators(
        &self,
        mut batches: mpsc::Receiver<ImportLocatorsRequest>,
        answers: mpsc::Sender<ImportLocatorsResponse>,
        window: usize,
    ) -> Result<(), ClientError> {
        let window = window.clamp(1, IMPORT_WINDOW_BATCHES_MAX);
        let config = &self.inner.config;
        let endpoints = &self.inner.endpoints;
        let mut backoff = Backoff::new(
            Duration::from_millis(config.backoff_initial_ms),
            Duration::from_millis(config.backoff_max_ms),
        );
        let mut pending: VecDeque<ImportLocatorsRequest> = VecDeque::new();
        let mut source_done = false;
        let mut last_progress = Instant::now();
        let mut target = endpoints.leader_or_preferred();
        let mut refusals = Refusals::new(self.refused_window());
        loop {
            // A bulk import is a long job: it rides out elections and restarts, and gives up
            // only when nothing has been answered for a while.
            let stall_max = config.deadline().max(IMPORT_STALL_MIN);
            if last_progress.elapsed() > stall_max {
                return Err(ClientError::DeadlineExceeded {
                    attempts: 0,
                    last: format!("no batch answered for {} ms", stall_max.as_millis()),
                });
            }
            let outcome = self
                .import_attempt(
                    &target,
                    &mut batches,
                    &answers,
                    &mut pending,
                    &mut source_done,
                    &mut last_progress,
                    window,
                )
                .await;
            match outcome {
                Ok(()) => {
                    endpoints.set_leader(&target);
                    return Ok(());
                }
                Err(Broken::Fatal(e)) => return Err(e),
                Err(Broken::Retry(status, hint)) => {
                    if let Some(nobody_listens) =
                        refusals.note(&status, &target, || endpoints.all())
                    {
                        return Err(nobody_listens);
                    }
                    let failed = target.clone();
                    target = match hint.and_then(|h| normalize_endpoint(&h).ok()) {
                        Some(leader) if leader != failed => {
                            endpoints.set_leader(&leader);
                            leader
                        }
                        _ => {
                            endpoints.forget_leader(&failed);
                            endpoints.next_after(&failed)
                        }
                    };
                    debug!(code = ?status.code(), failed = %failed, next = %target, pending = pending.len(), "import stream broke; resending the unanswered batches");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// One import stream to `target`: resend `pending`, then feed new batches.
    #[allow(clippy::too_many_arguments)]
    async fn import_attempt(
        &self,
        target: &str,
        batches: &mut mpsc::Receiver<ImportLocatorsRequest>,
        answers: &mpsc::Sender<ImportLocatorsResponse>,
        pending: &mut VecDeque<ImportLocatorsRequest>,
        source_done: &mut bool,
        last_progress: &mut Instant,
        window: usize,
    ) -> Result<(), Broken> {
        let channel = self
            .inner
            .endpoints
            .channel(target)
            .map_err(Broken::Fatal)?;
        let (tx, rx) = mpsc::channel::<ImportLocatorsRequest>(window + 1);
        for b in pending.iter() {
            // Capacity is window + 1 and pending holds at most `window`.
            if tx.try_send(b.clone()).is_err() {
                return Err(Broken::Fatal(ClientError::Config(
                    "import window overflow".into(),
                )));
            }
        }
        let mut tx = Some(tx);
        if *source_done && pending.is_empty() {
            tx = None;
        }
        let token = self.bearer().await.map_err(Broken::Fatal)?;
        let mut request = self.request(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            self.inner.config.deadline() * 100,
            None,
            token.as_ref(),
        );
        request.set_timeout(Duration::from_secs(24 * 3600));
        let mut stream: Streaming<ImportLocatorsResponse> = LocatorServiceClient::new(channel)
            .import(request)
            .await
            .map_err(|s| broken(s, target))?
            .into_inner();
        let attempt_timeout = self
            .inner
            .config
            .attempt_timeout()
            .max(Duration::from_secs(10));
        loop {
            let can_send = tx.is_some() && !*source_done && pending.len() < window;
            tokio::select! {
                biased;
                msg = tokio::time::timeout(attempt_timeout, stream.message()), if !pending.is_empty() || tx.is_none() => {
                    match msg {
                        Err(_) => return Err(Broken::Retry(Status::deadline_exceeded("no answer to an import batch in time"), None)),
                        Ok(Err(status)) => return Err(broken(status, target)),
                        Ok(Ok(None)) => {
                            if pending.is_empty() && *source_done {
                                return Ok(());
                            }
                            return Err(Broken::Retry(Status::unavailable("import stream ended early"), None));
                        }
                        Ok(Ok(Some(answer))) => {
                            match pending.front() {
                                Some(front) if front.sequence == answer.sequence => {
                                    pending.pop_front();
                                }
                                _ => {
                                    return Err(Broken::Fatal(ClientError::Config(format!(
                                        "import answer for batch {} out of order",
                                        answer.sequence
                                    ))));
                                }
                            }
                            *last_progress = Instant::now();
                            if answers.send(answer).await.is_err() {
                                return Ok(()); // the caller stopped listening
                            }
                            if *source_done && pending.is_empty() {
                                tx = None; // half-close: the server ends the stream
                            }
                        }
                    }
                }
                next = batches.recv(), if can_send => {
                    match next {
                        Some(batch) => {
                            pending.push_back(batch.clone());
                            if let Some(t) = &tx
                                && t.send(batch).await.is_err()
                            {
                                return Err(Broken::Retry(Status::unavailable("import stream closed"), None));
                            }
                        }
                        None => {
                            *source_done = true;
                            if pending.is_empty() {
                                tx = None;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Watches locator changes from `request.from_revision` (0: from now on), filtered by
    /// patient and/or organisation. The returned watch reconnects by itself.
    pub fn watch_locators(&self, request: WatchLocatorsRequest) -> LocatorWatch {
        LocatorWatch {
            client: self.clone(),
            request,
            stream: None,
            target: self.inner.endpoints.preferred(),
            progress: None,
        }
    }
}

/// A change-feed subscription that survives node failures; see
/// [`KartotekClient::watch_locators`].
pub struct LocatorWatch {
    client: KartotekClient,
    request: WatchLocatorsRequest,
    stream: Option<Streaming<WatchLocatorsResponse>>,
    target: String,
    /// Everything up to this revision has been delivered.
    progress: Option<u64>,
}

impl LocatorWatch {
    /// Every matching change up to this revision has been delivered (resume point − 1).
    pub fn progress_revision(&self) -> Option<u64> {
        self.progress
    }

    /// The next message (events and/or progress). Reconnects to the next node on failure,
    /// resuming after the last progress, until the client's deadline passes without a
    /// working stream. A compacted start revision is a [`ClientError::Status`] with code
    /// OUT_OF_RANGE naming the oldest revision available.
    pub async fn next(&mut self) -> Result<WatchLocatorsResponse, ClientError> {
        let config = self.client.inner.config.clone();
        let mut backoff = Backoff::new(
            Duration::from_millis(config.backoff_initial_ms),
            Duration::from_millis(config.backoff_max_ms),
        );
        let started = Instant::now();
        let mut refusals = Refusals::new(self.client.refused_window());
        loop {
            if self.stream.is_none() {
                if started.elapsed() > config.deadline() {
                    return Err(ClientError::DeadlineExceeded {
                        attempts: 0,
                        last: "could not re-establish the watch in time".into(),
                    });
                }
                let mut req = self.request.clone();
                if let Some(p) = self.progress {
                    req.from_revision = p + 1;
                }
                let token = self.client.bearer().await?;
                let channel = self.client.call_channel(
                    self.client.inner.endpoints.channel(&self.target)?,
                    token.as_ref(),
                );
                let mut request =
                    self.client
                        .request(req, config.attempt_timeout(), None, token.as_ref());
                request.set_timeout(Duration::from_secs(365 * 24 * 3600));
                match LocatorServiceClient::new(channel).watch(request).await {
                    Ok(s) => self.stream = Some(s.into_inner()),
                    Err(status) => {
                        let all = || self.client.inner.endpoints.all();
                        if let Some(nobody_listens) = refusals.note(&status, &self.target, all) {
                            return Err(nobody_listens);
                        }
                        self.fail(status)?;
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue;
                    }
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            match stream.message().await {
                Ok(Some(msg)) => {
                    // Invariant: events arrive in revision order, after what was delivered.
                    if let (Some(p), Some(first)) = (self.progress, msg.events.first())
                        && first.revision <= p
                    {
                        return Err(ClientError::Config(format!(
                            "watch went back: event {} after progress {p}",
                            first.revision
                        )));
                    }
                    self.progress = Some(msg.progress_revision.max(self.progress.unwrap_or(0)));
                    return Ok(msg);
                }
                Ok(None) => {
                    self.stream = None;
                    self.rotate();
                }
                Err(status) => {
                    self.stream = None;
                    self.fail(status)?;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Decides whether a failure is final; otherwise moves to the next node.
    fn fail(&mut self, status: Status) -> Result<(), ClientError> {
        if status.code() == tonic::Code::OutOfRange {
            let oldest = status
                .metadata()
                .get(OLDEST_REVISION_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_owned();
            return Err(ClientError::Status(Status::out_of_range(format!(
                "{} (oldest available revision: {oldest})",
                status.message()
            ))));
        }
        match broken(status, &self.target) {
            Broken::Fatal(e) => Err(e),
            Broken::Retry(..) => {
                self.rotate();
                Ok(())
            }
        }
    }

    fn rotate(&mut self) {
        self.target = self.client.inner.endpoints.next_after(&self.target);
    }
}
