"""Child processes as the dev supervisor, the tests and the benchmarks run them: wait until a
server is ready, stop them and reap them."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx


class NotReady(RuntimeError):
    """A server process exited, or did not answer 200, before its deadline."""


def wait_ready(
    url: str, process: subprocess.Popen[Any], timeout: float = 60.0, log: Path | None = None
) -> None:
    """Return once GET `url` answers 200; NotReady, with the end of `log`, if the process
    exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotReady(f"{process.args!r} exited {process.returncode}{_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise NotReady(f"{url} did not answer 200 within {timeout:g} s{_tail(log)}")


def stop_processes(*processes: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM to each one still running, then up to `grace` seconds for all of them to exit;
    SIGKILL for any left. Every one is reaped."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return ":\n" + log.read_text(errors="replace")[-3000:]
