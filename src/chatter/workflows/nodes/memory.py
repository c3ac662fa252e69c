"""MemoryNode: keeps the system prompt and the last N messages; optionally the older ones
become a summary written by a model - a call recorded in the ledger like any other."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from chatter.workflows.definition import MemoryNodeConfig
from chatter.workflows.events import ModelCallFinished
from chatter.workflows.nodes.model import NodeFunction
from chatter.workflows.nodes.model_call import call_model
from chatter.workflows.state import WorkflowState, node_name, run_context

SUMMARY_PREFIX = "Summary of the earlier conversation: "


def memory_node(spec: MemoryNodeConfig) -> NodeFunction:
    async def run(state: WorkflowState, config: RunnableConfig) -> dict[str, Any]:
        messages = list(state["messages"])
        system = [m for m in messages if isinstance(m, SystemMessage)]
        rest = [m for m in messages if not isinstance(m, SystemMessage)]
        cut = _cut(rest, spec.keep_last)
        if cut == 0:
            return {}
        older, kept = rest[:cut], rest[cut:]
        update: dict[str, Any] = {}
        if spec.summarize:
            context = run_context(config)
            node = node_name(config, "memory")
            emit = get_stream_writer()
            resolved, model = context.model_for(spec.provider, spec.model)
            prompt = [*older, HumanMessage(spec.summary_prompt)]
            summary, record = await call_model(
                context.ledger, node, resolved, model, prompt, emit, stream_text=False
            )
            emit(ModelCallFinished(record))
            system = [*system, SystemMessage(SUMMARY_PREFIX + summary.text)]
            update = {"usage_records": [record]}
        # Replace the whole list: the summary belongs before the messages kept.
        removal: list[BaseMessage] = [RemoveMessage(id=REMOVE_ALL_MESSAGES)]
        return {**update, "messages": [*removal, *system, *kept]}

    return run


def _cut(messages: list[BaseMessage], keep_last: int) -> int:
    """Where the kept tail starts: never between a tool call and its results."""
    cut = max(len(messages) - keep_last, 0)
    while 0 < cut < len(messages) and isinstance(messages[cut], ToolMessage):
        cut -= 1  # keep the AI message that asked for these results
    while cut > 0 and _asks_for_tools(messages[cut - 1]):
        cut -= 1
    return cut


def _asks_for_tools(message: BaseMessage) -> bool:
    return isinstance(message, AIMessage) and bool(message.tool_calls)
