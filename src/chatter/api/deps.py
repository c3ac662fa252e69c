"""FastAPI dependencies: the container, a session per request, the current user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.container import Container
from chatter.domain.enums import UserRole
from chatter.errors import Forbidden, Unauthorized
from chatter.services.security_events import access_denied
from chatter.storage.models import User

bearer = HTTPBearer(auto_error=False, description="An access token or an API key.")


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_session(container: ContainerDep) -> AsyncIterator[AsyncSession]:
    async with container.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_correlation_id(request: Request) -> str:
    value: str = request.state.correlation_id
    return value


CorrelationId = Annotated[str, Depends(get_correlation_id)]


async def get_current_user(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    # No bearer at all is an anonymous request, not a refused token: no event for it.
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token: send 'Authorization: Bearer <token or key>'.")
    user = await container.auth.authenticate(
        session=session, bearer=credentials.credentials, correlation_id=correlation_id
    )
    # End the read transaction now: on SQLite it holds the write lock until it ends.
    await session.commit()
    # For the request's log line (written by the telemetry middleware, after the response).
    request.state.user_id = user.id
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin(
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    request: Request,
    correlation_id: CorrelationId,
) -> User:
    """The current user if an admin; otherwise 403, on record as `access_denied`."""
    if user.role != UserRole.ADMIN.value:
        denied = access_denied(correlation_id, user.id, "admin_api", request.url.path)
        await container.publisher.commit(session, [denied])
        raise Forbidden("Only admins may use the admin API.")
    return user


AdminUser = Annotated[User, Depends(get_admin)]
