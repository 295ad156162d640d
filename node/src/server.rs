//! Starting and stopping one node: storage, Raft, the gRPC server (public API and Raft
//! transport on one port) and the metrics endpoint.

use std::sync::Arc;
use std::time::Duration;

use kartotek_proto::raft::v1::raft_service_server::RaftServiceServer;
use kartotek_proto::v1::admin_service_server::AdminServiceServer;
use kartotek_proto::v1::audit_service_server::AuditServiceServer;
use kartotek_proto::v1::locator_service_server::LocatorServiceServer;

use crate::audit_service::AuditServiceImpl;
use kartotek_storage::{StateMachineConfig, Store, StoreConfig};
use openraft::Raft;
use tokio::sync::Semaphore;

use crate::admin_service::AdminServiceImpl;
use crate::config::NodeConfig;
use crate::context::NodeContext;
use crate::locator_service::LocatorServiceImpl;
use crate::metrics::{self, Metrics};
use crate::peers::Peers;
use crate::proposer::{Proposer, ProposerLimits};
use crate::raft_network::NetworkFactory;
use crate::raft_service::RaftServiceImpl;
use crate::read_barrier::ReadBarrier;
use crate::staleness::StalenessTracker;

/// Largest Raft transport message (a batch of entries or a snapshot chunk).
pub const RAFT_MESSAGE_BYTES_MAX: usize = 256 << 20;

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration rejected.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Storage could not be opened.
    #[error("opening storage in {path}: {source}")]
    Storage {
        /// The data directory.
        path: String,
        /// Why.
        source: kartotek_storage::StoreError,
    },
    /// Raft could not start.
    #[error("starting raft: {0}")]
    Raft(String),
    /// A listener could not be bound or the server failed.
    #[error("serving: {0}")]
    Serve(String),
}

/// Runs a node until `shutdown` resolves, then stops Raft and the servers.
pub async fn run_node(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    config.validate()?;
    if config.testing.any_unsafe() {
        tracing::error!(
            testing = ?config.testing,
            "UNSAFE TEST MODE: this node breaks its guarantees on purpose (fault-harness self-check); never use it in production"
        );
    }
    let raft_config = Arc::new(config.openraft()?);
    let store = Store::open(
        &config.data_dir,
        StoreConfig {
            block_cache_bytes: usize::try_from(config.storage.block_cache_bytes)
                .unwrap_or(usize::MAX),
            state_machine: StateMachineConfig {
                dedup_ttl_ms: i64::try_from(config.storage.dedup_ttl_ms).unwrap_or(i64::MAX),
                dedup_entries_max: config.storage.dedup_entries_max,
                change_history_max: config.storage.change_history_max,
                ..StateMachineConfig::default()
            },
        },
    )
    .map_err(|source| StartError::Storage {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let resolved = config.raft.resolve();
    let peers = Peers::new(Duration::from_millis(resolved.rpc_timeout_ms));
    let network = NetworkFactory::new(
        peers.clone(),
        config.cluster_name.clone(),
        usize::try_from(resolved.append_bytes_max).unwrap_or(usize::MAX),
    );
    let raft = Raft::new(
        config.node_id,
        raft_config,
        network,
        store.log,
        store.state_machine,
    )
    .await
    .map_err(|e| StartError::Raft(e.to_string()))?;

    let metrics = Metrics::new().with_raft(raft.clone(), store.stats.clone());
    let read_timeout = Duration::from_millis(config.api.read_timeout_ms);
    let barrier = ReadBarrier::start(
        raft.clone(),
        usize::try_from(config.api.reads_per_round_max).unwrap_or(4096),
        read_timeout,
        metrics.clone(),
    );
    let staleness = StalenessTracker::new(
        raft.clone(),
        barrier.clone(),
        peers.clone(),
        config.cluster_name.clone(),
        config.node_id,
        Duration::from_millis(resolved.rpc_timeout_ms),
    );
    let config = Arc::new(config);
    let ctx = NodeContext {
        config: config.clone(),
        raft: raft.clone(),
        reader: store.reader.clone(),
        barrier: barrier.clone(),
        staleness,
        metrics: metrics.clone(),
        inflight: Arc::new(Semaphore::new(
            usize::try_from(config.api.concurrent_requests_max).unwrap_or(4096),
        )),
        watches: Arc::new(Semaphore::new(
            usize::try_from(config.api.watches_max).unwrap_or(usize::MAX),
        )),
        peers: peers.clone(),
        outbox: store.outbox.clone(),
        proposer: Proposer::start(
            raft.clone(),
            ProposerLimits {
                queue_len_max: usize::try_from(config.api.concurrent_requests_max).unwrap_or(4096),
                proposals_in_flight_max: usize::try_from(config.api.proposals_in_flight_max)
                    .unwrap_or(4),
                proposal_items_max: usize::try_from(config.api.proposal_items_max).unwrap_or(512),
                proposal_bytes_max: usize::try_from(config.api.proposal_bytes_max)
                    .unwrap_or(1 << 20),
            },
        ),
    };

    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| StartError::Serve(format!("metrics on {addr}: {e}")))?;
        let app = metrics::router(metrics.clone(), raft.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
    }

    let request_max = usize::try_from(config.api.request_size_bytes_max).unwrap_or(1 << 20);
    let raft_svc = RaftServiceServer::new(RaftServiceImpl::new(
        raft.clone(),
        config.node_id,
        config.cluster_name.clone(),
        barrier,
    ))
    .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
    .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
    let locator_svc = LocatorServiceServer::new(LocatorServiceImpl::new(ctx.clone()))
        .max_decoding_message_size(request_max);
    let admin_svc = AdminServiceServer::new(AdminServiceImpl::new(ctx.clone()))
        .max_decoding_message_size(request_max);
    crate::audit_service::spawn_retention(ctx.clone());
    crate::audit_service::spawn_outbox_shipper(ctx.clone());
    let audit_svc = AuditServiceServer::new(AuditServiceImpl::new(ctx.clone()))
        .max_decoding_message_size(request_max);
    // grpc.health.v1: SERVING once the node serves (per service and overall "").
    let (health_reporter, health_svc) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<LocatorServiceServer<LocatorServiceImpl>>()
        .await;
    health_reporter
        .set_serving::<AuditServiceServer<AuditServiceImpl>>()
        .await;
    let reflection_svc = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kartotek_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Serve(format!("reflection: {e}")))?;

    tracing::info!(
        node_id = config.node_id,
        listen = %config.listen_addr,
        advertise = %config.advertise(),
        data_dir = %config.data_dir.display(),
        "node starting"
    );
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|e| StartError::Serve(format!("gRPC on {}: {e}", config.listen_addr)))?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let router = tonic::transport::Server::builder()
        .add_service(raft_svc)
        .add_service(locator_svc)
        .add_service(admin_svc)
        .add_service(audit_svc)
        .add_service(health_svc)
        .add_service(reflection_svc);
    let served = crate::records::add_services(router, &ctx, request_max, &health_reporter)
        .await
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    tracing::info!("node stopping");
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    served.map_err(|e| StartError::Serve(e.to_string()))
}
