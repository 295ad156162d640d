//! `kartotek.v1.LocatorService`: register, retire and look up patient information locator
//! entries.
//!
//! Requests are validated before anything is proposed; writes go through Raft with the
//! caller's request id; lookups are linearizable unless the caller asks for a bounded-staleness
//! read. Logs carry the request id and a hash of the patient id, never the id itself.

use std::time::Duration;

use kartotek_domain::audit::actions;
use kartotek_domain::limits::{
    LIST_PAGE_SIZE_DEFAULT, LIST_PAGE_SIZE_MAX, LOOKUP_ENTRIES_MAX, MAX_STALENESS_MS_MAX,
    PAGE_TOKEN_BYTES_MAX,
};
use kartotek_domain::locator::{parse_national_id, parse_org_number};
use kartotek_domain::{
    LocatorKey, LocatorRegister, Op, Outcome, RequestId, Response as Answer, ValidationError,
};
use kartotek_proto::v1::locator_service_server::LocatorService;
use kartotek_proto::v1::{
    Consistency, ImportLocatorsRequest, ListLocatorsRequest, ListLocatorsResponse,
    LookupLocatorRequest, LookupLocatorResponse, ReadOptions, RegisterLocatorRequest,
    RegisterLocatorResponse, RetireLocatorRequest, RetireLocatorResponse, WatchLocatorsRequest,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::audit_service::handle_caller;
use crate::caller::Caller;
use crate::context::NodeContext;
use crate::convert::locator_entry;
use crate::error::NodeError;
use crate::locator_stream;

/// The locator service of one node.
pub struct LocatorServiceImpl {
    ctx: NodeContext,
}

impl LocatorServiceImpl {
    /// Serves locator requests on `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        LocatorServiceImpl { ctx }
    }
}

/// Parses an optional request id (empty = none).
pub fn request_id(s: &str) -> Result<Option<RequestId>, NodeError> {
    if s.is_empty() {
        Ok(None)
    } else {
        Ok(Some(RequestId::parse(s)?))
    }
}

fn locator_outcome(
    answer: Answer,
) -> Result<(kartotek_domain::LocatorEntry, bool, u64), NodeError> {
    match answer.result {
        Ok(Outcome::Locator { entry, changed }) => Ok((entry, changed, answer.revision)),
        Ok(other) => Err(NodeError::Internal(format!("unexpected outcome {other:?}"))),
        Err(e) => Err(e.into()),
    }
}

/// How a read must be served.
pub enum ReadMode {
    /// Confirm leadership, wait for apply.
    Linearizable,
    /// Serve locally if provably at most this old.
    Bounded(Duration),
}

/// Validates read options.
pub fn read_mode(opts: Option<&ReadOptions>) -> Result<ReadMode, NodeError> {
    let Some(o) = opts else {
        return Ok(ReadMode::Linearizable);
    };
    match Consistency::try_from(o.consistency) {
        Ok(Consistency::Unspecified | Consistency::Linearizable) => Ok(ReadMode::Linearizable),
        Ok(Consistency::BoundedStaleness) => {
            if o.max_staleness_ms == 0 || o.max_staleness_ms > MAX_STALENESS_MS_MAX {
                return Err(ValidationError::new(
                    "read.max_staleness_ms",
                    format!("must be 1 to {MAX_STALENESS_MS_MAX}"),
                )
                .into());
            }
            Ok(ReadMode::Bounded(Duration::from_millis(o.max_staleness_ms)))
        }
        Err(_) => Err(ValidationError::new(
            "read.consistency",
            format!("unknown value {}", o.consistency),
        )
        .into()),
    }
}

impl NodeContext {
    /// Makes the local state fit to serve a read in `mode`.
    pub async fn prepare_read(&self, mode: ReadMode) -> Result<(), NodeError> {
        match mode {
            ReadMode::Linearizable if self.config.testing.unsafe_stale_reads => Ok(()),
            ReadMode::Linearizable => self.barrier.linearize().await,
            ReadMode::Bounded(bound) => self.staleness.ensure_within(bound).await,
        }
    }
}

impl LocatorServiceImpl {
    async fn register(
        &self,
        r: RegisterLocatorRequest,
    ) -> Result<RegisterLocatorResponse, NodeError> {
        let rid = request_id(&r.request_id)?;
        let reg = LocatorRegister::parse(
            &r.patient,
            &r.org,
            &r.system,
            &r.categories,
            &r.endpoint_ref,
        )?;
        let span = tracing::info_span!(
            "locator.register",
            request_id = %r.request_id,
            patient = %reg.key.patient.log_hash(),
            org = %reg.key.org.as_str(),
            expected_mod_revision = ?r.expected_mod_revision,
        );
        let op = match r.expected_mod_revision {
            Some(expected_mod_revision) => Op::LocatorCompareAndRegister {
                register: reg,
                expected_mod_revision,
            },
            None => Op::LocatorRegister(reg),
        };
        let answer = self.ctx.write(rid, op).instrument(span).await?;
        let (entry, changed, revision) = locator_outcome(answer)?;
        let applied = self.ctx.reader.position()?.0;
        Ok(RegisterLocatorResponse {
            header: Some(self.ctx.header(revision, applied)),
            entry: Some(locator_entry(&entry)),
            changed,
        })
    }

