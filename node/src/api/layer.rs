//! The request layer: the one road every public `kartotek.v1` call takes.
//!
//! A service handler is run by [`Gate::unary`] (streams too: the stream is the answer of its
//! opening call) with the [`Method`] it serves. In this order the gate
//!
//! 1. admits the call (a bounded number in flight; a full node answers `UNAVAILABLE`),
//! 2. establishes the caller ([`Caller`]) with the [`Authenticator`]: the bearer token is
//!    verified and must carry the method's scope (`UNAUTHENTICATED` / `PERMISSION_DENIED`
//!    otherwise, before anything is read or written), and the caller is made from its claims
//!    (from the caller headers only while `auth.required` is off); a citizen's token may
//!    call the methods marked for citizens without their scope, under the *own-data rule*:
//!    every audit event and every write of the call must concern the citizen (or the person
//!    the token was exchanged to act for), and a write must name the token's citizen as who
//!    made it ([`Caller::own_data_of`]; PERMISSION_DENIED otherwise, nothing read or written),
//! 3. runs the handler with a [`Call`], the handler's only handle on the node,
//! 4. checks the audit rule: a [`Class::PatientRead`] or [`Class::Decision`] method that
//!    answers without having recorded an audit event is a bug, and the answer is refused
//!    (`INTERNAL`) instead of leaving the node unaudited,
//! 5. counts the call in the metrics under the method's label and its status code.
//!
//! [`Call`] keeps the rules by construction: the state is handed out by [`Call::read`], which
//! for a patient-data method first makes the read's audit events durable; the Raft handle only
//! to [`Class::Admin`] methods; writes only to write-capable classes. The fields of `Gate`
//! and `Call` are private to this module, so the handler modules (its siblings) cannot step
//! around it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kartotek_domain::audit::AuditEvent;
use kartotek_domain::{NationalId, Op, RequestId, Response as Answer, Timestamp};
use kartotek_proto::v1::ResponseHeader;
use kartotek_storage::{StateReader, TypeConfig};
use openraft::Raft;
use tokio::sync::OwnedSemaphorePermit;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::auth::Authenticator;
use super::caller::Caller;
use super::methods::{Class, Method};
use crate::config::NodeConfig;
use crate::consistency::ReadMode;
use crate::context::NodeContext;
use crate::error::NodeError;
use crate::metrics::Metrics;

/// Runs public requests through the layer. Every service holds one; cheap to clone.
#[derive(Clone)]
pub struct Gate {
    ctx: NodeContext,
    auth: Authenticator,
}

impl Gate {
    /// The gate of the node `ctx`, authenticating with `auth`.
    pub fn new(ctx: NodeContext, auth: Authenticator) -> Gate {
        Gate { ctx, auth }
    }

