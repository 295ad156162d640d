//! Calls any `kartotek.v1` method with a raw body (an empty body is the default message):
//! the method list comes from the compiled protobuf descriptors, so tests that walk every
//! method (the request layer, the authorisation matrix) cover methods added later too.

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

/// One described method.
pub struct Described {
    /// `/kartotek.v1.Service/Method`.
    pub path: String,
    /// Takes a stream.
    pub client_streaming: bool,
    /// Answers with a stream.
    pub server_streaming: bool,
}

/// Every method of every `kartotek.v1` service.
pub fn described_methods() -> Vec<Described> {
    let set = prost_types::FileDescriptorSet::decode(kartotek_proto::FILE_DESCRIPTOR_SET)
        .unwrap_or_else(|e| panic!("descriptor set: {e}"));
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

/// Calls `m` on `channel` with an empty body (or stream) and `metadata`; the status of the
/// call (a stream's opening answer).
pub async fn call(
    channel: &Channel,
    m: &Described,
    metadata: tonic::metadata::MetadataMap,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path: tonic::codegen::http::uri::PathAndQuery = m
        .path
        .parse()
        .map_err(|_| tonic::Status::internal("bad path"))?;
    fn request<T>(body: T, metadata: &tonic::metadata::MetadataMap) -> tonic::Request<T> {
        let mut r = tonic::Request::new(body);
        *r.metadata_mut() = metadata.clone();
        r
    }
    match (m.client_streaming, m.server_streaming) {
        (false, false) => grpc
            .unary(request(Vec::new(), &metadata), path, RawCodec)
            .await
            .map(|_| ()),
        (false, true) => grpc
            .server_streaming(request(Vec::new(), &metadata), path, RawCodec)
            .await
            .map(|_| ()),
        (true, _) => grpc
            .streaming(
                request(futures::stream::empty::<Vec<u8>>(), &metadata),
                path,
                RawCodec,
            )
            .await
            .map(|_| ()),
    }
}
