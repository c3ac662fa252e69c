"""Reading executions, owner-scoped like conversations."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.enums import UserRole
from chatter.domain.ids import is_valid_id
from chatter.errors import NotFound
from chatter.events.publisher import EventPublisher
from chatter.services.security_events import access_denied
from chatter.storage.models import LLMCall, ToolInvocation, User, WorkflowExecution


@dataclass(frozen=True)
class ExecutionDetail:
    execution: WorkflowExecution
    llm_calls: list[LLMCall]
    tool_calls: list[ToolInvocation]


class ExecutionService:
    def __init__(self, events: EventPublisher) -> None:
        self._events = events

    async def get(
        self, *, session: AsyncSession, user: User, execution_id: str, correlation_id: str
    ) -> ExecutionDetail:
        """404 unless `user` may see it (no existence leak); someone else's execution is on
        record as `access_denied`."""
        execution = (
            await session.get(WorkflowExecution, execution_id)
            if is_valid_id(execution_id)
            else None
        )
        if execution is None:
            raise NotFound("Execution not found.", details={"execution_id": execution_id})
        if execution.user_id != user.id and user.role != UserRole.ADMIN.value:
            denied = access_denied(correlation_id, user.id, "execution", execution.id)
            await self._events.commit(session, [denied])
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
