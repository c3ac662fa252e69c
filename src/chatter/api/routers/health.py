"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from chatter.api.deps import ContainerDep
from chatter.storage.migrate import pending_migrations

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(container: ContainerDep) -> dict[str, Any] | JSONResponse:
    try:
        async with container.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        pending = await pending_migrations(container.engine)
    except Exception as exc:  # a boundary: any database failure means "not ready"
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", "detail": type(exc).__name__},
            status_code=503,
        )
    if pending:
        return JSONResponse(
            {"status": "unavailable", "database": "not migrated", "pending": pending},
            status_code=503,
        )
    return {"status": "ok", "database": "ok"}
