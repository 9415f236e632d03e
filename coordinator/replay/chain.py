"""Tamper evidence: recompute a stream's hash chain from GENESIS and find its first broken link."""

from __future__ import annotations

from coordinator.replay.records import StoredEvent, StreamRow, Violation
from core.domain.hash_chain import GENESIS, chain_hash

HASH_CHAIN = "hash-chain"
CHAIN_HEAD = "chain-head"


def _short(digest: str) -> str:
    return digest[:12]


class ChainCheck:
    """Feeds one stream's events in version order; reports the first broken link only."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self._running = GENESIS
        self._last_stored = GENESIS
        self._broken = False

    def feed(self, event: StoredEvent) -> Violation | None:
        """The violation at this event if the chain breaks here (and did not break before)."""
        self._last_stored = event.hash
        if self._broken:
            # Everything after a break hashes differently anyway: one finding per stream.
            return None
        if event.prev_hash != self._running:
            self._broken = True
            return Violation(
                HASH_CHAIN,
                self.stream_id,
                event.version,
                f"prev_hash {_short(event.prev_hash)} does not link to the hash before it "
                f"({_short(self._running)}): an earlier event was removed, inserted or rewritten",
            )
        computed = chain_hash(
            self._running,
            event_id=event.event_id,
            stream_id=event.stream_id,
            version=event.version,
            event_type=event.event_type,
            schema_version=event.schema_version,
            occurred_at=event.occurred_at,
            data=event.data,
            metadata=event.metadata,
        )
        if computed != event.hash:
            self._broken = True
            return Violation(
                HASH_CHAIN,
                self.stream_id,
                event.version,
                f"content does not match its hash (stored {_short(event.hash)}, recomputed "
                f"{_short(computed)}): the event was edited",
            )
        self._running = computed
        return None

    def finish(self, stream: StreamRow | None, last_version: int | None) -> Violation | None:
        """The head check: the stream row must point at the last event's hash."""
        if stream is None or stream.last_hash == self._last_stored:
            return None
        return Violation(
            CHAIN_HEAD,
            self.stream_id,
            last_version,
            f"streams.last_hash {_short(stream.last_hash)} is not the last event's hash "
            f"({_short(self._last_stored)}): events at the end were removed or the head rewritten",
        )
