"""The tools a workflow may name: one catalog for built-ins and (later) MCP servers' tools.

Definitions are validated against `names()`; a run gets the tools it names from `tools()`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from langchain_core.tools import BaseTool

from chatter.workflows.tools import builtin_tools


class ToolCatalog(Protocol):
    async def names(self) -> list[str]:
        """Every tool name a definition may use, sorted."""
        ...

    async def tools(self, names: Collection[str] | None = None) -> dict[str, BaseTool]:
        """The named tools (all of them for None); unknown names are left out."""
        ...


class BuiltinToolCatalog:
    """Only the built-in tools."""

    def __init__(self) -> None:
        self._tools = builtin_tools()

    async def names(self) -> list[str]:
        return sorted(self._tools)

    async def tools(self, names: Collection[str] | None = None) -> dict[str, BaseTool]:
        if names is None:
            return dict(self._tools)
        return {name: tool for name, tool in self._tools.items() if name in names}
