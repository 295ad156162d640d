//! Optional OpenTelemetry traces: a node with `[telemetry] otlp_endpoint` pointing at a mock
//! OTLP collector (the OTLP/gRPC `TraceService`, from `opentelemetry-proto`) exports the
//! span of a request with the caller's `x-request-id` as its `request_id` attribute, and
//! `service.name` `kartotek-node`. (Without the setting nothing is exported: every other test
//! runs so.)

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{TestCluster, free_port, patient};
use kartotek_proto::v1::LookupLocatorRequest;
use kartotek_testkit::NodeSpec;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};

/// The collector's port, known before the cluster starts.
static COLLECTOR_PORT: OnceLock<u16> = OnceLock::new();

fn export_traces(spec: &mut NodeSpec) {
    let port = COLLECTOR_PORT.get().expect("collector first");
    spec.extra_toml.push_str(&format!(
        "\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\nexport_interval_ms = 200\n"
    ));
}

/// What the collector got: (service name, span name, attributes) per span.
type Spans = Arc<Mutex<Vec<(String, String, Vec<(String, String)>)>>>;

struct Collector(Spans);

fn text(kv: &[KeyValue]) -> Vec<(String, String)> {
    kv.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let resource = rs.resource.map(|r| text(&r.attributes)).unwrap_or_default();
            let service = resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push((service.clone(), span.name.clone(), text(&span.attributes)));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_span_reaches_the_collector_with_its_request_id() {
    let port = free_port();
    COLLECTOR_PORT.set(port).unwrap();
    let spans: Spans = Arc::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(Collector(spans.clone())))
        .serve(([127, 0, 0, 1], port).into());
    tokio::spawn(server);

    let cluster = TestCluster::start(1, export_traces).await;
    let request_id = "otel-trace-of-this-lookup";
    kartotek_client::correlated(
        request_id.into(),
        cluster.client().lookup_locator(LookupLocatorRequest {
            patient: patient(7),
            ..Default::default()
        }),
    )
    .await
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = spans
            .lock()
            .unwrap()
            .iter()
            .find(|(_, _, attrs)| {
                attrs
                    .iter()
                    .any(|(k, v)| k == "request_id" && v == request_id)
            })
            .cloned();
        if let Some((service, name, attrs)) = found {
            assert_eq!(service, "kartotek-node");
            assert_eq!(name, "request", "{attrs:?}");
            assert!(
                attrs
                    .iter()
                    .any(|(k, v)| k == "method" && v.contains("Lookup")),
                "{attrs:?}"
            );
            assert!(
                !attrs.iter().any(|(_, v)| v.contains(&patient(7))),
                "no national id in a span: {attrs:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no span with request_id {request_id}: {:?}",
            spans.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
