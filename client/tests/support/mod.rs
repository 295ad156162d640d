//! In-process fake Kartotek node for the client's integration tests.
//!
//! [`FakeNode`] serves `LocatorService` and `AdminService` on a loopback port, records every
//! request it receives ([`Seen`]) and answers as a test script says ([`Reply`]).

#![allow(dead_code)] // Each test binary uses a different part of the fake.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kartotek_client::proto::{
    self, AddLearnerRequest, InitRequest, InitResponse, LookupLocatorRequest,
    LookupLocatorResponse, MembershipResponse, NodeStatus, PromoteRequest, RegisterLocatorRequest,
    RegisterLocatorResponse, RemoveRequest, ResponseHeader, RetireLocatorRequest,
    RetireLocatorResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
    admin_service_server::AdminService, admin_service_server::AdminServiceServer,
    locator_service_server::LocatorService, locator_service_server::LocatorServiceServer,
};
use kartotek_proto::{FIELD_HEADER, LEADER_ADDR_HEADER, LEADER_ID_HEADER, REQUEST_ID_HEADER};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::metadata::MetadataMap;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

/// One request as the fake node saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// RPC name, e.g. `register`, `lookup`, `status`.
    pub method: &'static str,
    /// `request_id` from the body (empty for calls without one).
    pub request_id: String,
    /// `x-request-id` metadata.
    pub header_request_id: Option<String>,
    /// `authorization` metadata.
    pub authorization: Option<String>,
    /// `read.consistency` of a lookup (0 otherwise).
    pub consistency: i32,
}

/// How the fake answers one request.
pub enum Reply {
    /// A default success answer.
    Ok,
    /// This error status.
    Fail(Status),
    /// Wait, then succeed (unless the call is cancelled first).
    Delay(Duration),
}

/// Decides the answer to the `n`-th request (0-based, over all methods) of a node.
pub type Script = Arc<dyn Fn(usize, &Seen) -> Reply + Send + Sync>;

#[derive(Clone)]
struct FakeService {
    node_id: u64,
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

impl FakeService {
    async fn handle(
        &self,
        method: &'static str,
        metadata: &MetadataMap,
        request_id: &str,
        consistency: i32,
    ) -> Result<(), Status> {
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let seen = Seen {
            method,
            request_id: request_id.to_owned(),
            header_request_id: text(REQUEST_ID_HEADER),
            authorization: text("authorization"),
            consistency,
        };
        let n = {
            let mut all = self.seen.lock().expect("seen lock");
            all.push(seen.clone());
            all.len() - 1
        };
        match (self.script)(n, &seen) {
            Reply::Ok => Ok(()),
            Reply::Fail(status) => Err(status),
            Reply::Delay(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }

    fn header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            revision: 1,
            node_id: self.node_id,
            raft_term: 1,
            applied_index: 1,
        })
    }
}

#[tonic::async_trait]
impl LocatorService for FakeService {
    async fn register(
        &self,
        request: Request<RegisterLocatorRequest>,
    ) -> Result<Response<RegisterLocatorResponse>, Status> {
        let id = request.get_ref().request_id.clone();
        self.handle("register", request.metadata(), &id, 0).await?;
        Ok(Response::new(RegisterLocatorResponse {
            header: self.header(),
            entry: None,
            changed: true,
        }))
    }

    async fn retire(
        &self,
        request: Request<RetireLocatorRequest>,
    ) -> Result<Response<RetireLocatorResponse>, Status> {
        let id = request.get_ref().request_id.clone();
        self.handle("retire", request.metadata(), &id, 0).await?;
        Ok(Response::new(RetireLocatorResponse {
            header: self.header(),
            entry: None,
            changed: true,
        }))
    }

    async fn lookup(
        &self,
        request: Request<LookupLocatorRequest>,
    ) -> Result<Response<LookupLocatorResponse>, Status> {
        let consistency = request.get_ref().read.as_ref().map_or(0, |r| r.consistency);
        self.handle("lookup", request.metadata(), "", consistency)
            .await?;
        Ok(Response::new(LookupLocatorResponse {
            header: self.header(),
            entries: vec![],
        }))
    }

    async fn list(
        &self,
        _request: Request<proto::ListLocatorsRequest>,
    ) -> Result<Response<proto::ListLocatorsResponse>, Status> {
        Err(Status::unimplemented("the fake node does not list"))
    }

