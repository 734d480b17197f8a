//! OTLP/gRPC: the TraceService and MetricsService of the OTLP specification,
//! gzip accepted, message size limited after decompression, bearer token
//! checked by an interceptor.
//!
//! The trace service is served by hand rather than by the generated server:
//! its codec hands the request over as bytes, so the XLog builder reads spans
//! in place instead of decoding them into structs and encoding them again.
//! Metrics are few and use the generated server.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use super::{Receiver, Refusal};

const TRACE_SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

fn status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::Malformed(why) => Status::invalid_argument(why),
        Refusal::Busy => Status::unavailable("the store is busy; retry later"),
        Refusal::Unavailable(why) => Status::unavailable(why),
    }
}

/// Decodes a request message as its raw bytes; encodes the reply with prost.
struct RawRequestCodec;

struct RawDecoder;

struct ReplyEncoder;

impl Codec for RawRequestCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ReplyEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> ReplyEncoder {
        ReplyEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Encoder for ReplyEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(
        &mut self,
        item: ExportTraceServiceResponse,
        dst: &mut EncodeBuf<'_>,
    ) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// The TraceService, answering `Export` from the raw request bytes.
#[derive(Clone)]
struct TraceServer(Arc<Receiver>);

impl NamedService for TraceServer {
    const NAME: &'static str = TRACE_SERVICE;
}

impl<B> Service<http::Request<B>> for TraceServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let receiver = self.0.clone();
        Box::pin(async move {
            if request.uri().path() != TRACE_EXPORT_PATH {
                return Ok(Status::unimplemented("TraceService has only Export").into_http());
            }
            let limit = receiver.max_body;
            let mut grpc = Grpc::new(RawRequestCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            Ok(grpc.unary(ExportTraces(receiver), request).await)
        })
    }
}

struct ExportTraces(Arc<Receiver>);

impl UnaryService<Bytes> for ExportTraces {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let receiver = self.0.clone();
        Box::pin(async move {
            receiver
                .traces(request.into_inner())
                .await
                .map(Response::new)
                .map_err(status)
        })
    }
}

struct Metrics(Arc<Receiver>);

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.0
            .metrics(request.into_inner())
            .await
            .map(Response::new)
            .map_err(status)
    }
}

/// The gRPC routes of the receiver.
pub fn routes(receiver: Arc<Receiver>) -> Routes {
    let auth = {
        let receiver = receiver.clone();
        move |request: Request<()>| {
            let header = request
                .metadata()
                .get("authorization")
                .map(|v| v.as_bytes());
            if receiver.authorized(header) {
                Ok(request)
            } else {
                Err(Status::unauthenticated("a valid bearer token is required"))
            }
        }
    };
    let metrics = MetricsServiceServer::new(Metrics(receiver.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(receiver.max_body);
    Routes::new(InterceptedService::new(TraceServer(receiver), auth.clone()))
        .add_service(InterceptedService::new(metrics, auth))
}
