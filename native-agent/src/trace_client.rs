//! Sends export requests that `otlp` wrote to the trace service of the
//! backend: a unary gRPC call (tonic, with a codec that passes the bytes
//! through) or an HTTP POST of `application/x-protobuf` to `/v1/traces`
//! (reqwest), with the configured headers and timeout. It reads the partial
//! success of the answer, so that rejected spans are counted as dropped.

use std::fmt;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::log::line;
use crate::options::LogLevel;
use crate::otlp::{self, Rejected};

const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const USER_AGENT: &str = concat!("jvmapm-agent/", env!("CARGO_PKG_VERSION"));
/// The most of an HTTP answer read for its partial success.
const MAX_HTTP_ANSWER: usize = 64 * 1024;

/// A client of the backend's trace service.
pub enum TraceClient {
    Grpc {
        grpc: Grpc<Channel>,
        metadata: MetadataMap,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: reqwest::header::HeaderMap,
    },
}

/// Why an export failed.
#[derive(Debug)]
pub enum ExportError {
    Grpc(Status),
    Http(reqwest::Error),
    HttpStatus(reqwest::StatusCode),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Grpc(status) => write!(f, "gRPC status {status}"),
            ExportError::Http(error) => write!(f, "{error}"),
            ExportError::HttpStatus(code) => write!(f, "HTTP status {code}"),
        }
    }
}

impl TraceClient {
    /// A gRPC client of `endpoint` (`http://host:4317`); it connects on
    /// first use.
    pub fn grpc(
        endpoint: &str,
        timeout: Duration,
        metadata: MetadataMap,
    ) -> Result<TraceClient, String> {
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| format!("invalid endpoint: {e}"))?
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .map_err(|e| format!("invalid user agent: {e}"))?
            .connect_lazy();
        Ok(TraceClient::Grpc {
            grpc: Grpc::new(channel),
            metadata,
        })
    }

    /// An HTTP client of `endpoint` (`http://host:4318`, the path added).
    pub fn http(
        endpoint: &str,
        timeout: Duration,
        headers: &[(String, String)],
    ) -> Result<TraceClient, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(TraceClient::Http {
            client,
            url: format!("{endpoint}/v1/traces"),
            headers: http_headers(headers),
        })
    }

    /// Sends one `ExportTraceServiceRequest`; what the backend rejected of it.
    pub async fn export(&mut self, request: Bytes) -> Result<Rejected, ExportError> {
        match self {
            TraceClient::Grpc { grpc, metadata } => {
                grpc.ready()
                    .await
                    .map_err(|e| ExportError::Grpc(Status::unavailable(e.to_string())))?;
                let mut call = tonic::Request::new(request);
                *call.metadata_mut() = metadata.clone();
                let answer = grpc
                    .unary(call, PathAndQuery::from_static(GRPC_EXPORT), PassThrough)
                    .await
                    .map_err(ExportError::Grpc)?;
                Ok(answer.into_inner())
            }
            TraceClient::Http {
                client,
                url,
                headers,
            } => {
                let mut response = client
                    .post(url.as_str())
                    .headers(headers.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(request)
                    .send()
                    .await
                    .map_err(ExportError::Http)?;
                if !response.status().is_success() {
                    return Err(ExportError::HttpStatus(response.status()));
                }
                let mut answer = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(ExportError::Http)? {
                    if answer.len() + chunk.len() > MAX_HTTP_ANSWER {
                        break;
                    }
                    answer.extend_from_slice(&chunk);
                }
                Ok(read_answer(&answer))
            }
        }
    }
}

/// The partial success of an answer; one that cannot be read rejects nothing.
fn read_answer(answer: &[u8]) -> Rejected {
    otlp::rejected(answer).unwrap_or_else(|| {
        crate::log::once(
            "unreadable-trace-answer",
            LogLevel::Warn,
            "the backend answered an export with something that is not an ExportTraceServiceResponse; its spans count as delivered",
        );
        Rejected::default()
    })
}

/// HTTP headers from the configured ones; a header HTTP cannot carry is
/// left out and said once.
fn http_headers(headers: &[(String, String)]) -> reqwest::header::HeaderMap {
    use reqwest::header::{HeaderName, HeaderValue};
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                map.insert(name, value);
            }
            _ => line(
                LogLevel::Warn,
                &format!("header {name:?} cannot be sent over HTTP; it is left out"),
            ),
        }
    }
    map
}

/// The gRPC codec of the export call: the request is already encoded, and
/// the answer is read for its partial success.
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = Rejected;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> PassThrough {
        PassThrough
    }

    fn decoder(&mut self) -> PassThrough {
        PassThrough
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, request: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&request);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = Rejected;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Rejected>, Status> {
        let answer = src.copy_to_bytes(src.remaining());
        Ok(Some(read_answer(&answer)))
    }
}
