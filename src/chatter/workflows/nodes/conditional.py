"""ConditionalNode: picks a branch label from the state; the edges with that label follow."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage

from chatter.workflows.definition import Condition, ConditionalNodeConfig
from chatter.workflows.state import WorkflowState

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


async def pass_through(state: WorkflowState) -> dict[str, Any]:
    """The node itself changes nothing; its router decides."""
    return {}


def router(config: ConditionalNodeConfig) -> Callable[[WorkflowState], str]:
    def route(state: WorkflowState) -> str:
        for branch in config.branches:
            if holds(branch.when, state):
                return branch.label
        return config.default

    return route


def holds(condition: Condition, state: WorkflowState) -> bool:
    value = _observed(condition, state)
    try:
        return bool(_OPERATORS[condition.op](value, condition.value))
    except TypeError:  # e.g. a missing variable compared with `<`: the branch is not taken
        return False


def _observed(condition: Condition, state: WorkflowState) -> Any:
    if condition.check == "has_tool_calls":
        last = state["messages"][-1] if state["messages"] else None
        return isinstance(last, AIMessage) and bool(last.tool_calls)
    if condition.check == "tool_call_count":
        return len(state["tool_records"])
    if condition.check == "model_call_count":
        return state["model_calls"]
    return state["variables"].get(condition.name or "")
