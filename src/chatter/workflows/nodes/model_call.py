"""One streamed model call recorded in the run's ledger: the step every node that calls a
model (model, memory) shares, so every call's usage is captured in one place."""

from __future__ import annotations

from typing import Any

import anyio
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langgraph.types import StreamWriter

from chatter.errors import ProviderError
from chatter.providers.registry import ResolvedModel
from chatter.workflows.events import ModelCallRecord, TextDelta
from chatter.workflows.ledger import CallLedger, finish_reason


async def call_model(
    ledger: CallLedger,
    node: str,
    resolved: ResolvedModel,
    model: BaseChatModel | Any,
    messages: list[BaseMessage],
    emit: StreamWriter,
    *,
    stream_text: bool = True,
) -> tuple[AIMessage, ModelCallRecord]:
    """Stream `model` on `messages`; the call is in `ledger` from before the first byte,
    so an interrupted call is still recorded. `stream_text=False` keeps the text off the
    turn's stream (a memory summary is not the answer)."""
    call = ledger.open(node, resolved, list(messages))
    stream: Any = model.astream(messages, config={"callbacks": []})
    try:
        async for chunk in stream:
            if not isinstance(chunk, AIMessageChunk):
                continue
            call.add_chunk(chunk)
            if chunk.text and stream_text:
                emit(TextDelta(node=node, text=chunk.text))
    except Exception as exc:  # any failure of the provider call; the ledger keeps its usage
        raise ProviderError(describe_provider_error(resolved.provider, exc)) from exc
    finally:
        # Close the upstream HTTP stream now, even when cancelled, so the provider stops
        # generating (and billing) instead of at garbage collection.
        with anyio.CancelScope(shield=True):
            await stream.aclose()
    received = call.received or AIMessageChunk(content="")
    if finish_reason(received) is None:
        # The connection closed before the model said it was done: what arrived may be cut
        # anywhere. Raised with the call still open, so it is closed as failed, its usage
        # estimated from what arrived.
        raise ProviderError(
            f"{resolved.provider}: the model's stream ended before it finished "
            "(no finish reason); the answer is incomplete."
        )
    message = AIMessage(
        content=received.content,
        tool_calls=received.tool_calls,
        usage_metadata=received.usage_metadata,
        response_metadata=received.response_metadata,
        id=received.id,
    )
    record = ledger.finish(call, message)
    return message, record


def describe_provider_error(provider: str, exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return f"{provider}: {error['message']}"
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{provider}: {message}"
