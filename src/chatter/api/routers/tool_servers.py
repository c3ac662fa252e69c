"""/api/v1/tool-servers: MCP servers whose tools workflows may call (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from chatter.api.deps import AdminUser, ContainerDep, CorrelationId, SessionDep
from chatter.api.schemas.common import DATABASE_RESPONSES, error_responses
from chatter.api.schemas.tool_servers import ToolServerIn, ToolServerOut
from chatter.services.tool_servers import ToolServerDraft, ToolServerView
from chatter.workflows.tools.naming import MAX_SERVER_NAME

router = APIRouter(prefix="/api/v1/tool-servers", tags=["tools"], responses=DATABASE_RESPONSES)
ServerName = Annotated[str, Path(max_length=MAX_SERVER_NAME, pattern=r"^[a-z0-9_-]+$")]


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 403, 409, 422))
async def register_tool_server(
    body: ToolServerIn,
    user: AdminUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> ToolServerOut:
    """Register an MCP server. It is registered even if it does not answer now (`status`
    says so); its tools are usable once it does. A stdio command not in
    CHATTER_TOOLS__STDIO_ALLOWED_COMMANDS is a 422 `stdio_command_not_allowed`."""
    draft = ToolServerDraft(
        name=body.name,
        transport=body.transport,
        url=body.url,
        command=body.command,
        args=list(body.args),
        headers=dict(body.headers),
        timeout_s=body.timeout_s,
    )
    view = await container.tool_servers.register(
        session=session, user=user, draft=draft, correlation_id=correlation_id
    )
    return _out(view)


@router.get("", responses=error_responses(401, 403))
async def list_tool_servers(
    user: AdminUser, container: ContainerDep, session: SessionDep
) -> list[ToolServerOut]:
    """Every registered server with its tools and status."""
    views = await container.tool_servers.list(session=session, user=user)
    return [_out(view) for view in views]


@router.delete(
    "/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 403, 404, 422)
)
async def delete_tool_server(
    name: ServerName,
    user: AdminUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> Response:
    """Delete a server: its tools disappear (on other workers within
    CHATTER_TOOLS__SERVERS_REFRESH_S)."""
    await container.tool_servers.delete(
        session=session, user=user, name=name, correlation_id=correlation_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _out(view: ToolServerView) -> ToolServerOut:
    record, state = view.record, view.status
    return ToolServerOut(
        name=record.name,
        transport="stdio" if record.transport == "stdio" else "streamable_http",
        url=record.url,
        command=record.command,
        args=list(record.args or []),
        header_names=sorted(record.headers or {}),
        timeout_s=record.timeout_s,
        created_at=record.created_at,
        status=state.status,
        tools=state.tools,
        error=state.error,
        checked_at=state.checked_at,
    )
