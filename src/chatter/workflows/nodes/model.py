"""ModelNode: calls the node's chat model as a stream and returns its message and usage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer

from chatter.workflows.definition import ModelNodeConfig
from chatter.workflows.events import (
    ModelCallFinished,
    ToolCallRequested,
    ToolIterationLimitReached,
)
from chatter.workflows.nodes.model_call import call_model
from chatter.workflows.state import RunContext, WorkflowState, node_name, run_context

NodeFunction = Callable[[WorkflowState, RunnableConfig], Awaitable[dict[str, Any]]]


def model_node(spec: ModelNodeConfig) -> NodeFunction:
    async def run(state: WorkflowState, config: RunnableConfig) -> dict[str, Any]:
        context = run_context(config)
        node = node_name(config, "model")
        emit = get_stream_writer()
        resolved, chat_model = context.model_for(
            spec.provider, spec.model, spec.temperature, spec.max_tokens
        )
        model: Any = chat_model
        tools = _tools_of(spec, context)
        # The last permitted call may not use tools, so a tool loop always ends in an
        # answer; the tools stay declared because the history holds tool calls. A node
        # without tools after another's tool calls gets them declared but forbidden too
        # (providers such as Anthropic refuse tool history without tools).
        last_call = state["model_calls"] >= context.max_tool_iterations
        forbidden = not tools and context.tools and _has_tool_history(state["messages"])
        if tools or forbidden:
            choice = resolved.config.no_tool_choice if last_call or forbidden else None
            if tools and last_call:
                emit(ToolIterationLimitReached(node, context.max_tool_iterations))
            # BaseChatModel types tool_choice as str, but providers accept their own dicts.
            bind_tools: Any = chat_model.bind_tools
            model = bind_tools(tools or list(context.tools.values()), tool_choice=choice)
        elif context.client_tools:
            # A compatible endpoint's client tools: declared with the client's tool_choice,
            # run by the client (their calls are the answer).
            bind_client_tools: Any = chat_model.bind_tools
            model = bind_client_tools(
                list(context.client_tools), tool_choice=context.client_tool_choice
            )
        messages = _prompted(state["messages"], spec.system_prompt)
        message, record = await call_model(context.ledger, node, resolved, model, messages, emit)
        if ((tools and last_call) or forbidden) and message.tool_calls:
            # Told to use no tool, it asked anyway: those calls are not run (the turn ends
            # with what it said), and no unanswered tool call is left in the history.
            message = message.model_copy(update={"tool_calls": [], "tool_call_chunks": []})
        for tool_call in message.tool_calls:
            emit(
                ToolCallRequested(node, tool_call["id"] or "", tool_call["name"], tool_call["args"])
            )
        emit(ModelCallFinished(record))
        return {
            "messages": [message],
            "usage_records": [record],
            "model_calls": state["model_calls"] + 1,
        }

    return run


def _tools_of(spec: ModelNodeConfig, context: RunContext) -> list[Any]:
    if spec.tools is None:  # every tool of the run (the catalog's, at run time)
        return list(context.tools.values())
    return [context.tools[name] for name in spec.tools if name in context.tools]


def _has_tool_history(messages: list[BaseMessage]) -> bool:
    return any(isinstance(message, ToolMessage) for message in messages)


def _prompted(messages: list[BaseMessage], system_prompt: str | None) -> list[BaseMessage]:
    """The node's own system prompt replaces the turn's."""
    if system_prompt is None:
        return list(messages)
    rest = [m for m in messages if not isinstance(m, SystemMessage)]
    return [SystemMessage(system_prompt), *rest]
