"""Traces: OpenTelemetry spans, exported only when `OTEL_TRACES_EXPORTER` asks.

Off (the default) nothing is set up: no span is made, no traceparent is stored or sent, and
every helper here returns after one flag check. On, each process installs the SDK with the
named exporter; the exporters read their own `OTEL_EXPORTER_OTLP_*` variables and the
provider reads `OTEL_TRACES_SAMPLER`. Context crosses processes as a W3C `traceparent`:
HTTP headers, the stored envelope and the Kafka record headers.

Batches (one command transaction for several clicks, one projector transaction for many
events) get one span that is the child of the batch's first item and links the others, so
the usual batch of one nests fully in its click's trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["Span", "SpanKind"]
log = logging.getLogger("core.telemetry")
EXPORTERS = ("none", "otlp", "console")
MAX_LINKS = 128  # the SDK's default span link limit
_PROPAGATOR = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("sync-coordinator")
_enabled = False
_NO_SPAN: AbstractContextManager[None] = nullcontext()


def enabled() -> bool:
    """True once `configure` installed an exporter in this process."""
    return _enabled


def configure(service_name: str, exporter: str) -> None:
    """Install the SDK with `exporter` (one of EXPORTERS); 'none' leaves tracing off."""
    global _enabled
    if exporter == "none" or _enabled:
        return
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    chosen: SpanExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        chosen = OTLPSpanExporter()
    else:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        chosen = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(chosen))
    trace.set_tracer_provider(provider)  # flushed and shut down at exit
    _enabled = True
    log.info("traces on: %s exporter, service %s", exporter, service_name)


@contextmanager
def tracing_into(provider: trace.TracerProvider) -> Iterator[None]:
    """Within the block this process traces into `provider` (tests: an in-memory exporter)."""
    global _enabled, _tracer
    saved = _enabled, _tracer
    _enabled, _tracer = True, provider.get_tracer("sync-coordinator")
    try:
        yield
    finally:
        _enabled, _tracer = saved


def traceparent_of(span: Span) -> str | None:
    """The span's W3C traceparent, or None for an invalid (not traced) span."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def context_from(traceparent: str | None) -> Context | None:
    """The remote parent a traceparent names; None starts a new trace."""
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def _span_context_of(traceparent: str) -> Any:
    return trace.get_current_span(context_from(traceparent)).get_span_context()


def start_span(
    name: str,
    *,
    parent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    links: Iterable[str] = (),
) -> Span | None:
    """A started span under `parent` (a traceparent; None: the current span), or None when off.

    The caller ends it (`finish`).
    """
    if not _enabled:
        return None
    context = context_from(parent) if parent is not None else None
    remote = (_span_context_of(tp) for tp in _distinct(links)[:MAX_LINKS])
    linked = [Link(ctx) for ctx in remote if ctx.is_valid]
    return _tracer.start_span(name, context=context, kind=kind, attributes=attributes, links=linked)


def mark_error(span: Span | None, error: BaseException | str) -> None:
    """Mark the span as failed (an exception is recorded on it)."""
    if span is None:
        return
    if isinstance(error, BaseException):
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))
    else:
        span.set_status(Status(StatusCode.ERROR, error))


def finish(span: Span | None, error: BaseException | str | None = None) -> None:
    """End the span, marked as an error when there is one."""
    if span is None:
        return
    if error:
        mark_error(span, error)
    span.end()


def span_in_batch(
    name: str,
    parents: Iterable[str | None],
    attributes: Mapping[str, str | int | float | bool] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> AbstractContextManager[Span | None]:
    """A span for a batch: child of its first traced item, linking the other items."""
    if not _enabled:
        return _NO_SPAN  # reusable, so tracing off costs no generator per batch
    return _batch_span(name, parents, attributes, kind)


@contextmanager
def _batch_span(
    name: str,
    parents: Iterable[str | None],
    attributes: Mapping[str, str | int | float | bool] | None,
    kind: SpanKind,
) -> Iterator[Span | None]:
    traced = _distinct(parents)
    first = traced[0] if traced else None
    span = start_span(name, parent=first, kind=kind, attributes=attributes, links=traced[1:])
    with _running(span):
        yield span


@contextmanager
def span_under(
    name: str,
    parent: str | None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span | None]:
    """A span under a remote parent (None: the current span), current while the block runs."""
    span = start_span(name, parent=parent, kind=kind, attributes=attributes)
    with _running(span):
        yield span


@contextmanager
def _running(span: Span | None) -> Iterator[None]:
    """The span current while the block runs, then finished (with the block's error, if any)."""
    with _current(span):
        try:
            yield
        except BaseException as error:
            finish(span, error)
            raise
    finish(span)


@contextmanager
def _current(span: Span | None) -> Iterator[None]:
    if span is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current span's traceparent to outgoing HTTP headers (nothing when off)."""
    if _enabled:
        traceparent = traceparent_of(trace.get_current_span())
        if traceparent:
            headers["traceparent"] = traceparent


def annotate(**attributes: str) -> None:
    """Add `sync.<name>` attributes to the current span (nothing when off)."""
    if _enabled:
        span = trace.get_current_span()
        for name, value in attributes.items():
            span.set_attribute(f"sync.{name}", value)


def current_trace_id() -> str | None:
    """The current span's trace id in hex, for log lines; None when not traced."""
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


def _distinct(traceparents: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(tp for tp in traceparents if tp))
