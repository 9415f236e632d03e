"""A coalesced batch's transaction span: the child of its first command, linking the rest.

In process, with the SDK's in-memory span exporter; the coalescer runs on real row locks.
"""

from __future__ import annotations

import asyncio

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine

from coordinator.service.coalescer import CommandCoalescer
from core.telemetry import tracing
from tests.integration.test_coalescer import click, coalescer
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_user

CLICKS = 40


def traceparent(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


async def clicks_in_their_own_requests(
    submit: CommandCoalescer, user: str, provider: TracerProvider
) -> None:
    tracer = provider.get_tracer("test")

    async def request() -> None:
        with tracer.start_as_current_span("request"):
            await submit.submit(click(user))

    await asyncio.gather(*(request() for _ in range(CLICKS)))


def test_batch_span_is_the_first_command_s_child_and_links_the_others(engine: Engine) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    user, batches = random_user("traced-batch"), list[int]()
    with tracing.tracing_into(provider):
        asyncio.run(clicks_in_their_own_requests(coalescer(engine, batches), user, provider))
    spans = exporter.get_finished_spans()
    commands = {s.context.span_id: s for s in spans if s.name == "command StartRequested"}
    requests = {s.context.span_id: s for s in spans if s.name == "request"}
    transactions = [s for s in spans if s.name == "command transaction"]
    assert len(commands) == CLICKS and max(batches) > 1, "clicks shared a batch"
    assert all(c.parent and c.parent.span_id in requests for c in commands.values())

    linked: set[int] = set()
    for transaction in transactions:
        assert transaction.parent is not None
        first = commands[transaction.parent.span_id]
        others = {link.context.span_id for link in transaction.links}
        assert first.context.span_id not in others
        assert others <= set(commands)
        assert transaction.attributes is not None
        assert transaction.attributes["sync.batch_size"] == len(others) + 1
        linked |= others | {first.context.span_id}
    assert linked == set(commands), "every command reaches its transaction"
    assert len(transactions) == len(batches)

    # Each command's event carries its own command span's trace context, not the batch's.
    stored = {e.traceparent for e in run(command_store(engine).read_stream(user))}
    assert stored == {traceparent(c) for c in commands.values()}
