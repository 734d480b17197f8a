"""Sends spans to jvmapm with the official OpenTelemetry Python SDK and its OTLP
exporters (gRPC on grpcio, or HTTP/protobuf on requests): a second, independent
OTLP client implementation beside the Rust SDK.

Usage: otel_python_sdk.py grpc|http ENDPOINT INSTANCE
Prints one JSON object per span that must become an XLog point.
"""

import json
import sys
import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context


def exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


def main():
    protocol, endpoint, instance = sys.argv[1:4]
    provider = TracerProvider(
        resource=Resource.create({"service.name": "python-shop", "service.instance.id": instance})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter(protocol, endpoint)))
    tracer = provider.get_tracer("jvmapm-interop")
    base = time.time_ns() - 10_000_000_000
    expected = []
    for i, (status, elapsed_ms) in enumerate([(200, 15), (503, 70), (201, 4)]):
        start = base + i * 1_000_000_000
        span = tracer.start_span(
            "GET /basket/{id}",
            kind=SpanKind.SERVER,
            start_time=start,
            attributes={
                "http.request.method": "GET",
                "http.route": "/basket/{id}",
                "http.response.status_code": status,
            },
        )
        child = tracer.start_span("SELECT basket", kind=SpanKind.CLIENT, start_time=start, context=set_span_in_context(span))
        child.end(end_time=start + 1_000_000)
        span.end(end_time=start + elapsed_ms * 1_000_000)
        expected.append((span, "/basket/{id}", elapsed_ms, status, status >= 500))
    failing = tracer.start_span("POST /checkout", kind=SpanKind.SERVER, start_time=base)
    failing.record_exception(ValueError("card declined"))
    failing.set_status(Status(StatusCode.ERROR, "card declined"))
    failing.end(end_time=base + 33_000_000)
    expected.append((failing, "POST /checkout", 33, None, True))
    provider.shutdown()
    for span, endpoint_name, elapsed_ms, status, error in expected:
        ctx = span.get_span_context()
        print(
            json.dumps(
                {
                    "trace_id": format(ctx.trace_id, "032x"),
                    "span_id": format(ctx.span_id, "016x"),
                    "endpoint": endpoint_name,
                    "elapsed_us": elapsed_ms * 1000,
                    "status_code": status,
                    "error": error,
                }
            )
        )


if __name__ == "__main__":
    main()
