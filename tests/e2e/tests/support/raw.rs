//! Calls of any method of the suite with any bytes as the request, through a codec that
//! passes bytes both ways: for tests that sweep every method the descriptors list.

use std::time::Duration;

use ecrm_suite::Member;
use futures::StreamExt as _;
use prost::Message as _;
use prost::bytes::{Buf as _, BufMut as _};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

use super::authorized;

/// A method of a contract, as its descriptor states it.
#[derive(Debug, Clone)]
pub struct Method {
    /// `/package.Service/Method`.
    pub path: String,
    pub member: Member,
    /// The request message's full name, e.g. `ecrm.profiles.v1.GetProfileRequest`.
    pub input: String,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

/// Every method of every contract, at each member that serves it.
pub fn methods() -> Vec<Method> {
    let set = prost_types::FileDescriptorSet::decode(ecrm_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = Vec::new();
    for file in &set.file {
        let package = file.package();
        let Some(area) = package
            .strip_prefix("ecrm.")
            .and_then(|rest| rest.strip_suffix(".v1"))
        else {
            continue;
        };
        let members: &[Member] = match area {
            "identity" => &[Member::Identity],
            "profiles" => &[Member::Profiles],
            "consent" => &[Member::Consent],
            "segmentation" => &[Member::Segmentation],
            "outbound" => &[Member::Outbound],
            // Served by every member that holds personal data.
            "privacy" => &[
                Member::Profiles,
                Member::Consent,
                Member::Segmentation,
                Member::Outbound,
            ],
            _ => &[],
        };
        for service in &file.service {
            for method in &service.method {
                for member in members {
                    methods.push(Method {
                        path: format!("/{package}.{}/{}", service.name(), method.name()),
                        input: method.input_type().trim_start_matches('.').to_owned(),
                        member: *member,
                        client_streaming: method.client_streaming(),
                        server_streaming: method.server_streaming(),
                    });
                }
            }
        }
    }
    methods
}

/// Passes request and response bytes through untouched: an empty request is the encoding of
/// every message with all fields unset.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Calls `method` with `body` as its request (on a stream, its one message) and `token`;
/// returns the status it answered (OK when a stream started and sent no error at first).
pub async fn call(
    channel: Channel,
    method: &Method,
    token: Option<&str>,
    body: Vec<u8>,
) -> tonic::Status {
    let ok = || tonic::Status::new(Code::Ok, "");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path: http::uri::PathAndQuery = method.path.parse().unwrap();
    let first_of = |result: Result<tonic::Response<tonic::Streaming<Vec<u8>>>, tonic::Status>| async move {
        match result {
            Err(status) => status,
            // Streams that validate as they go answer in their first message; one that is
            // past authorization and waiting for data is let go.
            Ok(response) => {
                match tokio::time::timeout(Duration::from_secs(1), response.into_inner().next())
                    .await
                {
                    Ok(Some(Err(status))) => status,
                    _ => ok(),
                }
            }
        }
    };
    match (method.client_streaming, method.server_streaming) {
        (false, false) => match grpc.unary(request(token, body), path, RawCodec).await {
            Ok(_) => ok(),
            Err(status) => status,
        },
        (false, true) => {
            first_of(
                grpc.server_streaming(request(token, body), path, RawCodec)
                    .await,
            )
            .await
        }
        (true, false) => {
            let messages = futures::stream::iter([body]);
            match grpc
                .client_streaming(request(token, messages), path, RawCodec)
                .await
            {
                Ok(_) => ok(),
                Err(status) => status,
            }
        }
        (true, true) => {
            let messages = futures::stream::iter([body]);
            first_of(
                grpc.streaming(request(token, messages), path, RawCodec)
                    .await,
            )
            .await
        }
    }
}

/// `message` with `token` as its bearer credential, if any.
pub fn request<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    match token {
        Some(token) => authorized(token, message),
        None => tonic::Request::new(message),
    }
}