    /// Runs `handler` for one call of `method` (see the module docs for what happens around
    /// it).
    pub async fn unary<Req, Resp, F, Fut>(
        &self,
        method: &'static Method,
        request: Request<Req>,
        handler: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: prost::Message,
        F: FnOnce(Call, Req) -> Fut,
        Fut: Future<Output = Result<Resp, NodeError>>,
    {
        // What a write's request id is tied to (see `Call::write`).
        let fingerprint = matches!(method.class, Class::Write | Class::Decision)
            .then(|| request_fingerprint(request.get_ref()));
        self.observed(method, request, fingerprint, handler).await
    }

    /// [`Gate::unary`] for a call that streams its requests (`LocatorService.Import`): each
    /// streamed request that writes does so with [`Call::write_for`].
    pub async fn client_stream<Req, Resp, F, Fut>(
        &self,
        method: &'static Method,
        request: Request<Req>,
        handler: F,
    ) -> Result<Response<Resp>, Status>
    where
        F: FnOnce(Call, Req) -> Fut,
        Fut: Future<Output = Result<Resp, NodeError>>,
    {
        self.observed(method, request, None, handler).await
    }

    async fn observed<Req, Resp, F, Fut>(
        &self,
        method: &'static Method,
        request: Request<Req>,
        fingerprint: Option<[u8; 32]>,
        handler: F,
    ) -> Result<Response<Resp>, Status>
    where
        F: FnOnce(Call, Req) -> Fut,
        Fut: Future<Output = Result<Resp, NodeError>>,
    {
        let started = Instant::now();
        let span = request_span(method, request.metadata());
        let result = self
            .run(method, request, fingerprint, handler)
            .instrument(span.clone())
            .await
            .map(Response::new)
            .map_err(Status::from);
        let code = self.ctx.observe(method.label, started, &result);
        let elapsed_ms = started.elapsed().as_millis();
        if matches!(code, tonic::Code::Internal | tonic::Code::DataLoss) {
            tracing::warn!(parent: &span, code = ?code, elapsed_ms, "request failed");
        } else {
            tracing::debug!(parent: &span, code = ?code, elapsed_ms, "request finished");
        }
        result
    }

    async fn run<Req, Resp, F, Fut>(
        &self,
        method: &'static Method,
        request: Request<Req>,
        fingerprint: Option<[u8; 32]>,
        handler: F,
    ) -> Result<Resp, NodeError>
    where
        F: FnOnce(Call, Req) -> Fut,
        Fut: Future<Output = Result<Resp, NodeError>>,
    {
        let _permit = self.ctx.admit().await?;
        let caller = self.auth.caller(request.metadata(), method)?;
        let audited = Arc::new(AtomicBool::new(false));
        let call = Call {
            ctx: self.ctx.clone(),
            method,
            caller,
            audited: audited.clone(),
            fingerprint,
        };
        let answer = handler(call, request.into_inner()).await?;
        let must_audit = matches!(method.class, Class::PatientRead | Class::Decision);
        if must_audit && !audited.load(Ordering::Acquire) {
            debug_assert!(false, "{} answered without an audit event", method.path);
            return Err(NodeError::Internal(format!(
                "{} would have answered without an audit event; refused",
                method.path
            )));
        }
        Ok(answer)
    }
}

/// The span every call runs in: the method and the request id, which is the caller's
/// `x-request-id` (a write's own request id, on every retry) or, when it sent none or an
/// unusable one, one made here (`n<counter>`), so that every line logged for a call names
/// it. Finished calls are logged at `debug` (`kartotek_node::api::layer=debug` in
/// `log_filter` gives an access log), failed ones with INTERNAL or DATA_LOSS at `warn`.
fn request_span(method: &Method, md: &tonic::metadata::MetadataMap) -> tracing::Span {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let request_id = match super::caller::correlation_id(md) {
        Ok(Some(id)) => id,
        _ => format!("n{}", NEXT.fetch_add(1, Ordering::Relaxed)),
    };
    tracing::info_span!("request", method = method.label, request_id = %request_id)
}

/// One call in progress: the handler's only handle on the node.
pub struct Call {
    ctx: NodeContext,
    method: &'static Method,
    caller: Caller,
    audited: Arc<AtomicBool>,
    /// SHA-256 of the encoded request, for write-capable methods.
    fingerprint: Option<[u8; 32]>,
}

/// SHA-256 of a request as encoded (what a request id is tied to).
fn request_fingerprint(request: &impl prost::Message) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(request.encode_to_vec()).into()
}

