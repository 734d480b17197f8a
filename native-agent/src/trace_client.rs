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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    use prost::Message;
    use std::io::{Read, Write};
    use tonic::codegen::http;

    /// An answer that rejects three spans.
    fn answer() -> Vec<u8> {
        ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "stale".into(),
            }),
        }
        .encode_to_vec()
    }

    fn stale() -> Rejected {
        Rejected {
            spans: 3,
            message: "stale".into(),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn an_http_export_posts_protobuf_with_the_headers_and_reads_what_was_rejected() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut chunk = [0; 4096];
            while !request.ends_with(b"\r\n\r\nspans") {
                let n = socket.read(&mut chunk).unwrap();
                assert!(n > 0, "the whole request arrives");
                request.extend_from_slice(&chunk[..n]);
            }
            let answer = answer();
            write!(
                socket,
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
                answer.len()
            )
            .unwrap();
            socket.write_all(&answer).unwrap();
            String::from_utf8_lossy(&request).to_ascii_lowercase()
        });
        let headers = [("Authorization".to_string(), "Bearer t0k3n".to_string())];
        let mut client = TraceClient::http(&endpoint, Duration::from_secs(10), &headers).unwrap();
        let rejected = runtime()
            .block_on(client.export(Bytes::from_static(b"spans")))
            .unwrap();
        assert_eq!(rejected, stale());
        let request = server.join().unwrap();
        assert!(
            request.starts_with("post /v1/traces http/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\ncontent-type: application/x-protobuf\r\n"));
        assert!(request.contains("\r\nauthorization: bearer t0k3n\r\n"));
    }

    #[test]
    fn a_grpc_export_is_a_unary_call_with_the_metadata_and_reads_what_was_rejected() {
        runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let endpoint = format!("http://{}", listener.local_addr().unwrap());
            let server = tokio::spawn(async move {
                let (socket, _) = listener.accept().await.unwrap();
                let mut connection = h2::server::handshake(socket).await.unwrap();
                let (request, mut respond) = connection.accept().await.unwrap().unwrap();
                tokio::spawn(async move { while connection.accept().await.is_some() {} });
                let (head, mut body) = request.into_parts();
                let mut received = Vec::new();
                while let Some(data) = body.data().await {
                    let data = data.unwrap();
                    let _ = body.flow_control().release_capacity(data.len());
                    received.extend_from_slice(&data);
                }
                let response = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(())
                    .unwrap();
                let mut stream = respond.send_response(response, false).unwrap();
                let answer = answer();
                let mut message = vec![0];
                message.extend_from_slice(&(answer.len() as u32).to_be_bytes());
                message.extend_from_slice(&answer);
                stream.send_data(message.into(), false).unwrap();
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                stream.send_trailers(trailers).unwrap();
                (head, received)
            });
            let mut metadata = MetadataMap::new();
            metadata.insert("authorization", "Bearer t0k3n".parse().unwrap());
            let mut client =
                TraceClient::grpc(&endpoint, Duration::from_secs(10), metadata).unwrap();
            let rejected = client.export(Bytes::from_static(b"spans")).await.unwrap();
            assert_eq!(rejected, stale());
            let (head, received) = server.await.unwrap();
            assert_eq!(head.method, http::Method::POST);
            assert_eq!(head.uri.path(), GRPC_EXPORT);
            assert_eq!(head.headers["authorization"], "Bearer t0k3n");
            assert_eq!(head.headers["content-type"], "application/grpc");
            // One uncompressed message: flag, length, the request as given.
            assert_eq!(received, b"\0\0\0\0\x05spans");
        });
    }
}
