"""Map the service's exceptions to HTTP answers with a reason; nothing else is caught."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from coordinator.domain.user_sync import TaskFenced
from coordinator.service.handlers import IdempotencyKeyReused
from coordinator.service.ports import ConflictRetriesExhausted, StoreBusy, StoreUnavailable


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    """Register the handlers; unexpected errors stay 500s and are logged with a traceback."""

    async def unavailable(request: Request, error: Exception) -> JSONResponse:
        reason = (
            "this user's sync state is busy; retry shortly"
            if isinstance(error, StoreBusy)
            else "database unavailable; retry shortly"
        )
        return JSONResponse(
            {"detail": reason},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(retry_after_seconds)},
        )

    async def conflict(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)

    async def fenced(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, TaskFenced)
        return JSONResponse(
            {"detail": str(error), "task_id": error.task_id, "reason": error.reason},
            status_code=status.HTTP_409_CONFLICT,
        )

    async def key_reused(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    app.add_exception_handler(StoreUnavailable, unavailable)
    app.add_exception_handler(ConflictRetriesExhausted, conflict)
    app.add_exception_handler(IdempotencyKeyReused, key_reused)
    app.add_exception_handler(TaskFenced, fenced)
