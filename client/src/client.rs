//! The Kartotek client: typed calls with leader discovery and retries.
//!
//! [`KartotekClient`] sends writes, linearizable reads and membership changes to the leader,
//! following the `x-kartotek-leader-addr` hint a follower returns, and retries transient
//! failures with exponential backoff until the call's deadline. Writes keep the same
//! `request_id` across all their attempts, so the server applies them at most once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kartotek_proto::REQUEST_ID_HEADER;
use kartotek_proto::v1::audit_service_client::AuditServiceClient;
use kartotek_proto::v1::{
    AddLearnerRequest, Consistency, InitRequest, InitResponse, ListLocatorsRequest,
    ListLocatorsResponse, LookupLocatorRequest, LookupLocatorResponse, Member, MembershipResponse,
    NodeStatus, PromoteRequest, ReadOptions, RegisterLocatorRequest, RegisterLocatorResponse,
    RemoveRequest, RetireLocatorRequest, RetireLocatorResponse, SnapshotRequest, SnapshotResponse,
    StatusRequest, admin_service_client::AdminServiceClient,
    locator_service_client::LocatorServiceClient,
};
use kartotek_proto::v1::{
    AuditHeadRequest, AuditHeadResponse, QueryAuditRequest, QueryAuditResponse,
    RecordAuditEventsRequest, RecordAuditEventsResponse,
};
use kartotek_proto::v1::{BackupChunk, BackupRequest};
use tokio::time::Instant;
use tonic::metadata::{AsciiMetadataValue, MetadataKey};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::config::{ClientConfig, ENDPOINTS_MAX, normalize_endpoint};
use crate::dpop::ProofChannel;
use crate::endpoints::Endpoints;
use crate::error::ClientError;
use crate::retry::{Backoff, Refusals, Verdict, classify, is_attempt_timeout, is_connect_failure};
use crate::token::{BearerToken, StaticToken, TokenSource};

/// How long a backup stream may run (the `grpc-timeout` it is sent with).
pub const BACKUP_STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Largest message of a backup stream the client accepts (a chunk is at most 1 MiB).
pub const BACKUP_MESSAGE_BYTES_MAX: usize = 4 << 20;

/// Where the attempts of a call go.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// The last known leader (else the preferred endpoint); leader hints are followed and,
    /// without a hint, the next endpoint is tried round robin.
    Leader,
    /// Always the preferred endpoint; hints are ignored.
    Preferred,
    /// Always this endpoint (canonical form); hints are ignored.
    Fixed(String),
}

/// Which failures a call retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// Every retryable failure, until the deadline.
    UntilDeadline,
    /// None: one attempt.
    Once,
    /// Only failures to connect (the request never reached the node), until the deadline.
    UntilConnected,
}

/// How one call is carried out.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    /// Operation name, for logs.
    pub(crate) op: &'static str,
    pub(crate) route: Route,
    pub(crate) persistence: Persistence,
    /// Request id of a write, sent as `x-request-id` metadata on every attempt.
    pub(crate) request_id: Option<&'a str>,
}

impl<'a> Plan<'a> {
    pub(crate) fn to_leader(op: &'static str) -> Self {
        Self {
            op,
            route: Route::Leader,
            persistence: Persistence::UntilDeadline,
            request_id: None,
        }
    }

    /// A read: linearizable reads go to the leader; bounded-staleness reads to the
    /// preferred endpoint only (no hint following), so a refusal comes back at once.
    pub(crate) fn read(op: &'static str, read: Option<&ReadOptions>) -> Self {
        let bounded = read.is_some_and(|r| r.consistency == Consistency::BoundedStaleness as i32);
        if bounded {
            Self {
                route: Route::Preferred,
                ..Self::to_leader(op)
            }
        } else {
            Self::to_leader(op)
        }
    }

