"""Workflow definitions as data: nodes, edges and an entry, each node type with a config model
whose JSON schema is served (GET /api/v1/workflows/node-types)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NODE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
LABEL_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ToolName = Annotated[str, Field(min_length=1, max_length=128)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelNodeConfig(_Config):
    """One model call. Omitted fields take the turn's resolved provider, model and options."""

    provider: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    system_prompt: str | None = Field(
        default=None, max_length=20_000, description="Replaces the turn's system prompt."
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=200_000)
    tools: list[ToolName] | None = Field(
        default_factory=list,
        max_length=64,
        description="Tool names this call may use; [] none, null every tool of the catalog.",
    )


class ToolsNodeConfig(_Config):
    """Runs the tool calls of the last model message (no settings)."""


class MemoryNodeConfig(_Config):
    """Keeps the system prompt and the last `keep_last` messages; with `summarize`, the
    older ones are replaced by a summary a model writes (an accounted model call)."""

    keep_last: int = Field(default=10, ge=1, le=1000)
    summarize: bool = False
    provider: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    summary_prompt: str = Field(
        default="Summarize the conversation so far in a few sentences, keeping every fact "
        "needed to continue it.",
        min_length=1,
        max_length=5_000,
    )


Check = Literal["has_tool_calls", "tool_call_count", "model_call_count", "variable"]
Operator = Literal["==", "!=", "<", "<=", ">", ">="]


class Condition(_Config):
    """`check op value`: e.g. has_tool_calls == true, tool_call_count < 3, or the variable
    `name` compared with `value`."""

    check: Check
    name: str | None = Field(default=None, min_length=1, max_length=64)
    op: Operator = "=="
    value: Any = True

    @model_validator(mode="after")
    def _consistent(self) -> Condition:
        if self.check == "variable" and self.name is None:
            raise ValueError("a variable condition needs `name`")
        counts = ("tool_call_count", "model_call_count")
        numeric = isinstance(self.value, int | float) and not isinstance(self.value, bool)
        if self.check in counts and not numeric:
            raise ValueError(f"{self.check} compares with a number")
        return self


class Branch(_Config):
    label: str = Field(pattern=LABEL_PATTERN)
    when: Condition


class ConditionalNodeConfig(_Config):
    """The first branch whose condition holds picks the outgoing edges labelled with its
    `label`; none holds: `default`. A label without an edge ends the run."""

    branches: list[Branch] = Field(min_length=1, max_length=32)
    default: str = Field(default="default", pattern=LABEL_PATTERN)


class VariableNodeConfig(_Config):
    """Sets (or appends to a list) `variables[name]`, from `value` or the last message's text."""

    name: str = Field(min_length=1, max_length=64)
    op: Literal["set", "append"] = "set"
    source: Literal["literal", "last_message"] = "literal"
    value: Any = None


class EndNodeConfig(_Config):
    """Ends the run (no settings)."""


NODE_TYPES: dict[str, type[BaseModel]] = {
    "model": ModelNodeConfig,
    "tools": ToolsNodeConfig,
    "memory": MemoryNodeConfig,
    "conditional": ConditionalNodeConfig,
    "variable": VariableNodeConfig,
    "end": EndNodeConfig,
}


class NodeSpec(BaseModel):
    id: str = Field(pattern=NODE_ID_PATTERN)
    type: str = Field(min_length=1, max_length=32)
    config: dict[str, Any] = Field(default_factory=dict)


class EdgeSpec(BaseModel):
    source: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=64)
    condition: str | None = Field(default=None, max_length=64)


class WorkflowDefinition(BaseModel):
    """The envelope; node configs are checked per type by `validation.validate`."""

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2_000)
    nodes: list[NodeSpec] = Field(min_length=1, max_length=100)
    edges: list[EdgeSpec] = Field(default_factory=list, max_length=400)
    entry: str = Field(min_length=1, max_length=64)
    max_iterations: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Node steps a run may take (default: CHATTER_WORKFLOWS__MAX_ITERATIONS).",
    )


def node_config(node: NodeSpec) -> BaseModel:
    """The node's typed config (the definition must have been validated)."""
    return NODE_TYPES[node.type].model_validate(node.config)


def node_type_schemas() -> dict[str, dict[str, Any]]:
    return {name: model.model_json_schema() for name, model in NODE_TYPES.items()}
