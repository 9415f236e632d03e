"""Whether other users are about, as every worker process of one `syncctl api` sees it.

"Shared until" is one 8-byte slot in a file every worker maps: a worker that sees a second
user writes it, every worker reads it (time.monotonic() is the machine's CLOCK_MONOTONIC,
the same in every process). A torn or lost write costs at most one second of the lone
share. Why one mark for all workers: docs/decisions/per-user-gate.md.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile

CROWD_FILE = "SYNCCTL_CROWD_FILE"  # set by `syncctl api` for its workers
_SLOT = struct.Struct("d")


class CrowdMark:
    """Until when this API counts as shared by several users (monotonic seconds)."""

    def __init__(self, path: str | None = None) -> None:
        self._slot: mmap.mmap | bytearray
        if path is None:
            self._slot = bytearray(_SLOT.size)  # one process: private
        else:
            with open(path, "r+b") as file:
                self._slot = mmap.mmap(file.fileno(), _SLOT.size)

    @classmethod
    def from_environment(cls) -> CrowdMark:
        """The workers' shared mark when `syncctl api` made one, else a private one."""
        return cls(os.environ.get(CROWD_FILE))

    def until(self) -> float:
        value: float = _SLOT.unpack_from(self._slot)[0]
        return value

    def mark(self, until: float) -> None:
        _SLOT.pack_into(self._slot, 0, until)


def new_crowd_file() -> str:
    """A zeroed slot for the workers of one API (never shared: 0.0)."""
    descriptor, path = tempfile.mkstemp(prefix="syncctl-crowd-")
    try:
        os.write(descriptor, bytes(_SLOT.size))
    finally:
        os.close(descriptor)
    return path
