"""One module per `syncctl` command: `add_parser` declares its arguments and sets its `run`.

Long-running processes (`relay`, `project`, `work`, `reap`, `webhooks`) take their stop event
from `core.stopping.stop_on_signals()`: the first SIGTERM or SIGINT sets it and the process
winds down on its own terms. `api` leaves signals to uvicorn (its lifespan ends the status
streams first); `dev` stops its children in order on the same event.
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

# What `add_parser` adds its command to: the subparsers of `syncctl`.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
