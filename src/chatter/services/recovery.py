"""At startup: close executions a crashed process left `running`, applying their recorded
LLM-call usage exactly once (the close is guarded on status, so it is idempotent)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.enums import ExecutionStatus, MessageRole, MessageStatus
from chatter.observability.logging import get_logger
from chatter.storage import turns
from chatter.storage.models import Conversation, WorkflowExecution

log = get_logger("chatter.recovery")
REASON = "interrupted: the process running this execution stopped before it finished"


async def recover_interrupted_executions(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        ids = list(
            await session.scalars(
                select(WorkflowExecution.id).where(
                    WorkflowExecution.status == ExecutionStatus.RUNNING.value
                )
            )
        )
        await session.commit()
    recovered = 0
    for execution_id in ids:
        async with sessions() as session:
            if await _recover(session, execution_id):
                recovered += 1
            await session.commit()
    if recovered:
        log.warning("recovered_interrupted_executions", count=recovered)
    return recovered


async def _recover(session: AsyncSession, execution_id: str) -> bool:
    execution = await session.get(WorkflowExecution, execution_id)
    if execution is None:
        return False
    closed = await turns.finish_execution(session, execution, ExecutionStatus.FAILED, REASON)
    if not closed or execution.conversation_id is None:
        return closed
    if await session.get(Conversation, execution.conversation_id) is None:
        return closed
    _, usage = await turns.recorded_usage(session, execution_id)
    await turns.append_messages(
        session,
        execution.conversation_id,
        [
            turns.MessageDraft(
                MessageRole.ASSISTANT,
                "",
                MessageStatus.ERROR,
                usage=usage,
                fields={
                    "error": REASON,
                    "correlation_id": execution.correlation_id,
                    "workflow_execution_id": execution.id,
                },
            )
        ],
    )
    return True
