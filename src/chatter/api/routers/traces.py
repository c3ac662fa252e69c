"""/api/v1/traces/{correlation_id}: follow one turn end to end."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from chatter.api.deps import ContainerDep, CorrelationId, CurrentUser, SessionDep
from chatter.api.schemas.chat import LLMCallOut, ToolCallOut
from chatter.api.schemas.common import DATABASE_RESPONSES, error_responses
from chatter.api.schemas.conversations import MessageOut
from chatter.api.schemas.events import EventOut
from chatter.api.schemas.monitoring import WorkflowMetricsOut
from chatter.api.schemas.traces import (
    EventItem,
    ExecutionItem,
    LLMCallItem,
    MessageItem,
    TimelineItem,
    ToolCallItem,
    TraceOut,
)
from chatter.services.traces import Trace

router = APIRouter(prefix="/api/v1/traces", tags=["traces"], responses=DATABASE_RESPONSES)

# Records written at the same instant read in the order a turn makes them.
_RANK = {"execution": 0, "message": 1, "tool_call": 2, "llm_call": 3, "event": 4}


@router.get("/{correlation_id}", responses=error_responses(401, 404))
async def get_trace(
    correlation_id: str,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    request_correlation_id: CorrelationId,
) -> TraceOut:
    """Everything recorded under the id: the executions (with per-node timings), each
    model call with its usage and cost, each tool call, the messages and the events, as
    grouped lists and as one `timeline` in time order. Yours only (admins: anyone's);
    anything else is a 404."""
    trace = await container.traces.get(
        session=session,
        user=user,
        correlation_id=correlation_id,
        request_correlation_id=request_correlation_id,
    )
    return _trace_out(trace)


def _trace_out(trace: Trace) -> TraceOut:
    rows = trace.rows
    executions = [WorkflowMetricsOut.model_validate(m) for m in trace.executions]
    calls = [
        LLMCallItem(
            **LLMCallOut.model_validate(call).model_dump(),
            execution_id=call.execution_id,
            at=call.created_at,
        )
        for call in rows.llm_calls
    ]
    tools = [
        ToolCallItem(
            **ToolCallOut.model_validate(tool).model_dump(),
            execution_id=tool.execution_id,
            at=tool.created_at,
        )
        for tool in rows.tool_calls
    ]
    messages = [MessageOut.model_validate(m) for m in rows.messages]
    events = [EventOut.of(e) for e in rows.events]
    timeline: list[TimelineItem] = [
        *[ExecutionItem(**e.model_dump(), at=e.started_at) for e in executions],
        *calls,
        *tools,
        *[MessageItem(**m.model_dump(), at=m.created_at) for m in messages],
        *[EventItem(**e.model_dump(), at=e.created_at) for e in events],
    ]
    timeline.sort(key=_order)
    return TraceOut(
        correlation_id=trace.correlation_id,
        timeline=timeline,
        executions=executions,
        llm_calls=calls,
        tool_calls=tools,
        messages=messages,
        events=events,
    )


def _order(item: TimelineItem) -> tuple[datetime, int]:
    return item.at, _RANK[item.kind]
