//! Prometheus metrics of a node, named `kartotek_<subsystem>_<what>_<unit>`, and the small HTTP
//! endpoint that serves them with `/healthz` and `/readyz`.
//!
//! API and read-path metrics are updated as requests run; Raft and storage figures are read
//! from openraft's metrics, the storage counters, RocksDB's statistics and the data dir's
//! file system when scraped (a [`Collector`]), so the hot path pays nothing for them. The
//! Raft transport counts append timeouts and snapshot sends per target, the proposer the
//! proposals per log entry, and a task watching openraft's metrics the leader changes.
//! Every metric is listed, with what an operator reads from it, in `deploy/README.md`
//! (`deploy/grafana/` and `deploy/prometheus/` use them; a test checks they exist).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use kartotek_storage::db::EngineStats;
use kartotek_storage::{StorageStats, TypeConfig};
use openraft::Raft;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `Service/Method`.
    pub method: String,
    /// gRPC status code name.
    pub code: String,
}

/// Labels of a Raft transport figure: the peer it is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The peer's node id.
    pub target: String,
}

impl PeerLabels {
    /// The labels of node `id`.
    pub fn of(id: u64) -> Self {
        PeerLabels {
            target: id.to_string(),
        }
    }
}

/// The node's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Requests by method and result code.
    pub requests_total: Family<RequestLabels, Counter>,
    /// Request latency by method and result code.
    pub request_duration_seconds: Family<RequestLabels, Histogram>,
    /// AppendEntries RPCs that timed out, by target.
    pub append_timeouts_total: Family<PeerLabels, Counter>,
    /// Snapshot chunks sent, by target.
    pub snapshot_chunks_sent_total: Family<PeerLabels, Counter>,
    /// Snapshots sent whole (the last chunk acknowledged), by target.
    pub snapshots_sent_total: Family<PeerLabels, Counter>,
    /// Client writes (proposals) per Raft log entry the proposer made.
    pub entry_proposals: Histogram,
    /// Times this node saw a new leader (a new term with a known leader, or another leader).
    pub leader_changes_total: Counter,
    /// Leadership confirmation rounds for linearizable reads.
    pub read_rounds_total: Counter,
    /// Reads served by those rounds (reads / rounds = coalescing factor).
    pub reads_coalesced_total: Counter,
    /// Locator entries committed by bulk import.
    pub import_entries_total: Counter,
    /// Consents stored as expired by this node's expiry sweeps (as leader).
    pub consents_expired_total: Counter,
    /// AppendEntries refused for entries stamped ahead of this node's clock.
    pub future_stamps_refused_total: Counter,
    /// Synced audit-journal writes (each a group of concurrent appends).
    pub audit_journal_writes_total: Counter,
    /// Events written to the audit journal.
    pub audit_journal_events_total: Counter,
    /// Events waiting in the journal for the chain.
    pub audit_journal_events: Gauge,
    /// Age of the oldest waiting journal event, ms.
    pub audit_journal_age_ms: Gauge,
    /// Journal events this node's shipper got chained.
    pub audit_shipped_events_total: Counter,
    /// Journal seqs found missing in the chain when shipping.
    pub audit_ship_gaps_total: Counter,
    /// 1 while this node refuses client writes for lack of disk space ([`crate::disk`]).
    pub read_only: Gauge,
}

struct RaftCollector {
    raft: Raft<TypeConfig>,
    stats: Arc<StorageStats>,
    engine: EngineStats,
    data_dir: PathBuf,
}

/// Openraft's figures at a scrape.
struct RaftFigures {
    term: i64,
    last_log: u64,
    applied: u64,
    leader: bool,
    has_leader: bool,
    snapshot: u64,
    /// On the leader: entries not yet matched on a majority of voters.
    commit_lag: u64,
    /// On the leader: per follower, entries it has not matched.
    replication_lag: Vec<(u64, u64)>,
}

