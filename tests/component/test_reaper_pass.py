"""The reaper's pass over lapsed leases, on the in-memory store and a settable clock."""

from __future__ import annotations

import asyncio

from coordinator.adapters.memory.event_store import MemoryEventStore
from coordinator.entrypoints.reap import reap_once
from coordinator.service.handlers import Dependencies
from tests.unit.test_handler_rules import LEASE, Clock, clock, start, store, types

__all__ = ["clock", "store"]  # fixtures


def test_the_reaper_pass_expires_every_lapsed_task_once(
    store: MemoryEventStore, clock: Clock
) -> None:
    deps = Dependencies(store, LEASE, 3)
    start(store)
    assert asyncio.run(reap_once(store, deps)) == 0
    clock.now += LEASE
    assert (asyncio.run(reap_once(store, deps)), asyncio.run(reap_once(store, deps))) == (1, 0)
    assert types(store) == ["SyncStarted", "SyncExpired"]
