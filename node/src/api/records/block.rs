//! `kartotek.v1.BlockService`: add, revoke and list a patient's blocks.

use kartotek_domain::block::list_blocks;
use kartotek_domain::locator::parse_national_id;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{BlockAdd, BlockAddInput, BlockRevoke, Timestamp};
use kartotek_proto::v1;
use kartotek_proto::v1::block_service_server::BlockService;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::{self, actor_parts, enum_text};
use super::{unexpected, write_record};
use crate::api::layer::{Call, Gate};
use crate::api::methods;
use crate::api::paging::{ListPage, PageRequest, bool_field, id_key};
use crate::api::read_mode;
use crate::error::NodeError;

/// The block service of one node.
pub struct BlockServiceImpl {
    gate: Gate,
}

impl BlockServiceImpl {
    /// Serves block requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        BlockServiceImpl { gate }
    }
}

async fn add(call: Call, r: v1::AddBlockRequest) -> Result<v1::BlockResponse, NodeError> {
    let target_kind = enum_text!(
        "target_kind",
        r.target_kind,
        v1::BlockTargetKind,
        "BLOCK_TARGET_KIND_"
    )?;
    let level = enum_text!("level", r.level, v1::BlockLevel, "BLOCK_LEVEL_")?;
    let (by_kind, by) = actor_parts(
        "registered_by",
        r.registered_by.as_ref(),
        &call.caller().actor,
    )?;
    let cmd = BlockAdd::parse(&BlockAddInput {
        patient: &r.patient,
        target_kind: &target_kind,
        target: &r.target,
        level: &level,
        scope_service: &r.scope_service,
        scope_element: &r.scope_element,
        valid_from: &r.valid_from,
        valid_to: &r.valid_to,
        reason: &r.reason,
        registered_by_kind: &by_kind,
        registered_by: &by,
    })?;
    let span = tracing::info_span!(
        "block.add",
        request_id = %r.request_id,
        patient = %cmd.patient.log_hash(),
    );
    let (outcome, revision) = write_record(&call, &r.request_id, RecordOp::BlockAdd(cmd))
        .instrument(span)
        .await?;
    answer(&call, outcome, revision)
}

async fn revoke(call: Call, r: v1::RevokeBlockRequest) -> Result<v1::BlockResponse, NodeError> {
    let (by_kind, by) = actor_parts("revoked_by", r.revoked_by.as_ref(), &call.caller().actor)?;
    let cmd = BlockRevoke::parse(&r.patient, r.block_id, &by_kind, &by)?;
    let span = tracing::info_span!(
        "block.revoke",
        request_id = %r.request_id,
        patient = %cmd.patient.log_hash(),
        block_id = cmd.block_id,
    );
    let (outcome, revision) = write_record(&call, &r.request_id, RecordOp::BlockRevoke(cmd))
        .instrument(span)
        .await?;
    answer(&call, outcome, revision)
}

fn answer(
    call: &Call,
    outcome: RecordOutcome,
    revision: u64,
) -> Result<v1::BlockResponse, NodeError> {
    let RecordOutcome::Block { block, changed } = outcome else {
        return Err(unexpected(&outcome));
    };
    Ok(v1::BlockResponse {
        header: Some(call.write_header(revision)?),
        block: Some(convert::block(&block, Timestamp::now())),
        changed,
    })
}

async fn list(call: Call, r: v1::ListBlocksRequest) -> Result<v1::ListBlocksResponse, NodeError> {
    let patient = parse_national_id("patient", &r.patient)?;
    let paging = ListPage::of(
        PageRequest::parse(r.page_size, &r.page_token)?,
        "block.list",
        &[patient.as_str(), bool_field(r.in_force_only)],
    )?;
    let mode = read_mode(r.read.as_ref())?;
    // A read of patient data: audited before it is answered (once per page).
    let found = call
        .read_patient(mode, "block.list", "block", &patient)
        .await?
        .blocks_of(&patient)?;
    let now = Timestamp::now();
    let page = paging.page(list_blocks(&found.value, r.in_force_only, now), |b| {
        id_key(b.id)
    });
    Ok(v1::ListBlocksResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        blocks: page
            .items
            .into_iter()
            .map(|b| convert::block(b, now))
            .collect(),
        next_page_token: page.next_page_token,
    })
}

#[tonic::async_trait]
impl BlockService for BlockServiceImpl {
    async fn add(
        &self,
        request: Request<v1::AddBlockRequest>,
    ) -> Result<Response<v1::BlockResponse>, Status> {
        self.gate.unary(&methods::BLOCK_ADD, request, add).await
    }

    async fn revoke(
        &self,
        request: Request<v1::RevokeBlockRequest>,
    ) -> Result<Response<v1::BlockResponse>, Status> {
        self.gate
            .unary(&methods::BLOCK_REVOKE, request, revoke)
            .await
    }

    async fn list(
        &self,
        request: Request<v1::ListBlocksRequest>,
    ) -> Result<Response<v1::ListBlocksResponse>, Status> {
        self.gate.unary(&methods::BLOCK_LIST, request, list).await
    }
}
