"""Graph state and the per-run context every node reads."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph.message import add_messages

from chatter.providers.registry import ResolvedModel
from chatter.workflows.events import ModelCallRecord, ToolCallRecord
from chatter.workflows.ledger import CallLedger

CONTEXT_KEY = "chatter_run"


class WorkflowState(TypedDict):
    messages: Annotated[list[BaseMessage], add_messages]
    # One record per model call, accumulated by the reducer: the run's usage is their sum.
    usage_records: Annotated[list[ModelCallRecord], operator.add]
    tool_records: Annotated[list[ToolCallRecord], operator.add]
    model_calls: int


@dataclass(frozen=True)
class RunContext:
    resolved: ResolvedModel
    chat_model: BaseChatModel
    ledger: CallLedger
    tools: dict[str, BaseTool]
    max_tool_iterations: int
    # Whose run this is: tools that read data (conversation_search) see only this user's.
    user_id: str
    conversation_id: str
    # Larger tool arguments are refused (the model gets an error), never run or stored.
    max_tool_argument_bytes: int = 64 * 1024


def run_context(config: RunnableConfig) -> RunContext:
    context = config.get("configurable", {}).get(CONTEXT_KEY)
    if not isinstance(context, RunContext):
        raise RuntimeError("workflow run without a RunContext")
    return context


def node_name(config: RunnableConfig, default: str) -> str:
    name = config.get("metadata", {}).get("langgraph_node", default)
    return str(name)
