"""A real MCP server for tests, written with the `mcp` package (FastMCP), served over
streamable HTTP by uvicorn on a free 127.0.0.1 port from a background thread::

    with FakeMCPServer() as server:
        server.url  # http://127.0.0.1:<port>/mcp

Tools: `add` works, `explode` raises, `hang` sleeps (far longer than a test's tool timeout),
`long_text` answers more than a small result limit. `list_requests` counts the tools/list
requests it answered (to see that tool lists are cached)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import uvicorn
from mcp.server.fastmcp import FastMCP

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def build_server() -> FastMCP:
    mcp = FastMCP("chatter-test", stateless_http=True, json_response=True, log_level="WARNING")

    @mcp.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool()
    def explode(reason: str = "kaboom") -> str:
        """Always fails."""
        raise ValueError(f"exploded: {reason}")

    @mcp.tool()
    async def hang(seconds: float = 120.0) -> str:
        """Takes (far too) long."""
        await asyncio.sleep(seconds)
        return "woke up"

    @mcp.tool()
    def long_text(size: int = 5000) -> str:
        """Answers `size` characters."""
        return "x" * size

    return mcp


class _CountLists:
    """Counts JSON-RPC `tools/list` requests, replaying the body it read to the app."""

    def __init__(self, app: App, owner: FakeMCPServer) -> None:
        self.app, self.owner = app, owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        try:
            if json.loads(body).get("method") == "tools/list":
                self.owner.list_requests += 1
        except (ValueError, AttributeError):
            pass

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class FakeMCPServer:
    def __init__(self) -> None:
        self.port = 0
        self.list_requests = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = _CountLists(build_server().streamable_http_app(), self)
        config = uvicorn.Config(
            app, log_config=None, lifespan="on", loop="asyncio", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-mcp"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake MCP server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
