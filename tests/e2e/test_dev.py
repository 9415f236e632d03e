"""`syncctl dev` with no settings at all: the curl line it prints works, other commands find it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.processes import process_env

SYNCCTL = (sys.executable, "-m", "coordinator.cli")


def test_dev_starts_everything_and_its_curl_line_works(tmp_path: Path) -> None:
    dev = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "dev"],
        cwd=tmp_path,
        env=process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as in a terminal
    )
    lines: list[str] = []
    try:
        assert dev.stdout is not None
        deadline = time.monotonic() + 120
        curl = None
        while curl is None and time.monotonic() < deadline:
            line = dev.stdout.readline()
            assert line, "syncctl dev ended early:\n" + "".join(lines)
            lines.append(line)
            if line.startswith("curl "):
                curl = line.strip()
        assert curl is not None, "".join(lines)
        # dev's watcher syncs the seeded mailbox by itself as soon as it watches the new account
        # (40 + 12 messages); the clicks below then start a sync of their own and join it.
        assert any(line.startswith("private Dovecot on 127.0.0.1:") for line in lines), lines
        assert wait_for_synced_mail(lines, curl) == {"INBOX": 40, "Work": 12}
        wait_until_idle(lines, curl)
        first = json.loads(
            subprocess.run(
                curl, shell=True, capture_output=True, text=True, check=True, timeout=30
            ).stdout
        )
        second = json.loads(
            subprocess.run(
                curl, shell=True, capture_output=True, text=True, check=True, timeout=30
            ).stdout
        )
        assert first["success"] and not first["reused"]
        assert second["reused"] and second["task_id"] == first["task_id"]
        assert_status_page_link_signs_in(lines)
        for source in ("store", "kafka"):
            verify = replay_verify_beside(tmp_path, source)
            assert verify.returncode == 0, verify.stdout + verify.stderr
            summary = json.loads(verify.stdout)["summary"]
            assert summary["violations"] == 0 and summary["events"] >= 2, summary  # dev's events
        assert "SYNC_DATABASE_URL is not set: using the `syncctl dev` stack" in verify.stderr
        assert "SYNC_KAFKA_BOOTSTRAP is not set: using the `syncctl dev` stack" in verify.stderr
        assert (tmp_path / ".syncctl" / "stack.json").exists()
    finally:
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C: the whole group, every child included
        rest, _ = dev.communicate(timeout=60)
    assert dev.returncode == 0, "".join(lines) + rest
    errors = [line for line in rest.splitlines() if " ERROR " in line]
    assert not errors, "a clean stop logs no errors (the broker stops after its clients):\n" + (
        "\n".join(errors[:10])
    )
    assert "relay is leader" in "".join(lines) + rest
    # dev made the topic with its layout before any client could (broker-side auto-creation
    # once gave it Tansu's 4 partitions, and the relay warned about the difference).
    assert "topic sync-events: 8 partitions, 1 replicas\n" in lines, lines
    assert " exists with " not in "".join(lines) + rest
    assert not (tmp_path / ".syncctl" / "stack.json").exists()  # a clean stop removes it


def wait_for_synced_mail(lines: list[str], curl: str, timeout: float = 90) -> dict[str, int]:
    """Messages per folder once the demo user's sync has stored them all (or the last seen)."""
    token = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("token for"))
    base = curl.rsplit("'", 2)[1].removesuffix("/sync/smart")
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{base}/mail/folders", headers={"Authorization": f"Bearer {token}"})
        counts = {f["folder"]: f["messages"] for f in answer.json()["folders"]}
        if sum(counts.values()) >= 52:
            break
        time.sleep(0.5)
    return counts


def wait_until_idle(lines: list[str], curl: str, timeout: float = 60) -> None:
    """Until the demo user's status view shows no sync running (the watcher's has ended)."""
    token = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("token for"))
    base = curl.rsplit("'", 2)[1].removesuffix("/sync/smart")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{base}/sync/status", headers={"Authorization": f"Bearer {token}"})
        if not answer.json()["is_syncing"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"the demo user's sync still runs after {timeout} s")


def replay_verify_beside(cwd: Path, source: str) -> subprocess.CompletedProcess[str]:
    """`syncctl replay verify` run in the dev's folder with no SYNC_* variables at all."""
    return subprocess.run(
        [*SYNCCTL, "replay", "verify", "--source", source, "--format", "json"],
        cwd=cwd,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_status_page_link_signs_in(lines: list[str]) -> None:
    """The printed link serves the page, and its fragment's token is the demo user's."""
    prefix = "status page, signed in as demo-user: "
    link = next(line[len(prefix) :].strip() for line in lines if line.startswith(prefix))
    page_url, _, fragment = link.partition("#token=")
    page = httpx.get(page_url, timeout=10)
    assert page.status_code == 200 and "<title>Mail sync</title>" in page.text
    status = httpx.get(
        page_url.replace("/ui/", "/sync/status"),
        headers={"Authorization": f"Bearer {fragment}"},
        timeout=10,
    )
    assert status.json()["user_id"] == "demo-user", status.text
