"""A chat turn: admit, open, run the workflow as a stream, close. One path for all callers.

Transactions (see DESIGN.md): the user message and the running execution commit first;
each model call's LLMCall row commits as the call ends; one closing transaction writes the
tool and assistant messages, the execution's outcome and the conversation's increments.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.enums import (
    ExecutionStatus,
    LLMCallStatus,
    MessageRole,
    MessageStatus,
)
from chatter.domain.usage import Usage, total_usage
from chatter.errors import ChatterError, NotFound, ProviderError
from chatter.observability.logging import get_logger
from chatter.providers.registry import ModelOptions, ProviderRegistry, ResolvedModel
from chatter.services.chat_events import TurnClosed, TurnEvent, TurnStarted
from chatter.services.history import load_recent, to_langchain
from chatter.settings import LLMSettings
from chatter.storage import turns
from chatter.storage.models import Conversation, Message, User, WorkflowExecution
from chatter.workflows.events import (
    ModelCallFinished,
    ModelCallRecord,
    ToolCallFinished,
    ToolCallRecord,
    WorkflowFinished,
)
from chatter.workflows.executor import WorkflowExecutor, WorkflowRun
from chatter.workflows.ledger import CallLedger
from chatter.workflows.state import RunContext
from chatter.workflows.templates import CHAT, TOOL_WORKFLOWS
from chatter.workflows.tools import builtin_tools

log = get_logger("chatter.chat")
_Row = TypeVar("_Row", Conversation, WorkflowExecution, Message)
TITLE_LENGTH = 60


@dataclass(frozen=True)
class ChatRequest:
    message: str
    conversation_id: str | None = None
    provider: str | None = None
    model: str | None = None
    workflow: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class AdmittedTurn:
    """Everything checked before the first write."""

    user: User
    request: ChatRequest
    conversation: Conversation | None
    resolved: ResolvedModel
    workflow: str
    system_prompt: str | None
    correlation_id: str


@dataclass
class _Progress:
    """What the run has produced so far; enough to close the turn however it ends."""

    ledger: CallLedger
    started: float = field(default_factory=time.monotonic)
    recorded: set[str] = field(default_factory=set)
    tools: list[ToolCallRecord] = field(default_factory=list)
    result_text: str | None = None


class ChatService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: ProviderRegistry,
        executor: WorkflowExecutor,
        llm: LLMSettings,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._executor = executor
        self._llm = llm
        self._tools = builtin_tools()

    async def admit(
        self, *, session: AsyncSession, user: User, request: ChatRequest, correlation_id: str
    ) -> AdmittedTurn:
        conversation = None
        if request.conversation_id is not None:
            conversation = await session.get(Conversation, request.conversation_id)
            if conversation is None or conversation.user_id != user.id:
                raise NotFound(
                    "Conversation not found.",
                    details={"conversation_id": request.conversation_id},
                )
        await session.commit()
        defaults = conversation
        resolved = self._registry.resolve(
            request.provider or (defaults.default_provider if defaults else None),
            request.model or (defaults.default_model if defaults else None),
        )
        workflow = request.workflow or (defaults.default_workflow if defaults else None) or CHAT
        self._executor.check(workflow)
        system_prompt = request.system_prompt or (
            defaults.default_system_prompt if defaults else None
        )
        return AdmittedTurn(
            user, request, conversation, resolved, workflow, system_prompt, correlation_id
        )

    async def stream(self, turn: AdmittedTurn) -> AsyncGenerator[TurnEvent]:
        """The turn's events. The turn runs in a task of its own, so a caller that goes
        away (an SSE client disconnecting) cancels it exactly once, cleanly: the model call
        is cancelled upstream and the turn still closes, as `cancelled`, with its usage."""
        queue: asyncio.Queue[TurnEvent | None] = asyncio.Queue()
        task = asyncio.create_task(self._drive(turn, queue.put_nowait))
        try:
            while (event := await queue.get()) is not None:
                yield event
            await task
        finally:
            if not task.done():
                task.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait([task])
                if not task.cancelled() and task.exception() is not None:
                    log.error("turn_failed_after_caller_left", error=repr(task.exception()))

    async def _drive(self, turn: AdmittedTurn, emit: Callable[[TurnEvent | None], None]) -> None:
        try:
            started = await self._open(turn)
            emit(started)
            progress = _Progress(ledger=CallLedger(self._registry.pricer))
            try:
                async for event in self._run(turn, started, progress):
                    emit(event)
            except ChatterError as exc:
                emit(await self._close_interrupted(turn, started, progress, exc))
            except BaseException as exc:
                # Cancelled (caller gone) or a bug: close the turn anyway, so nothing stays
                # running and no usage is lost; then re-raise.
                await self._close_interrupted(turn, started, progress, exc)
                raise
        finally:
            emit(None)

    async def _run(
        self, turn: AdmittedTurn, started: TurnStarted, progress: _Progress
    ) -> AsyncGenerator[TurnEvent]:
        run = await self._workflow_run(turn, started, progress.ledger)
        async with aclosing(self._executor.stream(run)) as events:
            async for event in events:
                if isinstance(event, ModelCallFinished):
                    await self._record_call(started.execution, event.record, progress)
                elif isinstance(event, ToolCallFinished):
                    progress.tools.append(event.record)
                if isinstance(event, WorkflowFinished):
                    progress.result_text = event.result.final_text
                    break
                yield event
        yield await self._close(turn, started, progress, ExecutionStatus.COMPLETED)

    async def _open(self, turn: AdmittedTurn) -> TurnStarted:
        async with self._sessions() as session:
            conversation = turn.conversation or await self._new_conversation(session, turn)
            (user_message,) = await turns.append_messages(
                session,
                conversation.id,
                [
                    turns.MessageDraft(
                        MessageRole.USER,
                        turn.request.message,
                        fields={"correlation_id": turn.correlation_id},
                    )
                ],
            )
            execution = WorkflowExecution(
                user_id=turn.user.id,
                conversation_id=conversation.id,
                workflow_name=turn.workflow,
                status=ExecutionStatus.RUNNING.value,
                correlation_id=turn.correlation_id,
            )
            session.add(execution)
            await session.commit()
            conversation = await self._reload(session, Conversation, conversation.id)
        log.info("turn_opened", execution_id=execution.id, conversation_id=conversation.id)
        return TurnStarted(conversation, user_message, execution, turn.correlation_id)

    async def _new_conversation(self, session: AsyncSession, turn: AdmittedTurn) -> Conversation:
        title = turn.request.message.strip().splitlines()[0][:TITLE_LENGTH] or None
        conversation = Conversation(user_id=turn.user.id, title=title)
        session.add(conversation)
        await session.flush()
        return conversation

    async def _workflow_run(
        self, turn: AdmittedTurn, started: TurnStarted, ledger: CallLedger
    ) -> WorkflowRun:
        async with self._sessions() as session:
            history = await load_recent(session, started.conversation.id, self._llm.history_limit)
            await session.commit()
        options = ModelOptions(turn.request.temperature, turn.request.max_tokens)
        context = RunContext(
            resolved=turn.resolved,
            chat_model=self._registry.chat_model(turn.resolved, options),
            ledger=ledger,
            tools=self._tools if turn.workflow in TOOL_WORKFLOWS else {},
            max_tool_iterations=self._llm.max_tool_iterations,
        )
        messages = to_langchain(history, turn.system_prompt, with_tools=bool(context.tools))
        return WorkflowRun(turn.workflow, messages, context)

    async def _record_call(
        self, execution: WorkflowExecution, record: ModelCallRecord, progress: _Progress
    ) -> None:
        async with self._sessions() as session:
            session.add(turns.llm_call_row(execution.id, execution.correlation_id, record))
            await session.commit()
        progress.recorded.add(record.call_id)

    async def _close_interrupted(
        self,
        turn: AdmittedTurn,
        started: TurnStarted,
        progress: _Progress,
        exc: BaseException,
    ) -> TurnClosed:
        cancelled = not isinstance(exc, Exception)
        status = ExecutionStatus.CANCELLED if cancelled else ExecutionStatus.FAILED
        reason = _reason(exc)
        call_status = LLMCallStatus.PARTIAL if cancelled else LLMCallStatus.FAILED
        progress.ledger.interrupt_open_calls(call_status, reason)
        log.warning("turn_interrupted", status=status.value, error=reason)
        error = exc if isinstance(exc, ChatterError) else None
        return await self._close(turn, started, progress, status, reason, error)

    async def _close(
        self,
        turn: AdmittedTurn,
        started: TurnStarted,
        progress: _Progress,
        status: ExecutionStatus,
        reason: str | None = None,
        error: ChatterError | None = None,
    ) -> TurnClosed:
        records = progress.ledger.records
        usage = total_usage([record.usage for record in records])
        async with self._sessions() as session:
            for record in records:
                if record.call_id not in progress.recorded:
                    session.add(
                        turns.llm_call_row(started.execution.id, turn.correlation_id, record)
                    )
            for tool in progress.tools:
                session.add(turns.tool_call_row(started.execution.id, turn.correlation_id, tool))
            await session.flush()
            if await turns.finish_execution(session, started.execution, status, reason):
                drafts = self._closing_messages(
                    turn, started, progress, records, usage, status, reason
                )
                messages = await turns.append_messages(session, started.conversation.id, drafts)
                await session.commit()
            else:
                # Someone else (crash recovery) closed it first and applied its usage:
                # applying ours too would count it twice.
                await session.rollback()
                messages = await self._closing_messages_of(session, started.execution.id)
            conversation = await self._reload(session, Conversation, started.conversation.id)
            execution = await self._reload(session, WorkflowExecution, started.execution.id)
        log.info("turn_closed", execution_id=execution.id, status=status.value)
        return TurnClosed(
            conversation=conversation,
            user_message=started.user_message,
            assistant_message=messages[-1],
            tool_messages=messages[:-1],
            execution=execution,
            error=error,
        )

    def _closing_messages(
        self,
        turn: AdmittedTurn,
        started: TurnStarted,
        progress: _Progress,
        records: list[ModelCallRecord],
        usage: Usage,
        status: ExecutionStatus,
        reason: str | None,
    ) -> list[turns.MessageDraft]:
        common = {
            "correlation_id": turn.correlation_id,
            "workflow_execution_id": started.execution.id,
        }
        drafts = [
            turns.MessageDraft(
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
        message_status = {
            ExecutionStatus.COMPLETED: MessageStatus.COMPLETE,
            ExecutionStatus.CANCELLED: MessageStatus.PARTIAL,
        }.get(status, MessageStatus.ERROR)
        drafts.append(
            turns.MessageDraft(
                MessageRole.ASSISTANT,
                content,
                message_status,
                usage=usage,
                fields={
                    **common,
                    "error": reason,
                    "tool_calls": _tool_calls_json(progress.tools),
                    "provider_used": turn.resolved.provider,
                    "model_used": turn.resolved.model,
                    "response_time_ms": int((time.monotonic() - progress.started) * 1000),
                    "time_to_first_token_ms": records[0].time_to_first_token_ms
                    if records
                    else None,
                    "finish_reason": records[-1].finish_reason if records else None,
                },
            )
        )
        return drafts

    @staticmethod
    async def _closing_messages_of(session: AsyncSession, execution_id: str) -> list[Message]:
        rows = await session.scalars(
            select(Message)
            .where(Message.workflow_execution_id == execution_id)
            .order_by(Message.sequence)
        )
        return list(rows)

    @staticmethod
    async def _reload(session: AsyncSession, model: type[_Row], key: str) -> _Row:
        row = await session.get(model, key, populate_existing=True)
        if row is None:
            raise NotFound(f"{model.__name__} {key} disappeared.")
        return row


def _tool_calls_json(tools: list[ToolCallRecord]) -> list[dict[str, object]] | None:
    if not tools:
        return None
    return [{"id": t.tool_call_id, "name": t.name, "args": t.arguments} for t in tools]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ChatterError):
        return exc.message
    if isinstance(exc, Exception):
        return f"internal error: {type(exc).__name__}"
    return "cancelled: the client went away before the turn finished"


__all__ = ["AdmittedTurn", "ChatRequest", "ChatService", "ProviderError"]
