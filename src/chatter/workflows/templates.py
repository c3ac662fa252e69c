"""Built-in workflow templates: definitions as data, compiled like any user's."""

from __future__ import annotations

from typing import Any

from chatter.workflows.definition import WorkflowDefinition

CHAT = "chat"
CHAT_WITH_TOOLS = "chat_with_tools"
SUMMARIZE_THEN_ANSWER = "summarize_then_answer"

_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": CHAT,
        "description": "One model call answers the conversation.",
        "nodes": [{"id": "model", "type": "model", "config": {}}],
        "edges": [],
        "entry": "model",
    },
    {
        "name": CHAT_WITH_TOOLS,
        "description": "The model may call every tool of the catalog, in a loop, then answers.",
        "nodes": [
            {"id": "model", "type": "model", "config": {"tools": None}},
            {
                "id": "route",
                "type": "conditional",
                "config": {
                    "branches": [{"label": "tools", "when": {"check": "has_tool_calls"}}],
                    "default": "done",
                },
            },
            {"id": "tools", "type": "tools", "config": {}},
        ],
        "edges": [
            {"source": "model", "target": "route"},
            {"source": "route", "target": "tools", "condition": "tools"},
            {"source": "tools", "target": "model"},
        ],
        "entry": "model",
    },
    {
        "name": SUMMARIZE_THEN_ANSWER,
        "description": "Long histories are first cut to a summary plus the last 6 messages, "
        "then the model answers.",
        "nodes": [
            {"id": "memory", "type": "memory", "config": {"keep_last": 6, "summarize": True}},
            {"id": "model", "type": "model", "config": {}},
        ],
        "edges": [{"source": "memory", "target": "model"}],
        "entry": "memory",
    },
]


def builtin_templates() -> dict[str, WorkflowDefinition]:
    definitions = [WorkflowDefinition.model_validate(raw) for raw in _TEMPLATES]
    return {definition.name: definition for definition in definitions}
