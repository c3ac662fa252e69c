"""/api/v1/admin: accounts and API keys, for admins only (anyone else: 403, on record as
`access_denied`). See docs/security.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from chatter.api.deps import AdminUser, ContainerDep, CorrelationId, SessionDep
from chatter.api.schemas.admin import RoleIn
from chatter.api.schemas.auth import ApiKeyOut, UserOut
from chatter.api.schemas.common import DATABASE_RESPONSES, PageOut, error_responses
from chatter.domain.enums import UserRole
from chatter.services.pagination import CURSOR_PATTERN
from chatter.services.user_admin import UserFilter

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=DATABASE_RESPONSES)

Limit = Annotated[int, Query(ge=1, le=100, description="Page size, at most 100.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        json_schema_extra={"pattern": CURSOR_PATTERN},
        description="`next_cursor` of the last page. One this server did not issue is a 400.",
    ),
]


@router.get("/users", responses=error_responses(400, 401, 403, 422))
async def list_users(
    admin: AdminUser,
    container: ContainerDep,
    session: SessionDep,
    limit: Limit = 20,
    cursor: Cursor = None,
    email: Annotated[
        str | None, Query(max_length=320, description="Only emails containing this text.")
    ] = None,
    role: UserRole | None = None,
    active: Annotated[bool | None, Query(description="Only active (or inactive) users.")] = None,
) -> PageOut[UserOut]:
    """Every user, newest first."""
    criteria = UserFilter(email_contains=email, role=role, active=active)
    page = await container.user_admin.users(
        session=session, criteria=criteria, limit=limit, cursor=cursor
    )
    items = [UserOut.model_validate(user) for user in page.items]
    return PageOut[UserOut](items=items, next_cursor=page.next_cursor)


@router.get("/users/{user_id}", responses=error_responses(401, 403, 404))
async def get_user(
    user_id: str, admin: AdminUser, container: ContainerDep, session: SessionDep
) -> UserOut:
    return UserOut.model_validate(await container.user_admin.get(session=session, user_id=user_id))


@router.get("/users/{user_id}/api-keys", responses=error_responses(401, 403, 404))
async def list_user_api_keys(
    user_id: str, admin: AdminUser, container: ContainerDep, session: SessionDep
) -> list[ApiKeyOut]:
    keys = await container.user_admin.api_keys(session=session, user_id=user_id)
    return [ApiKeyOut.model_validate(key) for key in keys]


@router.post("/users/{user_id}/deactivate", responses=error_responses(401, 403, 404, 409))
async def deactivate_user(
    user_id: str,
    admin: AdminUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> UserOut:
    """Every session of the user ends at once and their API keys are refused while they are
    inactive. 409 `cannot_deactivate_self`, or `last_admin` for the last active admin."""
    user = await container.user_admin.set_active(
        session=session, admin=admin, user_id=user_id, active=False, correlation_id=correlation_id
    )
    return UserOut.model_validate(user)


@router.post("/users/{user_id}/reactivate", responses=error_responses(401, 403, 404))
async def reactivate_user(
    user_id: str,
    admin: AdminUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> UserOut:
    """The user may log in again; their API keys (unless revoked) work again."""
    user = await container.user_admin.set_active(
        session=session, admin=admin, user_id=user_id, active=True, correlation_id=correlation_id
    )
    return UserOut.model_validate(user)


@router.put("/users/{user_id}/role", responses=error_responses(401, 403, 404, 409, 422))
async def set_user_role(
    user_id: str,
    body: RoleIn,
    admin: AdminUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> UserOut:
    """409 `last_admin` when demoting the last active admin."""
    user = await container.user_admin.set_role(
        session=session, admin=admin, user_id=user_id, role=body.role, correlation_id=correlation_id
    )
    return UserOut.model_validate(user)


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404),
)
async def revoke_any_api_key(
    key_id: str,
    admin: AdminUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> Response:
    """Revoke anyone's API key; revoking a revoked key is a no-op."""
    await container.user_admin.revoke_api_key(
        session=session, key_id=key_id, correlation_id=correlation_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
