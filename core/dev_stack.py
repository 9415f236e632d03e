"""The file in which `syncctl dev` tells other `syncctl` commands where its services are."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STACK_FILE = "stack.json"


@dataclass(frozen=True)
class DevStack:
    """The database and broker a running `syncctl dev` (process `pid`) uses."""

    database_url: str
    kafka_bootstrap: str
    pid: int


def stack_path(data_dir: Path) -> Path:
    return data_dir / STACK_FILE


def write_stack(data_dir: Path, stack: DevStack) -> Path:
    """Write the file whole (rename), readable by its owner only: the URL may hold a password."""
    path = stack_path(data_dir)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(stack)))
    partial.chmod(0o600)
    partial.replace(path)
    return path


def read_stack(data_dir: Path) -> DevStack | None:
    """The running stack, or None if there is no file or the process that wrote it is gone."""
    try:
        fields = json.loads(stack_path(data_dir).read_text())
        stack = DevStack(str(fields["database_url"]), str(fields["kafka_bootstrap"]), fields["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return stack if _alive(stack.pid) else None


def remove_stack(data_dir: Path) -> None:
    stack_path(data_dir).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True
