"""A small OTLP/HTTP trace collector on a loopback port that keeps the spans in memory.

Processes under test export with the real OTLP exporter (`OTEL_TRACES_EXPORTER=otlp`), so
the test sees what a real collector would, without one installed.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class CollectedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    kind: int
    links: tuple[tuple[str, str], ...]  # (trace_id, span_id)
    attributes: dict[str, str]


class Collector:
    """Spans received so far; `env` points an exporting process here."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._spans: list[CollectedSpan] = []
        self._lock = threading.Lock()

    @property
    def env(self) -> dict[str, str]:
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{self.port}/v1/traces",
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second
        }

    def spans(self) -> list[CollectedSpan]:
        with self._lock:
            return list(self._spans)

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = []
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        CollectedSpan(
                            service=service,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            links=tuple((k.trace_id.hex(), k.span_id.hex()) for k in span.links),
                            attributes={
                                a.key: str(a.value.string_value or a.value.int_value)
                                for a in span.attributes
                            },
                        )
                    )
        with self._lock:
            self._spans += received


@contextmanager
def running_collector(port: int) -> Iterator[Collector]:
    collector = Collector(port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            collector.take(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
