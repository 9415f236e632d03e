"""`syncctl dev`: the whole system in one supervised process group, stopped by Ctrl-C."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from coordinator.adapters.postgres.migrate import upgrade
from coordinator.api.auth.tokens import issue_token
from coordinator.dev.apache_kafka import KAFKA_VERSION, start_cluster
from coordinator.dev.dev_mail import start_dev_mail
from coordinator.dev.embedded import free_port, port_is_free, start_postgres, start_tansu
from coordinator.dev.processes import NotReady, stop_processes, wait_ready
from core.dev_stack import DevStack, remove_stack, write_stack
from core.settings import Settings, require_hs256_key
from core.stopping import stop_on_signals

CHILDREN = ("api", "relay", "project", "work", "reap", "watch")
DEV_BROKERS = 3  # docker-compose.yml's shape: replication factor 3, min.insync.replicas 2
DEMO_USER = "demo-user"


def dev_secret(data_dir: Path) -> str:
    """A JWT secret kept in the data dir, so tokens survive a restart of `syncctl dev`."""
    path = data_dir / "jwt_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _say(line: str) -> None:
    print(line, flush=True)


def run_dev(settings: Settings) -> int:
    """Start what is missing, migrate, run the children, restart any that dies, stop on signal."""
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    stop = stop_on_signals()
    with ExitStack() as cleanup:
        url = settings.database_url
        if not url:
            pg = start_postgres(data_dir / "pgdata")
            cleanup.callback(pg.stop)
            url = pg.url
            _say(f"embedded PostgreSQL: {url}")
        bootstrap = settings.kafka_bootstrap or start_broker(settings, data_dir, env, cleanup)
        secret = require_hs256_key(settings.jwt_secret.get_secret_value() or dev_secret(data_dir))
        port = settings.api_port if port_is_free(settings.api_port) else free_port()
        env.update(
            SYNC_DATABASE_URL=url,
            SYNC_KAFKA_BOOTSTRAP=bootstrap,
            SYNC_JWT_SECRET=secret,
            SYNC_API_PORT=str(port),
            SYNC_API_URL=f"http://{settings.api_host}:{port}",
        )
        upgrade(url)
        create_topic(env)
        mailbox = start_dev_mail(settings, data_dir, url, DEMO_USER, env, cleanup)
        if mailbox:
            _say(mailbox)
        # Other `syncctl` commands run here without settings find the stack through this file.
        write_stack(data_dir, DevStack(url, bootstrap, os.getpid()))
        cleanup.callback(remove_stack, data_dir)
        names = (*CHILDREN, "webhooks") if settings.webhook_url else CHILDREN
        children = {name: _spawn(name, env) for name in names}
        cleanup.callback(lambda: stop_processes(*children.values()))
        base = f"http://{settings.api_host}:{port}"
        try:
            wait_ready(f"{base}/readyz", children["api"], timeout=30)
        except NotReady as error:
            _say(f"the API did not become ready ({error}); see its output above")
            return 1
        token = issue_token(DEMO_USER, secret, ttl_seconds=24 * 3600)
        _say(f"\nSync coordinator running at {base}  (OpenAPI: {base}/docs)")
        _say(f"token for {DEMO_USER}: {token}")
        # In the fragment: the browser keeps it and never sends it, so no server log has it.
        _say(f"status page, signed in as {DEMO_USER}: {base}/ui/#token={token}")
        _say("try:")
        _say(f"curl -s -X POST -H 'Authorization: Bearer {token}' '{base}/sync/smart'")
        if mailbox:
            _say("then watch it run (the imap executor syncs the demo mailbox), and read the mail:")
        else:
            _say("then watch it run (the demo executor imports a simulated mailbox):")
        _say(f"curl -s -H 'Authorization: Bearer {token}' '{base}/sync/status'")
        if mailbox:
            _say(f"curl -s -H 'Authorization: Bearer {token}' '{base}/mail/messages?limit=5'")
        _say("Ctrl-C stops everything.\n")
        while not stop.is_set():
            for name, child in children.items():
                if child.poll() is not None and not stop.is_set():
                    _say(f"{name} exited with {child.returncode}; restarting it")
                    children[name] = _spawn(name, env)
            time.sleep(0.5)
        _say("stopping")
    return 0


def start_broker(
    settings: Settings, data_dir: Path, env: dict[str, str], cleanup: ExitStack
) -> str:
    """Tansu (the default: seconds to start, no Java) or a local Apache Kafka cluster; the
    settings its clients need go into `env`."""
    if settings.dev_kafka == "apache":
        root = data_dir / "apache-kafka"
        shutil.rmtree(root, ignore_errors=True)  # a new cluster each time, like Tansu's memory
        _say(f"starting Apache Kafka {KAFKA_VERSION}: {DEV_BROKERS} KRaft nodes in {root}")
        cluster = start_cluster(root, DEV_BROKERS)
        cleanup.callback(cluster.stop)
        env.setdefault("SYNC_KAFKA_REPLICATION_FACTOR", str(DEV_BROKERS))
        env.setdefault("SYNC_KAFKA_MIN_INSYNC_REPLICAS", "2")
        _say(f"Apache Kafka {KAFKA_VERSION}: {cluster.bootstrap}")
        return cluster.bootstrap
    broker = start_tansu(log_path=data_dir / "tansu.log")
    cleanup.callback(broker.stop)
    # Tansu completes a group join only after the rebalance timeout.
    env.setdefault("SYNC_CONSUMER_MAX_POLL_INTERVAL_MS", "3000")
    # Tansu drops the connection that asks for a topic's configs (kafka-python logs errors).
    env.setdefault("SYNC_KAFKA_READ_TOPIC_LIMIT", "false")
    _say(f"embedded Tansu broker: {broker.bootstrap} (memory storage)")
    return broker.bootstrap


def create_topic(env: dict[str, str]) -> None:
    """The topic with its layout, before any process can ask a broker for it: `syncctl
    topic`, as compose's topic service runs it (a process of its own, so no client of the
    supervisor's is left connected to the broker)."""
    command = [sys.executable, "-m", "coordinator.cli", "topic", "--wait", "30"]
    made = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    if made.returncode != 0:
        raise SystemExit(f"the topic could not be created: {made.stderr.strip()}")
    _say(made.stdout.strip())


def _spawn(name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "coordinator.cli", name], env=env)
