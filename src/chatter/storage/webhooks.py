"""Webhook rows for the delivery loops: committed events become deliveries (once per
webhook and event), due deliveries are claimed under a lease, attempts are logged.
Functions work in the caller's transaction; the caller commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.enums import UserRole, WebhookDeliveryStatus
from chatter.domain.events import EventFilter, UnifiedEvent
from chatter.domain.ids import new_id
from chatter.storage import outbox
from chatter.storage.models import (
    Event,
    User,
    Webhook,
    WebhookAttempt,
    WebhookCursor,
    WebhookDelivery,
)

CURSOR_ROW = 1
PENDING = WebhookDeliveryStatus.PENDING.value


@dataclass(frozen=True)
class Subscriber:
    """A webhook as the dispatcher matches it against events."""

    id: str
    user_id: str
    all_users: bool
    event_types: frozenset[str] | None
    after_event_id: int

    def wants(self, event: UnifiedEvent) -> bool:
        return (
            event.id > self.after_event_id
            and (self.all_users or event.user_id == self.user_id)
            and (self.event_types is None or event.type.value in self.event_types)
        )


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery with what its attempt needs. `event` is None when retention
    removed the event first."""

    id: str
    webhook_id: str
    attempt: int
    url: str
    secret: str
    event: UnifiedEvent | None


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


@dataclass(frozen=True)
class Dispatched:
    deliveries: int
    # The batch was full: more events are waiting for the next round.
    more_waiting: bool
    # Whether any webhook exists (as far as this round could tell).
    any_webhooks: bool = True


async def dispatch(session: AsyncSession, *, batch: int) -> Dispatched:
    """Turn the next committed events into pending deliveries and move the cursor past
    them. Event ids are in commit order (storage/outbox.py), so `id > cursor` never
    skips an event that commits later."""
    query = select(WebhookCursor).where(WebhookCursor.id == CURSOR_ROW)
    if _is_postgres(session):
        # One worker dispatches at a time; the others skip instead of queueing.
        query = query.with_for_update(skip_locked=True)
    cursor = await session.scalar(query)
    if cursor is None:
        return Dispatched(0, more_waiting=False)
    # The newest id first, the webhooks second: a webhook not yet visible now was
    # committed after every event up to `top`, so it does not want them.
    top = await outbox.last_event_id(session)
    if top <= cursor.last_event_id:
        return Dispatched(0, more_waiting=False)
    subscribers = await _subscribers(session)
    if not subscribers:
        cursor.last_event_id = top
        return Dispatched(0, more_waiting=False, any_webhooks=False)
    events = await outbox.events_after(
        session, cursor.last_event_id, EventFilter(user_id=None), limit=batch, up_to_id=top
    )
    rows = [
        {
            "webhook_id": subscriber.id,
            "event_id": event.id,
            "event_type": event.type.value,
            "status": PENDING,
            "next_attempt_at": event.created_at,
        }
        for event in events
        for subscriber in subscribers
        if subscriber.wants(event)
    ]
    await _insert_new(session, rows)
    cursor.last_event_id = events[-1].id if len(events) == batch else top
    return Dispatched(len(rows), more_waiting=cursor.last_event_id < top)


async def _subscribers(session: AsyncSession) -> list[Subscriber]:
    rows = await session.execute(
        select(Webhook, User.role)
        .join(User, User.id == Webhook.user_id)
        .where(User.is_active.is_(True))
    )
    return [
        Subscriber(
            id=hook.id,
            user_id=hook.user_id,
            # Every user's events only while the owner is still an admin.
            all_users=hook.all_users and role == UserRole.ADMIN.value,
            event_types=frozenset(hook.event_types) if hook.event_types is not None else None,
            after_event_id=hook.after_event_id,
        )
        for hook, role in rows.all()
    ]


