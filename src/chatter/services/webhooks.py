"""Webhooks: a user's receivers of their events. The signing secret is returned once, at
creation; each webhook and its delivery log are visible to its owner only."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.enums import UserRole, WebhookDeliveryStatus
from chatter.domain.events import EventType
from chatter.domain.ids import is_valid_id
from chatter.errors import Conflict, Forbidden, NotFound
from chatter.events.webhook_targets import resolve_target
from chatter.services.pagination import Page, decode_cursor, encode_cursor
from chatter.settings import WebhookSettings
from chatter.storage import outbox
from chatter.storage.models import User, Webhook, WebhookAttempt, WebhookDelivery

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class CreatedWebhook:
    record: Webhook
    secret: str


@dataclass(frozen=True)
class DeliveryLog:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


class WebhookService:
    def __init__(self, settings: WebhookSettings) -> None:
        self._settings = settings

    async def create(
        self,
        *,
        session: AsyncSession,
        user: User,
        url: str,
        event_types: Sequence[EventType] | None,
        all_users: bool = False,
    ) -> CreatedWebhook:
        if all_users and user.role != UserRole.ADMIN.value:
            raise Forbidden("Only administrators can receive every user's events.")
        # Before any query: no transaction stays open while DNS answers.
        await resolve_target(url, allow_private=self._settings.allow_private_targets)
        count = await session.scalar(
            select(func.count()).select_from(Webhook).where(Webhook.user_id == user.id)
        )
        if (count or 0) >= self._settings.max_per_user:
            raise Conflict(
                f"At most {self._settings.max_per_user} webhooks per user; delete one first.",
                details={"limit": self._settings.max_per_user},
            )
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        record = Webhook(
            user_id=user.id,
            url=url,
            event_types=sorted({t.value for t in event_types}) if event_types else None,
            all_users=all_users,
            secret=secret,
            # Only events committed from now on are delivered.
            after_event_id=await outbox.last_event_id(session),
        )
        session.add(record)
        await session.commit()
        return CreatedWebhook(record=record, secret=secret)

    async def list(self, *, session: AsyncSession, user: User) -> list[Webhook]:
        rows = await session.scalars(
            select(Webhook)
            .where(Webhook.user_id == user.id)
            .order_by(Webhook.created_at.desc(), Webhook.id.desc())
        )
        hooks = list(rows)
        await session.commit()
        return hooks

    async def get(self, *, session: AsyncSession, user: User, webhook_id: str) -> Webhook:
        hook = await self._own(session, user, webhook_id)
        await session.commit()
        return hook

    async def delete(self, *, session: AsyncSession, user: User, webhook_id: str) -> None:
        """Its pending deliveries and its log go with it."""
        hook = await self._own(session, user, webhook_id)
        await session.delete(hook)
        await session.commit()

    async def deliveries(
        self,
        *,
        session: AsyncSession,
        user: User,
        webhook_id: str,
        limit: int,
        cursor: str | None = None,
        status: WebhookDeliveryStatus | None = None,
    ) -> Page[DeliveryLog]:
        """The delivery log, newest event first, each delivery with its attempts."""
        hook = await self._own(session, user, webhook_id)
        query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
        if status is not None:
            query = query.where(WebhookDelivery.status == status.value)
        if cursor is not None:
            (before,) = decode_cursor(cursor, 1)
            query = query.where(WebhookDelivery.event_id < int(before))
        rows = list(
            await session.scalars(query.order_by(WebhookDelivery.event_id.desc()).limit(limit + 1))
        )
        page, more = rows[:limit], len(rows) > limit
        attempts: defaultdict[str, list[WebhookAttempt]] = defaultdict(list)
        if page:
            for attempt in await session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_([d.id for d in page]))
                .order_by(WebhookAttempt.attempt, WebhookAttempt.created_at)
            ):
                attempts[attempt.delivery_id].append(attempt)
        await session.commit()
        return Page(
            items=[DeliveryLog(d, attempts[d.id]) for d in page],
            next_cursor=encode_cursor([page[-1].event_id]) if more else None,
        )

    async def _own(self, session: AsyncSession, user: User, webhook_id: str) -> Webhook:
        hook = await session.get(Webhook, webhook_id) if is_valid_id(webhook_id) else None
        if hook is None or hook.user_id != user.id:
            raise NotFound("Webhook not found.", details={"webhook_id": webhook_id})
        return hook