impl Call {
    /// Who is calling.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The method being served.
    pub fn method(&self) -> &'static Method {
        self.method
    }

    /// The node's configuration (limits, policy), read-only.
    pub fn config(&self) -> &NodeConfig {
        self.ctx.config()
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        self.ctx.metrics()
    }

    /// The own-data rule for a citizen's token ([`Caller::own_data_of`]): `patient` must be
    /// the one person the call may concern. Refused with PERMISSION_DENIED before anything
    /// is read or written; callers with the method's scope pass.
    fn own_data(&self, patient: Option<&NationalId>) -> Result<(), NodeError> {
        match &self.caller.own_data_of {
            None => Ok(()),
            Some(person) if patient == Some(person) => Ok(()),
            Some(_) => Err(NodeError::Forbidden(format!(
                "{}: a citizen's token reaches only the citizen's own data (or the data of \
                 whom it acts for){}",
                self.method.path,
                if patient.is_none() {
                    "; name the patient"
                } else {
                    ""
                }
            ))),
        }
    }

    /// The own-data rule for a write: the record's subject is the person, and the operation
    /// names the caller (not someone else) as who made it.
    fn own_write(&self, op: &Op) -> Result<(), NodeError> {
        if self.caller.own_data_of.is_none() {
            return Ok(());
        }
        let Op::Record(record) = op else {
            return Err(NodeError::Forbidden(format!(
                "{}: not open to a citizen's token",
                self.method.path
            )));
        };
        self.own_data(record.subject())?;
        if let Some(by) = record.acted_by()
            && *by != self.caller.actor
        {
            return Err(NodeError::Forbidden(format!(
                "{}: with a citizen's token the change is made by the token's citizen; \
                 leave the acting person out or name them",
                self.method.path
            )));
        }
        if let kartotek_domain::record_op::RecordOp::RepresentationGrant(g) = record
            && g.source != kartotek_domain::representation::RepresentationSource::PatientGranted
        {
            return Err(NodeError::Forbidden(format!(
                "{}: a citizen grants only patient_granted representations (the population \
                 register's come from the register)",
                self.method.path
            )));
        }
        Ok(())
    }

    fn refuse(&self, what: &str) -> NodeError {
        debug_assert!(
            false,
            "{} ({:?}) may not {what}",
            self.method.path, self.method.class
        );
        NodeError::Internal(format!(
            "{} ({:?}) may not {what}",
            self.method.path, self.method.class
        ))
    }

    /// Makes the local state fit for a read in `mode` and hands it out.
    ///
    /// For a [`Class::PatientRead`] method the read's audit `events` (at least one) are made
    /// durable first (see [`crate::audit`]); the state is returned only after that. A
    /// [`Class::Decision`] reads first and records its decision with [`Call::audit`] before
    /// answering; [`Class::PlainRead`] and [`Class::Admin`] read without events.
    pub async fn read(
        &self,
        mode: ReadMode,
        events: Vec<AuditEvent>,
    ) -> Result<&StateReader, NodeError> {
        for e in &events {
            self.own_data(e.patient.as_ref())?;
        }
        match self.method.class {
            Class::PatientRead => {
                if events.is_empty() {
                    return Err(self.refuse("read patient data without an audit event"));
                }
                self.ctx.audited_read(mode, events).await?;
                self.audited.store(true, Ordering::Release);
            }
            Class::Decision | Class::PlainRead | Class::Admin => {
                if !events.is_empty() {
                    return Err(self.refuse("record read events (use Call::audit)"));
                }
                self.ctx.prepare_read(mode).await?;
            }
            Class::Write => return Err(self.refuse("read")),
        }
        Ok(self.ctx.reader())
    }

    /// A read whose audit events depend on what it finds (a listing by organisation: one
    /// event per patient on the page). `read` runs on the state made fit for `mode` and
    /// returns the answer with its events; the events (at least one) are made durable before
    /// the answer is handed back, so the answer still never leaves unaudited.
    pub async fn read_listing<T>(
        &self,
        mode: ReadMode,
        read: impl FnOnce(&StateReader) -> Result<(T, Vec<AuditEvent>), NodeError>,
    ) -> Result<T, NodeError> {
        if self.method.class != Class::PatientRead {
            return Err(self.refuse("read a listing"));
        }
        self.ctx.prepare_read(mode).await?;
        let (answer, events) = read(self.ctx.reader())?;
        if events.is_empty() {
            return Err(self.refuse("answer a listing without an audit event"));
        }
        self.audit(events).await?;
        Ok(answer)
    }

    /// [`Call::read`] of one patient's data, audited as this caller doing `action` to
    /// `resource` about `patient`: the common shape of a patient-data read.
    pub async fn read_patient(
        &self,
        mode: ReadMode,
        action: &str,
        resource: &str,
        patient: &NationalId,
    ) -> Result<&StateReader, NodeError> {
        let event = self.caller.event(action, resource, Some(patient));
        self.read(mode, vec![event]).await
    }

    /// The state without a read barrier, for streams that already recorded their audit
    /// event ([`Call::audit`]) and for answers to writes and admin calls.
    pub fn state(&self) -> Result<&StateReader, NodeError> {
        match self.method.class {
            Class::PatientRead | Class::Decision if !self.audited.load(Ordering::Acquire) => {
                Err(self.refuse("see the state before its audit event is durable"))
            }
            _ => Ok(self.ctx.reader()),
        }
    }

    /// Records audit events durably (fsynced in this node's audit journal, see
    /// [`crate::audit`]) before the answer: a decision's event, or a stream's delivery.
    pub async fn audit(&self, events: Vec<AuditEvent>) -> Result<(), NodeError> {
        if events.is_empty() {
            return Err(self.refuse("record an empty audit"));
        }
        for e in &events {
            self.own_data(e.patient.as_ref())?;
        }
        // One append takes at most AUDIT_EVENTS_PER_APPEND_MAX events (a listing page or a
        // watch message can carry more patients).
        for chunk in events.chunks(kartotek_domain::limits::AUDIT_EVENTS_PER_APPEND_MAX) {
            self.ctx.audit(chunk.to_vec()).await?;
        }
        self.audited.store(true, Ordering::Release);
        Ok(())
    }

    /// Waits until every audit event this node has journaled so far is in the chain, so that
    /// an audit query answered here includes the events of every answer this node gave
    /// before it (other nodes' within their shipping lag, see [`crate::audit`]).
    pub async fn audit_shipped(&self) -> Result<(), NodeError> {
        self.ctx.audit_shipped().await
    }

    /// Proposes `op` under the caller's request id (`raw_request_id`, empty for none) and
    /// waits for its answer.
    ///
    /// The id is [scoped](RequestId::scoped) to this caller and method and tied to the
    /// request's bytes: another caller's same id is another request, and this caller's id
    /// reused for a different request is refused (`FAILED_PRECONDITION`) instead of answered
    /// with the first request's answer.
    pub async fn write(&self, raw_request_id: &str, op: Op) -> Result<Answer, NodeError> {
        let Some(fingerprint) = self.fingerprint else {
            return Err(self.refuse("write without the request's fingerprint (use write_for)"));
        };
        self.write_fingerprinted(raw_request_id, &fingerprint, op)
            .await
    }

    /// [`Call::write`] of one request of a request stream (`request`, whose bytes the id is
    /// tied to).
    pub async fn write_for(
        &self,
        request: &impl prost::Message,
        raw_request_id: &str,
        op: Op,
    ) -> Result<Answer, NodeError> {
        self.write_fingerprinted(raw_request_id, &request_fingerprint(request), op)
            .await
    }

    async fn write_fingerprinted(
        &self,
        raw_request_id: &str,
        fingerprint: &[u8; 32],
        op: Op,
    ) -> Result<Answer, NodeError> {
        if !matches!(self.method.class, Class::Write | Class::Decision) {
            return Err(self.refuse("write"));
        }
        self.own_write(&op)?;
        // An access decision is a read of the privacy records plus its audit: it goes on.
        if self.method.class == Class::Write {
            self.ctx.writable()?;
        }
        let rid = self.scoped_request_id(raw_request_id, fingerprint)?;
        // A write about a patient is audited as one (its answer may carry the stored record,
        // and the patient sees who changed their data): the event is made durable alongside
        // the write, and the answer waits for both.
        let Some((action, resource, patient)) = op.audited_as() else {
            return self.ctx.write(rid, op).await;
        };
        let event = self.caller.event(action, resource, Some(patient));
        let (written, audited) = tokio::join!(self.ctx.write(rid, op), self.ctx.audit(vec![event]));
        let written = written?;
        audited?;
        Ok(written)
    }

    /// The caller's request id scoped to the caller (actor, org, on whose behalf) and
    /// the method, tied to `fingerprint` (see [`RequestId::scoped`]).
    fn scoped_request_id(
        &self,
        raw_request_id: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Option<RequestId>, NodeError> {
        let Some(raw) = request_id(raw_request_id)? else {
            return Ok(None);
        };
        let c = &self.caller;
        let scope = format!(
            "{}\n{}\n{}\n{}",
            c.actor,
            c.org.as_ref().map(|o| o.as_str()).unwrap_or_default(),
            c.on_behalf_of
                .as_ref()
                .map(|p| p.as_str())
                .unwrap_or_default(),
            self.method.path
        );
        Ok(Some(RequestId::scoped(scope.as_bytes(), &raw, fingerprint)))
    }

    /// Commits caller-supplied audit events (`AuditService.Record`) to the chain: on the
    /// leader directly, elsewhere by forwarding them to the leader. Returns their first and
    /// last seq.
    pub async fn record_audit(
        &self,
        raw_request_id: &str,
        events: Vec<AuditEvent>,
    ) -> Result<(u64, u64), NodeError> {
        if self.method.class != Class::Write {
            return Err(self.refuse("record audit events"));
        }
        self.ctx.writable()?;
        let Some(fingerprint) = self.fingerprint else {
            return Err(self.refuse("record audit events without the request's fingerprint"));
        };
        let request_id = self.scoped_request_id(raw_request_id, &fingerprint)?;
        if self.ctx.is_leader() {
            return self.ctx.append_audit(request_id, events).await;
        }
        let forwarded = request_id.as_ref().map_or("", RequestId::as_str);
        self.ctx.forward_audit(events, forwarded).await
    }

    /// The header of an answer made at `revision` / `applied_index`.
    pub fn header(&self, revision: u64, applied_index: u64) -> ResponseHeader {
        self.ctx.header(revision, applied_index)
    }

    /// The header of a write's answer at `revision` (with the applied index now).
    pub fn write_header(&self, revision: u64) -> Result<ResponseHeader, NodeError> {
        let applied = self.ctx.reader().position()?.0;
        Ok(self.ctx.header(revision, applied))
    }

    /// Takes a watch-stream slot (held by the stream until it ends).
    pub fn admit_watch(&self) -> Result<OwnedSemaphorePermit, NodeError> {
        self.ctx.admit_watch()
    }

    /// The Raft handle, for [`Class::Admin`] methods only.
    pub fn admin(&self) -> Result<&Raft<TypeConfig>, NodeError> {
        if self.method.class != Class::Admin {
            return Err(self.refuse("administer the cluster"));
        }
        Ok(self.ctx.raft())
    }

    /// Checks that `representative` may act for `represented` in `area` now, from this node's
    /// representation records (a linearizable read first) and the configured age rules.
    /// Refuses with PERMISSION_DENIED naming why.
    pub async fn check_representation(
        &self,
        representative: &NationalId,
        represented: &NationalId,
        area: &str,
    ) -> Result<(), NodeError> {
        let area = kartotek_domain::fields::Area::parse("area", area)?;
        self.ctx.prepare_read(ReadMode::Linearizable).await?;
        let records = self
            .ctx
            .reader()
            .representations_of_represented(represented)?;
        let policy = self.config().policy.access_policy();
        let checked = kartotek_domain::representation::check(
            &records.value,
            representative,
            represented,
            &area,
            Timestamp::now(),
            &policy.representation,
        );
        if checked.allowed {
            Ok(())
        } else {
            Err(NodeError::Apply(
                kartotek_domain::ApplyError::PermissionDenied(format!(
                    "not a representative in area {}: {}",
                    area.as_str(),
                    checked.reason
                )),
            ))
        }
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
