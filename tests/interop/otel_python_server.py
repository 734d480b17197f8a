"""A callee that is not ours: a Python HTTP service traced with the official
OpenTelemetry Python SDK, for the test that a trace begun by a JVM with the
jvmapm agent joins a service running another SDK.

Each GET is a SERVER span that continues the W3C traceparent it came with
(extracted by the SDK's TraceContextTextMapPropagator) and is exported at
once over OTLP/HTTP protobuf. The answer is 200 with the traceparent
received, "-" when none.

Usage: otel_python_server.py ENDPOINT SERVICE
Prints "port N" once it listens; stops when its standard input closes.
"""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def main():
    endpoint, service = sys.argv[1], sys.argv[2]
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    tracer = provider.get_tracer("jvmapm-interop")
    propagator = TraceContextTextMapPropagator()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            received = self.headers.get("traceparent", "-")
            incoming = propagator.extract({k.lower(): v for k, v in self.headers.items()})
            route = self.path.split("?")[0]
            with tracer.start_as_current_span(
                f"GET {route}",
                kind=SpanKind.SERVER,
                context=incoming,
                attributes={
                    "http.request.method": "GET",
                    "http.route": route,
                    "http.response.status_code": 200,
                },
            ):
                body = (received + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()
    provider.shutdown()


if __name__ == "__main__":
    main()
