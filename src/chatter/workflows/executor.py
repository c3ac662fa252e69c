"""The one executor: runs any compiled workflow as a stream of typed events."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.errors import GraphRecursionError

from chatter.domain.usage import total_usage
from chatter.errors import BadRequest, IterationLimitReached
from chatter.workflows.compiler import CompiledWorkflow, compile_definition
from chatter.workflows.definition import WorkflowDefinition
from chatter.workflows.events import WorkflowEvent, WorkflowFinished, WorkflowResult
from chatter.workflows.state import CONTEXT_KEY, RunContext, WorkflowState

# Compiled user definitions kept for reuse, keyed by (definition id, version): a version
# never changes, so an entry never goes stale.
COMPILED_CACHE_SIZE = 256


@dataclass(frozen=True)
class WorkflowRun:
    workflow: CompiledWorkflow
    messages: list[BaseMessage]
    context: RunContext
    variables: dict[str, Any] = field(default_factory=dict)


class WorkflowExecutor:
    def __init__(
        self,
        templates: dict[str, WorkflowDefinition],
        *,
        max_iterations: int,
        max_tool_iterations: int,
    ) -> None:
        self._definitions = dict(templates)
        self._templates = {name: compile_definition(d) for name, d in templates.items()}
        # A tool loop's model calls end by themselves (the last one may not use tools);
        # the default limit leaves room for them: model, route and tools per iteration.
        self._default_limit = max(max_iterations, 3 * max_tool_iterations + 4)
        self._compiled = functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)(self._compile)

    @property
    def workflows(self) -> list[str]:
        return sorted(self._templates)

    def templates(self) -> dict[str, WorkflowDefinition]:
        return dict(self._definitions)

    def template(self, workflow: str) -> CompiledWorkflow:
        compiled = self._templates.get(workflow)
        if compiled is None:
            raise BadRequest(
                f"Unknown workflow '{workflow}'.",
                details={"workflow": workflow, "available": self.workflows},
            )
        return compiled

    def compiled(self, definition_id: str, version: int, body: str) -> CompiledWorkflow:
        """A stored definition's version, compiled once per process."""
        return self._compiled(definition_id, version, body)

    @staticmethod
    def _compile(definition_id: str, version: int, body: str) -> CompiledWorkflow:
        return compile_definition(WorkflowDefinition.model_validate_json(body))

    def iteration_limit(self, workflow: CompiledWorkflow) -> int:
        return workflow.max_iterations or self._default_limit

    async def stream(self, run: WorkflowRun) -> AsyncGenerator[WorkflowEvent]:
        initial: WorkflowState = {
            "messages": list(run.messages),
            "usage_records": [],
            "tool_records": [],
            "model_calls": 0,
            "variables": dict(run.variables),
        }
        limit = self.iteration_limit(run.workflow)
        config = {"configurable": {CONTEXT_KEY: run.context}, "recursion_limit": limit}
        final: dict[str, Any] = dict(initial)
        # aclosing: when our consumer stops early (client gone), LangGraph's stream is
        # closed too, which cancels the running node and with it the upstream model call.
        stream = run.workflow.graph.astream(
            initial, config=config, stream_mode=["custom", "values"]
        )
        try:
            async with aclosing(stream):
                async for mode, payload in stream:
                    if mode == "custom":
                        yield payload
                    else:
                        final = payload
        except GraphRecursionError as exc:
            raise IterationLimitReached(
                f"iteration_limit_reached: the workflow '{run.workflow.name}' took more than "
                f"{limit} node steps.",
                details={"workflow": run.workflow.name, "max_iterations": limit},
            ) from exc
        yield WorkflowFinished(result=_result(final))


def _result(final: dict[str, Any]) -> WorkflowResult:
    # What follows the turn's own (last) user message, not a position: a memory node may
    # have removed earlier messages. Memory nodes always keep at least that message.
    messages: list[BaseMessage] = list(final["messages"])
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    added = messages[last_human + 1 :]
    calls = list(final["usage_records"])
    last_ai = next((m for m in reversed(added) if isinstance(m, AIMessage)), None)
    return WorkflowResult(
        messages=added,
        calls=calls,
        tool_calls=list(final["tool_records"]),
        usage=total_usage([call.usage for call in calls]),
        final_text=last_ai.text if last_ai is not None else "",
        finish_reason=calls[-1].finish_reason if calls else None,
        time_to_first_token_ms=calls[0].time_to_first_token_ms if calls else None,
    )
