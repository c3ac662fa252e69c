"""Executions outlive no worker: each worker has a row in `workers` with a heartbeat, and
any worker, at startup and then periodically, closes as failed the running executions of
workers whose heartbeat is older than the lease, applying their recorded LLM-call usage
exactly once (the close is guarded on status, so workers racing to recover the same
execution, or a late turn closing it, change nothing the second time)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatter.domain.clock import utcnow
from chatter.domain.enums import ExecutionStatus, MessageRole, MessageStatus
from chatter.domain.events import DomainEvent
from chatter.errors import ExecutionInterrupted
from chatter.events.periodic import every
from chatter.events.publisher import EventPublisher
from chatter.observability.logging import get_logger
from chatter.services.turn_events import turn_closed
from chatter.settings import ExecutionSettings
from chatter.storage import executions, rollups, workers
from chatter.storage.messages import MessageDraft, append_messages
from chatter.storage.models import Conversation, WorkflowExecution

log = get_logger("chatter.recovery")
REASON = "interrupted: the process running this execution stopped before it finished"
# A dead worker's row goes once its executions are recovered, or at the latest after this
# many leases (if one of its executions could not be closed meanwhile).
FORGET_AFTER_LEASES = 10
STOP_TIMEOUT_S = 10.0


class ExecutionRecovery:
    """This worker's row and heartbeat, and the periodic recovery of other workers'
    orphaned executions. `start` registers the worker and runs one pass before the app
    serves; `aclose` (after in-flight turns closed) deletes the row, so whatever this
    worker still left running is recoverable at once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: EventPublisher,
        settings: ExecutionSettings,
        worker_id: str,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._settings = settings
        self.worker_id = worker_id
        self._hostname = socket.gethostname()
        self._pid = os.getpid()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._registered = False

    async def start(self) -> None:
        async with self._sessions() as session:
            await workers.register(
                session, self.worker_id, hostname=self._hostname, pid=self._pid, now=utcnow()
            )
            await session.commit()
        self._registered = True
        log.info("worker_registered", worker_id=self.worker_id, pid=self._pid)
        await self.recover()
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(
                every(
                    self._settings.heartbeat_s,
                    self.heartbeat,
                    self._stopping,
                    failure="worker_heartbeat_failed",
                )
            ),
            asyncio.create_task(
                every(
                    self._settings.recovery_interval_s,
                    self.recover,
                    self._stopping,
                    failure="execution_recovery_failed",
                )
            ),
        ]

    async def aclose(self) -> None:
        self._stopping.set()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await asyncio.gather(*self._tasks)
        except TimeoutError:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if not self._registered:  # a CLI command's container, or a start that failed
            return
        self._registered = False
        with contextlib.suppress(Exception):  # the database is gone: the lease will expire
            async with self._sessions() as session:
                await workers.remove(session, self.worker_id)
                await session.commit()
            log.info("worker_unregistered", worker_id=self.worker_id)

    async def heartbeat(self) -> None:
        """One tiny UPDATE. Bounded by the lease: a heartbeat stuck behind a busy writer is
        given up (and logged by `every`) and the next one tried; past the lease, another
        worker may recover this one's executions - their own close is then a no-op."""
        async with asyncio.timeout(self._settings.lease_s), self._sessions() as session:
            kept = await workers.heartbeat(
                session, self.worker_id, hostname=self._hostname, pid=self._pid, now=utcnow()
            )
            await session.commit()
        if not kept:
            log.warning("worker_row_restored", worker_id=self.worker_id)

    async def recover(self) -> int:
        """One pass: close the orphaned executions, then forget the dead workers."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self._settings.lease_s)
        async with self._sessions() as session:
            orphans = await workers.orphaned_executions(session, cutoff, self.worker_id)
            await session.commit()
        recovered = await recover_executions(
            self._sessions, self._publisher, [execution_id for execution_id, _ in orphans]
        )
        if recovered:
            owners = sorted({owner or "none" for _, owner in orphans})
            log.warning("recovered_interrupted_executions", count=recovered, owners=owners)
        forget = now - timedelta(seconds=self._settings.lease_s * FORGET_AFTER_LEASES)
        async with self._sessions() as session:
            forgotten = await workers.delete_dead(session, cutoff, forget, self.worker_id)
            await session.commit()
        if forgotten:
            log.info("dead_workers_forgotten", count=forgotten)
        return recovered


async def recover_executions(
    sessions: async_sessionmaker[AsyncSession],
    publisher: EventPublisher,
    execution_ids: list[str],
) -> int:
    """Close each as failed, in a transaction of its own; the number this call closed
    (not those someone else closed first)."""
    recovered = 0
    for execution_id in execution_ids:
        async with sessions() as session:
            events = await _recover(session, execution_id)
            await publisher.commit(session, events)
        recovered += bool(events)
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
    error = ExecutionInterrupted(REASON)
    return turn_closed(closed.execution, messages, conversation, error, closed.rollup)
