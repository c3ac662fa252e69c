"""Tool names: what a workflow names a tool by, and how an MCP server's tools are named.

Every name is a valid OpenAI function name (`^[a-zA-Z0-9_-]{1,64}$`). An MCP server's tool
is `<server>__<tool>`: built-in names never contain `__`, and a server name never contains
`__` nor ends with `_`, so the first `__` of a name always ends its server's name and two
servers' tools never clash with each other or with a built-in."""

from __future__ import annotations

import re

FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SEPARATOR = "__"
MAX_NAME = 64
MAX_SERVER_NAME = 32
# Lower-case letters, digits, `-` and `_`; starts with a letter or digit; does not end with
# `_`; and (checked apart: JSON Schema patterns have no look-ahead) holds no `__`.
SERVER_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9-])?$"
_SERVER_NAME = re.compile(SERVER_NAME_PATTERN)
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_-]")


def is_server_name(name: str) -> bool:
    return _SERVER_NAME.fullmatch(name) is not None and SEPARATOR not in name


def mcp_tool_name(server: str, tool: str) -> str:
    """`<server>__<tool>`, the tool's own name made valid (other characters become `_`) and
    cut so the whole fits in 64 characters."""
    cleaned = _NOT_ALLOWED.sub("_", tool) or "_"
    return f"{server}{SEPARATOR}{cleaned}"[:MAX_NAME]


def server_of(name: str) -> str | None:
    """The server a tool name belongs to, or None for a built-in."""
    server, separator, _ = name.partition(SEPARATOR)
    return server if separator else None
