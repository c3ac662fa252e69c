"""A webhook receiver served over real HTTP on 127.0.0.1, from a background thread (its
own event loop), so a receiver that sleeps never blocks the app under test.

Each path is its own receiver: `script("/a", 500, 500)` makes `/a` answer 500 twice and
then 200; `slow("/b", 10)` makes `/b` sleep 10 s before answering."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import uvicorn

Json = dict[str, Any]
Receive = Callable[[], Awaitable[Json]]
Send = Callable[[Json], Awaitable[None]]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


class WebhookReceiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: defaultdict[str, deque[int]] = defaultdict(deque)
        self._delays: dict[str, float] = {}
        self.received: list[Received] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *statuses: int) -> None:
        with self._lock:
            self._statuses[path].extend(statuses)

    def slow(self, path: str, delay_s: float) -> None:
        with self._lock:
            self._delays[path] = delay_s

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    async def wait_for(self, path: str, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Poll (without blocking the caller's loop) until `path` got `count` requests."""
        deadline = time.monotonic() + timeout_s
        while len(got := self.requests_to(path)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} received {len(got)} requests, expected {count}")
            await asyncio.sleep(0.01)
        return got

    async def __call__(self, scope: Json, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        with self._lock:
            queue = self._statuses[path]
            status = queue.popleft() if queue else 200
            delay = self._delays.get(path, 0.0)
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            # Recorded on arrival: a slow receiver has been reached before it answers.
            self.received.append(Received(path, headers, body, status, time.monotonic()))
        if delay:
            await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self,
            log_config=None,
            lifespan="off",
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="webhooks"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("webhook receiver failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
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
