"""Closing a chat turn: one transaction that writes the tool and assistant messages, the
execution's outcome and the conversation's increments - whatever way the turn ended."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.budgets import Reservation
from chatter.domain.enums import ExecutionStatus, MessageRole, MessageStatus
from chatter.domain.events import DomainEvent
from chatter.domain.usage import Usage, total_usage
from chatter.errors import ChatterError, ExecutionInterrupted, NotFound
from chatter.events.publisher import EventPublisher
from chatter.observability.logging import get_logger
from chatter.providers.registry import ResolvedModel
from chatter.services.budget_settlement import settle
from chatter.services.chat_events import TurnClosed, TurnStarted
from chatter.services.completion import CompletionGuard
from chatter.services.turn_events import execution_finished, turn_closed
from chatter.storage import executions, llm_calls, rollups
from chatter.storage.messages import MessageDraft, append_messages
from chatter.storage.models import Conversation, LLMCall, Message, WorkflowExecution
from chatter.workflows.events import ModelCallRecord, ToolCallRecord, ToolCallRequested
from chatter.workflows.ledger import CallLedger

log = get_logger("chatter.chat")
# The fallback's tries, with pauses of 0.05, 0.2 and 0.8 s between them.
FALLBACK_TRIES = 4
FALLBACK_FIRST_PAUSE_S = 0.05
_Row = TypeVar("_Row", Conversation, WorkflowExecution)
RECOVERED = (
    "This turn's execution was closed as failed by recovery: its worker missed its heartbeat "
    "lease. What the turn produced after that is not recorded."
)
_MESSAGE_STATUS = {
    ExecutionStatus.COMPLETED: MessageStatus.COMPLETE,
    ExecutionStatus.CANCELLED: MessageStatus.PARTIAL,
}


@dataclass
class TurnProgress:
    """What the run has produced so far; enough to close the turn however it ends."""

    ledger: CallLedger
    resolved: ResolvedModel
    started: float = field(default_factory=time.monotonic)
    tools: list[ToolCallRecord] = field(default_factory=list)
    # Tool calls the model asked for (a compatible endpoint's client runs them, not us).
    requested: list[ToolCallRequested] = field(default_factory=list)
    tools_recorded: int = 0  # tools[:tools_recorded] are already stored
    recorded_calls: set[str] = field(default_factory=set)  # ids of calls already stored
    recording_uncertain: bool = False  # a call's write failed: it may have committed
    result_text: str | None = None
    # Per-node steps: stored on the execution by the close; their lifecycle events wait
    # for the turn's next commit (a call's row, or the close).
    node_timings: list[dict[str, Any]] = field(default_factory=list)
    node_events: list[DomainEvent] = field(default_factory=list)
    # Said on the execution of a turn that completed anyway (e.g. the tool iteration limit).
    notice: str | None = None
    reservation: Reservation | None = None  # settled by the close


@dataclass(frozen=True)
class Outcome:
    status: ExecutionStatus
    reason: str | None = None
    error: ChatterError | None = None


class TurnCloser:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        guard: CompletionGuard,
        publisher: EventPublisher,
    ) -> None:
        self._sessions = sessions
        self._guard = guard
        self._publisher = publisher

    async def close(
        self, started: TurnStarted, progress: TurnProgress, outcome: Outcome
    ) -> TurnClosed:
        """Close the turn. Once started, the close runs to its end even if the caller is
        cancelled meanwhile (the cancellation is re-raised afterwards)."""
        return await self._guard.run(self._close_or_fall_back(started, progress, outcome))

    async def _close_or_fall_back(
        self, started: TurnStarted, progress: TurnProgress, outcome: Outcome
    ) -> TurnClosed:
        """The full close. If it cannot be written, close at least the execution, so no
        turn is left running, then re-raise."""
        try:
            return await self._close(started, progress, outcome)
        except Exception as exc:
            log.exception("turn_close_failed", execution_id=started.execution.id)
            await self._close_execution_only(started, progress, exc)
            raise

    async def _close(
        self, started: TurnStarted, progress: TurnProgress, outcome: Outcome
    ) -> TurnClosed:
        records = progress.ledger.records
        execution_id = started.execution.id
        async with self._sessions() as session:
            unrecorded = await _unrecorded(
                session, started, progress, uncertain=progress.recording_uncertain
            )
            tools = progress.tools[progress.tools_recorded :]
            events = list(progress.node_events)
            events += await llm_calls.record_calls(session, started.execution, unrecorded, tools)
            # Every tool this turn ran is stored by now (before its next call, or just above),
            # unless a failed write leaves that unknown.
            known_tools = None if progress.recording_uncertain else len(progress.tools)
            closed = await executions.finish_execution(
                session,
                started.execution,
                outcome.status,
                outcome.reason,
                tool_calls=known_tools,
                node_timings=progress.node_timings,
            )
            if closed is not None:
                drafts = _closing_messages(started, progress, records, outcome)
                appended = await append_messages(session, started.conversation.id, drafts)
                # What this close committed, as its own statements returned it (even if the
                # conversation is deleted the moment after).
                messages, conversation = appended.messages, appended.conversation
                execution = closed.execution
                events += turn_closed(
                    execution, messages, conversation, outcome.error, closed.rollup
                )
                await rollups.record_completion(session, closed.rollup)
                events += await settle(
                    session, progress.reservation, correlation_id=started.correlation_id
                )
            else:
                # Recovery closed it first (this worker's heartbeat was late by more than
                # the lease) and applied the recorded usage; applying ours too would count
                # it twice. (Recovery announced it, too.) The caller is told so.
                await session.rollback()
                messages, events = await _messages_of(session, execution_id), []
                outcome = Outcome(outcome.status, outcome.reason, _recovered(outcome))
                log.warning(
                    "turn_closed_by_recovery", execution_id=execution_id, unrecorded=len(unrecorded)
                )
                conversation = await _reload(session, Conversation, started.conversation.id)
                execution = await _reload(session, WorkflowExecution, execution_id)
            await self._publisher.commit(session, events)
        log.info("turn_closed", execution_id=execution_id, status=outcome.status.value)
        return TurnClosed(
            conversation=conversation,
            user_message=started.user_message,
            assistant_message=messages[-1],
            tool_messages=messages[:-1],
            execution=execution,
            error=outcome.error,
        )

    async def _close_execution_only(
        self, started: TurnStarted, progress: TurnProgress, exc: Exception
    ) -> None:
        """Close the execution as failed, with the calls the failed close would have stored
        (a turn's last call is written by its close). A passing failure (a lost connection,
        a deadlock, a pool timeout) is retried with them; only rows the database refuses
        (their data) are left out, so the execution is at least closed."""
        reason = f"the turn could not be recorded: {type(exc).__name__}"
        with_calls = True
        for attempt in range(FALLBACK_TRIES):
            if attempt:
                await asyncio.sleep(FALLBACK_FIRST_PAUSE_S * 4 ** (attempt - 1))
            try:
                await self._close_failed(started, progress, reason, with_calls=with_calls)
                return
            except (IntegrityError, DataError):
                log.exception("turn_close_fallback_refused", execution_id=started.execution.id)
                with_calls = False
            except Exception:  # the database itself is gone: recovery will close it
                log.exception(
                    "turn_close_fallback_failed", execution_id=started.execution.id, attempt=attempt
                )

    async def _close_failed(
        self, started: TurnStarted, progress: TurnProgress, reason: str, *, with_calls: bool
    ) -> None:
        async with self._sessions() as session:
            events = []
            if with_calls:
                unrecorded = await _unrecorded(session, started, progress, uncertain=True)
                events = await llm_calls.record_calls(session, started.execution, unrecorded, [])
            closed = await executions.finish_execution(
                session, started.execution, ExecutionStatus.FAILED, reason
            )
            if closed is None:  # recovery closed it: the calls stay out of it too
                await session.rollback()
                return
            events += execution_finished(closed.execution, None, closed.rollup)
            await rollups.record_completion(session, closed.rollup)
            events += await settle(
                session, progress.reservation, correlation_id=started.correlation_id
            )
            await self._publisher.commit(session, events)


def _recovered(outcome: Outcome) -> ChatterError:
    if isinstance(outcome.error, ExecutionInterrupted):
        return outcome.error
    return ExecutionInterrupted(RECOVERED)


def _closing_messages(
    started: TurnStarted,
    progress: TurnProgress,
    records: list[ModelCallRecord],
    outcome: Outcome,
) -> list[MessageDraft]:
    common = {
        "correlation_id": started.correlation_id,
        "workflow_execution_id": started.execution.id,
    }
    drafts = [
        MessageDraft(
            MessageRole.TOOL,
            tool.result,
            MessageStatus.COMPLETE if tool.status == "succeeded" else MessageStatus.ERROR,
            fields={**common, "tool_call_id": tool.tool_call_id},
        )
        for tool in progress.tools
    ]
    content = progress.result_text
    if content is None:  # interrupted: what the last call had produced so far
        content = records[-1].content if records else ""
    usage: Usage = total_usage([record.usage for record in records])
    drafts.append(
        MessageDraft(
            MessageRole.ASSISTANT,
            content,
            _MESSAGE_STATUS.get(outcome.status, MessageStatus.ERROR),
            usage=usage,
            fields={
                **common,
                # A completed turn's reason is a notice for the execution, not an error.
                "error": None if outcome.status is ExecutionStatus.COMPLETED else outcome.reason,
                "tool_calls": _tool_calls_json(progress.tools) or _requested_json(progress),
                # The model that wrote the answer (a workflow node may name its own).
                "provider_used": records[-1].provider if records else progress.resolved.provider,
                "model_used": records[-1].model if records else progress.resolved.model,
                "response_time_ms": int((time.monotonic() - progress.started) * 1000),
                "time_to_first_token_ms": records[0].time_to_first_token_ms if records else None,
                "finish_reason": records[-1].finish_reason if records else None,
            },
        )
    )
    return drafts


def _tool_calls_json(tools: list[ToolCallRecord]) -> list[dict[str, object]] | None:
    if not tools:
        return None
    return [{"id": t.tool_call_id, "name": t.name, "args": t.arguments} for t in tools]


def _requested_json(progress: TurnProgress) -> list[dict[str, object]] | None:
    calls: list[dict[str, object]] = [
        {"id": c.tool_call_id, "name": c.name, "args": c.arguments} for c in progress.requested
    ]
    return calls or None


async def _unrecorded(
    session: AsyncSession, started: TurnStarted, progress: TurnProgress, *, uncertain: bool
) -> list[ModelCallRecord]:
    """The turn's calls not stored yet. Known from memory, unless a write failed in a way
    that leaves unknown whether it committed: then the rows say."""
    stored = progress.recorded_calls
    if uncertain:
        stored = set(
            await session.scalars(
                select(LLMCall.id).where(LLMCall.execution_id == started.execution.id)
            )
        )
    return [record for record in progress.ledger.records if record.call_id not in stored]


async def _messages_of(session: AsyncSession, execution_id: str) -> list[Message]:
    rows = await session.scalars(
        select(Message)
        .where(Message.workflow_execution_id == execution_id)
        .order_by(Message.sequence)
    )
    return list(rows)


async def _reload(session: AsyncSession, model: type[_Row], key: str) -> _Row:
    row = await session.get(model, key, populate_existing=True)
    if row is None:
        raise NotFound(f"{model.__name__} {key} disappeared.")
    return row
