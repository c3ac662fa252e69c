"""The Anthropic-compatible endpoint: /v1/messages (docs/compatible-endpoints.md).

Every call is a full Chatter turn (services/compat_turns.py); errors are in Anthropic's shape.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sse_starlette import ServerSentEvent

from chatter.api.compat.anthropic_convert import EventWriter, compat_request, message
from chatter.api.compat.anthropic_wire import AnthropicErrorOut, AnthropicMessageOut, MessagesIn
from chatter.api.compat.documentation import ERROR_FORMAT_KEY, turn_responses
from chatter.api.compat.errors import AnthropicRoute, anthropic_error_response, wire_error
from chatter.api.compat.streaming import conversation_headers, event_stream
from chatter.api.deps import ContainerDep, CorrelationId, SessionDep
from chatter.errors import Unauthorized
from chatter.services.chat_events import TurnEvent
from chatter.services.compat_turns import TurnResult
from chatter.services.credentials import parse_api_key_prefix
from chatter.services.rate_limits import Admission
from chatter.storage.models import User

router = APIRouter(prefix="/v1", tags=["anthropic-compatible"], route_class=AnthropicRoute)
bearer = HTTPBearer(auto_error=False, description="A Chatter API key.")
api_key_header = APIKeyHeader(
    name="x-api-key", auto_error=False, description="A Chatter API key (Anthropic's header)."
)
ConversationId = Annotated[
    str | None,
    Header(
        alias="X-Chatter-Conversation-Id",
        max_length=64,
        description="Continue this conversation of yours (another's is a 404).",
    ),
]
STREAM = (
    "Anthropic's stream events: message_start, content_block_start / _delta / _stop, "
    "message_delta (stop reason and the whole usage), message_stop; or an `error` event "
    "when the turn fails after the stream started."
)


async def anthropic_user(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api_key: Annotated[str | None, Depends(api_key_header)],
) -> User:
    """`x-api-key` (what the anthropic SDK sends) or `Authorization: Bearer`."""
    secret = api_key or (credentials.credentials if credentials is not None else None)
    if not secret:
        raise Unauthorized("Missing API key: send 'x-api-key: <Chatter API key>'.")
    user = await container.auth.authenticate(
        session=session, bearer=secret, correlation_id=correlation_id
    )
    await session.commit()  # end the read transaction (SQLite: it holds the write lock)
    request.state.user_id = user.id
    return user


async def anthropic_admission(
    request: Request,
    user: Annotated[User, Depends(anthropic_user)],
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api_key: Annotated[str | None, Depends(api_key_header)],
) -> Admission:
    """The rate limits of /api/v1/chat, counted for the key the call came with."""
    secret = api_key or (credentials.credentials if credentials is not None else None)
    admission = await container.rate_limits.admit(
        session=session,
        user=user,
        api_key_prefix=parse_api_key_prefix(secret) if secret else None,
        correlation_id=correlation_id,
    )
    if admission.quota is not None:
        request.state.rate_limit_headers = admission.quota.headers()
    return admission


@router.post(
    "/messages",
    response_model=None,
    responses=turn_responses(AnthropicMessageOut, AnthropicErrorOut, STREAM),
    openapi_extra={ERROR_FORMAT_KEY: "anthropic"},
)
async def create_message(
    body: MessagesIn,
    user: Annotated[User, Depends(anthropic_user)],
    admission: Annotated[Admission, Depends(anthropic_admission)],
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
    conversation_id: ConversationId = None,
) -> Response:
    """Anthropic's Messages API, as one recorded Chatter turn."""
    request = compat_request(body, conversation_id)
    turn = await container.compat.admit(
        session=session, user=user, request=request, correlation_id=correlation_id
    )
    model = f"{turn.resolved.provider}/{turn.resolved.model}"
    events = container.rate_limits.metered(admission, container.compat.stream(turn))
    if body.stream:
        writer = EventWriter(model)

        def frames(event: TurnEvent) -> list[ServerSentEvent]:
            return [ServerSentEvent(data=data, event=kind) for kind, data in writer.write(event)]

        return await event_stream(events, frames, ping_s=container.settings.llm.sse_ping_s)
    result = TurnResult()
    async for event in events:
        result.add(event)
    headers = conversation_headers(result.started)
    if result.error is not None:
        error = wire_error(result.error)
        return anthropic_error_response(error, headers)
    return JSONResponse(message(result, model), headers=headers)
