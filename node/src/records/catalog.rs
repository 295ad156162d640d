//! `kartotek.v1.CatalogService` (the API catalog: register, update, lifecycle, get, search)
//! and `kartotek.v1.ClientRegistryService` (token-issuance clients: register, update, get,
//! list). Neither holds patient data.

use kartotek_domain::catalog::search_catalog;
use kartotek_domain::locator::parse_org_number;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{
    CatalogId, CatalogInput, CatalogQuery, CatalogRegister, CatalogSetLifecycle, CatalogUpdate,
    ClientId, ClientInput, ClientRegister, ClientUpdate,
};
use kartotek_proto::v1;
use kartotek_proto::v1::catalog_service_server::CatalogService;
use kartotek_proto::v1::client_registry_service_server::ClientRegistryService;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::{self, enum_text, optional_enum_text};
use super::{applied, list_limit, unexpected, write_record};
use crate::context::NodeContext;
use crate::error::NodeError;
use crate::locator_service::{handle, read_mode};

/// The API catalog service of one node.
pub struct CatalogServiceImpl {
    ctx: NodeContext,
}

impl CatalogServiceImpl {
    /// Serves catalog requests on `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        CatalogServiceImpl { ctx }
    }

    async fn write(
        &self,
        request_id: &str,
        op: RecordOp,
    ) -> Result<v1::CatalogEntryResponse, NodeError> {
        let span = tracing::info_span!("catalog.write", op = op.name(), request_id = %request_id);
        let (outcome, revision) = write_record(&self.ctx, request_id, op)
            .instrument(span)
            .await?;
        let RecordOutcome::Catalog { entry, changed } = outcome else {
            return Err(unexpected(&outcome));
        };
        Ok(v1::CatalogEntryResponse {
            header: Some(self.ctx.header(revision, applied(&self.ctx)?)),
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
        &self,
        r: v1::CatalogEntryRequest,
    ) -> Result<v1::CatalogEntryResponse, NodeError> {
        let audience = enum_text!("audience", r.audience, v1::Audience, "AUDIENCE_")?;
        let cmd = CatalogRegister::parse(&Self::input(&r, &audience))?;
        self.write(&r.request_id, RecordOp::CatalogRegister(cmd))
            .await
    }

    async fn update(
        &self,
        r: v1::CatalogEntryRequest,
    ) -> Result<v1::CatalogEntryResponse, NodeError> {
        let audience = enum_text!("audience", r.audience, v1::Audience, "AUDIENCE_")?;
        let cmd = CatalogUpdate::parse(&Self::input(&r, &audience))?;
        self.write(&r.request_id, RecordOp::CatalogUpdate(cmd))
            .await
    }

    async fn set_lifecycle(
        &self,
        r: v1::SetCatalogLifecycleRequest,
    ) -> Result<v1::CatalogEntryResponse, NodeError> {
        let lifecycle = enum_text!(
            "lifecycle",
            r.lifecycle,
            v1::CatalogLifecycle,
            "CATALOG_LIFECYCLE_"
        )?;
        let cmd = CatalogSetLifecycle::parse(&r.id, &lifecycle, &r.owner)?;
        self.write(&r.request_id, RecordOp::CatalogSetLifecycle(cmd))
            .await
    }

    async fn get(
        &self,
        r: v1::GetCatalogEntryRequest,
    ) -> Result<v1::CatalogEntryResponse, NodeError> {
        let id = CatalogId::parse("id", &r.id)?;
        let mode = read_mode(r.read.as_ref())?;
        self.ctx.prepare_read(mode).await?;
        let found = self.ctx.reader.catalog_entry(&id)?;
        let Some(entry) = found.value else {
            return Err(
                kartotek_domain::ApplyError::NotFound(format!("catalog entry {id}")).into(),
            );
        };
        Ok(v1::CatalogEntryResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            entry: Some(convert::catalog_entry(&entry)),
            changed: false,
        })
    }

    async fn search(
        &self,
        r: v1::SearchCatalogRequest,
    ) -> Result<v1::SearchCatalogResponse, NodeError> {
        let audience = optional_enum_text!("audience", r.audience, v1::Audience, "AUDIENCE_")?;
        let query = CatalogQuery::parse(&r.text, &r.owner, &r.scope, &audience, r.include_retired)?;
        let limit = list_limit("limit", r.limit)?;
        let mode = read_mode(r.read.as_ref())?;
        self.ctx.prepare_read(mode).await?;
        let found = self.ctx.reader.catalog_entries()?;
        Ok(v1::SearchCatalogResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            entries: search_catalog(&found.value, &query, limit)
                .into_iter()
                .map(convert::catalog_entry)
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogServiceImpl {
    async fn register(
        &self,
        request: Request<v1::CatalogEntryRequest>,
    ) -> Result<Response<v1::CatalogEntryResponse>, Status> {
        handle!(self, "Catalog/Register", request, register)
    }

    async fn update(
        &self,
        request: Request<v1::CatalogEntryRequest>,
    ) -> Result<Response<v1::CatalogEntryResponse>, Status> {
        handle!(self, "Catalog/Update", request, update)
    }

    async fn set_lifecycle(
        &self,
        request: Request<v1::SetCatalogLifecycleRequest>,
    ) -> Result<Response<v1::CatalogEntryResponse>, Status> {
        handle!(self, "Catalog/SetLifecycle", request, set_lifecycle)
    }

    async fn get(
        &self,
        request: Request<v1::GetCatalogEntryRequest>,
    ) -> Result<Response<v1::CatalogEntryResponse>, Status> {
        handle!(self, "Catalog/Get", request, get)
    }

    async fn search(
        &self,
        request: Request<v1::SearchCatalogRequest>,
    ) -> Result<Response<v1::SearchCatalogResponse>, Status> {
        handle!(self, "Catalog/Search", request, search)
    }
}

/// The token-issuance client registry of one node.
pub struct ClientRegistryServiceImpl {
    ctx: NodeContext,
}

impl ClientRegistryServiceImpl {
    /// Serves client-registry requests on `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        ClientRegistryServiceImpl { ctx }
    }

    async fn write(&self, request_id: &str, op: RecordOp) -> Result<v1::ClientResponse, NodeError> {
        let span = tracing::info_span!("client.write", op = op.name(), request_id = %request_id);
        let (outcome, revision) = write_record(&self.ctx, request_id, op)
            .instrument(span)
            .await?;
        let RecordOutcome::Client { client, changed } = outcome else {
            return Err(unexpected(&outcome));
        };
        Ok(v1::ClientResponse {
            header: Some(self.ctx.header(revision, applied(&self.ctx)?)),
            client: Some(convert::client(&client)),
            changed,
        })
    }

    async fn register(&self, r: v1::ClientRequest) -> Result<v1::ClientResponse, NodeError> {
        if r.status != 0 {
            return Err(kartotek_domain::ValidationError::new(
                "status",
                "a new client is active; set the status with update",
            )
            .into());
        }
        let cmd = ClientRegister::parse(&ClientInput {
            client_id: &r.client_id,
            org: &r.org,
            public_keys: &r.public_keys,
            allowed_scopes: &r.allowed_scopes,
            approved_third_party: r.approved_third_party,
            status: "",
        })?;
        self.write(&r.request_id, RecordOp::ClientRegister(cmd))
            .await
    }

    async fn update(&self, r: v1::ClientRequest) -> Result<v1::ClientResponse, NodeError> {
        let status = optional_enum_text!("status", r.status, v1::ClientStatus, "CLIENT_STATUS_")?;
        let cmd = ClientUpdate::parse(&ClientInput {
            client_id: &r.client_id,
            org: &r.org,
            public_keys: &r.public_keys,
            allowed_scopes: &r.allowed_scopes,
            approved_third_party: r.approved_third_party,
            status: &status,
        })?;
        self.write(&r.request_id, RecordOp::ClientUpdate(cmd)).await
    }

    async fn get(&self, r: v1::GetClientRequest) -> Result<v1::ClientResponse, NodeError> {
        let id = ClientId::parse("client_id", &r.client_id)?;
        let mode = read_mode(r.read.as_ref())?;
        self.ctx.prepare_read(mode).await?;
        let found = self.ctx.reader.client_record(&id)?;
        let Some(client) = found.value else {
            return Err(kartotek_domain::ApplyError::NotFound(format!("client {id}")).into());
        };
        Ok(v1::ClientResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            client: Some(convert::client(&client)),
            changed: false,
        })
    }

    async fn list(&self, r: v1::ListClientsRequest) -> Result<v1::ListClientsResponse, NodeError> {
        let org = if r.org.is_empty() {
            None
        } else {
            Some(parse_org_number("org", &r.org)?)
        };
        let mode = read_mode(r.read.as_ref())?;
        self.ctx.prepare_read(mode).await?;
        let found = self.ctx.reader.client_records(org.as_ref())?;
        Ok(v1::ListClientsResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            clients: found.value.iter().map(convert::client).collect(),
        })
    }
}

#[tonic::async_trait]
impl ClientRegistryService for ClientRegistryServiceImpl {
    async fn register(
        &self,
        request: Request<v1::ClientRequest>,
    ) -> Result<Response<v1::ClientResponse>, Status> {
        handle!(self, "Client/Register", request, register)
    }

    async fn update(
        &self,
        request: Request<v1::ClientRequest>,
    ) -> Result<Response<v1::ClientResponse>, Status> {
        handle!(self, "Client/Update", request, update)
    }

    async fn get(
        &self,
        request: Request<v1::GetClientRequest>,
    ) -> Result<Response<v1::ClientResponse>, Status> {
        handle!(self, "Client/Get", request, get)
    }

    async fn list(
        &self,
        request: Request<v1::ListClientsRequest>,
    ) -> Result<Response<v1::ListClientsResponse>, Status> {
        handle!(self, "Client/List", request, list)
    }
}
