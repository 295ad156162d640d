//! Every public method passes the request layer: a test walks the services' protobuf
//! descriptors, calls every method of every `kartotek.v1` service on a running node (with an
//! empty request, whatever it answers), and checks that the node's metrics — which only the
//! layer's `Gate` records — counted a call of that method. A method wired around the layer
//! would be missing from the metrics and fail this test; a method missing from the layer's
//! table (`api::methods`) fails its unit test.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::raw::{call, described_methods};
use common::{TestCluster, free_port, metrics_text};
use kartotek_testkit::config::NodeSpec;
use tonic::transport::Channel;

fn with_metrics(spec: &mut NodeSpec) {
    spec.metrics_addr = Some(format!("127.0.0.1:{}", free_port()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_described_method_is_counted_by_the_request_layer() {
    let cluster = TestCluster::start(1, with_metrics).await;
    let node = &cluster.nodes[0];
    let metrics_addr = node.metrics_addr.clone().expect("metrics address");
    let channel = Channel::from_shared(format!("http://{}", node.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let methods = described_methods();
    assert!(methods.len() > 40, "{} methods described", methods.len());
    for m in &methods {
        // Whatever the answer (most refuse an empty request as INVALID_ARGUMENT), the call
        // must have reached the layer.
        let answered = tokio::time::timeout(
            Duration::from_secs(30),
            call(&channel, m, tonic::metadata::MetadataMap::new()),
        )
        .await;
        assert!(answered.is_ok(), "{} did not answer in 30 s", m.path);
    }
    let text = metrics_text(&metrics_addr);
    let mut missing = Vec::new();
    for m in &methods {
        let method = kartotek_node::api::methods::by_path(&m.path)
            .unwrap_or_else(|| panic!("{} is not in api::methods", m.path));
        let needle = format!("method=\"{}\"", method.label);
        if !text
            .lines()
            .any(|l| l.starts_with("kartotek_api_requests_total") && l.contains(&needle))
        {
            missing.push(m.path.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "called but not counted by the request layer: {missing:?}\n{}",
        cluster.log(node.id)
    );
}

/// The services a reflection endpoint of `version` lists (one `list_services` request).
macro_rules! listed_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new($channel)
            .server_reflection_info(futures::stream::iter(vec![request]))
            .await
            .expect(concat!("reflection ", stringify!($version), " answers"))
            .into_inner();
        let answer = answers
            .message()
            .await
            .expect("a reflection message")
            .expect("one answer");
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("not a service list: {other:?}"),
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_in_v1_and_v1alpha() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let channel = Channel::from_shared(format!("http://{}", cluster.nodes[0].addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    // grpcurl and grpcio-reflection (Python) speak v1alpha; newer clients v1.
    let v1 = listed_services!(v1, channel.clone());
    let v1alpha = listed_services!(v1alpha, channel);
    for listed in [&v1, &v1alpha] {
        assert!(
            listed.iter().any(|s| s == "kartotek.v1.LocatorService"),
            "{listed:?}"
        );
        assert!(
            listed.iter().any(|s| s == "kartotek.v1.AuditService"),
            "{listed:?}"
        );
    }
}
