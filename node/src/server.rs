//! Starting and stopping one node: storage, Raft, the two gRPC servers (the public API on
//! `listen_addr`, the Raft transport on `raft_listen_addr`) and the metrics endpoint.

use std::sync::Arc;
use std::time::Duration;

use kartotek_proto::raft::v1::raft_service_server::RaftServiceServer;
use kartotek_storage::{StateMachineConfig, Store, StoreConfig};
use openraft::Raft;

use crate::api::auth::Authenticator;
use crate::api::layer::Gate;
use crate::config::NodeConfig;
use crate::consistency::read_barrier::ReadBarrier;
use crate::consistency::staleness::StalenessTracker;
use crate::context::{NodeContext, NodeParts};
use crate::metrics::{self, Metrics};
use crate::raft::network::{NetworkFactory, TransportMetrics};
use crate::raft::peers::Peers;
use crate::raft::proposer::{Proposer, ProposerLimits};
use crate::raft::service::{RaftServiceImpl, Upper};
use crate::raft::tls::RaftTls;

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
    let key_file =
        crate::log_hash::install(&config).map_err(|e| StartError::Serve(e.to_string()))?;
    tracing::info!(file = %key_file.display(), "national ids in this log are keyed hashes (log_hash_key_file)");
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
            journal: kartotek_storage::JournalLimits {
                events_max: config.audit.journal_events_max,
                gather: Duration::from_micros(config.audit.journal_gather_us),
                ..kartotek_storage::JournalLimits::default()
            },
            unsafe_unfenced_install_pause: (config.testing.unsafe_unfenced_install_pause_ms > 0)
                .then(|| Duration::from_millis(config.testing.unsafe_unfenced_install_pause_ms)),
        },
    )
    .map_err(|source| StartError::Storage {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let resolved = config.raft.resolve();
    let raft_tls = match &config.tls.raft {
        Some(files) => Some(RaftTls::load(files).map_err(|e| StartError::Serve(e.to_string()))?),
        None => {
            tracing::warn!(
                raft_listen = %config.raft_listen_addr,
                "Raft traffic is PLAINTEXT (no [tls.raft]): fine for a loopback dev cluster, never across hosts"
            );
            None
        }
    };
    let peers = Peers::new(
        Duration::from_millis(resolved.rpc_timeout_ms),
        raft_tls.clone(),
    );
    // Only metric handles are cloned before `with_raft` (which needs the registry alone).
    let metrics = Metrics::new();
    let network = NetworkFactory::new(
        peers.clone(),
        config.cluster_name.clone(),
        usize::try_from(resolved.append_bytes_max).unwrap_or(usize::MAX),
        TransportMetrics {
            append_timeouts: metrics.append_timeouts_total.clone(),
            snapshot_chunks_sent: metrics.snapshot_chunks_sent_total.clone(),
            snapshots_sent: metrics.snapshots_sent_total.clone(),
        },
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

    let metrics = metrics.with_raft(
        raft.clone(),
        store.stats.clone(),
        store.engine,
        config.data_dir.clone(),
    );
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
    let proposer = Proposer::start(
        raft.clone(),
        ProposerLimits {
            queue_len_max: usize::try_from(config.api.concurrent_requests_max).unwrap_or(4096),
            proposals_in_flight_max: usize::try_from(config.api.proposals_in_flight_max)
                .unwrap_or(4),
            proposal_items_max: usize::try_from(config.api.proposal_items_max).unwrap_or(512),
            proposal_bytes_max: usize::try_from(config.api.proposal_bytes_max).unwrap_or(1 << 20),
        },
        metrics.entry_proposals.clone(),
    );
    let ctx = NodeContext::new(NodeParts {
        config: config.clone(),
        raft: raft.clone(),
        reader: store.reader.clone(),
        barrier: barrier.clone(),
        staleness,
        metrics: metrics.clone(),
        proposer,
        peers: peers.clone(),
        journal: store.journal.clone(),
    });

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
    let upper = Upper {
        read_index: Arc::new(barrier),
        audit: Arc::new(ctx.clone()),
    };
    let raft_svc = RaftServiceServer::new(RaftServiceImpl::new(
        raft.clone(),
        config.node_id,
        config.cluster_name.clone(),
        upper,
        crate::raft::stamps::StampGuard::new(
            resolved.stamp_ahead_ms_max,
            metrics.future_stamps_refused_total.clone(),
        ),
    ))
    .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
    .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
    crate::disk::spawn(
        ctx.disk().clone(),
        metrics.clone(),
        std::time::Duration::from_millis(config.storage.disk_check_interval_ms),
    );
    crate::audit::spawn_retention(ctx.clone());
    crate::audit::spawn_shipper(ctx.clone());
    crate::sweep::spawn_consent_sweep(ctx.clone());
    crate::sweep::spawn_token_id_sweep(ctx.clone());
    let ledger = ctx.clone();
    let auth = Authenticator::from_settings(&config.auth)
        .map_err(|e| StartError::Serve(e.to_string()))?
        .with_revocations(Arc::new(move |client: &str, jti: &str| {
            crate::api::records::token_ids::is_revoked(&ledger, client, jti)
        }));
    if !auth.required() {
        tracing::warn!(
            "auth.required is off: callers are NOT authenticated (the audit names what their headers say)"
        );
    }
    spawn_jwks_reload(auth.clone(), config.auth.jwks_reload_interval_ms);
    let stopping = ctx.clone();
    let gate = Gate::new(ctx, auth);
    // grpc.health.v1: SERVING once the node serves (per service, set by `add_services`, and
    // overall "").
    let (health_reporter, health_svc) = tonic_health::server::health_reporter();
    // Server reflection in both versions: `v1` and `v1alpha` (older grpcurl, Python's
    // grpcio-reflection and several GUI clients speak only `v1alpha`).
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kartotek_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Serve(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kartotek_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| StartError::Serve(format!("reflection: {e}")))?;

    tracing::info!(
        node_id = config.node_id,
        listen = %config.listen_addr,
        advertise = %config.advertise(),
        raft_listen = %config.raft_listen_addr,
        raft_advertise = %config.raft_advertise(),
        data_dir = %config.data_dir.display(),
        "node starting"
    );
    let incoming = bind(config.listen_addr, "gRPC").await?;
    let raft_incoming = bind(config.raft_listen_addr, "Raft").await?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let mut raft_builder = tonic::transport::Server::builder();
    if let Some(tls) = &raft_tls {
        raft_builder = raft_builder
            .tls_config(tls.server())
            .map_err(|e| StartError::Serve(format!("tls.raft: {e}")))?;
    }
    let raft_server = tokio::spawn(async move {
        raft_builder
            .add_service(raft_svc)
            .serve_with_incoming_shutdown(raft_incoming, async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            })
            .await
    });
    let mut api_builder = tonic::transport::Server::builder();
    match &config.tls.api {
        Some(files) => {
            let tls = crate::raft::tls::api_server(files)
                .map_err(|e| StartError::Serve(e.to_string()))?;
            api_builder = api_builder
                .tls_config(tls)
                .map_err(|e| StartError::Serve(format!("tls.api: {e}")))?;
        }
        None => tracing::warn!(
            listen = %config.listen_addr,
            "the public API is PLAINTEXT (no [tls.api]): tokens and patient data cross the network in the clear"
        ),
    }
    let router = api_builder
        .add_service(health_svc)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let served = crate::api::add_services(router, &gate, request_max, &health_reporter)
        .await
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    tracing::info!("node stopping");
    // No request is served any more: ship what the journal holds while Raft still runs.
    stopping.drain_on_stop().await;
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    let _ = stop_tx.send(true);
    match raft_server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "raft listener"),
        Err(e) => tracing::warn!(error = %e, "raft listener task"),
    }
    served.map_err(|e| StartError::Serve(e.to_string()))
}

/// Binds `addr` for the `what` server (Nagle off: Raft and reads are latency-bound).
async fn bind(
    addr: std::net::SocketAddr,
    what: &str,
) -> Result<tonic::transport::server::TcpIncoming, StartError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Serve(format!("{what} on {addr}: {e}")))?;
    Ok(tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)))
}

/// Checks the trusted issuers' JWK Set files every `interval_ms` (0: never) and takes new
/// keys in when one changed; a file that does not parse is logged and the old keys stay.
fn spawn_jwks_reload(auth: Authenticator, interval_ms: u64) {
    if interval_ms == 0 || !auth.required() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match auth.reload_if_changed() {
                Ok(true) => tracing::info!("trusted issuers' keys re-read (a jwks_file changed)"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "a jwks_file changed but cannot be used; the previous keys stay in use")
                }
            }
        }
    });
}
