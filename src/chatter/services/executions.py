"""Reading executions, owner-scoped like conversations."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.enums import UserRole
from chatter.domain.ids import is_valid_id
from chatter.errors import NotFound
from chatter.storage.models import LLMCall, ToolInvocation, User, WorkflowExecution


@dataclass(frozen=True)
class ExecutionDetail:
    execution: WorkflowExecution
    llm_calls: list[LLMCall]
    tool_calls: list[ToolInvocation]


class ExecutionService:
    async def get(self, *, session: AsyncSession, user: User, execution_id: str) -> ExecutionDetail:
        execution = (
            await session.get(WorkflowExecution, execution_id)
            if is_valid_id(execution_id)
            else None
        )
        if execution is None or (
            execution.user_id != user.id and user.role != UserRole.ADMIN.value
        ):
            raise NotFound("Execution not found.", details={"execution_id": execution_id})
        calls = await session.scalars(
            select(LLMCall)
            .where(LLMCall.execution_id == execution.id)
            .order_by(LLMCall.created_at, LLMCall.id)
        )
        tools = await session.scalars(
            select(ToolInvocation)
            .where(ToolInvocation.execution_id == execution.id)
            .order_by(ToolInvocation.created_at, ToolInvocation.id)
        )
        detail = ExecutionDetail(execution, list(calls), list(tools))
        await session.commit()
        return detail
