"""ToolsNode: runs the tool calls of the last model message."""

from __future__ import annotations

import time
from typing import Any

import anyio
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer

from chatter.observability.logging import get_logger
from chatter.workflows.events import ToolCallFinished, ToolCallRecord
from chatter.workflows.state import RunContext, WorkflowState, node_name, run_context
from chatter.workflows.tools.caller import ToolCaller, caller_config
from chatter.workflows.tools.mcp import call_timeout
from chatter.workflows.tools.results import (
    arguments_size,
    describe_error,
    result_text,
    truncate,
)

log = get_logger("chatter.tools")


async def tools_node(state: WorkflowState, config: RunnableConfig) -> dict[str, Any]:
    context = run_context(config)
    node = node_name(config, "tools")
    emit = get_stream_writer()
    last = state["messages"][-1]
    messages: list[ToolMessage] = []
    records: list[ToolCallRecord] = []
    calls = last.tool_calls if isinstance(last, AIMessage) else []
    for call in calls:
        record = await _run_tool(context.tools.get(call["name"]), node, call, context)
        emit(ToolCallFinished(record))
        records.append(record)
        messages.append(
            ToolMessage(
                content=record.result,
                tool_call_id=record.tool_call_id,
                name=record.name,
                status="success" if record.status == "succeeded" else "error",
            )
        )
    return {"messages": messages, "tool_records": records}


async def _run_tool(
    tool: BaseTool | None, node: str, call: Any, context: RunContext
) -> ToolCallRecord:
    """Run one call within the run's limits. A tool that is unknown, refuses its arguments,
    raises or times out becomes an error result for the model; it never fails the turn."""
    limits = context.tool_limits
    started = time.monotonic()
    started_at_ns = time.time_ns()
    arguments: dict[str, Any] = dict(call["args"])
    size = arguments_size(arguments)
    error: str | None = None
    result = ""
    if size > limits.max_argument_chars:
        error = f"arguments too large ({size} characters; at most {limits.max_argument_chars})"
        arguments = {"_omitted": f"{size} characters of arguments, over the limit"}
    elif tool is None:
        error = f"unknown tool '{call['name']}'"
    else:
        caller = caller_config(ToolCaller(context.user_id, context.conversation_id))
        timeout_s = call_timeout(tool, limits.timeout_s)
        try:
            with anyio.move_on_after(timeout_s) as deadline:
                result = result_text(await tool.ainvoke(arguments, config=caller))
            if deadline.cancelled_caught:
                error = f"the tool did not answer within {timeout_s:g} s"
        except Exception as exc:  # a tool failure is reported to the model, not raised
            error = describe_error(exc)
    if error is not None:
        result = f"Error: {error}"
        log.warning("tool_call_failed", tool=call["name"], error=error)
    elapsed = time.monotonic() - started
    return ToolCallRecord(
        tool_call_id=call["id"] or "",
        node=node,
        name=call["name"],
        arguments=arguments,
        result=truncate(result, limits.max_result_chars),
        status="succeeded" if error is None else "failed",
        latency_ms=int(elapsed * 1000),
        started_at_ns=started_at_ns,
        ended_at_ns=started_at_ns + int(elapsed * 1e9),
        error=None if error is None else truncate(error, limits.max_result_chars),
    )
