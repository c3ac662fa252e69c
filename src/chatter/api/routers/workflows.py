"""/api/v1/workflows: node types, templates and the user's definitions (owner-scoped:
another user's definition is a 404 on every route)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from starlette.convertors import StringConvertor, register_url_convertor

from chatter.api.deps import ContainerDep, CorrelationId, CurrentUser, SessionDep
from chatter.api.input_limits import PageLimit
from chatter.api.schemas.common import DATABASE_RESPONSES, PageOut, error_responses
from chatter.api.schemas.workflows import (
    DefinitionOut,
    NodeTypeOut,
    ProblemOut,
    TemplateOut,
    ValidationOut,
    WorkflowDefinitionIn,
)
from chatter.services.pagination import CURSOR_PATTERN
from chatter.services.workflow_definitions import StoredDefinition
from chatter.workflows.definition import NODE_TYPES, WorkflowDefinition, node_type_schemas


class IdConvertor(StringConvertor):
    """Path segments that can be one of our ids (ULIDs), so `/definitions/validate` is not
    also `/definitions/{definition_id}` (its Allow header would list GET, PUT, DELETE)."""

    regex = "[0-9A-HJKMNP-TV-Z]{26}"


# Starlette's convertor table is process-wide; registering the same class again is harmless.
register_url_convertor("chatter_id", IdConvertor())

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], responses=DATABASE_RESPONSES)

Limit = PageLimit
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        json_schema_extra={"pattern": CURSOR_PATTERN},
        description="`next_cursor` of the last page. One this server did not issue is a 400.",
    ),
]
DefinitionId = Annotated[
    str, Path(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$", description="A definition id (ULID).")
]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _definition(body: WorkflowDefinitionIn) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(body.model_dump())


def definition_out(stored: StoredDefinition) -> DefinitionOut:
    row = stored.row
    return DefinitionOut(
        id=row.id,
        version=stored.version,
        current_version=row.current_version,
        deleted=row.deleted_at is not None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        definition=WorkflowDefinition.model_validate(stored.body),
    )


@router.get("/node-types", responses=error_responses(401))
async def node_types(user: CurrentUser) -> list[NodeTypeOut]:
    """Each node type with the JSON schema its `config` must match."""
    schemas = node_type_schemas()
    return [
        NodeTypeOut(
            type=name, description=(model.__doc__ or "").strip(), config_schema=schemas[name]
        )
        for name, model in NODE_TYPES.items()
    ]


@router.get("/templates", responses=error_responses(401))
async def templates(user: CurrentUser, container: ContainerDep) -> list[TemplateOut]:
    """The built-in workflows, as definitions (chat's `workflow` takes their names)."""
    return [
        TemplateOut(name=name, description=definition.description, definition=definition)
        for name, definition in sorted(container.executor.templates().items())
    ]


@router.post("/definitions/validate", responses=error_responses(401, 422))
async def validate_definition(
    body: WorkflowDefinitionIn, user: CurrentUser, container: ContainerDep
) -> ValidationOut:
    """Every problem of a definition, each with its location, without saving it."""
    problems = await container.definitions.problems(_definition(body))
    return ValidationOut(valid=not problems, problems=[ProblemOut(**p.to_json()) for p in problems])


@router.post(
    "/definitions", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 422)
)
async def create_definition(
    body: WorkflowDefinitionIn, user: CurrentUser, container: ContainerDep, session: SessionDep
) -> DefinitionOut:
    stored = await container.definitions.create(
        session=session, user=user, definition=_definition(body)
    )
    return definition_out(stored)


@router.get("/definitions", responses=error_responses(400, 401, 422))
async def list_definitions(
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> PageOut[DefinitionOut]:
    page = await container.definitions.listing(
        session=session, user=user, limit=limit, cursor=cursor
    )
    items = [definition_out(stored) for stored in page.items]
    return PageOut[DefinitionOut](items=items, next_cursor=page.next_cursor)


@router.get("/definitions/{definition_id:chatter_id}", responses=error_responses(401, 404, 422))
async def get_definition(
    definition_id: DefinitionId,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> DefinitionOut:
    stored = await container.definitions.get(
        session=session, user=user, definition_id=definition_id, correlation_id=correlation_id
    )
    return definition_out(stored)


@router.put("/definitions/{definition_id:chatter_id}", responses=error_responses(401, 404, 422))
async def update_definition(
    definition_id: DefinitionId,
    body: WorkflowDefinitionIn,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> DefinitionOut:
    """Store the body as the definition's next version (earlier versions stay readable)."""
    stored = await container.definitions.update(
        session=session,
        user=user,
        definition_id=definition_id,
        definition=_definition(body),
        correlation_id=correlation_id,
    )
    return definition_out(stored)


@router.delete(
    "/definitions/{definition_id:chatter_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422),
)
async def delete_definition(
    definition_id: DefinitionId,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> Response:
    """Soft delete: it can no longer run or change; its versions stay readable."""
    await container.definitions.delete(
        session=session, user=user, definition_id=definition_id, correlation_id=correlation_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/definitions/{definition_id:chatter_id}/versions/{version}",
    responses=error_responses(401, 404, 422),
)
async def get_definition_version(
    definition_id: DefinitionId,
    version: Version,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> DefinitionOut:
    """One version, also after later updates or a delete (executions refer to it)."""
    stored = await container.definitions.version(
        session=session,
        user=user,
        definition_id=definition_id,
        version=version,
        correlation_id=correlation_id,
    )
    return definition_out(stored)
