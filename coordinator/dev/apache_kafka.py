"""A local Apache Kafka cluster in KRaft mode: N combined broker/controller nodes, each a Java
process on loopback ports from the OS, run from the jars `scripts/install.sh` fetches.

The cluster settings are docker-compose.yml's (tests/component/test_apache_kafka.py holds them
equal); what differs is sized for a small shared machine: heap, threads, partitions of the
offsets topic. Nodes are stopped by their PIDs; one can be killed and restarted alone.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from coordinator.dev.embedded import free_port, wait_for_port
from coordinator.dev.processes import stop_processes

KAFKA_VERSION = "4.1.1"
ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run scripts/install.sh (it fetches Apache Kafka through Maven; needs Java 17+)"

# docker-compose.yml's broker settings (its KAFKA_* variables), for a three-node cluster.
CLUSTER_SETTINGS: dict[str, str] = {
    "auto.create.topics.enable": "false",  # topics are created with their layout, never implied
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "group.initial.rebalance.delay.ms": "0",
}
# Local only: a 2-core machine shared with other work. Threads and the offsets topic's 50
# partitions (Kafka's default) cost start-up time and CPU that tests never use.
LOCAL_SETTINGS: dict[str, str] = {
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.replica.fetchers": "1",
    "background.threads": "2",
    "offsets.topic.num.partitions": "6",
    "log.cleaner.dedupe.buffer.size": "8388608",
}
JVM_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")


class KafkaUnavailable(RuntimeError):
    """Java or the Kafka jars are missing, or the cluster did not come up."""


def default_libs() -> Path:
    return ROOT / ".apache-kafka" / KAFKA_VERSION / "libs"


def settings_for(nodes: int) -> dict[str, str]:
    """The cluster settings, with replication factors a smaller cluster can hold."""
    factor, isr = str(min(3, nodes)), str(min(2, nodes))
    scaled = {
        "default.replication.factor": factor,
        "offsets.topic.replication.factor": factor,
        "transaction.state.log.replication.factor": factor,
        "min.insync.replicas": isr,
        "transaction.state.log.min.isr": isr,
    }
    return {**CLUSTER_SETTINGS, **scaled}


@dataclass
class KafkaNode:
    """One broker/controller: its ports, its folder and, while it runs, its process."""

    node_id: int
    port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class KafkaCluster:
    nodes: list[KafkaNode]
    java: list[str]
    cluster_id: str

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, as a crash would, and reap it."""
        node = self.node(node_id)
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    def start(self, node_id: int) -> None:
        """Start (or restart) one node on its folder and ports."""
        node = self.node(node_id)
        log = open(node.directory / "process.log", "ab")  # noqa: SIM115 (the child keeps it)
        config = node.directory / "server.properties"
        node.process = subprocess.Popen(
            [*self.java, "kafka.Kafka", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the clients first; the caller stops it
        )
        log.close()

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Return once every running node is an unfenced broker of the cluster."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        wanted = {node.node_id for node in self.nodes if node.running()}
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.running():
                wait_for_port(node.port, max(1.0, deadline - time.monotonic()))
        seen: set[int] = set()
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                try:
                    brokers = admin.describe_cluster()["brokers"]
                finally:
                    admin.close()
                seen = {b["broker_id"] for b in brokers if not b.get("is_fenced")}
                if wanted <= seen:
                    return
            except KafkaError:
                pass
            time.sleep(0.3)
        raise KafkaUnavailable(f"brokers {sorted(wanted - seen)} not ready after {timeout:g} s")

    def stop(self) -> None:
        """Kill every node this cluster started (its data is disposable) and reap it."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGKILL)
        stop_processes(*(n.process for n in self.nodes if n.process is not None), grace=10)

    def _check_alive(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is not None:
                tail = (node.directory / "process.log").read_text(errors="replace")[-2000:]
                raise KafkaUnavailable(f"Kafka node {node.node_id} exited:\n{tail}")


def java_command(libs: Path, heap_mb: int, log_config: Path) -> list[str]:
    """The JVM and its options; KafkaUnavailable naming the install step if anything lacks."""
    java = shutil.which("java")
    if java is None:
        raise KafkaUnavailable(f"no `java` on PATH: {INSTALL_HINT}")
    if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        raise KafkaUnavailable(f"Apache Kafka {KAFKA_VERSION} jars not in {libs}: {INSTALL_HINT}")
    return [
        java,
        f"-Xms{heap_mb}m",
        f"-Xmx{heap_mb}m",
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={log_config}",
        "-cp",
        f"{libs}/*",
    ]


def start_cluster(
    root: Path,
    nodes: int = 3,
    *,
    libs: Path | None = None,
    heap_mb: int = 256,
    overrides: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> KafkaCluster:
    """Format storage for `nodes` nodes under `root` and start them; ready when it returns."""
    root.mkdir(parents=True, exist_ok=True)
    log_config = root / "log4j2.properties"
    log_config.write_text(LOG_CONFIG)
    java = java_command(libs or default_libs(), heap_mb, log_config)
    cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    members = [
        KafkaNode(i, free_port(), free_port(), root / f"node-{i}") for i in range(1, nodes + 1)
    ]
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in members)
    settings = {**settings_for(nodes), **LOCAL_SETTINGS, **(overrides or {})}
    for node in members:
        node.directory.mkdir(parents=True, exist_ok=True)
        (node.directory / "server.properties").write_text(properties(node, voters, settings) + "\n")
    cluster = KafkaCluster(members, java, cluster_id)
    # One argument: an id may begin with "-", which would read as an option.
    format_command = [
        *java,
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster_id}",
        "-c",
    ]
    formats = [
        subprocess.Popen(
            [*format_command, str(node.directory / "server.properties")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for node in members
    ]
    for process in formats:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise KafkaUnavailable(f"formatting storage failed:\n{out.decode(errors='replace')}")
    try:
        for node in members:
            cluster.start(node.node_id)
        cluster.wait_ready(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextmanager
def running_cluster(root: Path, nodes: int = 3, **options: object) -> Iterator[KafkaCluster]:
    cluster = start_cluster(root, nodes, **options)  # type: ignore[arg-type]
    try:
        yield cluster
    finally:
        cluster.stop()


def properties(node: KafkaNode, voters: str, settings: Mapping[str, str]) -> str:
    """One node's server.properties."""
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{node.address},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{node.address}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.directory / "data"),
        **settings,
    }
    return "\n".join(f"{key}={value}" for key, value in lines.items())


# Warnings and errors to each node's process.log (its stdout), as Kafka's own console appender.
LOG_CONFIG = """\
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
"""
