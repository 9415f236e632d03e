"""docker-compose.yml cannot run here (no Docker engine); check its shape by reading it."""

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_services_are_the_designed_ones() -> None:
    assert set(load()["services"]) == {"postgres", "kafka", "migrate", "api", "relay"}


def test_kafka_runs_in_kraft_mode_without_zookeeper() -> None:
    kafka = load()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "zookeeper" not in str(load()).lower()


def test_app_services_get_the_settings_they_require() -> None:
    services = load()["services"]
    for name in ("migrate", "api", "relay"):
        env = services[name]["environment"]
        assert env["SYNC_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["SYNC_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert services[name]["command"] == [name]


def test_api_and_relay_wait_for_migrations() -> None:
    services = load()["services"]
    for name in ("api", "relay"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
