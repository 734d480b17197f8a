"""The callee of a distributed trace, sent with the official OpenTelemetry
Python SDK: a SERVER span continuing the caller's W3C traceparent, with a SQL
CLIENT span inside it, and an unrelated root span of another trace.

Usage: otel_python_callee.py ENDPOINT TRACEPARENT BASE_NS
Sends over OTLP/HTTP protobuf to ENDPOINT; times are offsets from BASE_NS.
Prints one JSON object with the ids of the spans it sent.
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

MS = 1_000_000


def main():
    endpoint, traceparent, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
    provider = TracerProvider(
        resource=Resource.create({"service.name": "stock", "service.instance.id": "stock-py"})
    )
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    tracer = provider.get_tracer("jvmapm-interop")
    incoming = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    server = tracer.start_span(
        "GET /items",
        kind=SpanKind.SERVER,
        context=incoming,
        start_time=base + 20 * MS,
        attributes={
            "http.request.method": "GET",
            "http.route": "/items",
            "http.response.status_code": 200,
        },
    )
    sql = tracer.start_span(
        "SELECT items",
        kind=SpanKind.CLIENT,
        context=set_span_in_context(server),
        start_time=base + 30 * MS,
        attributes={"db.query.text": "SELECT * FROM items", "db.system": "h2"},
    )
    sql.end(end_time=base + 40 * MS)
    server.end(end_time=base + 50 * MS)
    # Another trace: one outgoing call, timed by this sender in double seconds.
    unrelated = tracer.start_span(
        "GET /health",
        kind=SpanKind.SERVER,
        start_time=base + 200 * MS,
        attributes={
            "http.request.method": "GET",
            "http.route": "/health",
            "http.response.status_code": 200,
            "jvmapm.http.count": 1,
            "jvmapm.http.time": 0.0125,
        },
    )
    unrelated.end(end_time=base + 210 * MS)
    provider.shutdown()
    ids = lambda span: format(span.get_span_context().span_id, "016x")
    print(
        json.dumps(
            {
                "server": ids(server),
                "sql": ids(sql),
                "unrelated_trace": format(unrelated.get_span_context().trace_id, "032x"),
                "unrelated": ids(unrelated),
            }
        )
    )


if __name__ == "__main__":
    main()
