//! `kartotek.v1.CatalogService`: the API catalog (register, update, lifecycle, get, search).
//! Holds no patient data.
//!
//! Register, update and lifecycle changes name an `owner` organisation; the caller must be
//! it (the token's org claim, [`Caller::must_act_for`](crate::api::caller::Caller::must_act_for);
//! an administrator's token may act for any): PERMISSION_DENIED otherwise, before anything is
//! written. The domain then refuses changes to an entry another organisation owns.

use kartotek_domain::catalog::ranked_catalog;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{
    CatalogId, CatalogInput, CatalogQuery, CatalogRegister, CatalogSetLifecycle, CatalogUpdate,
};
use kartotek_proto::v1;
use kartotek_proto::v1::catalog_service_server::CatalogService;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::{self, enum_text, optional_enum_text};
use super::{unexpected, write_record};
use crate::api::layer::{Call, Gate};
use crate::api::methods;
use crate::api::paging::{ListPage, PageRequest, bool_field};
use crate::api::read_mode;
use crate::error::NodeError;

/// The API catalog service of one node.
pub struct CatalogServiceImpl {
    gate: Gate,
}

impl CatalogServiceImpl {
    /// Serves catalog requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        CatalogServiceImpl { gate }
    }
}

async fn write(
    call: &Call,
    request_id: &str,
    op: RecordOp,
) -> Result<v1::CatalogEntryResponse, NodeError> {
    let span = tracing::info_span!("catalog.write", op = op.name(), request_id = %request_id);
    let (outcome, revision) = write_record(call, request_id, op).instrument(span).await?;
    let RecordOutcome::Catalog { entry, changed } = outcome else {
        return Err(unexpected(&outcome));
    };
    Ok(v1::CatalogEntryResponse {
        header: Some(call.write_header(revision)?),
        entry: Some(convert::catalog_entry(&entry)),
        changed,
    })
}

/// The domain input of a register or update (`audience` already mapped to its text).
fn input<'a>(r: &'a v1::CatalogEntryRequest, audience: &'a str) -> CatalogInput<'a> {
    CatalogInput {
        id: &r.id,
        owner: &r.owner,
        title: &r.title,
        description: &r.description,
        base_url: &r.base_url,
        spec_url: &r.spec_url,
        scopes: &r.scopes,
        audience,
        requires_consent: r.requires_consent,
        version: &r.version,
    }
}

async fn register(
    call: Call,
    r: v1::CatalogEntryRequest,
) -> Result<v1::CatalogEntryResponse, NodeError> {
    let audience = enum_text!("audience", r.audience, v1::Audience, "AUDIENCE_")?;
    let cmd = CatalogRegister::parse(&input(&r, &audience))?;
    call.caller().must_act_for("owner", &cmd.owner)?;
    write(&call, &r.request_id, RecordOp::CatalogRegister(cmd)).await
}

async fn update(
    call: Call,
    r: v1::CatalogEntryRequest,
) -> Result<v1::CatalogEntryResponse, NodeError> {
    let audience = enum_text!("audience", r.audience, v1::Audience, "AUDIENCE_")?;
    let cmd = CatalogUpdate::parse(&input(&r, &audience))?;
    call.caller().must_act_for("owner", &cmd.by)?;
    write(&call, &r.request_id, RecordOp::CatalogUpdate(cmd)).await
}

async fn set_lifecycle(
    call: Call,
    r: v1::SetCatalogLifecycleRequest,
) -> Result<v1::CatalogEntryResponse, NodeError> {
    let lifecycle = enum_text!(
        "lifecycle",
        r.lifecycle,
        v1::CatalogLifecycle,
        "CATALOG_LIFECYCLE_"
    )?;
    let cmd = CatalogSetLifecycle::parse(&r.id, &lifecycle, &r.owner)?;
    call.caller().must_act_for("owner", &cmd.by)?;
    write(&call, &r.request_id, RecordOp::CatalogSetLifecycle(cmd)).await
}

async fn get(
    call: Call,
    r: v1::GetCatalogEntryRequest,
) -> Result<v1::CatalogEntryResponse, NodeError> {
    let id = CatalogId::parse("id", &r.id)?;
    let mode = read_mode(r.read.as_ref())?;
    let found = call.read(mode, vec![]).await?.catalog_entry(&id)?;
    let Some(entry) = found.value else {
        return Err(kartotek_domain::ApplyError::NotFound(format!("catalog entry {id}")).into());
    };
    Ok(v1::CatalogEntryResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        entry: Some(convert::catalog_entry(&entry)),
        changed: false,
    })
}

async fn search(
    call: Call,
    r: v1::SearchCatalogRequest,
) -> Result<v1::SearchCatalogResponse, NodeError> {
    let audience = optional_enum_text!("audience", r.audience, v1::Audience, "AUDIENCE_")?;
    let query = CatalogQuery::parse(&r.text, &r.owner, &r.scope, &audience, r.include_retired)?;
    let paging = ListPage::of(
        PageRequest::parse_with_limit(r.page_size, r.limit, &r.page_token)?,
        "catalog.search",
        &[
            &r.text,
            &r.owner,
            &r.scope,
            &audience,
            bool_field(r.include_retired),
        ],
    )?;
    let mode = read_mode(r.read.as_ref())?;
    let found = call.read(mode, vec![]).await?.catalog_entries()?;
    // Best first, ties by id: the key is the inverted score, then the id.
    let page = paging.page(ranked_catalog(&found.value, &query), |(score, e)| {
        let mut k = (u32::MAX - score).to_be_bytes().to_vec();
        k.extend_from_slice(e.id.as_str().as_bytes());
        k
    });
    Ok(v1::SearchCatalogResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        entries: page
            .items
            .into_iter()
            .map(|(_, e)| convert::catalog_entry(e))
            .collect(),
        next_page_token: page.next_page_token,
    })
}

#[tonic::async_trait]
impl CatalogService for CatalogServiceImpl {
    async fn register(
        &self,
        request: Request<v1::CatalogEntryRequest>,
    ) -> Result<Response<v1::CatalogEntryResponse>, Status> {
        self.gate
            .unary(&methods::CATALOG_REGISTER, request, register)
            .await
    }

    async fn update(
        &self,
        request: Request<v1::CatalogEntryRequest>,
    ) -> Result<Response<v1::CatalogEntryResponse>, Status> {
        self.gate
            .unary(&methods::CATALOG_UPDATE, request, update)
            .await
    }

    async fn set_lifecycle(
        &self,
        request: Request<v1::SetCatalogLifecycleRequest>,
    ) -> Result<Response<v1::CatalogEntryResponse>, Status> {
        self.gate
            .unary(&methods::CATALOG_SET_LIFECYCLE, request, set_lifecycle)
            .await
    }

    async fn get(
        &self,
        request: Request<v1::GetCatalogEntryRequest>,
    ) -> Result<Response<v1::CatalogEntryResponse>, Status> {
        self.gate.unary(&methods::CATALOG_GET, request, get).await
    }

    async fn search(
        &self,
        request: Request<v1::SearchCatalogRequest>,
    ) -> Result<Response<v1::SearchCatalogResponse>, Status> {
        self.gate
            .unary(&methods::CATALOG_SEARCH, request, search)
            .await
    }
}
