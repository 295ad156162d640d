//! `kartotek.v1.ClientRegistryService`: the token-issuance clients (register, update, get,
//! list): client id, organisation, public JWKs, allowed scopes. Holds no patient data.

use kartotek_domain::locator::parse_org_number;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{ClientId, ClientInput, ClientRegister, ClientUpdate};
use kartotek_proto::v1;
use kartotek_proto::v1::client_registry_service_server::ClientRegistryService;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::{self, optional_enum_text};
use super::{unexpected, write_record};
use crate::api::layer::{Call, Gate};
use crate::api::paging::{ListPage, PageRequest};
use crate::api::{methods, read_mode};
use crate::error::NodeError;

/// The token-issuance client registry of one node.
pub struct ClientRegistryServiceImpl {
    gate: Gate,
}

impl ClientRegistryServiceImpl {
    /// Serves client-registry requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        ClientRegistryServiceImpl { gate }
    }
}

async fn write(
    call: &Call,
    request_id: &str,
    op: RecordOp,
) -> Result<v1::ClientResponse, NodeError> {
    let span = tracing::info_span!("client.write", op = op.name(), request_id = %request_id);
    let (outcome, revision) = write_record(call, request_id, op).instrument(span).await?;
    let RecordOutcome::Client { client, changed } = outcome else {
        return Err(unexpected(&outcome));
    };
    Ok(v1::ClientResponse {
        header: Some(call.write_header(revision)?),
        client: Some(convert::client(&client)),
        changed,
    })
}

async fn register(call: Call, r: v1::ClientRequest) -> Result<v1::ClientResponse, NodeError> {
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
    write(&call, &r.request_id, RecordOp::ClientRegister(cmd)).await
}

async fn update(call: Call, r: v1::ClientRequest) -> Result<v1::ClientResponse, NodeError> {
    let status = optional_enum_text!("status", r.status, v1::ClientStatus, "CLIENT_STATUS_")?;
    let cmd = ClientUpdate::parse(&ClientInput {
        client_id: &r.client_id,
        org: &r.org,
        public_keys: &r.public_keys,
        allowed_scopes: &r.allowed_scopes,
        approved_third_party: r.approved_third_party,
        status: &status,
    })?;
    write(&call, &r.request_id, RecordOp::ClientUpdate(cmd)).await
}

async fn get(call: Call, r: v1::GetClientRequest) -> Result<v1::ClientResponse, NodeError> {
    let id = ClientId::parse("client_id", &r.client_id)?;
    let mode = read_mode(r.read.as_ref())?;
    let found = call.read(mode, vec![]).await?.client_record(&id)?;
    let Some(client) = found.value else {
        return Err(kartotek_domain::ApplyError::NotFound(format!("client {id}")).into());
    };
    Ok(v1::ClientResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        client: Some(convert::client(&client)),
        changed: false,
    })
}

async fn list(call: Call, r: v1::ListClientsRequest) -> Result<v1::ListClientsResponse, NodeError> {
    let org = if r.org.is_empty() {
        None
    } else {
        Some(parse_org_number("org", &r.org)?)
    };
    let paging = ListPage::of(
        PageRequest::parse(r.page_size, &r.page_token)?,
        "client.list",
        &[&r.org],
    )?;
    let mode = read_mode(r.read.as_ref())?;
    let found = call
        .read(mode, vec![])
        .await?
        .client_records(org.as_ref())?;
    let page = paging.page(&found.value, |c| c.client_id.as_str().as_bytes().to_vec());
    Ok(v1::ListClientsResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        clients: page.items.into_iter().map(convert::client).collect(),
        next_page_token: page.next_page_token,
    })
}

#[tonic::async_trait]
impl ClientRegistryService for ClientRegistryServiceImpl {
    async fn register(
        &self,
        request: Request<v1::ClientRequest>,
    ) -> Result<Response<v1::ClientResponse>, Status> {
        self.gate
            .unary(&methods::CLIENT_REGISTER, request, register)
            .await
    }

    async fn update(
        &self,
        request: Request<v1::ClientRequest>,
    ) -> Result<Response<v1::ClientResponse>, Status> {
        self.gate
            .unary(&methods::CLIENT_UPDATE, request, update)
            .await
    }

    async fn get(
        &self,
        request: Request<v1::GetClientRequest>,
    ) -> Result<Response<v1::ClientResponse>, Status> {
        self.gate.unary(&methods::CLIENT_GET, request, get).await
    }

    async fn list(
        &self,
        request: Request<v1::ListClientsRequest>,
    ) -> Result<Response<v1::ListClientsResponse>, Status> {
        self.gate.unary(&methods::CLIENT_LIST, request, list).await
    }
}
