"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from chatter.api.deps import ContainerDep
from chatter.storage.migrate import pending_migrations

router = APIRouter(tags=["health"])
REDIS_PING_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


NOT_READY = {
    "description": "Not ready: the database is unreachable or not migrated, or Redis does not "
    "answer.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "string", "const": "unavailable"}},
            }
        }
    },
}


@router.get("/readyz", response_model=None, responses={503: NOT_READY})
async def readyz(container: ContainerDep) -> dict[str, Any] | JSONResponse:
    """Ready when the database is reachable and migrated (and Redis answers, if configured)."""
    try:
        async with container.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        pending = await pending_migrations(container.engine)
    except Exception as exc:  # a boundary: any database failure means "not ready"
        return _unavailable(database="unreachable", detail=type(exc).__name__)
    if pending:
        return _unavailable(database="not migrated", pending=pending)
    body: dict[str, Any] = {"status": "ok", "database": "ok"}
    if container.redis is not None:
        try:
            async with asyncio.timeout(REDIS_PING_TIMEOUT_S):
                await container.redis.ping()
        except Exception as exc:  # a boundary: any Redis failure means "not ready"
            return _unavailable(database="ok", redis="unreachable", detail=type(exc).__name__)
        body["redis"] = "ok"
    return body


def _unavailable(**details: Any) -> JSONResponse:
    return JSONResponse({"status": "unavailable", **details}, status_code=503)
