//! OTLP/gRPC: the TraceService and MetricsService of the OTLP specification,
//! gzip accepted, message size limited after decompression, bearer token
//! checked by an interceptor.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use super::{Receiver, Refusal};

struct Otlp(Arc<Receiver>);

fn status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::Busy => Status::unavailable("the store is busy; retry later"),
        Refusal::Unavailable(why) => Status::unavailable(why),
    }
}

#[tonic::async_trait]
impl TraceService for Otlp {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0
            .traces(request.into_inner())
            .await
            .map(Response::new)
            .map_err(status)
    }
}

#[tonic::async_trait]
impl MetricsService for Otlp {
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
    let limit = receiver.max_body;
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
    let traces = TraceServiceServer::new(Otlp(receiver.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let metrics = MetricsServiceServer::new(Otlp(receiver))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    Routes::new(InterceptedService::new(traces, auth.clone()))
        .add_service(InterceptedService::new(metrics, auth))
}
