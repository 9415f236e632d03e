"""docker-compose.yml cannot run here (no Docker engine): check it against the `syncctl` CLI,
the Settings, the Dockerfile and the Compose Specification's JSON Schema."""

from __future__ import annotations

import argparse
import copy
import json
import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from coordinator.cli import build_parser
from coordinator.dev.supervisor import CHILDREN
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RAW_TEXT = (ROOT / "docker-compose.yml").read_text()
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^\w+=", line))


class Required(Exception):
    """A `${NAME:?message}` variable without a value: compose would refuse to start."""


def interpolated(values: dict[str, str]) -> dict[str, Any]:
    """The file as compose reads it with these variables (`:?` ones must be given)."""

    def value(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(0)
        if values.get(name):
            return values[name]
        if ":?" in rest:
            raise Required(name)
        return match.group(2) or ""

    data: dict[str, Any] = yaml.safe_load(VARIABLE.sub(value, RAW_TEXT))
    return data


# .env.example with its three secrets filled in, the way README tells a newcomer to.
FILLED = env_example() | {
    "SYNC_JWT_SECRET": "k" * 44,
    "POSTGRES_PASSWORD": "c0ffee",
    "SYNC_MAIL_KEY": "Dd5cCNXMBE-WsMKTHhrH6o2yUe2tKyqD0cFRfbKOGTM=",
}
COMPOSE = interpolated(FILLED)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RAW_SERVICES: dict[str, dict[str, Any]] = yaml.safe_load(RAW_TEXT)["services"]
APP = {name: service for name, service in SERVICES.items() if "build" in service}
DATABASE, KAFKA, JWT = "SYNC_DATABASE_URL", "SYNC_KAFKA_BOOTSTRAP", "SYNC_JWT_SECRET"
TOPIC_LAYOUT = {"SYNC_KAFKA_REPLICATION_FACTOR", "SYNC_KAFKA_MIN_INSYNC_REPLICAS"}

# What each command reads before it can do its work (see the require_* calls behind it).
NEEDS: dict[str, set[str]] = {
    "migrate": {DATABASE},
    "topic": {KAFKA, *TOPIC_LAYOUT},
    "api": {DATABASE, JWT, "SYNC_API_HOST", "SYNC_MAIL_KEY"},
    "relay": {DATABASE, KAFKA, *TOPIC_LAYOUT},
    "project": {DATABASE, KAFKA},
    "work": {KAFKA, JWT, "SYNC_API_URL", DATABASE, "SYNC_MAIL_KEY", "SYNC_WORKER_EXECUTOR"},
    "reap": {DATABASE},
    "watch": {DATABASE, "SYNC_MAIL_KEY"},
    "webhooks": {DATABASE, KAFKA, "SYNC_WEBHOOK_URL", "SYNC_WEBHOOK_SECRET"},
}


def syncctl_commands() -> set[str]:
    (commands,) = (
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    return set(commands.choices)


def command(service: str) -> str:
    return str(SERVICES[service]["command"][0])


def env(service: str) -> dict[str, str]:
    return {key: str(value) for key, value in SERVICES[service].get("environment", {}).items()}


def running(syncctl_command: str) -> list[str]:
    return [name for name in APP if command(name) == syncctl_command]


def depends_on(service: str) -> dict[str, Any]:
    found: dict[str, Any] = SERVICES[service].get("depends_on", {})
    return found


def started_after(service: str) -> set[str]:
    """Every service that `service` waits for, directly or through another."""
    seen: set[str] = set()
    todo = list(depends_on(service))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(depends_on(name))
    return seen


def test_every_app_service_runs_a_real_syncctl_command_with_valid_arguments() -> None:
    assert APP, "no service is built from the Dockerfile"
    for name, service in APP.items():
        assert command(name) in syncctl_commands(), f"{name}: `syncctl {command(name)}`"
        build_parser().parse_args([str(arg) for arg in service["command"]])  # exits if invalid


def test_every_process_of_the_system_runs_under_compose() -> None:
    processes = {*CHILDREN, "webhooks", "migrate", "topic"}  # what `syncctl dev` runs, and more
    assert processes <= syncctl_commands()
    assert {command(name) for name in APP} == processes
    assert all(len(running(process)) == 1 for process in processes)
    assert SERVICES[running("relay")[0]]["deploy"]["replicas"] >= 2  # a standby takes over
    optional = {name for name, service in SERVICES.items() if service.get("profiles")}
    assert optional == set(running("webhooks"))  # it needs a receiver; the rest always runs


def test_each_service_has_the_settings_its_command_needs() -> None:
    for name in APP:
        missing = NEEDS[command(name)] - set(env(name))
        assert not missing, f"{name} (`syncctl {command(name)}`) lacks {sorted(missing)}"
        raw = RAW_SERVICES[name]["environment"]
        assert all(str(raw[key]).strip() for key in NEEDS[command(name)]), name


def test_each_service_s_settings_validate() -> None:
    for name in APP:
        given: dict[str, Any] = {k[5:].lower(): v for k, v in env(name).items()}
        Settings(**given)  # raises on a wrong type, range or combination


def test_every_sync_variable_is_a_setting() -> None:
    fields = {f"SYNC_{field.upper()}" for field in Settings.model_fields}
    for name in APP:
        unknown = {key for key in env(name) if key.startswith("SYNC_")} - fields
        assert not unknown, f"{name} sets {sorted(unknown)}, which no setting reads"


def test_services_agree_on_shared_settings_and_name_real_services() -> None:
    for variable in (DATABASE, KAFKA, JWT, "SYNC_KAFKA_TOPIC", "SYNC_REUSE_WINDOW_SECONDS"):
        values = {env(name)[variable] for name in APP if variable in env(name)}
        assert len(values) == 1, f"{variable} differs between services: {values}"
    database = urlsplit(env(running("migrate")[0])[DATABASE])
    postgres = SERVICES[database.hostname or ""]["environment"]
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path == f"/{postgres['POSTGRES_DB']}"
    brokers = {address.split(":")[0] for address in env(running("relay")[0])[KAFKA].split(",")}
    assert brokers == set(kafka_nodes())
    api, worker = running("api")[0], running("work")[0]
    assert env(api)[JWT] == env(worker)[JWT]  # the worker signs what the API verifies
    assert env(api)["SYNC_API_HOST"] == "0.0.0.0"  # reachable from the other containers
    reports_to = urlsplit(env(worker)["SYNC_API_URL"])
    assert (reports_to.hostname, str(reports_to.port)) == (api, env(api)["SYNC_API_PORT"])


def kafka_nodes() -> dict[str, dict[str, str]]:
    return {
        name: {key: str(value) for key, value in service["environment"].items()}
        for name, service in SERVICES.items()
        if str(service.get("image", "")).startswith("apache/kafka:")
    }


def test_kafka_is_three_kraft_brokers_holding_the_topic_at_rf3_min_isr2() -> None:
    nodes = kafka_nodes()
    assert len(nodes) == 3
    assert "zookeeper" not in json.dumps(COMPOSE).lower()
    voters = {f"{node['KAFKA_NODE_ID']}@{name}:9093" for name, node in nodes.items()}
    for name, node in nodes.items():
        assert "controller" in node["KAFKA_PROCESS_ROLES"].split(",")
        assert set(node["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert node["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert node["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # only `syncctl topic` creates
        assert node["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert len({node["CLUSTER_ID"] for node in nodes.values()}) == 1
    for name in running("topic") + running("relay"):
        layout = env(name)
        assert layout["SYNC_KAFKA_REPLICATION_FACTOR"] == "3"
        assert layout["SYNC_KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        Settings(
            kafka_replication_factor=int(layout["SYNC_KAFKA_REPLICATION_FACTOR"]),
            kafka_min_insync_replicas=int(layout["SYNC_KAFKA_MIN_INSYNC_REPLICAS"]),
        )


def test_start_order_waits_for_health_migrations_and_the_topic() -> None:
    one_shots = {*running("migrate"), *running("topic")}
    for name in SERVICES:
        for target, rule in depends_on(name).items():
            assert target in SERVICES, f"{name} waits for unknown service {target}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target}'s health"
            else:
                assert rule["condition"] == "service_completed_successfully"
                assert target in one_shots and SERVICES[target]["restart"] == "no"
    for name in APP:
        needs = NEEDS[command(name)]
        if DATABASE in needs and command(name) != "migrate":
            assert set(running("migrate")) <= started_after(name), name
        if KAFKA in needs and command(name) != "topic":
            assert set(running("topic")) <= started_after(name), name
    assert set(kafka_nodes()) <= started_after(running("topic")[0])
    assert running("api")[0] in started_after(running("work")[0])  # it reports to the API


def compose_spec_validator() -> jsonschema.protocols.Validator:
    """The Compose Specification's schema, as the check-jsonschema package ships it."""
    text = (files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    schema = json.loads(text)
    validator: jsonschema.protocols.Validator = jsonschema.validators.validator_for(schema)(schema)
    return validator


def test_compose_file_validates_against_the_compose_specification() -> None:
    validator = compose_spec_validator()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["worker"]["depends"] = broken["services"]["worker"].pop("depends_on")
    assert list(validator.iter_errors(broken)), "the schema check would catch nothing"


def test_every_variable_compose_reads_is_documented_in_the_env_example() -> None:
    used = {match.group(1) for match in VARIABLE.finditer(RAW_TEXT)}
    assert used == set(env_example())
    for secret in ("SYNC_JWT_SECRET", "POSTGRES_PASSWORD"):  # blank in .env.example
        with pytest.raises(Required, match=secret):
            interpolated(FILLED | {secret: ""})
    assert ".env" in (ROOT / ".gitignore").read_text().split()  # the real one holds secrets


def test_the_image_holds_every_package_and_runs_syncctl() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert all(service["build"] == "." for service in APP.values())
    assert re.search(r'^ENTRYPOINT \["syncctl"\]$', dockerfile, re.MULTILINE)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["syncctl"] == "coordinator.cli:main"
    packages = {
        name.rstrip("*") for name in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE))
    assert packages <= copied
    assert "COPY pyproject.toml README.md ./" in dockerfile


def test_every_process_logs_and_traces_the_same_way() -> None:
    for name in APP:
        settings = env(name)
        assert settings["SYNC_LOG_FORMAT"] == "json", name
        assert settings["OTEL_TRACES_EXPORTER"] == "none", f"{name}: traces off unless asked"
        assert urlsplit(settings["OTEL_EXPORTER_OTLP_ENDPOINT"]).scheme == "http", name
