"""The neighbour probe of bench/start_commands/run.py: one fresh user's click at a steady pace.

    python -m bench.start_commands.neighbour_probe URL SECRET --delay S --seconds S --interval S

Runs in a process of its own, so that its latencies are not those of the load generator's
event loop. Prints JSON: the latencies (ms), how many clicks were planned and how many sent
(fewer when a click outlasted the interval: the pace was not kept).
"""

from __future__ import annotations

import argparse
import json
import time
from uuid import uuid4

import httpx

from coordinator.api.auth.tokens import issue_token


def probe(
    url: str, secret: str, delay: float, seconds: float, interval: float
) -> dict[str, object]:
    planned = int(seconds / interval)
    latencies: list[float] = []
    failures: list[str] = []
    with httpx.Client(timeout=30) as client:
        client.get(url.replace("/sync/smart", "/healthz"))  # connect before the window
        time.sleep(delay)
        start = time.perf_counter()
        for number in range(planned):
            due = start + number * interval
            now = time.perf_counter()
            if now - start > seconds:
                break
            if now < due:
                time.sleep(due - now)
            token = issue_token(f"neighbour-{uuid4().hex[:12]}", secret)
            began = time.perf_counter()
            answer = client.post(url, headers={"Authorization": f"Bearer {token}"})
            latencies.append((time.perf_counter() - began) * 1000)
            if answer.status_code != 202:
                failures.append(f"HTTP {answer.status_code}: {answer.text[:200]}")
    return {"latencies_ms": latencies, "planned": planned, "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("secret")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    print(json.dumps(probe(args.url, args.secret, args.delay, args.seconds, args.interval)))


if __name__ == "__main__":
    main()
