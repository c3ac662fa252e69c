"""A scriptable fake of the OpenAI chat completions API, served over real HTTP.

The server runs uvicorn on its own event loop in a background thread, so it works from sync
tests and from async tests on any (e.g. module-scoped) event loop::

    with FakeOpenAIServer() as server:
        server.enqueue(FakeReply(content="hi"), FakeReply(status=429))
        ChatOpenAI(base_url=server.base_url, api_key="test", max_retries=0)

Replies are chosen per request: first the FIFO queue (`enqueue`), then the responder
(`set_responder`), then `default_reply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import uvicorn

DEFAULT_USAGE: dict[str, Any] = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 2},
}
MODELS: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o")

Json = dict[str, Any]
Receive = Callable[[], Awaitable[Json]]
Send = Callable[[Json], Awaitable[None]]
Responder = Callable[[Json], "FakeReply"]

_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}


def _default_usage() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_USAGE)


@dataclass
class FakeReply:
    """What the fake model answers to one request."""

    content: str = "Hello from the fake model."
    tool_calls: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = field(default_factory=_default_usage)
    status: int = 200
    error_message: str = "fake upstream failure"
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    chunk_size_words: int = 1
    break_after_chunks: int | None = None
    break_cleanly: bool = False  # end the body normally at the break instead of dropping
    ignore_stream: bool = False  # answer one JSON body even to a streaming request
    finish_reason: str | None = None

    def resolved_finish_reason(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


def split_content(content: str, words_per_chunk: int = 1) -> list[str]:
    """Split word-wise, keeping all whitespace, so that ``"".join(result) == content``."""
    pieces: list[str] = re.findall(r"\s*\S+\s*", content) or ([content] if content else [])
    size = max(1, words_per_chunk)
    return ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]


def _tool_calls_json(reply: FakeReply) -> list[Json]:
    calls: list[Json] = []
    for call in reply.tool_calls or []:
        args = call.get("arguments", {})
        calls.append(
            {
                "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
        )
    return calls


def _error_body(status: int, message: str) -> Json:
    default_type = "server_error" if status >= 500 else "invalid_request_error"
    err_type, code = _ERRORS.get(status, (default_type, None))
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


class _AbortStreamError(Exception):
    """Raised inside the app after the response started: uvicorn then drops the connection."""


class _HideAborts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _AbortStreamError))


_HIDE_ABORTS = _HideAborts()


async def _send_json(send: Send, status: int, body: Json) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        body.extend(message.get("body", b""))
        if not message.get("more_body", False):
            return bytes(body)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Completion:
    """Builds the response objects of one chat completion."""

    def __init__(self, request: Json, reply: FakeReply) -> None:
        self.request, self.reply = request, reply
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.tool_calls = _tool_calls_json(reply)

    def _base(self, obj: str) -> Json:
        model = self.request.get("model", MODELS[0])
        return {"id": self.id, "object": obj, "created": self.created, "model": model}

    def message(self) -> Json:
        message: Json = {"role": "assistant", "content": self.reply.content or None}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        finish_reason = self.reply.resolved_finish_reason()
        choice = {"index": 0, "message": message, "finish_reason": finish_reason}
        body = {**self._base("chat.completion"), "choices": [choice]}
        if self.reply.usage is not None:
            body["usage"] = self.reply.usage
        return body

    def chunk(self, delta: Json, finish_reason: str | None = None) -> Json:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {**self._base("chat.completion.chunk"), "choices": [choice]}

    def usage_chunk(self) -> Json | None:
        options = self.request.get("stream_options") or {}
        if self.reply.usage is None or not options.get("include_usage"):
            return None
        return {**self._base("chat.completion.chunk"), "choices": [], "usage": self.reply.usage}

    def tool_call_chunks(self) -> Iterator[Json]:
        for index, call in enumerate(self.tool_calls):
            fn = call["function"]
            head = {"index": index, "id": call["id"], "type": "function"}
            yield self.chunk(
                {"tool_calls": [{**head, "function": {"name": fn["name"], "arguments": ""}}]}
            )
            args = {"index": index, "function": {"arguments": fn["arguments"]}}
            yield self.chunk({"tool_calls": [args]})


class _App:
    """Raw ASGI app, so chunks are written unbuffered and connections can be dropped hard."""

    def __init__(self, owner: FakeOpenAIServer) -> None:
        self.owner = owner
        self.loop: asyncio.AbstractEventLoop | None = None
        self.in_flight: set[asyncio.Future[None]] = set()

    def abort_in_flight(self) -> None:
        """Cancel running answers (on the server loop) so `stop()` need not wait for them."""
        for task in list(self.in_flight):
            task.cancel()

    async def __call__(self, scope: Json, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"].rstrip("/"))
        if route == ("GET", "/v1/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in MODELS]
            await _send_json(send, 200, {"object": "list", "data": data})
        elif route == ("POST", "/v1/chat/completions"):
            await self._chat(scope, receive, send)
        else:
            await _send_json(send, 404, _error_body(404, "no route"))

    async def _chat(self, scope: Json, receive: Receive, send: Send) -> None:
        try:
            request: Json = json.loads(await _read_body(receive))
        except ValueError:
            await _send_json(send, 400, _error_body(400, "bad json"))
            return
        request["_headers"] = {k.decode(): v.decode("latin-1") for k, v in scope["headers"]}
        reply = self.owner._next_reply(request)
        self.loop = asyncio.get_running_loop()
        answer = asyncio.ensure_future(self._answer(send, request, reply))
        self.in_flight.add(answer)
        answer.add_done_callback(self.in_flight.discard)
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        await asyncio.wait({answer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            watcher.cancel()
            if answer.cancelled():  # server is stopping
                raise _AbortStreamError
            answer.result()  # re-raises _AbortStreamError so uvicorn closes the transport
            return
        answer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answer
        self.owner._count_disconnect()

    async def _answer(self, send: Send, request: Json, reply: FakeReply) -> None:
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        completion = _Completion(request, reply)
        if reply.status != 200:
            await _send_json(send, reply.status, _error_body(reply.status, reply.error_message))
        elif request.get("stream") and not reply.ignore_stream:
            await self._stream(send, completion)
        else:
            await _send_json(send, 200, completion.message())

    async def _stream(self, send: Send, completion: _Completion) -> None:
        reply = completion.reply
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def emit(payload: Json | str, delay: bool = True) -> None:
            if delay and reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
            text = payload if isinstance(payload, str) else json.dumps(payload)
            event = {"type": "http.response.body", "body": f"data: {text}\n\n".encode()}
            await send({**event, "more_body": True})

        await emit(completion.chunk({"role": "assistant", "content": ""}), delay=False)
        for sent, piece in enumerate(split_content(reply.content, reply.chunk_size_words)):
            if sent == reply.break_after_chunks:
                break
            await emit(completion.chunk({"content": piece}))
        if reply.break_after_chunks is not None:
            if not reply.break_cleanly:
                raise _AbortStreamError
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        for chunk in completion.tool_call_chunks():
            await emit(chunk)
        await emit(completion.chunk({}, reply.resolved_finish_reason()))
        usage_chunk = completion.usage_chunk()
        if usage_chunk is not None:
            await emit(usage_chunk)
        await emit("[DONE]")
        self.owner._record_stream_finished()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class FakeOpenAIServer:
    """Fake OpenAI endpoint on 127.0.0.1 (free port), served from a background thread."""

    def __init__(self, default_reply: FakeReply | None = None) -> None:
        self._lock = threading.Lock()
        self._initial_default = default_reply or FakeReply()
        self.default_reply: FakeReply = copy.deepcopy(self._initial_default)
        self._queue: deque[FakeReply] = deque()
        self._responder: Responder | None = None
        self.requests: list[Json] = []
        self.stream_finished_at: list[float] = []
        self.disconnects = 0
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._app: _App | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def queued(self) -> int:
        """Number of enqueued replies not yet consumed."""
        with self._lock:
            return len(self._queue)

    def enqueue(self, *replies: FakeReply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def set_responder(self, fn: Responder | None) -> None:
        """Answer with ``fn(request_json)`` when the queue is empty (``None`` removes it)."""
        with self._lock:
            self._responder = fn

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._responder = None
            self.default_reply = copy.deepcopy(self._initial_default)
            self.requests.clear()
            self.stream_finished_at.clear()
            self.disconnects = 0

    async def wait_for_disconnects(self, count: int = 1, timeout_s: float = 5.0) -> None:
        """Poll (without blocking the caller's loop) until `disconnects` reaches `count`."""
        deadline = time.monotonic() + timeout_s
        while self.disconnects < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"saw {self.disconnects} disconnects, expected {count}")
            await asyncio.sleep(0.01)

    def start(self) -> Self:
        if self._thread is not None:
            return self
        logger = logging.getLogger("uvicorn.error")
        if _HIDE_ABORTS not in logger.filters:
            logger.addFilter(_HIDE_ABORTS)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._app = self._make_app()
        config = uvicorn.Config(
            self._app,
            log_config=None,
            lifespan="off",
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-openai"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server failed to start")
            time.sleep(0.01)
        return self

    def _make_app(self) -> _App:
        return _App(self)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        if self._app is not None and self._app.loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._app.loop.call_soon_threadsafe(self._app.abort_in_flight)
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

    # Called from the server thread.
    def _next_reply(self, request: Json) -> FakeReply:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
            responder, default = self._responder, self.default_reply
        return responder(request) if responder is not None else default

    def _record_stream_finished(self) -> None:
        with self._lock:
            self.stream_finished_at.append(time.monotonic())

    def _count_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1