impl RaftFigures {
    fn of(raft: &Raft<TypeConfig>) -> Self {
        let m = raft.metrics();
        let m = m.borrow();
        let last_log = m.last_log_index.unwrap_or(0);
        let mut commit_lag = 0;
        let mut replication_lag = Vec::new();
        if let Some(replication) = &m.replication {
            let matched = |id: &u64| {
                if *id == m.id {
                    last_log
                } else {
                    replication
                        .get(id)
                        .and_then(|l| l.as_ref().map(|l| l.index))
                        .unwrap_or(0)
                }
            };
            let mut voters: Vec<u64> = m
                .membership_config
                .membership()
                .voter_ids()
                .map(|id| matched(&id))
                .collect();
            voters.sort_unstable_by(|a, b| b.cmp(a));
            if let Some(quorum) = voters.get(voters.len() / 2) {
                commit_lag = last_log.saturating_sub(*quorum);
            }
            replication_lag = replication
                .keys()
                .filter(|id| **id != m.id)
                .map(|id| (*id, last_log.saturating_sub(matched(id))))
                .collect();
        }
        RaftFigures {
            term: m.current_term as i64,
            last_log,
            applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            leader: m.current_leader == Some(m.id),
            has_leader: m.current_leader.is_some(),
            snapshot: m.snapshot.map(|l| l.index).unwrap_or(0),
            commit_lag,
            replication_lag,
        }
    }
}

/// A histogram of figures kept elsewhere (the storage's WAL fsyncs), encoded at a scrape.
struct ConstHistogram {
    sum: f64,
    count: u64,
    /// `(upper bound, count in that bucket alone)`, the last one `f64::MAX` (`+Inf`).
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(
            self.sum,
            self.count,
            &self.buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Encodes one unlabelled metric.
fn encode_one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Free and total bytes of the file system holding `dir` (`None` if it cannot be read).
fn file_system_bytes(dir: &std::path::Path) -> Option<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let block = (s.fragment_size() as u64).max(1);
    Some((
        (s.blocks_available() as u64).saturating_mul(block),
        (s.blocks() as u64).saturating_mul(block),
    ))
}

impl std::fmt::Debug for RaftCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftCollector")
    }
}

