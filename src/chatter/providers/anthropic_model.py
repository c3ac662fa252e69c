"""ChatAnthropic, hardened for the streams real Anthropic-compatible servers send.

Two gaps of langchain-anthropic are closed here, where the wire format is known:
- Anthropic's documented stream reports the input side of usage (input, cache read, cache
  write) in `message_start` and only `output_tokens` in `message_delta`; langchain-anthropic
  reads `message_delta` only, so the prompt would count as zero. The input side of
  `message_start` fills in whatever `message_delta` lacks (never summed: the larger count
  wins, since `message_delta` counts are cumulative).
- Some servers ignore `stream: true` and answer one JSON message. The SDK then finds no
  events and the call fails with "no generation chunks" and zero usage; instead, the JSON
  message is replayed as the events it stands for.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import anthropic
from langchain_anthropic import ChatAnthropic
from langchain_anthropic.chat_models import _create_usage_metadata
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from pydantic import TypeAdapter

# Private response_metadata keys carrying raw usage from the event to the stream wrapper.
_START_USAGE = "_chatter_start_usage"
_DELTA_USAGE = "_chatter_delta_usage"
_INPUT_COUNTS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
_CACHE_WRITE_SPLIT = "cache_creation"  # {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}

_EVENTS: TypeAdapter[anthropic.types.RawMessageStreamEvent] = TypeAdapter(
    anthropic.types.RawMessageStreamEvent
)

Json = dict[str, Any]


class AnthropicChatModel(ChatAnthropic):
    """ChatAnthropic that keeps the usage of every stream shape (see the module docs)."""

    def _make_message_chunk_from_anthropic_event(
        self,
        event: anthropic.types.RawMessageStreamEvent,
        *,
        stream_usage: bool = True,
        coerce_content_to_string: bool,
        block_start_event: anthropic.types.RawMessageStreamEvent | None = None,
    ) -> tuple[AIMessageChunk | None, anthropic.types.RawMessageStreamEvent | None]:
        chunk, block = super()._make_message_chunk_from_anthropic_event(
            event,
            stream_usage=stream_usage,
            coerce_content_to_string=coerce_content_to_string,
            block_start_event=block_start_event,
        )
        if chunk is not None and stream_usage:
            if event.type == "message_start":
                chunk.response_metadata[_START_USAGE] = event.message.usage.model_dump()
            elif event.type == "message_delta":
                chunk.response_metadata[_DELTA_USAGE] = event.usage.model_dump()
        return chunk, block

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        usage = StreamUsage()
        for chunk in super()._stream(messages, stop, run_manager, **kwargs):
            yield usage.complete(chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        usage = StreamUsage()
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield usage.complete(chunk)

    def _create(self, payload: dict[str, Any]) -> Any:
        raw = super()._create(payload)
        if payload.get("stream") and _is_json(raw.http_response.headers):
            return ReplayedStream(message_events(json.loads(raw.http_response.read())))
        return raw

    async def _acreate(self, payload: dict[str, Any]) -> Any:
        raw = await super()._acreate(payload)
        if payload.get("stream") and _is_json(raw.http_response.headers):
            return ReplayedStream(message_events(json.loads(await raw.http_response.aread())))
        return raw


class StreamUsage:
    """One stream's usage: remembers `message_start`'s counts until `message_delta`."""

    def __init__(self) -> None:
        self._start: Json = {}

    def complete(self, chunk: ChatGenerationChunk) -> ChatGenerationChunk:
        message = chunk.message
        metadata = message.response_metadata
        if _START_USAGE not in metadata and _DELTA_USAGE not in metadata:
            return chunk
        metadata = dict(metadata)
        self._start = metadata.pop(_START_USAGE, None) or self._start
        update: Json = {"response_metadata": metadata}
        delta = metadata.pop(_DELTA_USAGE, None)
        if delta is not None:
            merged = merge_usage(self._start, delta)
            update["usage_metadata"] = _create_usage_metadata(anthropic.types.Usage(**merged))
        return ChatGenerationChunk(
            message=message.model_copy(update=update), generation_info=chunk.generation_info
        )


def merge_usage(start: Mapping[str, Any], delta: Mapping[str, Any]) -> Json:
    """`message_delta`'s usage with the input side it lacks taken from `message_start`.

    Counts in `message_delta` are cumulative, so where both report one, the larger is the
    whole count: taking it (not the sum) makes both wire shapes give the same numbers.
    """
    merged: Json = {k: v for k, v in delta.items() if v is not None}
    for key in (*_INPUT_COUNTS, "output_tokens"):
        merged[key] = max(_count(start.get(key)), _count(delta.get(key)))
    split_start = start.get(_CACHE_WRITE_SPLIT)
    split_delta = delta.get(_CACHE_WRITE_SPLIT)
    if isinstance(split_start, Mapping) or isinstance(split_delta, Mapping):
        a = split_start if isinstance(split_start, Mapping) else {}
        b = split_delta if isinstance(split_delta, Mapping) else {}
        merged[_CACHE_WRITE_SPLIT] = {k: max(_count(a.get(k)), _count(b.get(k))) for k in {*a, *b}}
    return merged


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _is_json(headers: Mapping[str, str]) -> bool:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type.endswith("json")


class ReplayedStream:
    """Stands in for the SDK's raw response and its parsed event stream."""

    def __init__(self, events: list[anthropic.types.RawMessageStreamEvent]) -> None:
        self._events = events

    def parse(self) -> ReplayedStream:
        return self

    def __iter__(self) -> Iterator[anthropic.types.RawMessageStreamEvent]:
        return iter(self._events)

    async def __aiter__(self) -> AsyncIterator[anthropic.types.RawMessageStreamEvent]:
        for event in self._events:
            yield event


def message_events(message: Json) -> list[anthropic.types.RawMessageStreamEvent]:
    """The stream events a server would have sent for this complete Messages response."""
    # Lenient with sloppy servers: what the SDK's types require and they may leave out.
    usage = {"input_tokens": 0, "output_tokens": 0, **(message.get("usage") or {})}
    shell = {"id": "", "type": "message", "role": "assistant", "model": ""}
    start = {**shell, **message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = usage
    raw: list[Json] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message.get("content") or []):
        raw.extend(_block_events(index, block))
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": None}
    raw.append({"type": "message_delta", "delta": delta, "usage": usage})
    raw.append({"type": "message_stop"})
    return [_EVENTS.validate_python(event) for event in raw]


def _block_events(index: int, block: Json) -> list[Json]:
    kind = block.get("type")
    if kind == "text":
        start: Json = {**block, "text": ""}
        delta: Json | None = {"type": "text_delta", "text": block.get("text", "")}
    elif kind == "tool_use":
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block.get("input", {}))}
    else:  # other blocks arrive whole in their start event
        start, delta = block, None
    events: list[Json] = [{"type": "content_block_start", "index": index, "content_block": start}]
    if delta is not None:
        events.append({"type": "content_block_delta", "index": index, "delta": delta})
    events.append({"type": "content_block_stop", "index": index})
    return events
