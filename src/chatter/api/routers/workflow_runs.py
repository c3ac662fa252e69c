"""/api/v1/workflows: executing a definition (a chat turn through ChatService, the same
response and SSE events as /api/v1/chat) and the execution history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse

from chatter.api.deps import ContainerDep, CorrelationId, CurrentUser, SessionDep
from chatter.api.input_limits import check_input
from chatter.api.rate_limiting import RateLimitAdmission
from chatter.api.routers.chat import answered_turn, streamed_turn
from chatter.api.routers.workflows import Cursor, DefinitionId, Limit
from chatter.api.schemas.chat import ChatOut, ExecutionOut
from chatter.api.schemas.common import (
    DATABASE_RESPONSES,
    RATE_LIMITED,
    PageOut,
    UtcDatetime,
    error_responses,
)
from chatter.api.schemas.workflows import ExecuteIn
from chatter.domain.enums import ExecutionStatus
from chatter.services.execution_history import execution_history
from chatter.services.turn_request import ChatRequest

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], responses=DATABASE_RESPONSES)


def _request(definition_id: str, body: ExecuteIn) -> ChatRequest:
    return ChatRequest(
        message=body.input,
        conversation_id=body.conversation_id,
        workflow=definition_id,
        variables=body.variables,
    )


@router.post(
    "/definitions/{definition_id:chatter_id}/execute",
    responses={**error_responses(400, 401, 402, 404, 409, 422, 502), **RATE_LIMITED},
)
async def execute_definition(
    definition_id: DefinitionId,
    body: ExecuteIn,
    user: CurrentUser,
    admission: RateLimitAdmission,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> ChatOut:
    """Run the definition's current version as one chat turn (the response of POST /chat)."""
    check_input(body, container.settings.limits)
    turn = await container.chat.admit(
        session=session,
        user=user,
        request=_request(definition_id, body),
        correlation_id=correlation_id,
    )
    return await answered_turn(container, admission, turn)


@router.post(
    "/definitions/{definition_id:chatter_id}/execute/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        **error_responses(400, 401, 402, 404, 422),
        **RATE_LIMITED,
    },
)
async def execute_definition_stream(
    definition_id: DefinitionId,
    body: ExecuteIn,
    user: CurrentUser,
    admission: RateLimitAdmission,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> EventSourceResponse:
    """The same run as Server-Sent Events: the events of POST /chat/stream."""
    check_input(body, container.settings.limits)
    turn = await container.chat.admit(
        session=session,
        user=user,
        request=_request(definition_id, body),
        correlation_id=correlation_id,
    )
    return streamed_turn(container, admission, turn)


@router.get("/executions", responses=error_responses(400, 401, 422))
async def list_executions(
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = 20,
    cursor: Cursor = None,
    status: ExecutionStatus | None = None,
    definition_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[UtcDatetime | None, Query(description="Started at or after.")] = None,
) -> PageOut[ExecutionOut]:
    """Your executions, newest first."""
    page = await execution_history(
        session,
        user,
        limit=limit,
        cursor=cursor,
        status=status,
        definition_id=definition_id,
        since=since,
    )
    items = [ExecutionOut.model_validate(e) for e in page.items]
    return PageOut[ExecutionOut](items=items, next_cursor=page.next_cursor)
