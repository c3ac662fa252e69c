"""ToolsNode: runs the tool calls of the last model message."""

from __future__ import annotations

import json
import time
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer

from chatter.workflows.events import ToolCallFinished, ToolCallRecord
from chatter.workflows.state import WorkflowState, node_name, run_context


async def tools_node(state: WorkflowState, config: RunnableConfig) -> dict[str, Any]:
    context = run_context(config)
    node = node_name(config, "tools")
    emit = get_stream_writer()
    last = state["messages"][-1]
    messages: list[ToolMessage] = []
    records: list[ToolCallRecord] = []
    calls = last.tool_calls if isinstance(last, AIMessage) else []
    for call in calls:
        record = await _run_tool(
            context.tools.get(call["name"]), node, call, context.max_tool_argument_bytes
        )
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
    tool: BaseTool | None, node: str, call: Any, max_argument_bytes: int
) -> ToolCallRecord:
    started = time.monotonic()
    started_at_ns = time.time_ns()
    status = "succeeded"
    arguments = dict(call["args"])
    size = len(json.dumps(arguments, ensure_ascii=False).encode())
    if size > max_argument_bytes:
        # Not run, and not stored whole: only the size is kept on the tool call's row.
        result = f"Error: the arguments are {size} bytes; at most {max_argument_bytes}."
        status, arguments = "failed", {"arguments_too_large": True, "bytes": size}
    elif tool is None:
        result, status = f"Error: unknown tool '{call['name']}'.", "failed"
    else:
        try:
            result = str(await tool.ainvoke(call["args"]))
        except Exception as exc:  # a tool failure is reported to the model, not raised
            result, status = f"Error: {exc}", "failed"
    return ToolCallRecord(
        tool_call_id=call["id"] or "",
        node=node,
        name=call["name"],
        arguments=arguments,
        result=result,
        status=status,
        latency_ms=int((time.monotonic() - started) * 1000),
        started_at_ns=started_at_ns,
        ended_at_ns=started_at_ns + int((time.monotonic() - started) * 1e9),
    )


def route_after_model(state: WorkflowState) -> str:
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.tool_calls:
        return "tools"
    return "__end__"
