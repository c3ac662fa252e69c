"""Pure pieces of workflow definitions: conditions, memory's cut, the iteration default."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from chatter.workflows.compiler import compile_definition
from chatter.workflows.definition import Condition, WorkflowDefinition
from chatter.workflows.executor import WorkflowExecutor
from chatter.workflows.nodes.conditional import holds
from chatter.workflows.nodes.memory import _cut
from chatter.workflows.state import WorkflowState
from chatter.workflows.templates import builtin_templates


def state(messages: list[BaseMessage], **variables: Any) -> WorkflowState:
    return {
        "messages": messages,
        "usage_records": [],
        "tool_records": [],
        "model_calls": 2,
        "variables": variables,
    }


def asks() -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": "calculator", "args": {}, "id": "c1"}])


def test_conditions_read_the_state() -> None:
    assert holds(Condition(check="has_tool_calls"), state([asks()]))
    assert not holds(Condition(check="has_tool_calls"), state([AIMessage(content="hi")]))
    assert holds(Condition(check="model_call_count", op=">=", value=2), state([]))
    assert holds(Condition(check="variable", name="mood", value="ok"), state([], mood="ok"))
    # A comparison that cannot be made does not hold (and does not raise).
    assert not holds(Condition(check="variable", name="missing", op="<", value=3), state([]))


def test_memory_never_splits_a_tool_call_from_its_results() -> None:
    messages: list[BaseMessage] = [
        HumanMessage("one"),
        asks(),
        ToolMessage(content="2", tool_call_id="c1"),
        AIMessage(content="two"),
    ]
    assert _cut(messages, 2) == 1  # keeps the AI message that asked, its result and the answer
    assert _cut(messages, 10) == 0


def test_templates_compile_and_loops_get_room_by_default() -> None:
    executor = WorkflowExecutor(builtin_templates(), max_iterations=25, max_tool_iterations=10)
    assert executor.workflows == ["chat", "chat_with_tools", "summarize_then_answer"]
    assert executor.template("chat_with_tools").tool_names is None
    assert executor.template("chat").tool_names == frozenset()
    assert executor.iteration_limit(executor.template("chat")) == 34


def test_compiled_workflows_say_what_a_budget_must_reserve_for() -> None:
    templates = {name: compile_definition(body) for name, body in builtin_templates().items()}
    assert (templates["chat"].model_calls, templates["chat"].cyclic) == (1, False)
    assert templates["chat_with_tools"].cyclic  # bounded by its tool rounds
    assert templates["summarize_then_answer"].model_calls == 2
    loop = WorkflowDefinition.model_validate(
        {
            "name": "loop",
            "nodes": [
                {"id": "write", "type": "model", "config": {"tools": [], "max_tokens": 4000}},
                {
                    "id": "again",
                    "type": "conditional",
                    "config": {
                        "branches": [
                            {
                                "label": "more",
                                "when": {"check": "model_call_count", "op": "<", "value": 3},
                            }
                        ],
                        "default": "stop",
                    },
                },
                {"id": "stop", "type": "end", "config": {}},
            ],
            "edges": [
                {"source": "write", "target": "again"},
                {"source": "again", "target": "write", "condition": "more"},
                {"source": "again", "target": "stop", "condition": "stop"},
            ],
            "entry": "write",
        }
    )
    compiled = compile_definition(loop)
    assert (compiled.cyclic, compiled.max_node_output) == (True, 4000)
