"""/api/v1/chat: one turn, answered when it is done."""

from __future__ import annotations

from contextlib import aclosing

from fastapi import APIRouter
from sse_starlette import EventSourceResponse

from chatter.api.deps import ContainerDep, CorrelationId, CurrentUser, SessionDep
from chatter.api.input_limits import check_input
from chatter.api.rate_limiting import RateLimitAdmission
from chatter.api.schemas.chat import ChatIn, ChatOut, ExecutionOut
from chatter.api.schemas.common import DATABASE_RESPONSES, RATE_LIMITED, error_responses
from chatter.api.schemas.conversations import ConversationOut, MessageOut
from chatter.api.sse import sse_stream
from chatter.container import Container
from chatter.errors import ChatterError
from chatter.services.chat import AdmittedTurn, ChatRequest
from chatter.services.chat_events import TurnClosed, TurnRefused
from chatter.services.rate_limits import Admission

router = APIRouter(prefix="/api/v1", tags=["chat"], responses=DATABASE_RESPONSES)


def chat_request(body: ChatIn) -> ChatRequest:
    return ChatRequest(**body.model_dump())


def turn_error(closed: TurnClosed, error: ChatterError) -> ChatterError:
    error.details = {
        **(error.details if isinstance(error.details, dict) else {}),
        "conversation_id": closed.conversation.id,
        "execution_id": closed.execution.id,
        "user_message_id": closed.user_message.id,
        "assistant_message_id": closed.assistant_message.id,
    }
    return error


def chat_out(closed: TurnClosed) -> ChatOut:
    return ChatOut(
        conversation=ConversationOut.model_validate(closed.conversation),
        user_message=MessageOut.model_validate(closed.user_message),
        assistant_message=MessageOut.model_validate(closed.assistant_message),
        tool_messages=[MessageOut.model_validate(m) for m in closed.tool_messages],
        execution=ExecutionOut.model_validate(closed.execution),
    )


@router.post(
    "/chat", responses={**error_responses(400, 401, 402, 404, 409, 422, 502), **RATE_LIMITED}
)
async def chat(
    body: ChatIn,
    user: CurrentUser,
    admission: RateLimitAdmission,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> ChatOut:
    """Run one chat turn and answer with the stored messages, usage and execution."""
    check_input(body, container.settings.limits)
    turn = await container.chat.admit(
        session=session, user=user, request=chat_request(body), correlation_id=correlation_id
    )
    return await answered_turn(container, admission, turn)


async def answered_turn(container: Container, admission: Admission, turn: AdmittedTurn) -> ChatOut:
    """Run an admitted turn to its end: the non-streaming routes drain the same stream as
    the streaming ones (one execution path), counted in the rate limits' windows."""
    closed: TurnClosed | None = None
    events = container.rate_limits.metered(admission, container.chat.stream(turn))
    async with aclosing(events):
        async for event in events:
            if isinstance(event, TurnRefused):
                raise event.error
            if isinstance(event, TurnClosed):
                closed = event
    assert closed is not None
    if closed.error is not None:
        raise turn_error(closed, closed.error)
    return chat_out(closed)


@router.post(
    "/chat/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        **error_responses(400, 401, 402, 404, 422),
        **RATE_LIMITED,
    },
)
async def chat_stream(
    body: ChatIn,
    user: CurrentUser,
    admission: RateLimitAdmission,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> EventSourceResponse:
    """Run one chat turn as Server-Sent Events: start, delta, tool_call, tool_result, usage,
    then done (or error). Bad input is refused with a JSON error before the stream starts."""
    check_input(body, container.settings.limits)
    turn = await container.chat.admit(
        session=session, user=user, request=chat_request(body), correlation_id=correlation_id
    )
    return streamed_turn(container, admission, turn)


def streamed_turn(
    container: Container, admission: Admission, turn: AdmittedTurn
) -> EventSourceResponse:
    """An admitted turn as Server-Sent Events (rate-limit metered)."""
    return EventSourceResponse(
        sse_stream(container.rate_limits.metered(admission, container.chat.stream(turn))),
        ping=container.settings.llm.sse_ping_s,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
