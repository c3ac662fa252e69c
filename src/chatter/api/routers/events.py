"""/api/v1/events: the caller's lifecycle events, live over SSE (resumable with
Last-Event-ID) or as history pages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from chatter.api.deps import ContainerDep, CurrentUser, SessionDep
from chatter.api.input_limits import PageLimit
from chatter.api.schemas.common import DATABASE_RESPONSES, PageOut, error_responses
from chatter.api.schemas.events import EventOut
from chatter.domain.events import EventCategory, EventFilter, EventType
from chatter.domain.ids import CORRELATION_ID_PATTERN, ULID_PATTERN
from chatter.events.stream import EventStream
from chatter.observability.logging import get_logger
from chatter.services.events import MAX_EVENT_ID, EventCriteria

log = get_logger("chatter.events")

router = APIRouter(
    prefix="/api/v1/events",
    tags=["events"],
    responses=DATABASE_RESPONSES,
)

# How long a browser waits before reconnecting (it then sends Last-Event-ID).
RETRY_MS = 3000

EventId = Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID)]


def event_criteria(
    all: Annotated[
        bool, Query(description="Admins: every user's events, not only their own.")
    ] = False,
    category: Annotated[list[EventCategory] | None, Query(description="Repeatable.")] = None,
    type: Annotated[list[EventType] | None, Query(description="Repeatable.")] = None,
    conversation_id: Annotated[str | None, Query(pattern=ULID_PATTERN.pattern)] = None,
    execution_id: Annotated[str | None, Query(pattern=ULID_PATTERN.pattern)] = None,
    correlation_id: Annotated[str | None, Query(pattern=CORRELATION_ID_PATTERN.pattern)] = None,
) -> EventCriteria:
    return EventCriteria(
        all_users=all,
        categories=tuple(dict.fromkeys(category or ())),
        types=tuple(dict.fromkeys(type or ())),
        conversation_id=conversation_id,
        execution_id=execution_id,
        correlation_id=correlation_id,
    )


Criteria = Annotated[EventCriteria, Depends(event_criteria)]


@router.get(
    "",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        **error_responses(401, 403, 422),
    },
)
async def stream_events(
    user: CurrentUser,
    container: ContainerDep,
    criteria: Criteria,
    last_event_id: EventId = None,
    last_event_id_header: Annotated[
        int | None, Header(alias="Last-Event-ID", ge=0, le=MAX_EVENT_ID)
    ] = None,
) -> EventSourceResponse:
    """Each event as `id: <event id>`, `event: <type>`, `data: <event JSON>`; heartbeats are
    comments. Send `Last-Event-ID` (or `?last_event_id=` where a header can't be set) to get
    what was missed first, in order, without duplicates; without it the stream starts now."""
    where = container.events.scope(user, criteria)
    # The header wins: a browser reconnecting sends it with the newest id it saw, while
    # the URL still carries the query value it first connected with.
    resume = last_event_id_header if last_event_id_header is not None else last_event_id
    stream = container.events.stream(where, last_event_id=resume)
    return EventSourceResponse(
        _frames(stream),
        ping=container.settings.events.heartbeat_s,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _frames(stream: EventStream) -> AsyncIterator[ServerSentEvent]:
    try:
        async with stream:
            # Sent once subscribed: a reader may count on every later commit reaching it.
            yield ServerSentEvent(retry=RETRY_MS)
            # aclosing: a client going away ends the table reads and the subscription now.
            async with aclosing(stream.events()) as events:
                async for event in events:
                    yield ServerSentEvent(
                        id=str(event.id),
                        event=event.type.value,
                        data=json.dumps(event.to_json(), separators=(",", ":")),
                    )
    except Exception:  # the database went away: the 200 is already sent
        # End the stream cleanly; the client reconnects with Last-Event-ID and loses
        # nothing, since the events it missed are in the table.
        log.exception("event_stream_failed", cursor=stream.cursor)


@router.get("/history", responses=error_responses(400, 401, 403, 422))
async def event_history(
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    criteria: Criteria,
    limit: PageLimit = 50,
    cursor: Annotated[
        str | None,
        Query(min_length=1, max_length=512, description="`next_cursor` of the last page."),
    ] = None,
) -> PageOut[EventOut]:
    """The same events as the stream, newest first."""
    where: EventFilter = container.events.scope(user, criteria)
    page = await container.events.history(session=session, where=where, limit=limit, cursor=cursor)
    return PageOut[EventOut](
        items=[EventOut.of(e) for e in page.items], next_cursor=page.next_cursor
    )
