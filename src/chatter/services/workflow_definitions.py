"""Workflow definitions: validate, store as immutable versions, read back - owner-scoped.

Another user's definition is a 404 on every route (no existence leak)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.ids import is_valid_id
from chatter.errors import BadRequest, Conflict, InvalidWorkflow, NotFound
from chatter.events.publisher import EventPublisher
from chatter.providers.registry import ProviderRegistry
from chatter.services.pagination import Page, decode_cursor, encode_cursor
from chatter.services.security_events import access_denied
from chatter.storage import definitions
from chatter.storage.models import User, WorkflowDefinitionRow
from chatter.workflows.compiler import CompiledWorkflow, compile_definition
from chatter.workflows.definition import WorkflowDefinition
from chatter.workflows.executor import WorkflowExecutor
from chatter.workflows.tools.catalog import ToolCatalog
from chatter.workflows.validation import Problem, validate


@dataclass(frozen=True)
class StoredDefinition:
    row: WorkflowDefinitionRow
    version: int
    body: dict[str, Any]


@dataclass(frozen=True)
class RunnableDefinition:
    compiled: CompiledWorkflow
    definition_id: str
    version: int


class DefinitionService:
    def __init__(
        self,
        registry: ProviderRegistry,
        tools: ToolCatalog,
        executor: WorkflowExecutor,
        events: EventPublisher,
    ) -> None:
        self._events = events
        self._registry = registry
        self._tools = tools
        self._executor = executor

    async def problems(self, definition: WorkflowDefinition) -> list[Problem]:
        names = await self._tools.names()
        return validate(definition, check_model=self._registry.resolve, tool_names=names)

    async def _checked(self, definition: WorkflowDefinition) -> dict[str, Any]:
        problems = await self.problems(definition)
        if not problems:
            try:  # what validation does not foresee, the compiler refuses now, not at run time
                compile_definition(definition)
            except ValueError as exc:
                problems = [Problem("nodes", "invalid_graph", str(exc))]
        if problems:
            raise InvalidWorkflow(
                f"The workflow definition has {len(problems)} problem(s).",
                details=[problem.to_json() for problem in problems],
            )
        return definition.model_dump(mode="json")

    async def create(
        self, *, session: AsyncSession, user: User, definition: WorkflowDefinition
    ) -> StoredDefinition:
        body = await self._checked(definition)
        row = await definitions.create(
            session, user.id, definition.name, definition.description, body
        )
        await session.commit()
        return StoredDefinition(row, 1, body)

    async def listing(
        self, *, session: AsyncSession, user: User, limit: int, cursor: str | None
    ) -> Page[StoredDefinition]:
        after = _cursor(cursor) if cursor is not None else None
        rows = (await session.execute(definitions.listed(user.id, after).limit(limit + 1))).all()
        await session.commit()
        items = [StoredDefinition(row, version.version, version.body) for row, version in rows]
        next_cursor = None
        if len(items) > limit:
            items = items[:limit]
            last = items[-1].row
            next_cursor = encode_cursor([last.updated_at.isoformat(), last.id])
        return Page(items=items, next_cursor=next_cursor)

    async def get(
        self, *, session: AsyncSession, user: User, definition_id: str, correlation_id: str
    ) -> StoredDefinition:
        row = await self._owned(session, user, definition_id, correlation_id)
        stored = await self._version(session, row, row.current_version)
        await session.commit()
        return stored

    async def version(
        self,
        *,
        session: AsyncSession,
        user: User,
        definition_id: str,
        version: int,
        correlation_id: str,
    ) -> StoredDefinition:
        """Any version of the user's definition, also after an update or a delete (the
        executions that ran it still refer to it)."""
        row = await self._owned(session, user, definition_id, correlation_id, deleted=True)
        stored = await self._version(session, row, version)
        await session.commit()
        return stored

    async def update(
        self,
        *,
        session: AsyncSession,
        user: User,
        definition_id: str,
        definition: WorkflowDefinition,
        correlation_id: str,
    ) -> StoredDefinition:
        row = await self._owned(session, user, definition_id, correlation_id)
        body = await self._checked(definition)
        updated = await definitions.add_version(
            session, row, definition.name, definition.description, body
        )
        if updated is None:
            raise NotFound("Workflow definition not found.", details={"id": definition_id})
        await session.commit()
        return StoredDefinition(updated, updated.current_version, body)

    async def delete(
        self, *, session: AsyncSession, user: User, definition_id: str, correlation_id: str
    ) -> None:
        row = await self._owned(session, user, definition_id, correlation_id)
        if not await definitions.soft_delete(session, row.id):
            raise NotFound("Workflow definition not found.", details={"id": definition_id})
        await session.commit()

    async def for_run(
        self, *, session: AsyncSession, user: User, definition_id: str, correlation_id: str
    ) -> RunnableDefinition:
        """The current version, compiled (once per process and version). No commit: the
        caller's read ends with its own."""
        row = await self._owned(session, user, definition_id, correlation_id)
        found = await definitions.version(session, row.id, row.current_version)
        if found is None:
            raise Conflict("The definition's current version is missing.")
        body = WorkflowDefinition.model_validate(found.body).model_dump_json()
        compiled = self._executor.compiled(row.id, found.version, body)
        return RunnableDefinition(compiled, row.id, found.version)

    async def _owned(
        self,
        session: AsyncSession,
        user: User,
        definition_id: str,
        correlation_id: str,
        *,
        deleted: bool = False,
    ) -> WorkflowDefinitionRow:
        """The user's definition, else 404 (no existence leak); someone else's is on record
        as `access_denied` (admins included: definitions are private)."""
        row = None
        if is_valid_id(definition_id):
            row = await definitions.owned(session, user.id, definition_id, deleted=deleted)
        if row is not None:
            return row
        other = (
            await session.get(WorkflowDefinitionRow, definition_id)
            if is_valid_id(definition_id)
            else None
        )
        if other is not None and other.user_id != user.id:
            denied = access_denied(correlation_id, user.id, "workflow_definition", other.id)
            await self._events.commit(session, [denied])
        else:
            await session.commit()
        raise NotFound("Workflow definition not found.", details={"id": definition_id})

    async def _version(
        self, session: AsyncSession, row: WorkflowDefinitionRow, number: int
    ) -> StoredDefinition:
        found = await definitions.version(session, row.id, number)
        if found is None:
            await session.commit()
            raise NotFound(
                "Workflow definition version not found.",
                details={"id": row.id, "version": number},
            )
        return StoredDefinition(row, found.version, found.body)


def _cursor(cursor: str) -> tuple[datetime, str]:
    updated_raw, last_id = decode_cursor(cursor, 2)
    invalid = BadRequest("Invalid pagination cursor.", details={"cursor": cursor})
    if not isinstance(updated_raw, str) or not isinstance(last_id, str) or not is_valid_id(last_id):
        raise invalid
    try:
        updated_at = datetime.fromisoformat(updated_raw)
    except ValueError as exc:
        raise invalid from exc
    if updated_at.tzinfo is None:
        raise invalid
    return updated_at, last_id
