"""A chat turn: admit, open, run the workflow as a stream, close. One path for all callers.

Transactions (see docs/accounting.md): the user message and the running execution commit first;
each model call's LLMCall row commits as the call ends (the last call's with the close); one
closing transaction writes the tool and assistant messages, the execution's outcome and the
conversation's increments.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import replace

import anyio
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.enums import (
    ExecutionStatus,
    LLMCallStatus,
    MessageRole,
)
from chatter.domain.ids import is_valid_id, new_id
from chatter.errors import ChatterError, ExecutionInterrupted, InternalError
from chatter.events.publisher import EventPublisher
from chatter.observability.logging import get_logger
from chatter.providers.registry import ModelOptions, ProviderRegistry
from chatter.services.budgets import BudgetService
from chatter.services.chat_events import TurnClosed, TurnEvent, TurnRefused, TurnStarted
from chatter.services.completion import CompletionGuard
from chatter.services.conversations import ConversationService
from chatter.services.history import load_recent
from chatter.services.turn_closing import RECOVERED, Outcome, TurnCloser, TurnProgress
from chatter.services.turn_events import message_created, node_event, turn_opened
from chatter.services.turn_request import AdmittedTurn, ChatRequest, workflow_run
from chatter.services.turn_tracing import TurnTrace
from chatter.services.workflow_definitions import DefinitionService
from chatter.settings import LLMSettings
from chatter.storage import executions, llm_calls
from chatter.storage.messages import MessageDraft, append_messages
from chatter.storage.models import Conversation, Message, User, WorkflowExecution
from chatter.workflows.events import (
    ModelCallFinished,
    ModelCallRecord,
    NodeFinished,
    NodeStarted,
    ToolCallFinished,
    ToolCallRequested,
    ToolIterationLimitReached,
    WorkflowFinished,
)
from chatter.workflows.executor import WorkflowExecutor, WorkflowRun
from chatter.workflows.ledger import CallLedger
from chatter.workflows.templates import CHAT
from chatter.workflows.tools.catalog import ToolCatalog
from chatter.workflows.tools.limits import ToolLimits

# ChatRequest and AdmittedTurn live in turn_request; callers have long imported them here.
__all__ = ["AdmittedTurn", "ChatRequest", "ChatService"]

log = get_logger("chatter.chat")
TITLE_LENGTH = 60
UNRECORDED = "The turn could not be recorded; its execution was closed as failed."


class ChatService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: ProviderRegistry,
        executor: WorkflowExecutor,
        llm: LLMSettings,
        publisher: EventPublisher,
        conversations: ConversationService,
        tracer: trace.Tracer | None = None,
        *,
        worker_id: str,
        tools: ToolCatalog,
        definitions: DefinitionService,
        tool_limits: ToolLimits | None = None,
        budgets: BudgetService | None = None,
    ) -> None:
        self._sessions = sessions
        # Stamped on every execution this process opens (in the same INSERT): recovery
        # closes it only if this worker stops heartbeating.
        self._worker_id = worker_id
        self._tracer = tracer or trace.NoOpTracer()
        self._publisher = publisher
        self._conversations = conversations
        self._registry = registry
        self._executor = executor
        self._llm = llm
        self._tools = tools
        self._definitions = definitions
        self._tool_limits = tool_limits or ToolLimits()
        self._budgets = budgets
        self._guard = CompletionGuard()
        self._closer = TurnCloser(sessions, self._guard, publisher)

    async def admit(
        self, *, session: AsyncSession, user: User, request: ChatRequest, correlation_id: str
    ) -> AdmittedTurn:
        conversation = None
        if request.conversation_id is not None:
            conversation = await self._conversations.get_owned(
                session=session,
                user=user,
                conversation_id=request.conversation_id,
                correlation_id=correlation_id,
            )
        defaults = conversation
        workflow = request.workflow or (defaults.default_workflow if defaults else None) or CHAT
        runnable = None
        if is_valid_id(workflow):  # a stored definition (the user's own), else a template
            runnable = await self._definitions.for_run(
                session=session, user=user, definition_id=workflow, correlation_id=correlation_id
            )
        await session.commit()
        resolved = self._registry.resolve(
            request.provider or (defaults.default_provider if defaults else None),
            request.model or (defaults.default_model if defaults else None),
        )
        options = ModelOptions(request.temperature, request.max_tokens)
        if request.client is not None:
            options = replace(options, top_p=request.client.top_p, stop=request.client.stop)
        self._registry.check_options(resolved, options)
        compiled = runnable.compiled if runnable else self._executor.template(workflow)
        system_prompt = request.system_prompt or (
            defaults.default_system_prompt if defaults else None
        )
        turn = AdmittedTurn(
            user,
            request,
            conversation,
            resolved,
            compiled.name,
            system_prompt,
            correlation_id,
            options,
            compiled,
            runnable.definition_id if runnable else None,
            runnable.version if runnable else None,
            iteration_limit=self._executor.iteration_limit(compiled),
        )
        if self._budgets is None:
            return turn
        # Last: a refused turn (402) writes nothing but its security event.
        return replace(turn, reservation=await self._budgets.reserve(session=session, turn=turn))

    async def stream(self, turn: AdmittedTurn) -> AsyncGenerator[TurnEvent]:
        """The turn's events, ending with TurnClosed (or TurnRefused when it could not even
        open). The turn runs in a task of its own, so a caller that goes away (an SSE client
        disconnecting) cancels it exactly once, cleanly: the model call is cancelled
        upstream and the turn still closes, as `cancelled`, with its usage."""
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

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """At shutdown: let closes already started finish."""
        await self._guard.drain(timeout_s)

    async def _drive(self, turn: AdmittedTurn, emit: Callable[[TurnEvent | None], None]) -> None:
        progress = TurnProgress(
            CallLedger(self._registry.pricer), turn.resolved, reservation=turn.reservation
        )
        spans = self._trace(turn)
        try:
            try:
                started, history = await self._open_uninterrupted(turn, progress)
            except ChatterError as exc:  # e.g. the conversation was deleted meanwhile
                await self._release(turn)
                spans.failed(exc.code)
                emit(TurnRefused(exc))
                return
            spans.opened(started)
            emit(started)
            try:
                closed = await self._run_and_close(turn, started, history, progress, emit)
                spans.closed(closed)
                emit(closed)
            except Exception:  # the close itself failed; its fallback closed the execution
                log.exception("turn_close_unrecorded", execution_id=started.execution.id)
                spans.failed("internal_error")
                emit(TurnRefused(InternalError(UNRECORDED)))
        except Exception:  # a bug or a database failure before the turn opened
            log.exception("turn_open_failed")
            await self._release(turn)
            spans.failed("internal_error")
            emit(TurnRefused(InternalError("The turn could not be started.")))
        finally:
            spans.end(progress.ledger.records, progress.tools)
            emit(None)

    async def _release(self, turn: AdmittedTurn) -> None:
        if self._budgets is not None:
            await self._budgets.release(turn.reservation)

    def _trace(self, turn: AdmittedTurn) -> TurnTrace:
        return TurnTrace(
            self._tracer,
            workflow=turn.workflow,
            provider=turn.resolved.provider,
            model=turn.resolved.model,
            correlation_id=turn.correlation_id,
            conversation_id=turn.conversation.id if turn.conversation else None,
        )

    async def _open_uninterrupted(
        self, turn: AdmittedTurn, progress: TurnProgress
    ) -> tuple[TurnStarted, list[Message]]:
        """Open the turn; a cancellation that arrives meanwhile waits for the open to commit
        and then closes the turn as cancelled, so no execution is left running."""
        opening = asyncio.ensure_future(self._open(turn))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                started, _ = await opening
            outcome = Outcome(ExecutionStatus.CANCELLED, _reason(asyncio.CancelledError()))
            await self._closer.close(started, progress, outcome)
            raise

    async def _run_and_close(
        self,
        turn: AdmittedTurn,
        started: TurnStarted,
        history: list[Message],
        progress: TurnProgress,
        emit: Callable[[TurnEvent | None], None],
    ) -> TurnClosed:
        try:
            async for event in self._run(turn, started, history, progress):
                emit(event)
        except ChatterError as exc:
            return await self._close_interrupted(started, progress, exc, exc)
        except Exception as exc:  # a bug or a database failure: close it, say so, log it
            log.exception("turn_failed", execution_id=started.execution.id)
            error = InternalError("The turn failed unexpectedly; it was recorded as failed.")
            return await self._close_interrupted(started, progress, exc, error)
        except BaseException as exc:
            # Cancelled: the caller is gone. Close the turn anyway, then re-raise.
            await self._close_interrupted(started, progress, exc, None)
            raise
        # The closer runs the close to its end even if we are cancelled while it commits.
        completed = Outcome(ExecutionStatus.COMPLETED, progress.notice)
        return await self._closer.close(started, progress, completed)

    async def _run(
        self,
        turn: AdmittedTurn,
        started: TurnStarted,
        history: list[Message],
        progress: TurnProgress,
    ) -> AsyncGenerator[TurnEvent]:
        run = await self._workflow_run(turn, started, history, progress.ledger)
        # A call that asked for no tools is usually the turn's last: its row is written by
        # the close, in the same transaction, saving a commit per turn. Anything else that
        # happens next writes it first, so a finished call is never held in memory while
        # more work (a tool, another call) runs.
        pending: ModelCallRecord | None = None
        tools_requested = False
        async with aclosing(self._executor.stream(run)) as events:
            async for event in events:
                if isinstance(event, WorkflowFinished):
                    progress.result_text = event.result.final_text
                    return
                # The end of the call's own node is not more work: the call may still be
                # the turn's last.
                if pending is not None and not isinstance(event, NodeFinished):
                    await self._guard.run(self._record_call(started, progress, pending))
                    pending = None
                if isinstance(event, ToolCallRequested):
                    tools_requested = True
                    progress.requested.append(event)
                elif isinstance(event, ModelCallFinished):
                    if tools_requested:
                        await self._guard.run(self._record_call(started, progress, event.record))
                    else:
                        pending = event.record
                    tools_requested = False
                _note(started, progress, event)
                # The limit is on record (the execution says so), not streamed.
                if not isinstance(event, ToolIterationLimitReached):
                    yield event

    async def _open(self, turn: AdmittedTurn) -> tuple[TurnStarted, list[Message]]:
        """One transaction: the user message, the running execution, and the history the
        model will see - as of this turn's own message, whatever concurrent turns add."""
        async with self._sessions() as session:
            conversation = turn.conversation or await self._new_conversation(session, turn)
            appended = await append_messages(session, conversation.id, _input_drafts(turn))
            execution = WorkflowExecution(
                # Chosen at admission when the turn holds a reservation (it names it).
                id=turn.reservation.execution_id if turn.reservation else new_id(),
                user_id=turn.user.id,
                conversation_id=conversation.id,
                workflow_name=turn.workflow[:64],
                definition_id=turn.definition_id,
                definition_version=turn.definition_version,
                provider=turn.resolved.provider,
                model=turn.resolved.model,
                status=ExecutionStatus.RUNNING.value,
                correlation_id=turn.correlation_id,
                owner_id=self._worker_id,
            )
            session.add(execution)
            await session.flush()
            # As the append left it in this transaction (concurrent turns move its aggregates).
            conversation = appended.conversation
            *earlier_input, user_message = appended.messages
            history = [user_message]
            # A new conversation has no history to read; a client's turn brings its own.
            if user_message.sequence > 1 and turn.request.client is None:
                history = await load_recent(
                    session,
                    conversation.id,
                    self._llm.history_limit,
                    up_to_sequence=user_message.sequence,
                )
            opened = turn_opened(
                execution,
                user_message,
                conversation,
                provider=turn.resolved.provider,
                model=turn.resolved.model,
            )
            opened[1:1] = [message_created(execution, message) for message in earlier_input]
            await self._publisher.commit(session, opened)
        log.info("turn_opened", execution_id=execution.id, conversation_id=conversation.id)
        return TurnStarted(conversation, user_message, execution, turn.correlation_id), history

    async def _new_conversation(self, session: AsyncSession, turn: AdmittedTurn) -> Conversation:
        lines = turn.request.message.strip().splitlines()
        title = lines[0][:TITLE_LENGTH] if lines else None
        conversation = Conversation(user_id=turn.user.id, title=title)
        session.add(conversation)
        await session.flush()
        return conversation

    async def _workflow_run(
        self,
        turn: AdmittedTurn,
        started: TurnStarted,
        history: list[Message],
        ledger: CallLedger,
    ) -> WorkflowRun:
        names = turn.compiled.tool_names  # what its model nodes name; None: all
        tools = await self._tools.tools(names) if names is None or names else {}
        return workflow_run(
            turn,
            started.conversation.id,
            history,
            ledger,
            self._registry,
            tools,
            self._llm,
            self._tool_limits,
        )

    async def _record_call(
        self, started: TurnStarted, progress: TurnProgress, record: ModelCallRecord
    ) -> None:
        """The call's row commits as the call ends, with the tool calls that ran before it,
        so their order in the event stream is the order they happened in."""
        tools = progress.tools[progress.tools_recorded :]
        try:
            async with self._sessions() as session:
                if not await executions.lock_running(session, started.execution.id):
                    # Recovered by another worker (this one missed its lease): its totals
                    # are summed; a row added now would not be in them. Stop the turn.
                    raise ExecutionInterrupted(RECOVERED)
                # The node events so far ride along in this commit (no statement of their own).
                # Taken before the commit: one that fails may still have committed them, and
                # a node event published twice would be two outbox rows (lifecycle only).
                nodes = list(progress.node_events)
                del progress.node_events[: len(nodes)]
                events = await llm_calls.record_calls(session, started.execution, [record], tools)
                await self._publisher.commit(session, [*nodes, *events])
        except ExecutionInterrupted:
            raise
        except BaseException:
            progress.recording_uncertain = True  # it may have committed: the close checks
            raise
        progress.recorded_calls.add(record.call_id)
        progress.tools_recorded += len(tools)

    async def _close_interrupted(
        self,
        started: TurnStarted,
        progress: TurnProgress,
        exc: BaseException,
        error: ChatterError | None,
    ) -> TurnClosed:
        cancelled = not isinstance(exc, Exception)
        status = ExecutionStatus.CANCELLED if cancelled else ExecutionStatus.FAILED
        reason = _reason(exc)
        call_status = LLMCallStatus.PARTIAL if cancelled else LLMCallStatus.FAILED
        progress.ledger.interrupt_open_calls(call_status, reason)
        log.warning("turn_interrupted", status=status.value, error=reason)
        return await self._closer.close(started, progress, Outcome(status, reason, error))


def _note(started: TurnStarted, progress: TurnProgress, event: object) -> None:
    """Keep what the close needs from a run's event."""
    if isinstance(event, ToolCallFinished):
        progress.tools.append(event.record)
    elif isinstance(event, NodeStarted | NodeFinished):
        if isinstance(event, NodeFinished):
            progress.node_timings.append(event.timing())
        progress.node_events.append(node_event(started.execution, event))
    elif isinstance(event, ToolIterationLimitReached):
        progress.notice = event.notice


def _input_drafts(turn: AdmittedTurn) -> list[MessageDraft]:
    """The messages a turn opens with: the user's message, or a client's stored input."""
    if turn.request.client is not None:
        return turn.request.client.input_drafts(turn.correlation_id)
    fields = {"correlation_id": turn.correlation_id}
    return [MessageDraft(MessageRole.USER, turn.request.message, fields=fields)]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ChatterError):
        return exc.message
    if isinstance(exc, Exception):
        return f"internal error: {type(exc).__name__}"
    return "cancelled: the client went away before the turn finished"
