"""Settings that are checked before any process starts."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.dev_stack import DevStack, remove_stack, write_stack
from core.settings import Settings


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


def settings_beside(data_dir: Path, **given: Any) -> Settings:
    return Settings(data_dir=str(data_dir), **given)


def test_unset_urls_come_from_the_running_dev_stack_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_stack(tmp_path, DevStack("postgresql+psycopg://dev@/sync", "127.0.0.1:9", os.getpid()))
    settings = settings_beside(tmp_path, database_url="", kafka_bootstrap="")
    with caplog.at_level(logging.INFO, logger="core.settings"):
        assert settings.require_database_url() == "postgresql+psycopg://dev@/sync"
        assert settings.require_kafka_bootstrap() == "127.0.0.1:9"
    assert (
        f"SYNC_DATABASE_URL is not set: using the `syncctl dev` stack of process {os.getpid()}"
        in caplog.text
    )
    assert "SYNC_KAFKA_BOOTSTRAP is not set: using the `syncctl dev` stack" in caplog.text


def test_set_urls_win_over_the_dev_stack(tmp_path: Path) -> None:
    write_stack(tmp_path, DevStack("postgresql+psycopg://dev@/sync", "127.0.0.1:9", os.getpid()))
    settings = settings_beside(
        tmp_path, database_url="postgresql+psycopg://prod@db/sync", kafka_bootstrap="kafka:9092"
    )
    assert settings.require_database_url() == "postgresql+psycopg://prod@db/sync"
    assert settings.require_kafka_bootstrap() == "kafka:9092"


def test_a_stack_whose_dev_process_is_gone_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_stack(tmp_path, DevStack("postgresql+psycopg://dev@/sync", "127.0.0.1:9", gone.pid))
    settings = settings_beside(tmp_path, database_url="", kafka_bootstrap="")
    with pytest.raises(SystemExit, match="SYNC_DATABASE_URL is not set"):
        settings.require_database_url()
    with pytest.raises(SystemExit, match="SYNC_KAFKA_BOOTSTRAP is not set"):
        settings.require_kafka_bootstrap()


def test_without_a_stack_file_the_error_names_the_variable(tmp_path: Path) -> None:
    write_stack(tmp_path, DevStack("postgresql+psycopg://dev@/sync", "127.0.0.1:9", os.getpid()))
    remove_stack(tmp_path)
    with pytest.raises(SystemExit, match="SYNC_DATABASE_URL is not set"):
        settings_beside(tmp_path, database_url="").require_database_url()
