"""OpenAI-compatible endpoints: /v1/chat/completions and /v1/models (docs/compatible-endpoints.md).

Every call is a full Chatter turn (services/compat_turns.py); errors are in OpenAI's shape.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse
from sse_starlette import ServerSentEvent

from chatter.api.compat.documentation import ERROR_FORMAT_KEY, error_responses, turn_responses
from chatter.api.compat.errors import OpenAIRoute, openai_error_response, wire_error
from chatter.api.compat.openai_convert import ChunkWriter, compat_request, completion
from chatter.api.compat.openai_wire import (
    ChatCompletionIn,
    ChatCompletionOut,
    ModelListOut,
    ModelOut,
    OpenAIErrorOut,
)
from chatter.api.compat.streaming import conversation_headers, event_stream
from chatter.api.deps import ContainerDep, CorrelationId, CurrentUser, SessionDep
from chatter.api.rate_limiting import RateLimitAdmission
from chatter.services.chat_events import TurnEvent
from chatter.services.compat_turns import TurnResult

router = APIRouter(prefix="/v1", tags=["openai-compatible"], route_class=OpenAIRoute)
ConversationId = Annotated[
    str | None,
    Header(
        alias="X-Chatter-Conversation-Id",
        max_length=64,
        description="Continue this conversation of yours (another's is a 404).",
    ),
]
STREAM = (
    "chat.completion.chunk events (`data: {...}`), ending with `data: [DONE]` (or an "
    "`error` object when the turn fails after the stream started)."
)


@router.post(
    "/chat/completions",
    response_model=None,
    responses=turn_responses(ChatCompletionOut, OpenAIErrorOut, STREAM),
    openapi_extra={ERROR_FORMAT_KEY: "openai"},
)
async def chat_completions(
    body: ChatCompletionIn,
    user: CurrentUser,
    admission: RateLimitAdmission,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
    conversation_id: ConversationId = None,
) -> Response:
    """OpenAI's Chat Completions, as one recorded Chatter turn."""
    request = compat_request(body, conversation_id)
    turn = await container.compat.admit(
        session=session, user=user, request=request, correlation_id=correlation_id
    )
    model = f"{turn.resolved.provider}/{turn.resolved.model}"
    events = container.rate_limits.metered(admission, container.compat.stream(turn))
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        writer = ChunkWriter(model, include_usage=include_usage)

        def frames(event: TurnEvent) -> list[ServerSentEvent]:
            return [ServerSentEvent(data=payload) for payload in writer.write(event)]

        return await event_stream(events, frames, ping_s=container.settings.llm.sse_ping_s)
    result = TurnResult()
    async for event in events:
        result.add(event)
    headers = conversation_headers(result.started)
    if result.error is not None:
        error = wire_error(result.error)
        return openai_error_response(error, headers)
    return JSONResponse(completion(result, model), headers=headers)


@router.get(
    "/models",
    responses=error_responses(OpenAIErrorOut, 401, 503),
    openapi_extra={ERROR_FORMAT_KEY: "openai"},
)
async def list_models(user: CurrentUser, container: ContainerDep) -> ModelListOut:
    """The configured provider/model pairs and the aliases: what `model` accepts."""
    return ModelListOut(
        data=[
            ModelOut(id=listed.id, created=0, owned_by=listed.owned_by)
            for listed in container.compat.models()
        ]
    )