    async fn retire(&self, r: RetireLocatorRequest) -> Result<RetireLocatorResponse, NodeError> {
        let rid = request_id(&r.request_id)?;
        let key = LocatorKey::parse(&r.patient, &r.org, &r.system)?;
        let span = tracing::info_span!(
            "locator.retire",
            request_id = %r.request_id,
            patient = %key.patient.log_hash(),
        );
        let answer = self
            .ctx
            .write(rid, Op::LocatorRetire(key))
            .instrument(span)
            .await?;
        let (entry, changed, revision) = locator_outcome(answer)?;
        let applied = self.ctx.reader.position()?.0;
        Ok(RetireLocatorResponse {
            header: Some(self.ctx.header(revision, applied)),
            entry: Some(locator_entry(&entry)),
            changed,
        })
    }

    async fn list(
        &self,
        caller: Caller,
        r: ListLocatorsRequest,
    ) -> Result<ListLocatorsResponse, NodeError> {
        let org = parse_org_number("org", &r.org)?;
        let limit = match r.page_size as usize {
            0 => LIST_PAGE_SIZE_DEFAULT,
            n if n > LIST_PAGE_SIZE_MAX => {
                return Err(ValidationError::new(
                    "page_size",
                    format!("is {n}, at most {LIST_PAGE_SIZE_MAX}"),
                )
                .into());
            }
            n => n,
        };
        let cursor = if r.page_token.is_empty() {
            None
        } else {
            if r.page_token.len() > PAGE_TOKEN_BYTES_MAX {
                return Err(ValidationError::new("page_token", "is too long").into());
            }
            Some(hex::decode(&r.page_token).map_err(|_| {
                ValidationError::new("page_token", "is not a token this API returned")
            })?)
        };
        let mode = read_mode(r.read.as_ref())?;
        let mut event = caller.event(actions::LOCATOR_LIST, "locator", None);
        event.org = Some(org.clone());
        self.ctx.audited_read(mode, vec![event]).await?;
        let page = self.ctx.reader.list_locator_by_org(
            &org,
            r.include_retired,
            cursor.as_deref(),
            limit,
        )?;
        Ok(ListLocatorsResponse {
            header: Some(self.ctx.header(page.revision, page.applied_index)),
            entries: page.value.items.iter().map(locator_entry).collect(),
            next_page_token: page.value.next_cursor.map(hex::encode).unwrap_or_default(),
        })
    }

    async fn lookup(
        &self,
        caller: Caller,
        r: LookupLocatorRequest,
    ) -> Result<LookupLocatorResponse, NodeError> {
        let patient = parse_national_id("patient", &r.patient)?;
        let org = if r.org.is_empty() {
            None
        } else {
            Some(parse_org_number("org", &r.org)?)
        };
        let mode = read_mode(r.read.as_ref())?;
        // No answer without a durable audit event (see `NodeContext::audited_read`).
        let event = caller.event(actions::LOCATOR_LOOKUP, "locator", Some(&patient));
        self.ctx.audited_read(mode, vec![event]).await?;
        let found = self.ctx.reader.lookup_locator(
            &patient,
            org.as_ref(),
            r.include_retired,
            LOOKUP_ENTRIES_MAX,
        )?;
        tracing::debug!(patient = %patient.log_hash(), entries = found.value.len(), "locator.lookup");
        Ok(LookupLocatorResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            entries: found.value.iter().map(locator_entry).collect(),
        })
    }
}

/// Runs a handler with admission control and metrics.
macro_rules! handle {
    ($self:ident, $method:literal, $req:ident, $f:ident) => {{
        let started = ::std::time::Instant::now();
        let result = async {
            let _permit = $self.ctx.admit().await?;
            $self.$f($req.into_inner()).await
        }
        .await
        .map(::tonic::Response::new)
        .map_err(::tonic::Status::from);
        $self.ctx.observe($method, started, &result);
        result
    }};
}
pub(crate) use handle;

#[tonic::async_trait]
impl LocatorService for LocatorServiceImpl {
    async fn register(
        &self,
        request: Request<RegisterLocatorRequest>,
    ) -> Result<Response<RegisterLocatorResponse>, Status> {
        handle!(self, "Locator/Register", request, register)
    }

    async fn retire(
        &self,
        request: Request<RetireLocatorRequest>,
    ) -> Result<Response<RetireLocatorResponse>, Status> {
        handle!(self, "Locator/Retire", request, retire)
    }

    async fn lookup(
        &self,
        request: Request<LookupLocatorRequest>,
    ) -> Result<Response<LookupLocatorResponse>, Status> {
        handle_caller!(self, "Locator/Lookup", request, lookup)
    }

    async fn list(
        &self,
        request: Request<ListLocatorsRequest>,
    ) -> Result<Response<ListLocatorsResponse>, Status> {
        handle_caller!(self, "Locator/List", request, list)
    }

    type ImportStream = locator_stream::ImportStream;

    async fn import(
        &self,
        request: Request<tonic::Streaming<ImportLocatorsRequest>>,
    ) -> Result<Response<Self::ImportStream>, Status> {
        let started = std::time::Instant::now();
        let result = match self.ctx.admit().await {
            Ok(_permit) => Ok(Response::new(locator_stream::import(
                self.ctx.clone(),
                request.into_inner(),
            ))),
            Err(e) => Err(Status::from(e)),
        };
        self.ctx.observe("Locator/Import", started, &result);
        result
    }

    type WatchStream = locator_stream::WatchStream;

    async fn watch(
        &self,
        request: Request<WatchLocatorsRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let started = std::time::Instant::now();
        let result = async {
            let caller = Caller::from_metadata(request.metadata())?;
            locator_stream::watch(self.ctx.clone(), caller, request.into_inner()).await
        }
        .await
        .map(Response::new)
        .map_err(Status::from);
        self.ctx.observe("Locator/Watch", started, &result);
        result
    }
}
