"""EventPublisher's local listeners: called once with what this process committed, before
the bus publish, and a failing listener fails nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from chatter.domain.events import EventCategory, EventType, UnifiedEvent
from chatter.events.bus import InProcessBus
from chatter.events.publisher import EventPublisher
from chatter.settings import EventSettings


def stored(event_id: int) -> UnifiedEvent:
    return UnifiedEvent(
        id=event_id,
        category=EventCategory.SECURITY,
        type=EventType.LOGIN_FAILED,
        created_at=datetime.now(UTC),
        correlation_id="c",
        user_id=None,
        conversation_id=None,
        execution_id=None,
        data={},
    )


async def test_listeners_see_each_committed_event_once_even_if_one_fails() -> None:
    publisher = EventPublisher(InProcessBus(), None, EventSettings())  # type: ignore[arg-type]
    seen: list[int] = []

    def broken(events: Sequence[UnifiedEvent]) -> None:
        raise RuntimeError("a listener bug")

    publisher.add_listener(broken)
    publisher.add_listener(lambda events: seen.extend(e.id for e in events))

    await publisher.published([stored(1), stored(2)])
    await publisher.published([])

    assert seen == [1, 2]