async def _insert_new(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert deliveries, skipping any (webhook, event) already there: the unique key
    makes a second dispatch of the same event harmless."""
    if not rows:
        return
    dialect: Any = postgresql if _is_postgres(session) else sqlite
    statement = dialect.insert(WebhookDelivery).on_conflict_do_nothing(
        index_elements=["webhook_id", "event_id"]
    )
    await session.execute(statement, [{"id": new_id(), **row} for row in rows])


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
    per_webhook: int,
    in_flight: Mapping[str, int],
) -> list[DueDelivery]:
    """Claim up to `limit` due deliveries, at most `per_webhook` in flight per webhook
    (counting `in_flight`), oldest first but taking turns between webhooks so a backlog
    on one never starves the others. Each is leased until `lease_until` and its attempt
    counted now: a worker that dies mid-attempt leaves it to be retried after the lease."""
    ranked = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.webhook_id,
            WebhookDelivery.next_attempt_at,
            func.row_number()
            .over(
                partition_by=WebhookDelivery.webhook_id,
                order_by=(WebhookDelivery.next_attempt_at, WebhookDelivery.id),
            )
            .label("rank"),
        )
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
        .subquery()
    )
    candidates = await session.execute(
        select(ranked.c.id, ranked.c.webhook_id)
        .where(ranked.c.rank <= per_webhook)
        .order_by(ranked.c.rank, ranked.c.next_attempt_at)
        .limit(limit + sum(in_flight.values()))
    )
    picked = _pick(candidates.all(), limit=limit, per_webhook=per_webhook, in_flight=in_flight)
    if not picked:
        return []
    query = select(WebhookDelivery).where(
        WebhookDelivery.id.in_(picked),
        WebhookDelivery.status == PENDING,
        WebhookDelivery.next_attempt_at <= now,
    )
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    deliveries = list(await session.scalars(query))
    for delivery in deliveries:
        delivery.attempts += 1
        delivery.next_attempt_at = lease_until
    return await _with_targets(session, deliveries)


def _pick(
    candidates: Any, *, limit: int, per_webhook: int, in_flight: Mapping[str, int]
) -> list[str]:
    busy = dict(in_flight)
    picked: list[str] = []
    for delivery_id, webhook_id in candidates:
        if len(picked) >= limit:
            break
        if busy.get(webhook_id, 0) < per_webhook:
            busy[webhook_id] = busy.get(webhook_id, 0) + 1
            picked.append(delivery_id)
    return picked


async def _with_targets(
    session: AsyncSession, deliveries: Sequence[WebhookDelivery]
) -> list[DueDelivery]:
    if not deliveries:
        return []
    hooks = {
        hook.id: hook
        for hook in await session.scalars(
            select(Webhook).where(Webhook.id.in_({d.webhook_id for d in deliveries}))
        )
    }
    events = {
        row.id: outbox.to_unified(row)
        for row in await session.scalars(
            select(Event).where(Event.id.in_({d.event_id for d in deliveries}))
        )
    }
    return [
        DueDelivery(
            id=d.id,
            webhook_id=d.webhook_id,
            attempt=d.attempts,
            url=hooks[d.webhook_id].url,
            secret=hooks[d.webhook_id].secret,
            event=events.get(d.event_id),
        )
        for d in deliveries
        if d.webhook_id in hooks
    ]


@dataclass(frozen=True)
class AttemptOutcome:
    status_code: int | None
    latency_ms: int
    error: str | None


async def record_attempt(
    session: AsyncSession,
    delivery: DueDelivery,
    outcome: AttemptOutcome,
    *,
    status: WebhookDeliveryStatus,
    next_attempt_at: datetime,
    now: datetime,
) -> None:
    """Log the attempt and move the delivery on: succeeded, failed for good, or pending
    until `next_attempt_at`. A delivery whose webhook was deleted meanwhile is gone."""
    exists = await session.scalar(
        select(WebhookDelivery.id).where(WebhookDelivery.id == delivery.id)
    )
    if exists is None:
        return
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempt=delivery.attempt,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            created_at=now,
        )
    )
    finished = status is not WebhookDeliveryStatus.PENDING
    # Guarded by the attempt number: if our lease ran out and another worker took the
    # delivery over, its newer attempt decides the state.
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery.id,
            WebhookDelivery.attempts == delivery.attempt,
            WebhookDelivery.status == PENDING,
        )
        .values(
            status=status.value,
            next_attempt_at=next_attempt_at,
            last_status_code=outcome.status_code,
            last_error=outcome.error,
            finished_at=now if finished else None,
        )
    )


async def delete_finished_before(session: AsyncSession, cutoff: datetime) -> int:
    """Drop finished deliveries (their attempts go with them) created before `cutoff`."""
    result = await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.status != PENDING, WebhookDelivery.created_at < cutoff
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