impl Collector for RaftCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = RaftFigures::of(&self.raft);
        let gauges = [
            ("kartotek_raft_term", "Current Raft term", r.term),
            (
                "kartotek_raft_last_log_index",
                "Last log index",
                r.last_log as i64,
            ),
            (
                "kartotek_raft_applied_index",
                "Last applied log index",
                r.applied as i64,
            ),
            (
                "kartotek_raft_is_leader",
                "1 if this node is the leader",
                i64::from(r.leader),
            ),
            (
                "kartotek_raft_has_leader",
                "1 if this node knows a leader (0: an election, or cut off from the quorum)",
                i64::from(r.has_leader),
            ),
            (
                "kartotek_raft_snapshot_index",
                "Log index of the latest snapshot",
                r.snapshot as i64,
            ),
            (
                "kartotek_raft_commit_lag_entries",
                "On the leader: log entries appended but not yet on a majority of voters (0 on other nodes)",
                r.commit_lag as i64,
            ),
            (
                "kartotek_raft_apply_lag_entries",
                "Log entries in this node's log not yet applied to its state machine",
                r.last_log.saturating_sub(r.applied) as i64,
            ),
        ];
        for (name, help, v) in gauges {
            encode_one(&mut encoder, name, help, &ConstGauge::new(v))?;
        }
        {
            let mut family = encoder.encode_descriptor(
                "kartotek_raft_replication_lag_entries",
                "On the leader: log entries a follower or learner has not matched, by target",
                None,
                MetricType::Gauge,
            )?;
            for (target, lag) in &r.replication_lag {
                ConstGauge::new(*lag as i64)
                    .encode(family.encode_family(&PeerLabels::of(*target))?)?;
            }
        }
        let s = &self.stats;
        let counters = [
            (
                "kartotek_storage_append_batches",
                "Log append WriteBatches",
                &s.append_batches_total,
            ),
            (
                "kartotek_storage_appended_entries",
                "Log entries appended",
                &s.appended_entries_total,
            ),
            (
                "kartotek_storage_wal_syncs",
                "WAL fsyncs (each covers a group of appends)",
                &s.wal_syncs_total,
            ),
            (
                "kartotek_storage_wal_sync_micros",
                "Time spent in WAL fsync, microseconds",
                &s.wal_sync_micros_total,
            ),
            (
                "kartotek_storage_applied_entries",
                "Entries applied to the state machine",
                &s.applied_entries_total,
            ),
            (
                "kartotek_storage_deduplicated_writes",
                "Writes answered from the dedup table",
                &s.deduplicated_total,
            ),
            (
                "kartotek_storage_snapshots_built",
                "Snapshots built",
                &s.snapshots_built_total,
            ),
            (
                "kartotek_storage_snapshots_installed",
                "Snapshots installed",
                &s.snapshots_installed_total,
            ),
        ];
        for (name, help, c) in counters {
            encode_one(
                &mut encoder,
                name,
                help,
                &ConstCounter::new(StorageStats::get(c)),
            )?;
        }
        encode_one(
            &mut encoder,
            "kartotek_storage_wal_sync_duration_seconds",
            "WAL fsync latency (each fsync covers a group of appends)",
            &ConstHistogram {
                sum: StorageStats::get(&s.wal_sync_micros_total) as f64 / 1e6,
                count: StorageStats::get(&s.wal_syncs_total),
                buckets: s.wal_sync_histogram(),
            },
        )?;
        self.encode_engine(&mut encoder)
    }
}

