"""ChatOpenAI that copes with servers which ignore `stream: true`.

Some OpenAI-compatible servers answer a streaming request with one JSON completion. The SDK
then finds no server-sent events, and the call would fail with "no generation chunks" and
zero usage although the model answered (and billed). Here the JSON completion is replayed
as the chunks it stands for, usage included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

from langchain_openai import ChatOpenAI
from pydantic import model_validator

Json = dict[str, Any]


class OpenAIChatModel(ChatOpenAI):
    """ChatOpenAI whose streaming calls accept a JSON answer (see the module docs)."""

    @model_validator(mode="after")
    def _accept_json_streams(self) -> Self:
        # Runs after ChatOpenAI's own validator has built the SDK clients.
        if self.client is not None and not isinstance(self.client, _Completions):
            self.client = _Completions(self.client)
        if self.async_client is not None and not isinstance(self.async_client, _AsyncCompletions):
            self.async_client = _AsyncCompletions(self.async_client)
        return self


class _Completions:
    """Wraps the SDK's `chat.completions`; only a streaming `create` behaves differently."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def create(self, **payload: Any) -> Any:
        result = self._inner.create(**payload)
        response = getattr(result, "response", None) if payload.get("stream") else None
        if response is not None and _is_json(response.headers):
            return ReplayedChunks(completion_chunks(json.loads(response.read())))
        return _as_dicts(result) if response is not None else result


class _AsyncCompletions(_Completions):
    async def create(self, **payload: Any) -> Any:
        result = await self._inner.create(**payload)
        response = getattr(result, "response", None) if payload.get("stream") else None
        if response is not None and _is_json(response.headers):
            return ReplayedChunks(completion_chunks(json.loads(await response.aread())))
        return _as_dicts(result) if response is not None else result


def _as_dicts(stream: Any) -> Any:
    """Have the SDK's stream yield each chunk as its parsed JSON: LangChain turns the typed
    chunk straight back into a dict, and building it was a sixth of the call's CPU. The
    SDK's own handling of `[DONE]` and of error events is kept (it returns the data as is
    for `object`)."""
    if hasattr(stream, "_cast_to"):
        stream._cast_to = object
    return stream


def _is_json(headers: Mapping[str, str]) -> bool:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type.endswith("json")


class ReplayedChunks:
    """Stands in for the SDK's (async) stream of chunks, as a context manager too."""

    def __init__(self, chunks: list[Json]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[Json]:
        return iter(self._chunks)

    async def __aiter__(self) -> AsyncIterator[Json]:
        for chunk in self._chunks:
            yield chunk

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def completion_chunks(completion: Json) -> list[Json]:
    """The chunks a server would have streamed for this complete chat completion."""
    base = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
    }
    chunks: list[Json] = []
    for choice in completion.get("choices") or []:
        message = choice.get("message") or {}
        delta: Json = {
            "role": message.get("role") or "assistant",
            "content": message.get("content"),
        }
        calls = message.get("tool_calls") or []
        if calls:
            delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(calls)]
        finish_reason = choice.get("finish_reason")
        entry = {"index": choice.get("index", 0), "delta": delta, "finish_reason": finish_reason}
        chunks.append({**base, "choices": [entry]})
    if completion.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks
