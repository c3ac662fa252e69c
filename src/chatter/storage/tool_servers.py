"""Registered MCP tool servers (admin-managed): the table and its queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, String, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from chatter.domain.clock import utcnow
from chatter.domain.ids import new_id
from chatter.storage.models import Base
from chatter.storage.types import UTCDateTime


class ToolServer(Base):
    """One MCP server. `streamable_http` uses `url` (+ `headers`); `stdio` runs `command`
    with `args`. A new registration gets a new id, which tells workers to reload its tools."""

    __tablename__ = "tool_servers"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    transport: Mapped[str] = mapped_column(String(32), nullable=False)
    url: Mapped[str | None] = mapped_column(Text)
    command: Mapped[str | None] = mapped_column(Text)
    args: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    timeout_s: Mapped[float | None] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


async def list_servers(session: AsyncSession) -> list[ToolServer]:
    return list(await session.scalars(select(ToolServer).order_by(ToolServer.name)))


async def get_server(session: AsyncSession, name: str) -> ToolServer | None:
    server: ToolServer | None = await session.scalar(
        select(ToolServer).where(ToolServer.name == name)
    )
    return server


async def delete_server(session: AsyncSession, name: str) -> bool:
    deleted = await session.execute(
        delete(ToolServer).where(ToolServer.name == name).returning(ToolServer.id)
    )
    return deleted.first() is not None
