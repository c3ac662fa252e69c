"""ModelNode: calls the chat model as a stream and returns its message and usage record."""

from __future__ import annotations

from typing import Any

import anyio
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer

from chatter.errors import ProviderError
from chatter.workflows.events import (
    ModelCallFinished,
    TextDelta,
    ToolCallRequested,
    ToolIterationLimitReached,
)
from chatter.workflows.ledger import finish_reason
from chatter.workflows.state import WorkflowState, node_name, run_context


async def model_node(state: WorkflowState, config: RunnableConfig) -> dict[str, Any]:
    context = run_context(config)
    node = node_name(config, "model")
    emit = get_stream_writer()
    model: Any = context.chat_model
    if context.tools:
        # The last permitted call may not use tools, so a tool loop always ends in an
        # answer; the tools stay declared because the history holds tool calls.
        last_call = state["model_calls"] >= context.max_tool_iterations
        choice = context.resolved.config.no_tool_choice if last_call else None
        if last_call:
            emit(ToolIterationLimitReached(node, context.max_tool_iterations))
        # BaseChatModel types tool_choice as str, but providers accept their own dicts.
        bind_tools: Any = context.chat_model.bind_tools
        model = bind_tools(list(context.tools.values()), tool_choice=choice)
    call = context.ledger.open(node, context.resolved, list(state["messages"]))
    stream = model.astream(state["messages"], config={"callbacks": []})
    try:
        async for chunk in stream:
            if not isinstance(chunk, AIMessageChunk):
                continue
            call.add_chunk(chunk)
            if chunk.text:
                emit(TextDelta(node=node, text=chunk.text))
    except Exception as exc:  # any failure of the provider call; the ledger keeps its usage
        raise ProviderError(describe_provider_error(context.resolved.provider, exc)) from exc
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
            f"{context.resolved.provider}: the model's stream ended before it finished "
            "(no finish reason); the answer is incomplete."
        )
    message = AIMessage(
        content=received.content,
        tool_calls=received.tool_calls,
        usage_metadata=received.usage_metadata,
        response_metadata=received.response_metadata,
        id=received.id,
    )
    record = context.ledger.finish(call, message)
    for tool_call in message.tool_calls:
        emit(ToolCallRequested(node, tool_call["id"] or "", tool_call["name"], tool_call["args"]))
    emit(ModelCallFinished(record))
    return {
        "messages": [message],
        "usage_records": [record],
        "model_calls": state["model_calls"] + 1,
    }


def describe_provider_error(provider: str, exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return f"{provider}: {error['message']}"
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{provider}: {message}"
