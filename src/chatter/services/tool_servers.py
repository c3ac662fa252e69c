"""MCP tool servers: admins register and delete them; everyone's workflows use their tools.

The table is the truth every worker reads (the registry re-reads it every
`servers_refresh_s`); this worker's registry is told at once of its own changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.enums import UserRole
from chatter.domain.events import DomainEvent, EventType
from chatter.errors import Conflict, Forbidden, NotFound, StdioCommandNotAllowed
from chatter.events.publisher import EventPublisher
from chatter.observability.logging import get_logger
from chatter.settings import ToolSettings
from chatter.storage import message_search, tool_servers
from chatter.storage.models import User
from chatter.storage.tool_servers import ToolServer
from chatter.workflows.tools.conversation_search import MessageHit
from chatter.workflows.tools.mcp import McpServerSpec, Transport
from chatter.workflows.tools.registry import RegistryTiming, ServerStatus, ToolRegistry

log = get_logger("chatter.tools")


@dataclass(frozen=True)
class ToolServerDraft:
    name: str
    transport: Transport
    url: str | None = None
    command: str | None = None
    args: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None


@dataclass(frozen=True)
class ToolServerView:
    record: ToolServer
    status: ServerStatus


def spec_of(row: ToolServer) -> McpServerSpec:
    transport: Literal["streamable_http", "stdio"] = (
        "stdio" if row.transport == "stdio" else "streamable_http"
    )
    return McpServerSpec(
        name=row.name,
        transport=transport,
        version=row.id,
        url=row.url,
        command=row.command,
        args=tuple(row.args or ()),
        headers={str(k): str(v) for k, v in (row.headers or {}).items()},
        timeout_s=row.timeout_s,
    )


def registry_timing(settings: ToolSettings) -> RegistryTiming:
    return RegistryTiming(
        cache_ttl_s=settings.cache_ttl_s,
        retry_s=settings.retry_s,
        load_timeout_s=settings.load_timeout_s,
        servers_refresh_s=settings.servers_refresh_s,
        call_timeout_s=settings.timeout_s,
    )


class DatabaseServerSource:
    """The registry's ServerSource: the `tool_servers` table."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def servers(self) -> list[McpServerSpec]:
        async with self._sessions() as session:
            rows = await tool_servers.list_servers(session)
            await session.commit()  # end the read: on SQLite it holds the one connection
        return [spec_of(row) for row in rows]


class MessageSearcher:
    """conversation_search's MessageSearch: one short read of the caller's messages."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def search(self, *, user_id: str, query: str, limit: int) -> list[MessageHit]:
        async with self._sessions() as session:
            rows = await message_search.search_messages(
                session, user_id=user_id, query=query, limit=limit
            )
            await session.commit()
        return [MessageHit(*row) for row in rows]


class ToolServerService:
    def __init__(
        self, registry: ToolRegistry, settings: ToolSettings, publisher: EventPublisher
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._publisher = publisher

    async def register(
        self, *, session: AsyncSession, user: User, draft: ToolServerDraft, correlation_id: str
    ) -> ToolServerView:
        _require_admin(user)
        self._check_command(draft)
        if await tool_servers.get_server(session, draft.name) is not None:
            raise Conflict(
                f"A tool server named '{draft.name}' exists; delete it first.",
                details={"name": draft.name},
            )
        row = ToolServer(
            name=draft.name,
            transport=draft.transport,
            url=draft.url,
            command=draft.command,
            args=list(draft.args),
            headers=dict(draft.headers),
            timeout_s=draft.timeout_s,
            created_by=user.id,
        )
        session.add(row)
        event = _changed(EventType.TOOL_SERVER_REGISTERED, correlation_id, user, row)
        try:
            await self._publisher.commit(session, [event])
        except IntegrityError as exc:  # registered concurrently under the same name
            await session.rollback()
            raise Conflict(
                f"A tool server named '{draft.name}' exists; delete it first.",
                details={"name": draft.name},
            ) from exc
        log.info("tool_server_registered", server=row.name, transport=row.transport)
        self._registry.invalidate(row.name)
        # Listed now (outside any transaction), so the answer says whether it works.
        return ToolServerView(row, await self._registry.status(spec_of(row)))

    async def list(self, *, session: AsyncSession, user: User) -> list[ToolServerView]:
        _require_admin(user)
        rows = await tool_servers.list_servers(session)
        await session.commit()
        statuses = await self._registry.statuses()
        views = []
        for row in rows:
            status = statuses.get(row.name)
            if status is None:  # registered after the registry last read the table
                status = await self._registry.status(spec_of(row))
            views.append(ToolServerView(row, status))
        return views

    async def delete(
        self, *, session: AsyncSession, user: User, name: str, correlation_id: str
    ) -> None:
        _require_admin(user)
        row = await tool_servers.get_server(session, name)
        if row is None or not await tool_servers.delete_server(session, name):
            await session.rollback()
            raise NotFound("Tool server not found.", details={"name": name})
        event = _changed(EventType.TOOL_SERVER_DELETED, correlation_id, user, row)
        await self._publisher.commit(session, [event])
        log.info("tool_server_deleted", server=name)
        self._registry.invalidate(name)

    async def aclose(self) -> None:
        await self._registry.aclose()

    def _check_command(self, draft: ToolServerDraft) -> None:
        allowed = self._settings.stdio_allowed_commands
        if draft.transport == "stdio" and draft.command not in allowed:
            raise StdioCommandNotAllowed(
                "This command may not be run as a stdio MCP server; an admin of the "
                "deployment allows commands with CHATTER_TOOLS__STDIO_ALLOWED_COMMANDS.",
                details={"command": draft.command, "allowed": list(allowed)},
            )


def _changed(kind: EventType, correlation_id: str, user: User, row: ToolServer) -> DomainEvent:
    """Who registered or deleted which server (header values are secrets: names only)."""
    return DomainEvent(
        kind,
        correlation_id,
        user_id=user.id,
        data={
            "name": row.name,
            "transport": row.transport,
            "url": row.url,
            "command": row.command,
            "header_names": sorted(row.headers or {}),
        },
    )


def _require_admin(user: User) -> None:
    if user.role != UserRole.ADMIN.value:
        raise Forbidden("Only admins may manage tool servers.")
