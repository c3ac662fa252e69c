"""At startup: close executions a crashed process left `running`, applying their recorded
LLM-call usage exactly once (the close is guarded on status, so it is idempotent)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.enums import ExecutionStatus, MessageRole, MessageStatus
from chatter.domain.events import DomainEvent
from chatter.events.publisher import EventPublisher
from chatter.observability.logging import get_logger
from chatter.services.turn_events import turn_closed
from chatter.storage import executions, rollups
from chatter.storage.messages import MessageDraft, append_messages
from chatter.storage.models import Conversation, WorkflowExecution

log = get_logger("chatter.recovery")
REASON = "interrupted: the process running this execution stopped before it finished"


async def recover_interrupted_executions(
    sessions: async_sessionmaker[AsyncSession], publisher: EventPublisher
) -> int:
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
            events = await _recover(session, execution_id)
            await publisher.commit(session, events)
        recovered += bool(events)
    if recovered:
        log.warning("recovered_interrupted_executions", count=recovered)
    return recovered


async def _recover(session: AsyncSession, execution_id: str) -> list[DomainEvent]:
    """Close it as failed; returns its events (none when it was not running any more)."""
    execution = await session.get(WorkflowExecution, execution_id)
    if execution is None:
        return []
    closed = await executions.finish_execution(session, execution, ExecutionStatus.FAILED, REASON)
    if closed is None:
        return []
    conversation = None
    messages = []
    if execution.conversation_id is not None:
        conversation = await session.get(Conversation, execution.conversation_id)
    if conversation is not None:
        appended = await append_messages(
            session,
            conversation.id,
            [
                MessageDraft(
                    MessageRole.ASSISTANT,
                    "",
                    MessageStatus.ERROR,
                    usage=closed.usage,
                    fields={
                        "error": REASON,
                        "correlation_id": execution.correlation_id,
                        "workflow_execution_id": execution.id,
                    },
                )
            ],
        )
        messages, conversation = appended.messages, appended.conversation
    await rollups.record_completion(session, closed.rollup)
    return turn_closed(closed.execution, messages, conversation, None, closed.rollup)
