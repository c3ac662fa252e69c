"""A compatible turn as Server-Sent Events, in either wire format."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing

from sse_starlette import EventSourceResponse, ServerSentEvent

from chatter.services.chat_events import TurnEvent, TurnRefused, TurnStarted

CONVERSATION_HEADER = "X-Chatter-Conversation-Id"


def conversation_headers(started: TurnStarted | None) -> dict[str, str]:
    return {CONVERSATION_HEADER: started.conversation.id} if started is not None else {}


async def event_stream(
    events: AsyncGenerator[TurnEvent],
    frames: Callable[[TurnEvent], list[ServerSentEvent]],
    *,
    ping_s: float,
) -> EventSourceResponse:
    """Wait for the turn to open (so its conversation id can go in the headers, and a turn
    that cannot open is an ordinary error response), then stream its frames, with `: ping`
    comments on quiet stretches (both SDKs skip comments). A client that goes away closes
    `events`, which cancels the turn; it is stored as cancelled."""
    first = await anext(events)
    if isinstance(first, TurnRefused):
        await events.aclose()
        raise first.error
    assert isinstance(first, TurnStarted)

    async def body() -> AsyncIterator[ServerSentEvent]:
        async with aclosing(events):
            for frame in frames(first):
                yield frame
            async for event in events:
                for frame in frames(event):
                    yield frame

    headers = {
        **conversation_headers(first),
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # a buffering proxy would hold the chunks back
    }
    return EventSourceResponse(body(), ping=ping_s, headers=headers)
