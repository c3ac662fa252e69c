"""VariableNode: sets or appends to `variables[name]`, from a literal or the last message."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from chatter.workflows.definition import VariableNodeConfig
from chatter.workflows.nodes.model import NodeFunction
from chatter.workflows.state import WorkflowState


def variable_node(spec: VariableNodeConfig) -> NodeFunction:
    async def run(state: WorkflowState, config: RunnableConfig) -> dict[str, Any]:
        value = spec.value
        if spec.source == "last_message":
            value = state["messages"][-1].text if state["messages"] else ""
        if spec.op == "append":
            current = state["variables"].get(spec.name)
            items = list(current) if isinstance(current, list) else []
            value = [*items, value]
        return {"variables": {spec.name: value}}

    return run
