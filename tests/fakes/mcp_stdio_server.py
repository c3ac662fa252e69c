"""A tiny MCP server over stdio, for the stdio transport test: `python mcp_stdio_server.py`."""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

server = FastMCP("chatter-stdio-test", log_level="WARNING")


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


if __name__ == "__main__":
    server.run()
