"""The model every benchmark target talks to: a small OpenAI-compatible server with no think
time, in its own process (`python -m bench.fake_upstream --port P`).

`POST /v1/chat/completions` answers one JSON body, or with `"stream": true` Server-Sent
Events: a role chunk, one chunk per word, a finish chunk, the usage chunk when
`stream_options.include_usage` is set, then `data: [DONE]`. `GET /v1/models` lists the
models. Usage is always the same (prompt 11, completion 7), so every target records the
same figures. A raw ASGI app under uvicorn (uvloop and httptools when installed) keeps the
upstream's own cost small next to what is measured."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable
from itertools import count
from typing import Any

import uvicorn

Json = dict[str, Any]
Receive = Callable[[], Awaitable[Json]]
Send = Callable[[Json], Awaitable[None]]

MODELS = ("gpt-4o-mini", "gpt-4o")
CONTENT = "Hello from the benchmark's fake model."
USAGE: Json = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_ids = count(1)


def _base(model: str, obj: str) -> Json:
    created = int(time.time())
    return {"id": f"chatcmpl-bench{next(_ids)}", "object": obj, "created": created, "model": model}


def completion(request: Json) -> Json:
    """The non-streaming answer to one request."""
    message = {"role": "assistant", "content": CONTENT}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    base = _base(str(request.get("model", MODELS[0])), "chat.completion")
    return {**base, "choices": [choice], "usage": USAGE}


def chunks(request: Json) -> list[Json]:
    """The streamed answer to one request, chunk by chunk (without the closing [DONE])."""
    base = _base(str(request.get("model", MODELS[0])), "chat.completion.chunk")

    def chunk(delta: Json, finish_reason: str | None = None) -> Json:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    words = [word + " " for word in CONTENT.split(" ")]
    words[-1] = words[-1].rstrip()
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": word}) for word in words]
    out.append(chunk({}, "stop"))
    if (request.get("stream_options") or {}).get("include_usage"):
        out.append({**base, "choices": [], "usage": USAGE})
    return out


async def _body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _completions(receive: Receive, send: Send) -> None:
    try:
        request = json.loads(await _body(receive))
    except ValueError:
        await _send(send, 400, _JSON, b'{"error": {"message": "invalid JSON"}}')
        return
    if not request.get("stream"):
        await _send(send, 200, _JSON, json.dumps(completion(request)).encode())
        return
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    for item in chunks(request):
        frame = b"data: " + json.dumps(item).encode() + b"\n\n"
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def app(scope: Json, receive: Receive, send: Send) -> None:
    """The ASGI app."""
    path, method = scope["path"], scope["method"]
    if method == "POST" and path.endswith("/chat/completions"):
        await _completions(receive, send)
    elif method == "GET" and path.endswith("/models"):
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "bench"} for m in MODELS]
        await _send(send, 200, _JSON, json.dumps({"object": "list", "data": data}).encode())
    else:
        await _send(send, 404, _JSON, b'{"error": {"message": "not found"}}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="auto",  # uvloop when installed
        http="auto",  # httptools when installed
        lifespan="off",
        backlog=2048,
    )


if __name__ == "__main__":
    main()
