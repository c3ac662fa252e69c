"""/api/v1/executions/{id}: one execution with its LLM calls and tool calls."""

from __future__ import annotations

from fastapi import APIRouter

from chatter.api.deps import ContainerDep, CorrelationId, CurrentUser, SessionDep
from chatter.api.schemas.chat import ExecutionDetailOut, ExecutionOut, LLMCallOut, ToolCallOut
from chatter.api.schemas.common import DATABASE_RESPONSES, error_responses

router = APIRouter(prefix="/api/v1/executions", tags=["executions"], responses=DATABASE_RESPONSES)


@router.get("/{execution_id}", responses=error_responses(401, 404))
async def get_execution(
    execution_id: str,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> ExecutionDetailOut:
    detail = await container.executions.get(
        session=session, user=user, execution_id=execution_id, correlation_id=correlation_id
    )
    base = ExecutionOut.model_validate(detail.execution)
    return ExecutionDetailOut(
        **base.model_dump(),
        llm_calls=[LLMCallOut.model_validate(call) for call in detail.llm_calls],
        tool_calls=[ToolCallOut.model_validate(call) for call in detail.tool_calls],
    )
