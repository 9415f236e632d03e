"""`syncctl dev` with no settings at all: the curl line it prints works, other commands find it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

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
        for source in ("store", "kafka"):
            verify = replay_verify_beside(tmp_path, source)
            assert verify.returncode == 0, verify.stdout + verify.stderr
            summary = json.loads(verify.stdout)["summary"]
            assert summary["violations"] == 0 and summary["events"] >= 2, summary  # dev's events
        assert "SYNC_DATABASE_URL is not set: using the `syncctl dev` stack" in verify.stderr
        assert "SYNC_KAFKA_BOOTSTRAP is not set: using the `syncctl dev` stack" in verify.stderr
        assert (tmp_path / ".syncctl" / "stack.json").exists()
    finally:
        dev.send_signal(signal.SIGINT)
        rest, _ = dev.communicate(timeout=60)
    assert dev.returncode == 0, "".join(lines) + rest
    assert "relay is leader" in "".join(lines) + rest
    assert not (tmp_path / ".syncctl" / "stack.json").exists()  # a clean stop removes it


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
