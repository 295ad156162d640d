//! `kartotek.v1.LocatorService`: register, retire and look up patient information locator
//! entries.
//!
//! Requests are validated before anything is proposed; writes go through Raft with the
//! caller's request id; lookups are linearizable unless the caller asks for a bounded-staleness
//! read. Logs carry the request id and a hash of the patient id, never the id itself.

use kartotek_domain::audit::actions;
use kartotek_domain::limits::LOOKUP_ENTRIES_MAX;
use kartotek_domain::locator::{parse_national_id, parse_org_number};
use kartotek_domain::{LocatorKey, LocatorRegister, Op, Outcome, Response as Answer};
use kartotek_proto::v1::locator_service_server::LocatorService;
use kartotek_proto::v1::{
    ImportLocatorsRequest, ListLocatorsRequest, ListLocatorsResponse, LookupLocatorRequest,
    LookupLocatorResponse, RegisterLocatorRequest, RegisterLocatorResponse, RetireLocatorRequest,
    RetireLocatorResponse, WatchLocatorsRequest,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::locator_entry;
use super::layer::{Call, Gate, request_id};
use super::paging::{PageRequest, token_of};
use super::{locator_stream, methods, read_mode};
use crate::error::NodeError;

/// The locator service of one node.
pub struct LocatorServiceImpl {
    gate: Gate,
}

impl LocatorServiceImpl {
    /// Serves locator requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        LocatorServiceImpl { gate }
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

async fn register(
    call: Call,
    r: RegisterLocatorRequest,
) -> Result<RegisterLocatorResponse, NodeError> {
    request_id(&r.request_id)?;
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
    let answer = call.write(&r.request_id, op).instrument(span).await?;
    let (entry, changed, revision) = locator_outcome(answer)?;
    Ok(RegisterLocatorResponse {
        header: Some(call.write_header(revision)?),
        entry: Some(locator_entry(&entry)),
        changed,
    })
}

async fn retire(call: Call, r: RetireLocatorRequest) -> Result<RetireLocatorResponse, NodeError> {
    request_id(&r.request_id)?;
    let key = LocatorKey::parse(&r.patient, &r.org, &r.system)?;
    let span = tracing::info_span!(
        "locator.retire",
        request_id = %r.request_id,
        patient = %key.patient.log_hash(),
    );
    let answer = call
        .write(&r.request_id, Op::LocatorRetire(key))
        .instrument(span)
        .await?;
    let (entry, changed, revision) = locator_outcome(answer)?;
    Ok(RetireLocatorResponse {
        header: Some(call.write_header(revision)?),
        entry: Some(locator_entry(&entry)),
        changed,
    })
}

async fn list(call: Call, r: ListLocatorsRequest) -> Result<ListLocatorsResponse, NodeError> {
    let org = parse_org_number("org", &r.org)?;
    let paging = PageRequest::parse(r.page_size, &r.page_token)?;
    let mode = read_mode(r.read.as_ref())?;
    // Audited per patient on the page (each patient sees the listing in their audit log),
    // and once for the organisation (a page may be empty).
    let page = call
        .read_listing(mode, |state| {
            let page = state.list_locator_by_org(
                &org,
                r.include_retired,
                paging.cursor.as_deref(),
                paging.size,
            )?;
            let patients: std::collections::BTreeMap<&str, &kartotek_domain::NationalId> = page
                .value
                .items
                .iter()
                .map(|e| (e.key.patient.as_str(), &e.key.patient))
                .collect();
            let mut events = Vec::with_capacity(patients.len() + 1);
            let mut of_org = call.caller().event(actions::LOCATOR_LIST, "locator", None);
            of_org.org = Some(org.clone());
            events.push(of_org);
            for patient in patients.into_values() {
                let mut e = call
                    .caller()
                    .event(actions::LOCATOR_LIST, "locator", Some(patient));
                e.org = Some(org.clone());
                events.push(e);
            }
            Ok((page, events))
        })
        .await?;
    Ok(ListLocatorsResponse {
        header: Some(call.header(page.revision, page.applied_index)),
        entries: page.value.items.iter().map(locator_entry).collect(),
        next_page_token: token_of(page.value.next_cursor.as_deref()),
    })
}

async fn lookup(call: Call, r: LookupLocatorRequest) -> Result<LookupLocatorResponse, NodeError> {
    let patient = parse_national_id("patient", &r.patient)?;
    let org = if r.org.is_empty() {
        None
    } else {
        Some(parse_org_number("org", &r.org)?)
    };
    let mode = read_mode(r.read.as_ref())?;
    // No answer without a durable audit event (`Call::read`).
    let event = call
        .caller()
        .event(actions::LOCATOR_LOOKUP, "locator", Some(&patient));
    let found = call.read(mode, vec![event]).await?.lookup_locator(
        &patient,
        org.as_ref(),
        r.include_retired,
        LOOKUP_ENTRIES_MAX,
    )?;
    tracing::debug!(patient = %patient.log_hash(), entries = found.value.len(), "locator.lookup");
    Ok(LookupLocatorResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        entries: found.value.iter().map(locator_entry).collect(),
    })
}

#[tonic::async_trait]
impl LocatorService for LocatorServiceImpl {
    async fn register(
        &self,
        request: Request<RegisterLocatorRequest>,
    ) -> Result<Response<RegisterLocatorResponse>, Status> {
        self.gate
            .unary(&methods::LOCATOR_REGISTER, request, register)
            .await
    }

    async fn retire(
        &self,
        request: Request<RetireLocatorRequest>,
    ) -> Result<Response<RetireLocatorResponse>, Status> {
        self.gate
            .unary(&methods::LOCATOR_RETIRE, request, retire)
            .await
    }

    async fn lookup(
        &self,
        request: Request<LookupLocatorRequest>,
    ) -> Result<Response<LookupLocatorResponse>, Status> {
        self.gate
            .unary(&methods::LOCATOR_LOOKUP, request, lookup)
            .await
    }

    async fn list(
        &self,
        request: Request<ListLocatorsRequest>,
    ) -> Result<Response<ListLocatorsResponse>, Status> {
        self.gate.unary(&methods::LOCATOR_LIST, request, list).await
    }

    type ImportStream = locator_stream::ImportStream;

    async fn import(
        &self,
        request: Request<tonic::Streaming<ImportLocatorsRequest>>,
    ) -> Result<Response<Self::ImportStream>, Status> {
        self.gate
            .client_stream(
                &methods::LOCATOR_IMPORT,
                request,
                |call, batches| async move { Ok(locator_stream::import(call, batches)) },
            )
            .await
    }

    type WatchStream = locator_stream::WatchStream;

    async fn watch(
        &self,
        request: Request<WatchLocatorsRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.gate
            .unary(&methods::LOCATOR_WATCH, request, locator_stream::watch)
            .await
    }
}
