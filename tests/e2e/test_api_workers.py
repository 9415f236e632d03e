"""SYNC_API_WORKERS: several processes on one port, one task per user, metrics summed."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from sqlalchemy import Engine

from coordinator.api.admission.crowd import CROWD_FILE
from tests.e2e.conftest import started_count
from tests.e2e.processes import running_api
from tests.e2e.test_click_storms import metric
from tests.e2e.test_start_over_http import click_concurrently
from tests.support.random_refs import random_user


def children(pid: int) -> list[int]:
    """uvicorn's worker processes (multiprocessing's resource tracker left out)."""
    found = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [p for p in found if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


def environment(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def test_workers_share_the_port_the_user_lock_and_their_metrics(
    shared_database_url: str, engine: Engine
) -> None:
    user = random_user("workers")
    with running_api(shared_database_url, api_workers="2") as api:
        deadline = time.monotonic() + 30
        while len(children(api.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = children(api.process.pid)
        crowd_files = {environment(pid).get(CROWD_FILE) for pid in workers}
        answers = asyncio.run(click_concurrently([(api.base_url, api.headers(user))] * 60))
        # Each scrape is a new connection, answered by whichever worker accepts it.
        scraped = [metric(api, "sync_command_batch_size_sum") for _ in range(8)]
    assert len(workers) == 2
    assert [a.status_code for a in answers] == [202] * 60
    assert len({a.json()["task_id"] for a in answers}) == 1
    assert sorted(a.json()["version"] for a in answers) == list(range(1, 61))
    assert started_count(engine, user) == {"SyncStarted": 1, "SyncReused": 59}
    assert scraped == [60] * 8, "every worker's /metrics shows the clicks of both"
    [crowd_file] = crowd_files  # one mark for both workers, removed with them
    assert crowd_file and not os.path.exists(crowd_file)
    for pid in workers:  # stopping the API stops its workers
        assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_a_killed_worker_leaves_no_live_gauge_and_old_counts_are_not_added(
    shared_database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"an earlier run's counts")
    with running_api(
        shared_database_url, api_workers="2", extra_env={"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    ) as api:
        deadline = time.monotonic() + 30
        while len(children(api.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (folder / "counter_1.db").exists()
        killed = children(api.process.pid)[0]
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while killed in children(api.process.pid) or len(children(api.process.pid)) < 2:
            assert time.monotonic() < deadline, "uvicorn did not replace the killed worker"
            time.sleep(0.1)
        while not list(folder.glob("gauge_livesum_*.db")) or any(
            f.name.endswith(f"_{killed}.db") for f in folder.glob("gauge_live*.db")
        ):
            assert time.monotonic() < deadline, "the killed worker's live gauges stayed"
            time.sleep(0.1)
