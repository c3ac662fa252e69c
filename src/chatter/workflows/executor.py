"""The one executor: runs any workflow graph as a stream of typed events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from chatter.domain.usage import total_usage
from chatter.errors import BadRequest
from chatter.workflows.events import WorkflowEvent, WorkflowFinished, WorkflowResult
from chatter.workflows.state import CONTEXT_KEY, RunContext, WorkflowState


@dataclass(frozen=True)
class WorkflowRun:
    workflow: str
    messages: list[BaseMessage]
    context: RunContext


class WorkflowExecutor:
    def __init__(self, templates: dict[str, Any]) -> None:
        self._templates = templates

    @property
    def workflows(self) -> list[str]:
        return sorted(self._templates)

    def check(self, workflow: str) -> None:
        if workflow not in self._templates:
            raise BadRequest(
                f"Unknown workflow '{workflow}'.",
                details={"workflow": workflow, "available": self.workflows},
            )

    async def stream(self, run: WorkflowRun) -> AsyncGenerator[WorkflowEvent]:
        self.check(run.workflow)
        graph = self._templates[run.workflow]
        initial: WorkflowState = {
            "messages": list(run.messages),
            "usage_records": [],
            "tool_records": [],
            "model_calls": 0,
        }
        config = {
            "configurable": {CONTEXT_KEY: run.context},
            # model + tools per iteration, plus slack for the final answer.
            "recursion_limit": 2 * run.context.max_tool_iterations + 4,
        }
        final: dict[str, Any] = dict(initial)
        # aclosing: when our consumer stops early (client gone), LangGraph's stream is
        # closed too, which cancels the running node and with it the upstream model call.
        stream = graph.astream(initial, config=config, stream_mode=["custom", "values"])
        async with aclosing(stream):
            async for mode, payload in stream:
                if mode == "custom":
                    yield payload
                else:
                    final = payload
        yield WorkflowFinished(result=_result(len(run.messages), final))


def _result(input_count: int, final: dict[str, Any]) -> WorkflowResult:
    added: list[BaseMessage] = list(final["messages"][input_count:])
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
