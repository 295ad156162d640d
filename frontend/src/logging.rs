//! The one logging setup of the `kartotek` binary (node, frontend, dev, the client commands):
//! `tracing` to stderr, filtered by `RUST_LOG` or the component's `log_filter`, as text for a
//! terminal or as JSON lines for a log shipper (`log_format = "json"` in the config, or
//! `--log-format json`), and — optional, off by default — the same spans as OpenTelemetry
//! traces to an OTLP collector (`[telemetry] otlp_endpoint`, [`TelemetrySettings`]).
//!
//! A JSON line is one object: `timestamp`, `level`, `target`, `fields` (the event's
//! `message` and fields), `span` (the innermost span with its fields) and `spans` (every
//! span from the root), so a request span's `request_id` is on every line logged inside
//! it. National ids never reach a log in clear (they are logged as keyed hashes by the
//! callers), so neither format needs masking here.
//!
//! Traces: every span that passes the filter becomes an OpenTelemetry span with its fields
//! as attributes — the request span carries `method` and `request_id`, so a trace is found
//! by the request id a caller sent (`x-request-id`). OTLP over gRPC (tonic), batched, a
//! `sample_percent` of root spans (parent-based), `service.name` the component's. The batch
//! exporter runs on its own thread; exports are driven on the process's Tokio runtime (the
//! tonic channel needs its reactor), each within `export_timeout_ms`. A collector that is
//! down costs dropped spans (the batch queue is bounded: [`TRACE_QUEUE_SPANS_MAX`]), never a
//! request. [`shutdown`] flushes at exit.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Most spans waiting for export (more are dropped, and counted by the SDK).
pub const TRACE_QUEUE_SPANS_MAX: usize = 8_192;
/// Most spans in one export.
pub const TRACE_EXPORT_BATCH_SPANS_MAX: usize = 512;
/// Longest `telemetry.otlp_endpoint` or `telemetry.service_name`, bytes.
pub const TELEMETRY_FIELD_BYTES_MAX: usize = 512;

/// Optional OpenTelemetry traces (`[telemetry]` of `node.toml` and `frontend.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// The OTLP/gRPC collector, e.g. `http://otel-collector:4317` (`https://` for TLS with
    /// the system's CA certificates); empty: no traces (the default).
    pub otlp_endpoint: String,
    /// `service.name` of the traces; empty: `kartotek-node` or `kartotek-frontend`.
    pub service_name: String,
    /// Percent of root spans traced (0–100; a span whose caller sent a sampled trace
    /// context follows the caller's decision).
    pub sample_percent: u32,
    /// How often the batch of finished spans is sent, ms (at least 100).
    pub export_interval_ms: u64,
    /// Longest one export may take, ms (at least 100).
    pub export_timeout_ms: u64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            otlp_endpoint: String::new(),
            service_name: String::new(),
            sample_percent: 100,
            export_interval_ms: 5_000,
            export_timeout_ms: 10_000,
        }
    }
}

impl TelemetrySettings {
    /// Checks the settings: `Err((field, reason))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let e = &self.otlp_endpoint;
        if !e.is_empty() {
            let ok = e.len() <= TELEMETRY_FIELD_BYTES_MAX
                && (e.starts_with("http://") || e.starts_with("https://"))
                && e.parse::<axum::http::Uri>()
                    .is_ok_and(|u| u.host().is_some());
            if !ok {
                return Err((
                    "telemetry.otlp_endpoint",
                    format!(
                        "an http:// or https:// URL of at most {TELEMETRY_FIELD_BYTES_MAX} bytes, or empty"
                    ),
                ));
            }
        }
        if self.service_name.len() > TELEMETRY_FIELD_BYTES_MAX
            || self.service_name.chars().any(char::is_control)
        {
            return Err((
                "telemetry.service_name",
                format!("at most {TELEMETRY_FIELD_BYTES_MAX} bytes, no control characters"),
            ));
        }
        if self.sample_percent > 100 {
            return Err(("telemetry.sample_percent", "0 to 100".into()));
        }
        if self.export_interval_ms < 100 {
            return Err(("telemetry.export_interval_ms", "at least 100".into()));
        }
        if self.export_timeout_ms < 100 {
            return Err(("telemetry.export_timeout_ms", "at least 100".into()));
        }
        Ok(())
    }
}

/// The tracer provider, when traces are on (for [`shutdown`]).
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber (once per process; later calls do nothing): stderr,
/// `RUST_LOG` if set and valid, else `default_filter`.
pub fn init(default_filter: &str, format: LogFormat) {
    init_with(default_filter, format, None);
}