impl RaftCollector {
    /// RocksDB's figures and the data dir's file system.
    fn encode_engine(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = self.engine.figures();
        encode_one(
            encoder,
            "kartotek_storage_write_stall_seconds",
            "Time RocksDB delayed or stopped writes (write stalls: too many L0 files, pending compaction or memtables)",
            &ConstCounter::new(e.stall_micros as f64 / 1e6),
        )?;
        let counters = [
            (
                "kartotek_storage_compaction_read_bytes",
                "Bytes RocksDB compactions read",
                e.compaction_read_bytes,
            ),
            (
                "kartotek_storage_compaction_written_bytes",
                "Bytes RocksDB compactions wrote",
                e.compaction_write_bytes,
            ),
        ];
        for (name, help, v) in counters {
            encode_one(encoder, name, help, &ConstCounter::new(v))?;
        }
        let (free, size) = file_system_bytes(&self.data_dir).unwrap_or((0, 0));
        let gauges = [
            (
                "kartotek_storage_write_stopped",
                "1 while RocksDB stops writes (a write stall at its hardest)",
                u64::from(e.write_stopped),
            ),
            (
                "kartotek_storage_delayed_write_rate_bytes_per_second",
                "The rate RocksDB slows writes to while it delays them (0: not delayed)",
                e.delayed_write_rate_bytes,
            ),
            (
                "kartotek_storage_compaction_pending_bytes",
                "Bytes RocksDB estimates compactions still have to rewrite",
                e.pending_compaction_bytes,
            ),
            (
                "kartotek_storage_data_dir_free_bytes",
                "Bytes free for this node on the file system of its data dir",
                free,
            ),
            (
                "kartotek_storage_data_dir_size_bytes",
                "Size of the file system of the data dir, bytes",
                size,
            ),
        ];
        for (name, help, v) in gauges {
            encode_one(
                encoder,
                name,
                help,
                &ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)),
            )?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Metrics for a node running `raft` over storage with `stats`.
    pub fn new() -> Self {
        let requests_total = Family::<RequestLabels, Counter>::default();
        let request_duration_seconds =
            Family::<RequestLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            });
        let append_timeouts_total = Family::<PeerLabels, Counter>::default();
        let snapshot_chunks_sent_total = Family::<PeerLabels, Counter>::default();
        let snapshots_sent_total = Family::<PeerLabels, Counter>::default();
        // 1, 2, 4, ... 1024 (api.proposal_items_max is at most that).
        let entry_proposals = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        let leader_changes_total = Counter::default();
        let read_rounds_total = Counter::default();
        let reads_coalesced_total = Counter::default();
        let import_entries_total = Counter::default();
        let consents_expired_total = Counter::default();
        let future_stamps_refused_total = Counter::default();
        let audit_journal_writes_total = Counter::default();
        let audit_journal_events_total = Counter::default();
        let audit_journal_events = Gauge::default();
        let audit_journal_age_ms = Gauge::default();
        let audit_shipped_events_total = Counter::default();
        let audit_ship_gaps_total = Counter::default();
        let read_only = Gauge::default();
        let mut registry = Registry::default();
        registry.register(
            "kartotek_storage_read_only",
            "1 while this node refuses client writes because its data disk is below storage.disk_free_bytes_min",
            read_only.clone(),
        );
        registry.register(
            "kartotek_audit_journal_writes",
            "Synced writes of the audit journal (each covers a group of concurrent answers)",
            audit_journal_writes_total.clone(),
        );
        registry.register(
            "kartotek_audit_journal_appended_events",
            "Audit events fsynced in this node's journal",
            audit_journal_events_total.clone(),
        );
        registry.register(
            "kartotek_audit_journal_events",
            "Audit events waiting in this node's journal for the chain",
            audit_journal_events.clone(),
        );
        registry.register(
            "kartotek_audit_journal_age_ms",
            "How long the oldest waiting journal event has waited for the chain, ms",
            audit_journal_age_ms.clone(),
        );
        registry.register(
            "kartotek_audit_shipped_events",
            "Journal events this node's shipper got into the chain",
            audit_shipped_events_total.clone(),
        );
        registry.register(
            "kartotek_audit_ship_gap_events",
            "Journal seqs found missing in the chain while shipping (journal loss or an older restore)",
            audit_ship_gaps_total.clone(),
        );
        registry.register(
            "kartotek_raft_future_stamps_refused",
            "AppendEntries refused because an entry was stamped too far ahead of this node's clock (and the rest of that leader's term)",
            future_stamps_refused_total.clone(),
        );
        registry.register(
            "kartotek_records_consents_expired",
            "Consents stored as expired by this node's expiry sweeps (as leader)",
            consents_expired_total.clone(),
        );
        registry.register(
            "kartotek_locator_imported_entries",
            "Locator entries committed by bulk import (changed or unchanged)",
            import_entries_total.clone(),
        );
        registry.register(
            "kartotek_api_requests",
            "API requests by method and status code",
            requests_total.clone(),
        );
        registry.register(
            "kartotek_api_request_duration_seconds",
            "API request latency by method and status code",
            request_duration_seconds.clone(),
        );
        registry.register(
            "kartotek_raft_append_timeouts",
            "AppendEntries RPCs (heartbeats included) that got no answer within their deadline, by target",
            append_timeouts_total.clone(),
        );
        registry.register(
            "kartotek_raft_snapshot_chunks_sent",
            "Snapshot chunks sent to a follower or learner, by target",
            snapshot_chunks_sent_total.clone(),
        );
        registry.register(
            "kartotek_raft_snapshots_sent",
            "Snapshots sent whole to a follower or learner (last chunk acknowledged), by target",
            snapshots_sent_total.clone(),
        );
        registry.register(
            "kartotek_raft_entry_proposals",
            "Client writes (proposals) per Raft log entry this node proposed as leader (write batching)",
            entry_proposals.clone(),
        );
        registry.register(
            "kartotek_raft_leader_changes",
            "Times this node saw a new leader (a new term with a known leader)",
            leader_changes_total.clone(),
        );
        registry.register(
            "kartotek_read_index_rounds",
            "Leadership confirmation rounds for linearizable reads",
            read_rounds_total.clone(),
        );
        registry.register(
            "kartotek_read_index_reads",
            "Linearizable reads confirmed by those rounds",
            reads_coalesced_total.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            requests_total,
            request_duration_seconds,
            append_timeouts_total,
            snapshot_chunks_sent_total,
            snapshots_sent_total,
            entry_proposals,
            leader_changes_total,
            read_rounds_total,
            reads_coalesced_total,
            import_entries_total,
            consents_expired_total,
            future_stamps_refused_total,
            audit_journal_writes_total,
            audit_journal_events_total,
            audit_journal_events,
            audit_journal_age_ms,
            audit_shipped_events_total,
            audit_ship_gaps_total,
            read_only,
        }
    }

    /// Counts entries committed by a bulk-import batch.
    pub fn import_entries(&self, n: u64) {
        self.import_entries_total.inc_by(n);
    }

    /// Adds the Raft and storage collector (once Raft exists) and starts counting leader
    /// changes. Call before the first clone.
    pub fn with_raft(
        mut self,
        raft: Raft<TypeConfig>,
        stats: Arc<StorageStats>,
        engine: EngineStats,
        data_dir: PathBuf,
    ) -> Self {
        debug_assert_eq!(
            Arc::strong_count(&self.registry),
            1,
            "with_raft before clones"
        );
        spawn_leader_watch(raft.clone(), self.leader_changes_total.clone());
        if let Some(reg) = Arc::get_mut(&mut self.registry) {
            reg.register_collector(Box::new(RaftCollector {
                raft,
                stats,
                engine,
                data_dir,
            }));
        }
        self
    }

    /// Records one finished request.
    pub fn observe(&self, method: &str, code: tonic::Code, seconds: f64) {
        let labels = RequestLabels {
            method: method.to_owned(),
            code: format!("{code:?}"),
        };
        self.request_duration_seconds
            .get_or_create(&labels)
            .observe(seconds);
        self.requests_total.get_or_create(&labels).inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Counts the leader changes this node sees until Raft stops: every new `(term, leader)`
/// with a known leader.
fn spawn_leader_watch(raft: Raft<TypeConfig>, changes: Counter) {
    let mut rx = raft.metrics();
    tokio::spawn(async move {
        let mut last: Option<(u64, u64)> = None;
        loop {
            let now = {
                let m = rx.borrow_and_update();
                m.current_leader.map(|l| (m.current_term, l))
            };
            if now.is_some() && now != last {
                changes.inc();
                last = now;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[derive(Clone)]
struct HttpState {
    metrics: Metrics,
    raft: Raft<TypeConfig>,
}

/// The HTTP router: `/metrics`, `/healthz` (the Raft task runs), `/readyz` (a leader is known;
/// the body says READ-ONLY when the node refuses writes for lack of disk).
pub fn router(metrics: Metrics, raft: Raft<TypeConfig>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HttpState { metrics, raft })
}

async fn serve_metrics(
    State(s): State<HttpState>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    if s.raft.metrics().borrow().running_state.is_ok() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "raft stopped\n")
    }
}

/// Ready while a leader is known. A read-only node (data disk nearly full, [`crate::disk`])
/// stays ready, because it still serves reads and access decisions, but says so in the body for
/// whoever looks (a load balancer only sees the 200).
async fn readyz(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    if s.raft.metrics().borrow().current_leader.is_some() {
        if s.metrics.read_only.get() != 0 {
            (
                StatusCode::OK,
                "ready, READ-ONLY: the data disk is nearly full; writes are refused\n",
            )
        } else {
            (StatusCode::OK, "ready\n")
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no leader known\n")
    }
}
