"""/api/v1/conversations: CRUD and message history, owner-scoped."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from chatter.api.deps import ContainerDep, CorrelationId, CurrentUser, SessionDep
from chatter.api.input_limits import PageLimit, check_input
from chatter.api.schemas.common import DATABASE_RESPONSES, PageOut, error_responses
from chatter.api.schemas.conversations import (
    ConversationCreateIn,
    ConversationOut,
    ConversationUpdateIn,
    MessageOut,
)
from chatter.domain.enums import ConversationStatus
from chatter.errors import BadRequest
from chatter.services.conversations import ConversationDraft
from chatter.services.pagination import CURSOR_PATTERN

router = APIRouter(
    prefix="/api/v1/conversations", tags=["conversations"], responses=DATABASE_RESPONSES
)

Limit = PageLimit
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        # Stated, not validated here: every malformed cursor is the same 400, whatever is wrong.
        json_schema_extra={"pattern": CURSOR_PATTERN},
        description="`next_cursor` of the last page. One this server did not issue is a 400.",
    ),
]


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 422))
async def create_conversation(
    body: ConversationCreateIn, user: CurrentUser, container: ContainerDep, session: SessionDep
) -> ConversationOut:
    check_input(body, container.settings.limits)
    draft = ConversationDraft(**body.model_dump())
    conversation = await container.conversations.create(session=session, user=user, draft=draft)
    return ConversationOut.model_validate(conversation)


@router.get("", responses=error_responses(400, 401, 403, 422))
async def list_conversations(
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    limit: Limit = 20,
    cursor: Cursor = None,
    status: ConversationStatus | None = None,
    all_users: Annotated[
        bool,
        Query(alias="all", description="Every user's conversations (admins only; others: 403)."),
    ] = False,
) -> PageOut[ConversationOut]:
    page = await container.conversations.list(
        session=session,
        user=user,
        limit=limit,
        cursor=cursor,
        status=status,
        all_users=all_users,
    )
    items = [ConversationOut.model_validate(c) for c in page.items]
    return PageOut[ConversationOut](items=items, next_cursor=page.next_cursor)


@router.get("/{conversation_id}", responses=error_responses(401, 404))
async def get_conversation(
    conversation_id: str,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> ConversationOut:
    conversation = await container.conversations.get(
        session=session, user=user, conversation_id=conversation_id, correlation_id=correlation_id
    )
    return ConversationOut.model_validate(conversation)


@router.patch("/{conversation_id}", responses=error_responses(400, 401, 404, 422))
async def update_conversation(
    conversation_id: str,
    body: ConversationUpdateIn,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> ConversationOut:
    check_input(body, container.settings.limits)
    changes = body.model_dump(exclude_unset=True)
    if "status" in changes and changes["status"] is None:
        raise BadRequest("status cannot be null.", details={"field": "status"})
    conversation = await container.conversations.update(
        session=session,
        user=user,
        conversation_id=conversation_id,
        changes=changes,
        correlation_id=correlation_id,
    )
    return ConversationOut.model_validate(conversation)


@router.delete(
    "/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 409),
)
async def delete_conversation(
    conversation_id: str,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> Response:
    await container.conversations.delete(
        session=session, user=user, conversation_id=conversation_id, correlation_id=correlation_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{conversation_id}/messages", responses=error_responses(400, 401, 404, 422))
async def list_messages(
    conversation_id: str,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PageOut[MessageOut]:
    page = await container.conversations.messages(
        session=session,
        user=user,
        conversation_id=conversation_id,
        limit=limit,
        cursor=cursor,
        correlation_id=correlation_id,
    )
    items = [MessageOut.model_validate(m) for m in page.items]
    return PageOut[MessageOut](items=items, next_cursor=page.next_cursor)
