"""The bus across worker processes: a Redis Stream (persisted, readable from an id), so a
reader that lost its connection resumes where it left off instead of missing events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatter.domain.events import UnifiedEvent
from chatter.events.bus import DEFAULT_QUEUE, LocalFanout, Subscription
from chatter.observability.logging import get_logger

log = get_logger("chatter.events")
RETRY_S = 1.0


class RedisStreamBus:
    def __init__(self, redis: Redis, stream: str, maxlen: int) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._fanout = LocalFanout()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Redis may be down at startup: the reader keeps trying (and /readyz says so).
        self._reader = asyncio.create_task(self._read())

    async def publish(self, events: Sequence[UnifiedEvent]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                payload = json.dumps(event.to_json(), separators=(",", ":"))
                pipe.xadd(self._stream, {"event": payload}, maxlen=self._maxlen, approximate=True)
            await pipe.execute()

    def subscribe(self, max_queued: int = DEFAULT_QUEUE) -> Subscription:
        return self._fanout.subscribe(max_queued)

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _newest_id(self) -> str:
        """Where to start: "now". Older events are in the events table for readers that
        need them."""
        while True:
            try:
                last: Any = await self._redis.xrevrange(self._stream, count=1)
            except (RedisError, OSError) as exc:
                log.warning("event_stream_unreachable", error=repr(exc))
                await asyncio.sleep(RETRY_S)
                continue
            return _text(last[0][0]) if last else "0-0"

    async def _read(self) -> None:
        after = await self._newest_id()
        while True:
            try:
                answer: Any = await self._redis.xread({self._stream: after}, count=500, block=1000)
            except (RedisError, OSError) as exc:
                log.warning("event_stream_read_failed", error=repr(exc))
                await asyncio.sleep(RETRY_S)
                continue
            for _stream, entries in answer or []:
                events = []
                for entry_id, fields in entries:
                    after = _text(entry_id)
                    event = _decode(fields)
                    if event is not None:
                        events.append(event)
                self._fanout.deliver(events)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(fields: dict[Any, Any]) -> UnifiedEvent | None:
    raw = fields.get(b"event", fields.get("event"))
    try:
        return UnifiedEvent.from_json(json.loads(_text(raw)))
    except (TypeError, ValueError, KeyError) as exc:
        log.warning("event_stream_entry_unreadable", error=repr(exc))
        return None
