"""`syncctl dev` with no settings at all: the curl line it prints works."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.processes import process_env


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
    finally:
        dev.send_signal(signal.SIGINT)
        rest, _ = dev.communicate(timeout=60)
    assert dev.returncode == 0, "".join(lines) + rest
    assert "relay is leader" in "".join(lines) + rest
