//! Prometheus metrics of a node, named `kartotek_<subsystem>_<what>_<unit>`, and the small HTTP
//! endpoint that serves them with `/healthz` and `/readyz`.
//!
//! API and read-path metrics are updated as requests run; Raft and storage figures are read
//! from openraft's metrics and the storage counters when scraped (a [`Collector`]), so the hot
//! path pays nothing for them.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use kartotek_storage::{StorageStats, TypeConfig};
use openraft::Raft;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
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

/// Labels of an API latency observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// `Service/Method`.
    pub method: String,
}

/// The node's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Requests by method and result code.
    pub requests_total: Family<RequestLabels, Counter>,
    /// Request latency by method.
    pub request_duration_seconds: Family<MethodLabels, Histogram>,
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
}

struct RaftCollector {
    raft: Raft<TypeConfig>,
    stats: Arc<StorageStats>,
}

impl std::fmt::Debug for RaftCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftCollector")
    }
}

impl Collector for RaftCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (term, last_log, applied, leader, snapshot) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (
                m.current_term as i64,
                m.last_log_index.unwrap_or(0) as i64,
                m.last_applied.map(|l| l.index).unwrap_or(0) as i64,
                i64::from(m.current_leader == Some(m.id)),
                m.snapshot.map(|l| l.index).unwrap_or(0) as i64,
            )
        };
        let gauges = [
            ("kartotek_raft_term", "Current Raft term", term),
            ("kartotek_raft_last_log_index", "Last log index", last_log),
            (
                "kartotek_raft_applied_index",
                "Last applied log index",
                applied,
            ),
            (
                "kartotek_raft_is_leader",
                "1 if this node is the leader",
                leader,
            ),
            (
                "kartotek_raft_snapshot_index",
                "Log index of the latest snapshot",
                snapshot,
            ),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
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
            let c = ConstCounter::new(StorageStats::get(c));
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Metrics for a node running `raft` over storage with `stats`.
    pub fn new() -> Self {
        let requests_total = Family::<RequestLabels, Counter>::default();
        let request_duration_seconds =
            Family::<MethodLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            });
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
        let mut registry = Registry::default();
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
            "API request latency",
            request_duration_seconds.clone(),
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
        }
    }

    /// Counts entries committed by a bulk-import batch.
    pub fn import_entries(&self, n: u64) {
        self.import_entries_total.inc_by(n);
    }

    /// Adds the Raft and storage collector (once Raft exists).
    pub fn with_raft(mut self, raft: Raft<TypeConfig>, stats: Arc<StorageStats>) -> Self {
        if let Some(reg) = Arc::get_mut(&mut self.registry) {
            reg.register_collector(Box::new(RaftCollector { raft, stats }));
        }
        self
    }

    /// Records one finished request.
    pub fn observe(&self, method: &str, code: tonic::Code, seconds: f64) {
        self.requests_total
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                code: format!("{code:?}"),
            })
            .inc();
        self.request_duration_seconds
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .observe(seconds);
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

/// The HTTP router: `/metrics`, `/healthz` (the Raft task runs), `/readyz` (a leader is known).
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

async fn readyz(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    if s.raft.metrics().borrow().current_leader.is_some() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no leader known\n")
    }
}
