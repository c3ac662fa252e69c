"""Workflow definition, template, node-type and execute bodies."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from chatter.api.input_limits import limited
from chatter.api.schemas.common import RequestModel
from chatter.workflows.definition import WorkflowDefinition


def _finite(data: Any) -> Any:
    """NaN and Infinity (which Python's JSON parser accepts) cannot be stored as JSON."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return data


class WorkflowDefinitionIn(WorkflowDefinition, RequestModel):
    """A definition: `nodes` (each `{id, type, config}`), `edges` (`{source, target,
    condition?}`) and an `entry` node. Node configs are checked against their type's schema
    (GET /api/v1/workflows/node-types); every problem is reported at once (422
    `invalid_workflow`, one entry per problem in `details`)."""

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        return _finite(data)


class DefinitionOut(BaseModel):
    id: str
    version: int = Field(description="The version shown (the current one, or the one asked).")
    current_version: int
    deleted: bool
    created_at: datetime
    updated_at: datetime
    definition: WorkflowDefinition


class ProblemOut(BaseModel):
    location: str = Field(description='e.g. "nodes[2].config.temperature", "edges[1].target"')
    node_id: str | None
    code: str
    message: str


class ValidationOut(BaseModel):
    valid: bool
    problems: list[ProblemOut]


class NodeTypeOut(BaseModel):
    type: str
    description: str
    config_schema: dict[str, Any]


class TemplateOut(BaseModel):
    name: str
    description: str
    definition: WorkflowDefinition


class ExecuteIn(RequestModel):
    input: str = Field(
        min_length=1, description="The message.", json_schema_extra=limited("max_message_chars")
    )
    conversation_id: str | None = Field(default=None, max_length=64)
    variables: dict[str, Any] | None = Field(
        default=None, description="The run's initial `variables` (conditionals compare them)."
    )

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        return _finite(data)

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("input must not be blank")
        return value
