"""The baseline for bench/start_commands/run.py: the start command's SQL transaction, nothing else.

One FastAPI app with a sync `def` endpoint under uvicorn (WORKERS processes, 1 by default,
as many as `syncctl api` is given with SYNC_API_WORKERS), like `syncctl api`, but
raw psycopg 3 over a psycopg_pool ConnectionPool of 20, like the API, no ORM, no domain logic,
no auth. The SQL text is taken from the real event store, so both run the same statements.

    BENCH_DATABASE_URL=postgresql://... python -m bench.start_commands.baseline_app PORT [WORKERS]
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import uuid4

import uvicorn
from fastapi import FastAPI, Request
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from coordinator.adapters.postgres import command_sql as store
from core.domain.user_sync import stream_id_for

POOL_MIN, POOL_MAX = 20, 20  # the API keeps SYNC_DB_POOL_SIZE (20) connections, no overflow
LEASE = timedelta(seconds=1800)


CREATE_STREAM = store.CREATE_STREAM
LOCK_STREAM = store.LOCK_STREAM
INSERT_EVENTS = store.INSERT_EVENTS
UPDATE_STREAM = store.UPDATE_STREAM
INSERT_OUTBOXES = store.INSERT_OUTBOXES
NOTIFY = store.NOTIFY
LOCK_TIMEOUT = "-c lock_timeout=3000ms"  # a session setting, as on the API's connections


def event_rows(user_id: str, stream_id: str, locked: dict[str, Any]) -> dict[str, Any]:
    """Parameters of the same size as the API's: event data, metadata, snapshot, envelope."""
    version, now = locked["version"], locked["now"]
    task, lease, digest = f"sync_{uuid4().hex}", now + LEASE, uuid4().hex * 2
    times = {"started_at": now.isoformat(), "lease_expires_at": lease.isoformat()}
    data = {"task_id": task, "sync_type": "incremental", "requested_sync_type": "incremental"}
    data.update(times)
    meta = {"user_id": user_id, "correlation_id": str(uuid4()), "causation_id": str(uuid4())}
    state = {"task_id": task, "sync_type": "incremental", "status": "running", **times}
    event_id = str(uuid4())
    envelope = {"event_id": event_id, "event_type": "SyncReused", "schema_version": 1}
    envelope.update(stream_id=stream_id, user_id=user_id, version=version + 1, data=data)
    return {
        "event_id": event_id,
        "stream_id": stream_id,
        "user_id": user_id,
        "version": version + 1,
        "expected": version,
        "event_type": "SyncStarted" if version == 0 else "SyncReused",
        "schema_version": 1,
        "occurred_at": now,
        "now": now,
        "live_until": lease,
        "prev_hash": locked.get("last_hash", digest),  # a stand-in: no hash chain computed
        "hash": digest,
        "last_hash": digest,
        "data": json.dumps(data),
        "metadata": json.dumps(meta),
        "state": json.dumps({**state, "reuse_count": version, "percent": 0.0}),
        "payload": json.dumps({**envelope, **meta, "occurred_at": now.isoformat()}),
    }


def run_transaction(pool: ConnectionPool, user_id: str) -> int:
    """The start command's transaction, pipelined in the same groups as the event store."""
    stream_id = stream_id_for(user_id)
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        with conn.pipeline():
            cur.execute(CREATE_STREAM, {"stream_id": stream_id, "user_id": user_id})
            cur.execute(LOCK_STREAM, {"stream_id": stream_id})
        row = event_rows(user_id, stream_id, cur.fetchone() or {})
        # The same order as PostgresLockedStream.writes: events, outbox, notify, snapshot.
        event = {k: row[k] for k in store.EVENT_COLUMNS}
        outbox = {k: row[k] for k in ("event_id", "user_id", "payload")}
        with conn.pipeline(), conn.cursor() as update:
            cur.execute(INSERT_EVENTS, {"rows": store.json_rows([event], ("data", "metadata"))})
            cur.execute(INSERT_OUTBOXES, {"rows": store.json_rows([outbox], ("payload",))})
            cur.execute(NOTIFY)
            update.execute(UPDATE_STREAM, row)
        if update.rowcount != 1:
            raise RuntimeError(f"{stream_id} moved under its lock")
        conn.commit()
    version: int = row["version"]
    return version


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = ConnectionPool(
        os.environ["BENCH_DATABASE_URL"],
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        kwargs={"options": LOCK_TIMEOUT},
    )
    pool.wait()
    app.state.pool = pool
    try:
        yield
    finally:
        pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/baseline/{user_id}", status_code=202)
def baseline(user_id: str, request: Request) -> dict[str, Any]:
    """Run the transaction for user_id."""
    return {"reused": False, "version": run_transaction(request.app.state.pool, user_id)}


@app.get("/readyz")
def readyz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    uvicorn.run(
        "bench.start_commands.baseline_app:app" if workers > 1 else app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        workers=workers,
        access_log=False,
        log_level="info",
    )