/// [`init`], and with `telemetry` (its settings and the default `service.name`) OTLP traces
/// when its `otlp_endpoint` is set. Call it inside the Tokio runtime; outside one, traces
/// stay off (and it says so).
pub fn init_with(
    default_filter: &str,
    format: LogFormat,
    telemetry: Option<(&TelemetrySettings, &str)>,
) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let (text, json) = match format {
        LogFormat::Text => (
            Some(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    let mut why_not = None;
    let traces = match telemetry {
        Some((t, service)) if !t.otlp_endpoint.is_empty() => match tracer_provider(t, service) {
            Ok(provider) => {
                let tracer = provider.tracer("kartotek");
                let _ = PROVIDER.set(provider);
                Some(tracing_opentelemetry::layer().with_tracer(tracer))
            }
            Err(e) => {
                why_not = Some(e);
                None
            }
        },
        _ => None,
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(traces)
        .try_init()
        .is_ok();
    if let (true, Some(e)) = (installed, why_not) {
        tracing::warn!(error = %e, "OpenTelemetry traces are off");
    } else if installed && let Some((t, _)) = telemetry.filter(|(t, _)| !t.otlp_endpoint.is_empty())
    {
        tracing::info!(endpoint = %t.otlp_endpoint, sample_percent = t.sample_percent, "OpenTelemetry traces on");
    }
}

/// The provider of OTLP traces to `t.otlp_endpoint`.
fn tracer_provider(t: &TelemetrySettings, service: &str) -> Result<SdkTracerProvider, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "no Tokio runtime to export on".to_owned())?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(t.otlp_endpoint.clone())
        .with_timeout(Duration::from_millis(t.export_timeout_ms))
        .build()
        .map_err(|e| format!("the OTLP exporter: {e}"))?;
    let processor = BatchSpanProcessor::builder(OnRuntime {
        inner: exporter,
        runtime,
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(TRACE_QUEUE_SPANS_MAX)
            .with_max_export_batch_size(TRACE_EXPORT_BATCH_SPANS_MAX)
            .with_scheduled_delay(Duration::from_millis(t.export_interval_ms))
            .build(),
    )
    .build();
    let name = if t.service_name.is_empty() {
        service.to_owned()
    } else {
        t.service_name.clone()
    };
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            f64::from(t.sample_percent) / 100.0,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name)
                .build(),
        )
        .build())
}

/// Flushes and stops the trace export (at exit; nothing when traces are off). Blocks up to
/// the export timeout: call it outside async code, or from `spawn_blocking`.
pub fn shutdown() {
    if let Some(p) = PROVIDER.get()
        && let Err(e) = p.shutdown()
    {
        tracing::warn!(error = %e, "flushing OpenTelemetry traces");
    }
}

/// The OTLP exporter, driven on the process's Tokio runtime: the SDK's batch processor
/// exports from a thread of its own, where tonic finds no reactor.
#[derive(Debug)]
struct OnRuntime {
    inner: opentelemetry_otlp::SpanExporter,
    runtime: tokio::runtime::Handle,
}

impl SpanExporter for OnRuntime {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        // The batch thread is no runtime thread, so blocking on the runtime is allowed here.
        let result = self.runtime.block_on(self.inner.export(batch));
        std::future::ready(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::{LogFormat, TelemetrySettings};

    #[test]
    fn telemetry_is_off_by_default_and_checked() {
        let t = TelemetrySettings::default();
        assert!(t.otlp_endpoint.is_empty());
        assert_eq!(t.validate(), Ok(()));
        let with = |f: &dyn Fn(&mut TelemetrySettings)| {
            let mut t = TelemetrySettings::default();
            f(&mut t);
            t.validate().err().map(|(field, _)| field)
        };
        assert_eq!(
            with(&|t| t.otlp_endpoint = "http://127.0.0.1:4317".into()),
            None
        );
        assert_eq!(
            with(&|t| t.otlp_endpoint = "otel:4317".into()),
            Some("telemetry.otlp_endpoint")
        );
        assert_eq!(
            with(&|t| t.sample_percent = 101),
            Some("telemetry.sample_percent")
        );
        assert_eq!(
            with(&|t| t.export_interval_ms = 10),
            Some("telemetry.export_interval_ms")
        );
        assert_eq!(
            with(&|t| t.service_name = "a\nb".into()),
            Some("telemetry.service_name")
        );
    }

    #[test]
    fn formats_parse_from_config_text() {
        #[derive(serde::Deserialize)]
        struct C {
            f: LogFormat,
        }
        let c: C = toml::from_str("f = \"json\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.f, LogFormat::Json);
        assert!(toml::from_str::<C>("f = \"xml\"").is_err());
    }
}
