"""An MCP server's tools, loaded with langchain-mcp-adapters and named `<server>__<tool>`.

The tools are connection-based: each call opens its own session to the server (a stdio
server is started per call), so nothing stays open between turns and a server that
restarts is simply reached again on the next call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.tools import BaseTool
from langchain_mcp_adapters.sessions import Connection
from langchain_mcp_adapters.tools import load_mcp_tools

from chatter.workflows.tools.naming import mcp_tool_name

Transport = Literal["streamable_http", "stdio"]
TIMEOUT_KEY = "chatter_timeout_s"


@dataclass(frozen=True)
class McpServerSpec:
    """A registered server, as stored. `version` changes whenever it is registered anew."""

    name: str
    transport: Transport
    version: str
    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    timeout_s: float | None = None


def connection_of(spec: McpServerSpec, default_timeout_s: float) -> Connection:
    if spec.transport == "stdio":
        if spec.command is None:
            raise ValueError(f"stdio server {spec.name} has no command")
        # No `env`: the MCP SDK passes the child only a safe default subset of ours.
        return {"transport": "stdio", "command": spec.command, "args": list(spec.args)}
    if spec.url is None:
        raise ValueError(f"server {spec.name} has no url")
    return {
        "transport": "streamable_http",
        "url": spec.url,
        "headers": dict(spec.headers) or None,
        "timeout": spec.timeout_s or default_timeout_s,
    }


async def load_server_tools(
    spec: McpServerSpec, *, load_timeout_s: float, call_timeout_s: float
) -> dict[str, BaseTool]:
    """The server's tools by their Chatter names; raises if the server cannot be listed in
    time. A second tool whose name cleans up to one already taken is left out."""
    connection = connection_of(spec, call_timeout_s)
    loaded = await asyncio.wait_for(
        # handle_tool_errors=False: a tool's error result raises, so the call is recorded
        # as failed (the tools node turns it into an error result for the model).
        load_mcp_tools(
            None, connection=connection, server_name=spec.name, handle_tool_errors=False
        ),
        timeout=load_timeout_s,
    )
    tools: dict[str, BaseTool] = {}
    for tool in loaded:
        name = mcp_tool_name(spec.name, tool.name)
        if name not in tools:
            tools[name] = _renamed(tool, spec, name)
    return tools


def _renamed(tool: BaseTool, spec: McpServerSpec, name: str) -> BaseTool:
    update: dict[str, Any] = {"name": name}
    if spec.timeout_s is not None:  # the server's own bound on its calls
        update["metadata"] = {**(tool.metadata or {}), TIMEOUT_KEY: spec.timeout_s}
    return tool.model_copy(update=update)


def call_timeout(tool: BaseTool, default_s: float) -> float:
    """The timeout of one call of `tool`: its server's, or the default."""
    value = (tool.metadata or {}).get(TIMEOUT_KEY)
    return float(value) if isinstance(value, int | float) else default_s
