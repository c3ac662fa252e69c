"""The tool registry: built-ins plus the tools of every registered MCP server, as one
ToolCatalog.

Servers are read from their source (the database) at most every `servers_refresh_s`, so a
server registered or deleted on another worker is seen within that time; this worker's own
changes are seen at once (`invalidate`). Each server's tool list is cached per registration
for `cache_ttl_s`, then listed again in the background (turns keep the cached list meanwhile);
a server that cannot be listed is logged, its tools are left out, and it is tried again after
`retry_s` - a turn that does not use it never fails because of it. Only a worker's first
listing of a server is waited for (at most `load_timeout_s`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from langchain_core.tools import BaseTool

from chatter.domain.clock import utcnow
from chatter.observability.logging import get_logger
from chatter.workflows.tools.mcp import McpServerSpec, load_server_tools
from chatter.workflows.tools.naming import server_of
from chatter.workflows.tools.results import describe_error

log = get_logger("chatter.tools")
ServerState = Literal["available", "unavailable"]


class ServerSource(Protocol):
    async def servers(self) -> list[McpServerSpec]:
        """Every registered MCP server."""
        ...


@dataclass(frozen=True)
class RegistryTiming:
    cache_ttl_s: float = 300.0
    retry_s: float = 30.0
    load_timeout_s: float = 10.0
    servers_refresh_s: float = 5.0
    call_timeout_s: float = 30.0


@dataclass(frozen=True)
class ServerStatus:
    name: str
    status: ServerState
    tools: list[str]
    error: str | None
    checked_at: datetime


@dataclass(frozen=True)
class _Loaded:
    version: str
    tools: dict[str, BaseTool]
    error: str | None
    at: float  # monotonic, for expiry
    checked_at: datetime


class ToolRegistry:
    def __init__(
        self,
        builtins: dict[str, BaseTool],
        source: ServerSource,
        timing: RegistryTiming,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._builtins = builtins
        self._source = source
        self._timing = timing
        self._clock = clock
        self._specs: list[McpServerSpec] | None = None
        self._specs_at = 0.0
        self._loaded: dict[str, _Loaded] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def names(self) -> list[str]:
        return sorted(await self.tools())

    async def tools(self, names: Collection[str] | None = None) -> dict[str, BaseTool]:
        wanted = None if names is None else set(names)
        found = {
            name: tool for name, tool in self._builtins.items() if wanted is None or name in wanted
        }
        servers = await self._servers()
        if wanted is not None:
            needed = {server_of(name) for name in wanted}
            servers = [spec for spec in servers if spec.name in needed]
        # Concurrently: a slow server costs its own load time, not the sum of all.
        for loaded in await asyncio.gather(*(self._load(spec) for spec in servers)):
            found.update(
                (name, tool)
                for name, tool in loaded.tools.items()
                if wanted is None or name in wanted
            )
        return found

    async def statuses(self) -> dict[str, ServerStatus]:
        """Each registered server's tools and whether it answered (loading it if needed)."""
        servers = await self._servers()
        loaded = await asyncio.gather(*(self._load(spec) for spec in servers))
        pairs = zip(servers, loaded, strict=True)
        return {spec.name: _status(spec.name, entry) for spec, entry in pairs}

    async def status(self, spec: McpServerSpec) -> ServerStatus:
        return _status(spec.name, await self._load(spec))

    def invalidate(self, server: str | None = None) -> None:
        """Forget the server list (and one server's tools): this worker changed them."""
        self._specs = None
        if server is not None:
            self._loaded.pop(server, None)

    async def _servers(self) -> list[McpServerSpec]:
        now = self._clock()
        if self._specs is None or now - self._specs_at >= self._timing.servers_refresh_s:
            try:
                specs = await self._source.servers()
            except Exception as exc:  # the built-ins still work: keep what we knew
                log.warning("tool_servers_unreadable", error=describe_error(exc))
                self._specs_at = now
                return self._specs or []
            self._specs, self._specs_at = specs, now
            names = {spec.name for spec in specs}
            for gone in set(self._loaded) - names:  # deleted (maybe on another worker)
                del self._loaded[gone]
        return self._specs

    async def _load(self, spec: McpServerSpec) -> _Loaded:
        entry = self._known(spec)
        if entry is not None:
            # Stale: served as is while a background task lists the server again, so no
            # turn waits for a server (least of all one that went down) it listed before.
            if not self._fresh(entry):
                self._refresh_later(spec)
            return entry
        lock = self._locks.setdefault(spec.name, asyncio.Lock())
        async with lock:  # one first load per server; the others reuse its result
            entry = self._known(spec)
            if entry is None:
                entry = self._loaded[spec.name] = await self._fetch(spec)
            return entry

    def _known(self, spec: McpServerSpec) -> _Loaded | None:
        entry = self._loaded.get(spec.name)
        return entry if entry is not None and entry.version == spec.version else None

    def _refresh_later(self, spec: McpServerSpec) -> None:
        if spec.name in self._refreshing:
            return
        task = asyncio.create_task(self._refresh(spec))
        self._refreshing[spec.name] = task
        task.add_done_callback(lambda _: self._refreshing.pop(spec.name, None))

    async def _refresh(self, spec: McpServerSpec) -> None:
        entry = await self._fetch(spec)
        if self._known(spec) is not None:  # not deleted nor registered anew meanwhile
            self._loaded[spec.name] = entry

    async def settled(self) -> None:
        """Wait for the background refreshes under way (tests; shutdown)."""
        while self._refreshing:
            await asyncio.wait(list(self._refreshing.values()))

    async def aclose(self) -> None:
        for task in list(self._refreshing.values()):
            task.cancel()
        await asyncio.gather(*self._refreshing.values(), return_exceptions=True)

    def _fresh(self, entry: _Loaded) -> bool:
        ttl = self._timing.retry_s if entry.error is not None else self._timing.cache_ttl_s
        return self._clock() - entry.at < ttl

    async def _fetch(self, spec: McpServerSpec) -> _Loaded:
        try:
            tools = await load_server_tools(
                spec,
                load_timeout_s=self._timing.load_timeout_s,
                call_timeout_s=self._timing.call_timeout_s,
            )
            error = None
        except Exception as exc:  # a server that is down must not break anything else
            tools, error = {}, _load_error(exc)
            log.warning("mcp_server_unavailable", server=spec.name, error=error)
        else:
            log.info("mcp_server_loaded", server=spec.name, tools=sorted(tools))
        return _Loaded(spec.version, tools, error, self._clock(), utcnow())


def _status(name: str, entry: _Loaded) -> ServerStatus:
    return ServerStatus(
        name=name,
        status="unavailable" if entry.error is not None else "available",
        tools=sorted(entry.tools),
        error=entry.error,
        checked_at=entry.checked_at,
    )


def _load_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the server did not list its tools in time"
    return describe_error(exc)[:500]
