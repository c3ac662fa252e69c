"""Built-in workflow templates: graphs as data for the one executor."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from chatter.workflows.nodes.model import model_node
from chatter.workflows.nodes.tools import route_after_model, tools_node
from chatter.workflows.state import WorkflowState

CHAT = "chat"
CHAT_WITH_TOOLS = "chat_with_tools"


def _chat() -> Any:
    graph = StateGraph(WorkflowState)
    graph.add_node("model", model_node)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    return graph.compile()


def _chat_with_tools() -> Any:
    graph = StateGraph(WorkflowState)
    graph.add_node("model", model_node)
    graph.add_node("tools", tools_node)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route_after_model, {"tools": "tools", "__end__": END})
    graph.add_edge("tools", "model")
    return graph.compile()


def builtin_templates() -> dict[str, Any]:
    """Compiled once at startup; per-run inputs travel in the run's config."""
    return {CHAT: _chat(), CHAT_WITH_TOOLS: _chat_with_tools()}


TOOL_WORKFLOWS = frozenset({CHAT_WITH_TOOLS})
