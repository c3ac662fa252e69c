"""The `workers` table: one row per running process, with its heartbeat, and the queries
that find executions whose owner stopped heartbeating.

Clock: every timestamp here is the app's clock (`domain.clock.utcnow`), the writer's for
`heartbeat_at` and the reader's for the cutoff, like every other timestamp Chatter stores
(SQLite has no clock that matches the stored format). Workers on several hosts therefore
need synchronised clocks (NTP): a skew is added to or taken from the lease, which is why
the lease is several heartbeats long."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.enums import ExecutionStatus
from chatter.storage.models import Worker, WorkflowExecution

RUNNING = ExecutionStatus.RUNNING.value


async def register(
    session: AsyncSession, worker_id: str, *, hostname: str, pid: int, now: datetime
) -> None:
    await session.execute(
        insert(Worker).values(
            id=worker_id, hostname=hostname, pid=pid, started_at=now, heartbeat_at=now
        )
    )


async def heartbeat(
    session: AsyncSession, worker_id: str, *, hostname: str, pid: int, now: datetime
) -> bool:
    """One small UPDATE. If the row is gone (this worker stalled past its lease and another
    recovered its executions and deleted it) it is inserted again, so executions opened
    from now on are not taken for orphans; returns False then."""
    result = await session.execute(
        update(Worker).where(Worker.id == worker_id).values(heartbeat_at=now)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    await register(session, worker_id, hostname=hostname, pid=pid, now=now)
    return False


async def remove(session: AsyncSession, worker_id: str) -> None:
    await session.execute(delete(Worker).where(Worker.id == worker_id))


async def orphaned_executions(
    session: AsyncSession, cutoff: datetime, alive: str
) -> list[tuple[str, str | None]]:
    """(execution id, owner id) of running executions whose owner is unknown (rows from
    before owners), has no worker row (it shut down, or was deleted as dead), or last
    heartbeated before `cutoff` - never those of `alive`, the worker asking: it is running
    them (its heartbeat may merely be late, after a stalled loop or a suspended host)."""
    rows = await session.execute(
        select(WorkflowExecution.id, WorkflowExecution.owner_id)
        .outerjoin(Worker, Worker.id == WorkflowExecution.owner_id)
        .where(
            WorkflowExecution.status == RUNNING,
            or_(WorkflowExecution.owner_id.is_(None), WorkflowExecution.owner_id != alive),
            or_(
                WorkflowExecution.owner_id.is_(None),
                Worker.id.is_(None),
                Worker.heartbeat_at < cutoff,
            ),
        )
    )
    return [(execution_id, owner_id) for execution_id, owner_id in rows]


async def delete_dead(
    session: AsyncSession, cutoff: datetime, forget_before: datetime, alive: str
) -> int:
    """Delete the rows of workers dead since `cutoff` that own no running execution any
    more (all recovered), and of any dead since `forget_before` (their executions, if one
    could still not be closed, count as ownerless then), so the table does not grow."""
    still_owns = exists().where(
        WorkflowExecution.owner_id == Worker.id, WorkflowExecution.status == RUNNING
    )
    result = await session.execute(
        delete(Worker)
        .where(
            Worker.id != alive,
            Worker.heartbeat_at < cutoff,
            or_(~still_owns, Worker.heartbeat_at < forget_before),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