    pub(crate) fn write(op: &'static str, request_id: &'a str) -> Self {
        Self {
            request_id: Some(request_id),
            ..Self::to_leader(op)
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    /// Shared with the clients [`KartotekClient::with_token_source`] made of this one.
    pub(crate) endpoints: Arc<Endpoints>,
    /// Where `authorization: Bearer` tokens come from (none: calls carry no token).
    tokens: Option<Arc<dyn TokenSource>>,
    /// Caller metadata (`x-kartotek-actor`, ...), sent on every call.
    caller: Vec<(&'static str, AsciiMetadataValue)>,
    /// The fail-fast window for refused connections, in ms; 0 = off (the default).
    refused_window_ms: AtomicU64,
}

/// Who is calling, sent as metadata on every call; the server records it in audit events.
/// (Until verified security tokens carry these claims.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `personnel:<HPR>`, `citizen:<national id>`, `client:<id>` or `system:<name>`.
    pub actor: Option<String>,
    /// Organisation number acted for.
    pub org: Option<String>,
    /// Purpose of use, e.g. `treatment`.
    pub purpose: Option<String>,
    /// National id of the person acted for (representation).
    pub on_behalf_of: Option<String>,
}

/// A client of a Kartotek cluster.
///
/// Cheap to clone: clones share the connections and the knowledge of the leader. Building
/// one opens no connection; each node's channel connects on first use (inside a Tokio
/// runtime).
///
/// Every call runs until it succeeds, fails with a final error, or its deadline
/// ([`ClientConfig::deadline_ms`]) passes; each attempt is limited by
/// [`ClientConfig::attempt_timeout_ms`]. Retried: Unavailable (following the leader hint if
/// there is one, else trying the next endpoint), attempt timeouts and transport failures.
/// Never retried: InvalidArgument, NotFound, AlreadyExists, FailedPrecondition,
/// PermissionDenied, Unauthenticated, ResourceExhausted, OutOfRange and other answers of
/// the server.
#[derive(Debug, Clone)]
pub struct KartotekClient {
    pub(crate) inner: Arc<Inner>,
}

impl KartotekClient {
    /// A client for the cluster described by `config`, which is validated first.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Self::new_as(config, CallerIdentity::default())
    }

    /// A client whose calls carry tokens from `tokens` (a [`ClientCredentials`] client file,
    /// or a source of the service's own); `config.token` is ignored.
    ///
    /// [`ClientCredentials`]: crate::ClientCredentials
    pub fn with_tokens(
        config: ClientConfig,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<Self, ClientError> {
        Self::build(config, CallerIdentity::default(), Some(tokens))
    }

    /// A client that tells the server who is calling (see [`CallerIdentity`]).
    pub fn new_as(config: ClientConfig, identity: CallerIdentity) -> Result<Self, ClientError> {
        let tokens = match &config.token {
            Some(token) => Some(Arc::new(StaticToken::new(token)?) as Arc<dyn TokenSource>),
            None => None,
        };
        Self::build(config, identity, tokens)
    }

    fn build(
        config: ClientConfig,
        identity: CallerIdentity,
        tokens: Option<Arc<dyn TokenSource>>,
    ) -> Result<Self, ClientError> {
        config.validate()?;
        let mut caller = Vec::new();
        for (key, value) in [
            (kartotek_proto::ACTOR_HEADER, &identity.actor),
            (kartotek_proto::ORG_HEADER, &identity.org),
            (kartotek_proto::PURPOSE_HEADER, &identity.purpose),
            (kartotek_proto::ON_BEHALF_OF_HEADER, &identity.on_behalf_of),
        ] {
            if let Some(v) = value {
                let v = AsciiMetadataValue::try_from(v.as_str()).map_err(|_| {
                    ClientError::Config(format!("{key} is not a valid header value"))
                })?;
                caller.push((key, v));
            }
        }
        let endpoints = Arc::new(Endpoints::new(&config)?);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                endpoints,
                tokens,
                caller,
                refused_window_ms: AtomicU64::new(0),
            }),
        })
    }

    /// A client of the same cluster whose calls carry tokens from `tokens` instead (and no
    /// caller metadata): the connections and the knowledge of the leader are shared with
    /// this one, so it costs no connection. A frontend calls with the token its own caller
    /// presented, so that the nodes apply their rules to that caller, not to the frontend.
    pub fn with_token_source(&self, tokens: Arc<dyn TokenSource>) -> KartotekClient {
        KartotekClient {
            inner: Arc::new(Inner {
                config: self.inner.config.clone(),
                endpoints: self.inner.endpoints.clone(),
                tokens: Some(tokens),
                caller: Vec::new(),
                refused_window_ms: AtomicU64::new(
                    self.inner.refused_window_ms.load(Ordering::Relaxed),
                ),
            }),
        }
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Every endpoint the client knows, canonical (`http://host:port`): the configured ones,
    /// then those learned from leader hints (at most [`ENDPOINTS_MAX`]).
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.all()
    }

    /// Turns on (`Some(window)`) or off (`None`, the default) failing fast when no node
    /// listens: once every endpoint a call may use has refused the TCP connection, with no
    /// other outcome in between, for `window`, the call ends with [`ClientError::Refused`]
    /// instead of retrying until its deadline. Meant for interactive tools (the `kartotek`
    /// command line), where "is the cluster running?" should come in a second or two.
    ///
    /// A refusal by one endpoint while another answers (even "unavailable, no leader") is
    /// not a fast fail: the call goes on riding out the election. Applies to every clone.
    pub fn set_fail_fast_on_refusal(&self, window: Option<Duration>) {
        let ms = window.map_or(0, |w| {
            u64::try_from(w.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.inner.refused_window_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn refused_window(&self) -> Option<Duration> {
        match self.inner.refused_window_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The last known leader endpoint (canonical), if any.
    pub fn leader(&self) -> Option<String> {
        self.inner.endpoints.leader()
    }

    // ---- locator ----

    /// Registers (upserts) a locator entry on the leader.
    ///
    /// An empty `request_id` is replaced by a fresh UUID v4; the id stays the same for every
    /// retry of this call, so the write is applied at most once.
    pub async fn register_locator(
        &self,
        mut request: RegisterLocatorRequest,
    ) -> Result<RegisterLocatorResponse, ClientError> {
        ensure_request_id(&mut request.request_id);
        let request_id = request.request_id.clone();
        self.execute(
            Plan::write("register_locator", &request_id),
            request,
            |channel, request| async move {
                LocatorServiceClient::new(channel).register(request).await
            },
        )
        .await
    }

    /// Retires a locator entry on the leader. `request_id` is handled as in
    /// [`register_locator`](Self::register_locator).
    pub async fn retire_locator(
        &self,
        mut request: RetireLocatorRequest,
    ) -> Result<RetireLocatorResponse, ClientError> {
        ensure_request_id(&mut request.request_id);
        let request_id = request.request_id.clone();
        self.execute(
            Plan::write("retire_locator", &request_id),
            request,
            |channel, request| async move {
                LocatorServiceClient::new(channel).retire(request).await
            },
        )
        .await
    }

    /// Looks up the locator entries of a patient.
    ///
    /// Linearizable reads (the default) go to the leader like writes. Bounded-staleness
    /// reads go to the preferred endpoint (the first configured) only, never follow leader
    /// hints, and return [`ClientError::FailedPrecondition`] without retrying when that
    /// node is too far behind: the caller may then read linearizably.
    pub async fn lookup_locator(
        &self,
        request: LookupLocatorRequest,
    ) -> Result<LookupLocatorResponse, ClientError> {
        let plan = Plan::read("lookup_locator", request.read.as_ref());
        self.execute(plan, request, |channel, request| async move {
            LocatorServiceClient::new(channel).lookup(request).await
        })
        .await
    }

    /// One page of the locator entries of an organisation (`page_token` from the previous
    /// page; empty for the first). Routed like [`lookup_locator`](Self::lookup_locator).
    pub async fn list_locators(
        &self,
        request: ListLocatorsRequest,
    ) -> Result<ListLocatorsResponse, ClientError> {
        let plan = Plan::read("list_locators", request.read.as_ref());
        self.execute(plan, request, |channel, request| async move {
            LocatorServiceClient::new(channel).list(request).await
        })
        .await
    }

    // ---- audit ----

    /// Records audit events (from a frontend); durable (majority, fsynced) when it returns.
    pub async fn record_audit(
        &self,
        request: RecordAuditEventsRequest,
    ) -> Result<RecordAuditEventsResponse, ClientError> {
        self.execute(
            Plan::to_leader("record_audit"),
            request,
            |channel, request| async move { AuditServiceClient::new(channel).record(request).await },
        )
        .await
    }

    /// One page of audit events (by patient, by organisation, or all). The query itself is
    /// audited.
    pub async fn query_audit(
        &self,
        request: QueryAuditRequest,
    ) -> Result<QueryAuditResponse, ClientError> {
        self.execute(
            Plan::to_leader("query_audit"),
            request,
            |channel, request| async move { AuditServiceClient::new(channel).query(request).await },
        )
        .await
    }

    /// The audit chain head of the node at `endpoint` (one attempt, no hint following).
    pub async fn audit_head(&self, endpoint: &str) -> Result<AuditHeadResponse, ClientError> {
        let plan = Plan {
            route: Route::Fixed(normalize_endpoint(endpoint)?),
            persistence: Persistence::Once,
            ..Plan::to_leader("audit_head")
        };
        self.execute(plan, AuditHeadRequest {}, |channel, request| async move {
            AuditServiceClient::new(channel).head(request).await
        })
        .await
    }

    // ---- administration ----

    /// The status of one node (`host:port` or `http://host:port`): a single attempt, no
    /// retry and no hint following.
    pub async fn status(&self, endpoint: &str) -> Result<NodeStatus, ClientError> {
        let uri = normalize_endpoint(endpoint)?;
        self.status_of(uri).await
    }

    /// The status of every known endpoint, asked concurrently; results in the order of
    /// [`endpoints`](Self::endpoints), each with its canonical endpoint.
    pub async fn status_all(&self) -> Vec<(String, Result<NodeStatus, ClientError>)> {
        let endpoints = self.inner.endpoints.all();
        let results =
            futures::future::join_all(endpoints.iter().map(|uri| self.status_of(uri.clone())))
                .await;
        endpoints.into_iter().zip(results).collect()
    }

    async fn status_of(&self, uri: String) -> Result<NodeStatus, ClientError> {
        let plan = Plan {
            route: Route::Fixed(uri),
            persistence: Persistence::Once,
            ..Plan::to_leader("status")
        };
        self.execute(plan, StatusRequest {}, |channel, request| async move {
            AdminServiceClient::new(channel).status(request).await
        })
        .await
    }

    /// Initializes a new cluster with `members`, on the node at `endpoint` only.
    ///
    /// Retried (until the deadline) only while the node cannot be connected to (refused or
    /// connect timeout), i.e. when the request certainly did not reach it, so that an init that was applied is not sent
    /// twice.
    pub async fn init(
        &self,
        endpoint: &str,
        members: Vec<Member>,
    ) -> Result<InitResponse, ClientError> {
        let plan = Plan {
            route: Route::Fixed(normalize_endpoint(endpoint)?),
            persistence: Persistence::UntilConnected,
            ..Plan::to_leader("init")
        };
        self.execute(
            plan,
            InitRequest { members },
            |channel, request| async move { AdminServiceClient::new(channel).init(request).await },
        )
        .await
    }

    /// Adds a learner, on the leader (following hints). With `wait_caught_up`, make sure
    /// [`ClientConfig::attempt_timeout_ms`] leaves the learner time to catch up.
    pub async fn add_learner(
        &self,
        request: AddLearnerRequest,
    ) -> Result<MembershipResponse, ClientError> {
        self.execute(
            Plan::to_leader("add_learner"),
            request,
            |channel, request| async move {
                AdminServiceClient::new(channel).add_learner(request).await
            },
        )
        .await
    }

    /// Promotes learner `node_id` to voter, on the leader (following hints).
    pub async fn promote(&self, node_id: u64) -> Result<MembershipResponse, ClientError> {
        self.execute(
            Plan::to_leader("promote"),
            PromoteRequest { node_id },
            |channel, request| async move {
                AdminServiceClient::new(channel).promote(request).await
            },
        )
        .await
    }

    /// Removes node `node_id` from the cluster, on the leader (following hints).
    pub async fn remove(&self, node_id: u64) -> Result<MembershipResponse, ClientError> {
        self.execute(
            Plan::to_leader("remove"),
            RemoveRequest { node_id },
            |channel, request| async move {
                AdminServiceClient::new(channel).remove(request).await
            },
        )
        .await
    }

    /// Asks a node to build a snapshot: the leader (following hints) when `endpoint` is
    /// `None`, else that node (retried on transient failures, hints not followed).
    pub async fn snapshot(&self, endpoint: Option<&str>) -> Result<SnapshotResponse, ClientError> {
        let route = match endpoint {
            Some(endpoint) => Route::Fixed(normalize_endpoint(endpoint)?),
            None => Route::Leader,
        };
        let plan = Plan {
            route,
            ..Plan::to_leader("snapshot")
        };
        self.execute(plan, SnapshotRequest {}, |channel, request| async move {
            AdminServiceClient::new(channel).snapshot(request).await
        })
        .await
    }

    /// Opens a backup stream on the leader (following hints): a `BackupManifest` first, then
    /// the snapshot file in chunks. Only the opening call is retried; a stream that breaks
    /// must be started again (a backup is one consistent file, not resumable). The stream
    /// has no deadline of its own (a large backup takes long): the caller bounds it.
    pub async fn backup(&self) -> Result<tonic::Streaming<BackupChunk>, ClientError> {
        self.execute(
            Plan::to_leader("backup"),
            BackupRequest {},
            |channel, mut request| async move {
                request.set_timeout(BACKUP_STREAM_TIMEOUT);
                AdminServiceClient::new(channel)
                    .max_decoding_message_size(BACKUP_MESSAGE_BYTES_MAX)
                    .backup(request)
                    .await
            },
        )
        .await
    }

    // ---- retry loop ----

    /// Runs one call according to `plan`: picks the endpoint, sends attempts through `send`,
    /// and retries as the plan and the failures allow, until the deadline.
    pub(crate) async fn execute<Req, Resp, F, Fut>(
        &self,
        plan: Plan<'_>,
        body: Req,
        send: F,
    ) -> Result<Resp, ClientError>
    where
        Req: Clone,
        F: Fn(ProofChannel, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let config = &self.inner.config;
        let endpoints = &self.inner.endpoints;
        let deadline = Instant::now() + config.deadline();
        let mut backoff = Backoff::new(
            Duration::from_millis(config.backoff_initial_ms),
            Duration::from_millis(config.backoff_max_ms),
        );
        let mut target = match &plan.route {
            Route::Leader => endpoints.leader_or_preferred(),
            Route::Preferred => endpoints.preferred(),
            Route::Fixed(uri) => uri.clone(),
        };
        // Hints followed at once (without backoff) during this call.
        let mut followed: Vec<String> = Vec::new();
        // The endpoint whose last attempt timed out or could not connect, and until when a
        // leader hint naming it is not followed: right after a leader is cut off, followers
        // still name it until they elect another, and following them back would cost one more
        // whole attempt timeout per hint (measured in deploy/multi-site: 6.2 s stalls).
        let mut unreachable: Option<(String, Instant)> = None;
        let mut attempts: u32 = 0;
        let mut last: Option<(Status, String)> = None;
        let mut refusals = Refusals::new(self.refused_window());
        let mut token_renewed = false;

        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let attempt_timeout = config.attempt_timeout().min(deadline - now);
            attempts = attempts.saturating_add(1);
            let token = self.bearer().await?;
            let channel = self.call_channel(endpoints.channel(&target)?, token.as_ref());
            let request = self.request(
                body.clone(),
                attempt_timeout,
                plan.request_id,
                token.as_ref(),
            );
            let mut timed_out = false;
            let status = match tokio::time::timeout(attempt_timeout, send(channel, request)).await {
                Ok(Ok(response)) => {
                    if matches!(plan.route, Route::Leader) {
                        endpoints.set_leader(&target);
                    }
                    return Ok(response.into_inner());
                }
                // tonic enforces the `grpc-timeout` it sends and reports its expiry as Cancelled.
                Ok(Err(status)) if !is_attempt_timeout(&status) => status,
                Ok(Err(_)) | Err(_) => {
                    timed_out = true;
                    Status::deadline_exceeded(format!(
                        "attempt timed out after {} ms",
                        attempt_timeout.as_millis()
                    ))
                }
            };
            if timed_out || is_connect_failure(&status) {
                unreachable = Some((target.clone(), Instant::now() + config.attempt_timeout()));
            }

            // A refused token may be stale (revoked, or the node got new issuer keys): one
            // more attempt at once with a fresh one.
            if status.code() == tonic::Code::Unauthenticated
                && !token_renewed
                && let (Some(source), Some(token)) = (&self.inner.tokens, &token)
            {
                source.invalidate(token);
                token_renewed = true;
                continue;
            }
            let leader_hint = match classify(&status) {
                Verdict::Fatal => return Err(ClientError::from_status(status, attempts, &target)),
                Verdict::Retry { leader_hint } => leader_hint,
            };
            let retry = match plan.persistence {
                Persistence::UntilDeadline => true,
                Persistence::Once => false,
                Persistence::UntilConnected => is_connect_failure(&status),
            };
            if !retry {
                return Err(ClientError::from_status(status, attempts, &target));
            }

            let usable = || match &plan.route {
                Route::Leader => endpoints.all(),
                Route::Preferred | Route::Fixed(_) => vec![target.clone()],
            };
            if let Some(nobody_listens) = refusals.note(&status, &target, usable) {
                return Err(nobody_listens);
            }

            let code = status.code();
            let failed = std::mem::take(&mut target);
            let mut pause = true;
            target = match &plan.route {
                Route::Leader => {
                    let hint = leader_hint.and_then(|hint| normalize_endpoint(&hint).ok());
                    let stale = |e: &String| {
                        unreachable
                            .as_ref()
                            .is_some_and(|(u, until)| u == e && Instant::now() < *until)
                    };
                    match hint {
                        // The hinting node has not seen an election yet: ask another one
                        // (after the backoff), never the node that just did not answer.
                        Some(leader) if stale(&leader) => {
                            let next = endpoints.next_after(&failed);
                            if stale(&next) {
                                endpoints.next_after(&next)
                            } else {
                                next
                            }
                        }
                        Some(leader) => {
                            endpoints.set_leader(&leader);
                            if leader != failed
                                && !followed.contains(&leader)
                                && followed.len() < ENDPOINTS_MAX
                            {
                                followed.push(leader.clone());
                                pause = false;
                            }
                            leader
                        }
                        None => {
                            endpoints.forget_leader(&failed);
                            endpoints.next_after(&failed)
                        }
                    }
                }
                Route::Preferred | Route::Fixed(_) => failed.clone(),
            };
            let delay = if pause {
                backoff
                    .next_delay()
                    .min(deadline.saturating_duration_since(Instant::now()))
            } else {
                Duration::ZERO
            };
            // Codes and endpoints only: messages and bodies may carry patient ids.
            debug!(
                op = plan.op,
                attempt = attempts,
                code = ?code,
                failed = %failed,
                next = %target,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "kartotek call failed, retrying"
            );
            last = Some((status, failed));
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }

        Err(match last {
            Some((status, endpoint)) => ClientError::from_status(status, attempts, &endpoint),
            None => ClientError::DeadlineExceeded {
                attempts,
                last: "deadline passed before the first attempt".into(),
            },
        })
    }

    /// The token for the next attempt, if the client has a token source.
    pub(crate) async fn bearer(&self) -> Result<Option<BearerToken>, ClientError> {
        match &self.inner.tokens {
            Some(source) => source.token().await.map(Some),
            None => Ok(None),
        }
    }

    /// `channel` for one call with `token`: a DPoP-bound token's calls carry proofs of the
    /// token source's key.
    pub(crate) fn call_channel(
        &self,
        channel: Channel,
        token: Option<&BearerToken>,
    ) -> ProofChannel {
        let key = match (&self.inner.tokens, token) {
            (Some(source), Some(t)) if t.is_dpop() => source.dpop_key(),
            _ => None,
        };
        ProofChannel::new(channel, key)
    }

    /// One attempt's request: body, `grpc-timeout`, authorization and request id.
    pub(crate) fn request<T>(
        &self,
        body: T,
        timeout: Duration,
        request_id: Option<&str>,
        token: Option<&BearerToken>,
    ) -> Request<T> {
        let mut request = Request::new(body);
        request.set_timeout(timeout);
        let metadata = request.metadata_mut();
        if let Some(token) = token {
            metadata.insert(
                MetadataKey::from_static("authorization"),
                token.header().clone(),
            );
        }
        for (key, value) in &self.inner.caller {
            metadata.insert(MetadataKey::from_static(key), value.clone());
        }
        // An id that is not a valid header value still travels in the body, where the
        // server validates it. A call without one carries the task's correlation id, if any.
        let value = match request_id {
            Some(id) => AsciiMetadataValue::try_from(id).ok(),
            None => CORRELATION_ID
                .try_with(|id| AsciiMetadataValue::try_from(id.as_str()).ok())
                .ok()
                .flatten(),
        };
        if let Some(value) = value {
            metadata.insert(MetadataKey::from_static(REQUEST_ID_HEADER), value);
        }
        request
    }
}

tokio::task_local! {
    static CORRELATION_ID: String;
}

/// Runs `f` with every call it makes (that has no request id of its own: reads, decisions)
/// carrying `id` as its `x-request-id`, which the registry records as the audit event's
/// correlation id (IHE BALP's `X-Request-Id`), so that a caller can find the audit event of
/// each of its reads. Every attempt of a retried call carries the same id.
pub async fn correlated<F: Future>(id: String, f: F) -> F::Output {
    CORRELATION_ID.scope(id, f).await
}

/// Fills an empty request id with a fresh UUID v4.
pub(crate) fn ensure_request_id(request_id: &mut String) {
    if request_id.is_empty() {
        *request_id = uuid::Uuid::new_v4().to_string();
    }
}
