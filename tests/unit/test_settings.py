"""Settings that are checked before any process starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coordinator.settings import Settings


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValidationError, match="SYNC_KAFKA_MIN_INSYNC_REPLICAS cannot exceed"):
        Settings(kafka_replication_factor=2, kafka_min_insync_replicas=3)


def test_dev_keeps_one_replica_and_the_broker_default_min_insync(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SYNC_KAFKA_REPLICATION_FACTOR", raising=False)
    monkeypatch.delenv("SYNC_KAFKA_MIN_INSYNC_REPLICAS", raising=False)
    settings = Settings()
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (1, None)
