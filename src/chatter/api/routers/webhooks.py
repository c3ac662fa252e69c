"""/api/v1/webhooks: a user's event receivers and their delivery logs, owner-scoped."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from chatter.api.deps import ContainerDep, CurrentUser, SessionDep
from chatter.api.input_limits import PageLimit
from chatter.api.schemas.common import DATABASE_RESPONSES, PageOut, error_responses
from chatter.api.schemas.webhooks import (
    WebhookAttemptOut,
    WebhookCreatedOut,
    WebhookCreateIn,
    WebhookDeliveryOut,
    WebhookOut,
)
from chatter.domain.enums import WebhookDeliveryStatus
from chatter.services.webhooks import DeliveryLog

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=DATABASE_RESPONSES)

Limit = PageLimit
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the last page.")]


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 403, 409, 422))
async def create_webhook(
    body: WebhookCreateIn, user: CurrentUser, container: ContainerDep, session: SessionDep
) -> WebhookCreatedOut:
    created = await container.webhooks.create(
        session=session,
        user=user,
        url=body.url,
        event_types=body.event_types,
        all_users=body.all_users,
    )
    base = WebhookOut.model_validate(created.record)
    return WebhookCreatedOut(**base.model_dump(), secret=created.secret)


@router.get("", responses=error_responses(401))
async def list_webhooks(
    user: CurrentUser, container: ContainerDep, session: SessionDep
) -> list[WebhookOut]:
    hooks = await container.webhooks.list(session=session, user=user)
    return [WebhookOut.model_validate(hook) for hook in hooks]


@router.get("/{webhook_id}", responses=error_responses(401, 404))
async def get_webhook(
    webhook_id: str, user: CurrentUser, container: ContainerDep, session: SessionDep
) -> WebhookOut:
    hook = await container.webhooks.get(session=session, user=user, webhook_id=webhook_id)
    return WebhookOut.model_validate(hook)


@router.delete(
    "/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 404)
)
async def delete_webhook(
    webhook_id: str, user: CurrentUser, container: ContainerDep, session: SessionDep
) -> Response:
    await container.webhooks.delete(session=session, user=user, webhook_id=webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", responses=error_responses(400, 401, 404, 422))
async def list_deliveries(
    webhook_id: str,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    limit: Limit = 20,
    cursor: Cursor = None,
    status: WebhookDeliveryStatus | None = None,
) -> PageOut[WebhookDeliveryOut]:
    page = await container.webhooks.deliveries(
        session=session,
        user=user,
        webhook_id=webhook_id,
        limit=limit,
        cursor=cursor,
        status=status,
    )
    items = [_delivery_out(entry) for entry in page.items]
    return PageOut[WebhookDeliveryOut](items=items, next_cursor=page.next_cursor)


def _delivery_out(entry: DeliveryLog) -> WebhookDeliveryOut:
    delivery = entry.delivery
    pending = delivery.status == WebhookDeliveryStatus.PENDING.value
    return WebhookDeliveryOut(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        status=WebhookDeliveryStatus(delivery.status),
        attempt_count=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if pending else None,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
        attempts=[WebhookAttemptOut.model_validate(a) for a in entry.attempts],
    )
