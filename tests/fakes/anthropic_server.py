"""A scriptable fake of Anthropic's Messages API (`POST /v1/messages`), over real HTTP.

It shares the server machinery of the fake OpenAI server (uvicorn in a background thread on
a free 127.0.0.1 port; queue, responder, default reply; disconnect counting) and speaks
Anthropic's wire format: JSON messages, and SSE streams of `message_start`, `ping`,
`content_block_start/delta/stop` (text, and `tool_use` with `input_json_delta`),
`message_delta`, `message_stop`::

    with FakeAnthropicServer() as server:
        server.enqueue(AnthropicReply(content="hi"), AnthropicReply(status=529))
        ChatAnthropic(base_url=server.base_url, api_key="test", max_retries=0)

Usage is reported in one of two shapes (`usage_shape`): "start", Anthropic's documented one
(input, cache read and cache write counts in `message_start`, only `output_tokens` in
`message_delta`), or "cumulative" (`message_delta` repeats every count, as Anthropic's API
now does). Both describe the same usage.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .openai_server import (
    FakeOpenAIServer,
    Json,
    Receive,
    Send,
    _AbortStreamError,
    _App,
    _send_json,
    split_content,
)

DEFAULT_USAGE: dict[str, Any] = {"input_tokens": 11, "output_tokens": 7}
MODELS: tuple[str, ...] = ("claude-3-5-haiku-latest", "claude-sonnet-4-5")
INPUT_COUNTS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")

_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _default_usage() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_USAGE)


@dataclass
class AnthropicReply:
    """What the fake model answers to one request.

    `usage` is Anthropic's usage object (`input_tokens` excludes cache reads and writes;
    `cache_creation` may split writes into `ephemeral_5m_input_tokens` and
    `ephemeral_1h_input_tokens`). `tool_calls` items are {"name", "arguments", "id"?}.
    """

    content: str = "Hello from the fake Claude."
    tool_calls: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = field(default_factory=_default_usage)
    usage_shape: Literal["start", "cumulative"] = "start"
    status: int = 200
    error_message: str = "fake upstream failure"
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    chunk_size_words: int = 1
    break_after_chunks: int | None = None  # cut the stream after this many text deltas
    break_cleanly: bool = False  # end the body normally at the cut instead of dropping
    ignore_stream: bool = False  # answer one JSON body even to a streaming request
    stop_reason: str | None = None

    def resolved_stop_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if self.tool_calls else "end_turn"


def error_body(status: int, message: str) -> Json:
    error_type = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


class _Message:
    """Builds the response objects of one Messages call."""

    def __init__(self, request: Json, reply: AnthropicReply) -> None:
        self.request, self.reply = request, reply
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        self.tool_uses = [
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": call["name"],
                "input": call.get("arguments", {}),
            }
            for call in reply.tool_calls or []
        ]

    def _shell(self, content: list[Json], stop_reason: str | None, usage: Json) -> Json:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.request.get("model", MODELS[0]),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }

    def message(self) -> Json:
        text = [{"type": "text", "text": self.reply.content}] if self.reply.content else []
        usage = copy.deepcopy(self.reply.usage) or {"input_tokens": 0, "output_tokens": 0}
        return self._shell([*text, *self.tool_uses], self.reply.resolved_stop_reason(), usage)

    def start_usage(self) -> Json:
        usage = self.reply.usage or {}
        start = {k: copy.deepcopy(v) for k, v in usage.items() if k != "output_tokens"}
        return {"input_tokens": 0, **start, "output_tokens": 1 if usage else 0}

    def delta_usage(self) -> Json:
        usage = self.reply.usage or {}
        if self.reply.usage_shape == "cumulative":
            return copy.deepcopy(usage)
        return {"output_tokens": usage.get("output_tokens", 0)}

    def start_event(self) -> Json:
        return {"type": "message_start", "message": self._shell([], None, self.start_usage())}

    def tool_use_events(self, first_index: int) -> Iterator[Json]:
        for offset, block in enumerate(self.tool_uses):
            index = first_index + offset
            head = {**block, "input": {}}
            yield {"type": "content_block_start", "index": index, "content_block": head}
            arguments = json.dumps(block["input"])
            middle = len(arguments) // 2  # two partial JSON pieces, as real streams send
            for piece in (arguments[:middle], arguments[middle:]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield {"type": "content_block_delta", "index": index, "delta": delta}
            yield {"type": "content_block_stop", "index": index}

    def end_events(self) -> Iterator[Json]:
        delta = {"stop_reason": self.reply.resolved_stop_reason(), "stop_sequence": None}
        yield {"type": "message_delta", "delta": delta, "usage": self.delta_usage()}
        yield {"type": "message_stop"}


class _AnthropicApp(_App):
    async def __call__(self, scope: Json, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"].rstrip("/"))
        if route == ("POST", "/v1/messages"):
            await self._chat(scope, receive, send)
        else:
            await _send_json(send, 404, error_body(404, "no route"))

    async def _answer(self, send: Send, request: Json, reply: Any) -> None:
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        message = _Message(request, reply)
        if reply.status != 200:
            await _send_json(send, reply.status, error_body(reply.status, reply.error_message))
        elif request.get("stream") and not reply.ignore_stream:
            await self._stream(send, message)
        else:
            await _send_json(send, 200, message.message())

    async def _stream(self, send: Send, message: Any) -> None:
        reply: AnthropicReply = message.reply
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def emit(event: Json, delay: bool = True) -> None:
            if delay and reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
            body = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})

        await emit(message.start_event(), delay=False)
        await emit({"type": "ping"}, delay=False)
        pieces = split_content(reply.content, reply.chunk_size_words)
        if pieces:
            block = {"type": "text", "text": ""}
            await emit({"type": "content_block_start", "index": 0, "content_block": block})
        for sent, piece in enumerate(pieces):
            if sent == reply.break_after_chunks:
                break
            delta = {"type": "text_delta", "text": piece}
            await emit({"type": "content_block_delta", "index": 0, "delta": delta})
        if reply.break_after_chunks is not None:
            if not reply.break_cleanly:
                raise _AbortStreamError
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if pieces:
            await emit({"type": "content_block_stop", "index": 0})
        for event in (*message.tool_use_events(1 if pieces else 0), *message.end_events()):
            await emit(event)
        self.owner._record_stream_finished()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class FakeAnthropicServer(FakeOpenAIServer):
    """Fake Anthropic endpoint on 127.0.0.1 (free port), served from a background thread.
    `base_url` is what ChatAnthropic (and CHATTER_ANTHROPIC_BASE_URL) expect: no /v1."""

    def __init__(self, default_reply: AnthropicReply | None = None) -> None:
        super().__init__(default_reply or AnthropicReply())  # type: ignore[arg-type]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _make_app(self) -> _App:
        return _AnthropicApp(self)