    type ImportStream = tokio_stream::Empty<Result<proto::ImportLocatorsResponse, Status>>;

    async fn import(
        &self,
        _request: Request<tonic::Streaming<proto::ImportLocatorsRequest>>,
    ) -> Result<Response<Self::ImportStream>, Status> {
        Err(Status::unimplemented("the fake node does not import"))
    }

    type WatchStream = tokio_stream::Empty<Result<proto::WatchLocatorsResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<proto::WatchLocatorsRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("the fake node does not watch"))
    }
}

#[tonic::async_trait]
impl AdminService for FakeService {
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        self.handle("status", request.metadata(), "", 0).await?;
        Ok(Response::new(NodeStatus {
            node_id: self.node_id,
            addr: self.addr.clone(),
            role: "follower".into(),
            ..Default::default()
        }))
    }

    async fn init(&self, request: Request<InitRequest>) -> Result<Response<InitResponse>, Status> {
        self.handle("init", request.metadata(), "", 0).await?;
        Ok(Response::new(InitResponse {
            members: request.into_inner().members,
        }))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.handle("add_learner", request.metadata(), "", 0)
            .await?;
        Ok(Response::new(MembershipResponse::default()))
    }

    async fn promote(
        &self,
        request: Request<PromoteRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.handle("promote", request.metadata(), "", 0).await?;
        Ok(Response::new(MembershipResponse {
            members: vec![proto::Member {
                node_id: request.get_ref().node_id,
                addr: String::new(),
                voter: true,
                raft_addr: String::new(),
            }],
            log_index: 7,
        }))
    }

    async fn remove(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.handle("remove", request.metadata(), "", 0).await?;
        Ok(Response::new(MembershipResponse::default()))
    }

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        self.handle("snapshot", request.metadata(), "", 0).await?;
        Ok(Response::new(SnapshotResponse {
            snapshot_index: Some(42),
        }))
    }

    type BackupStream = tokio_stream::Empty<Result<proto::BackupChunk, Status>>;

    async fn backup(
        &self,
        _request: Request<proto::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        Err(Status::unimplemented("the fake node does not back up"))
    }
}

/// A fake node serving on a loopback port until dropped.
pub struct FakeNode {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl FakeNode {
    /// Starts a node on a fresh loopback port.
    pub async fn start(
        node_id: u64,
        script: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(node_id, listener, Arc::new(script))
    }

    /// Starts a node on `addr` (a port reserved earlier).
    pub async fn start_on(
        addr: SocketAddr,
        node_id: u64,
        script: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind reserved port");
        Self::serve(node_id, listener, Arc::new(script))
    }

    /// A node that answers every request successfully.
    pub async fn healthy(node_id: u64) -> Self {
        Self::start(node_id, |_, _| Reply::Ok).await
    }

    fn serve(node_id: u64, listener: TcpListener, script: Script) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let service = FakeService {
            node_id,
            addr: addr.to_string(),
            seen: seen.clone(),
            script,
        };
        let (tx, rx) = oneshot::channel::<()>();
        let incoming = TcpIncoming::from(listener);
        tokio::spawn(async move {
            let _ = Server::builder()
                .add_service(LocatorServiceServer::new(service.clone()))
                .add_service(AdminServiceServer::new(service))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            seen,
            shutdown: Some(tx),
        }
    }

    /// `127.0.0.1:port`, as a leader hint would name it.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:port`, as the client names it.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// Number of requests received so far.
    pub fn calls(&self) -> usize {
        self.seen.lock().expect("seen lock").len()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A loopback address nothing listens on (the port was bound, then released).
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// "Not the leader": Unavailable, with the leader hint when `leader` is given.
pub fn not_leader(leader: Option<(u64, &str)>) -> Status {
    let mut metadata = MetadataMap::new();
    if let Some((id, addr)) = leader {
        metadata.insert(LEADER_ID_HEADER, id.to_string().parse().expect("ascii"));
        metadata.insert(LEADER_ADDR_HEADER, addr.parse().expect("ascii"));
    }
    Status::with_metadata(Code::Unavailable, "not the leader", metadata)
}

/// InvalidArgument naming `field` in `x-kartotek-field`.
pub fn invalid(field: &str) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(FIELD_HEADER, field.parse().expect("ascii"));
    Status::with_metadata(
        Code::InvalidArgument,
        format!("{field}: must be 11 digits"),
        metadata,
    )
}
