//! Every public method passes the request layer: a test walks the services' protobuf
//! descriptors, calls every method of every `kartotek.v1` service on a running node (with an
//! empty request, whatever it answers), and checks that the node's metrics — which only the
//! layer's `Gate` records — counted a call of that method. A method wired around the layer
//! would be missing from the metrics and fail this test; a method missing from the layer's
//! table (`api::methods`) fails its unit test.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{TestCluster, free_port};
use kartotek_testkit::config::NodeSpec;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

/// Sends and receives protobuf bodies as raw bytes (an empty body is the default message).
#[derive(Default, Clone)]
struct RawCodec;

#[derive(Default, Clone)]
struct RawEncoder;

#[derive(Default, Clone)]
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

struct Described {
    path: String,
    client_streaming: bool,
    server_streaming: bool,
}

fn described_methods() -> Vec<Described> {
    let set = prost_types::FileDescriptorSet::decode(kartotek_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut out = Vec::new();
    for file in set.file {
        if file.package() != "kartotek.v1" {
            continue;
        }
        for service in &file.service {
            for m in &service.method {
                out.push(Described {
                    path: format!("/kartotek.v1.{}/{}", service.name(), m.name()),
                    client_streaming: m.client_streaming(),
                    server_streaming: m.server_streaming(),
                });
            }
        }
    }
    out
}

fn metrics_text(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("metrics body");
    body
}

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
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("channel ready");
        let path: tonic::codegen::http::uri::PathAndQuery = m.path.parse().expect("path");
        // Whatever the answer (most refuse an empty request as INVALID_ARGUMENT), the call
        // must have reached the layer.
        let answered = tokio::time::timeout(Duration::from_secs(30), async {
            match (m.client_streaming, m.server_streaming) {
                (false, false) => grpc
                    .unary(tonic::Request::new(Vec::new()), path, RawCodec)
                    .await
                    .map(|_| ()),
                (false, true) => grpc
                    .server_streaming(tonic::Request::new(Vec::new()), path, RawCodec)
                    .await
                    .map(|_| ()),
                (true, _) => grpc
                    .streaming(
                        tonic::Request::new(futures::stream::empty::<Vec<u8>>()),
                        path,
                        RawCodec,
                    )
                    .await
                    .map(|_| ()),
            }
        })
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
