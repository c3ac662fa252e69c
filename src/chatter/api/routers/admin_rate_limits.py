"""/api/v1/admin/users/{user_id}/rate-limits: admins read and set a user's rate limits."""

from __future__ import annotations

from fastapi import APIRouter

from chatter.api.deps import AdminUser, ContainerDep, SessionDep
from chatter.api.schemas.common import DATABASE_RESPONSES, error_responses
from chatter.api.schemas.rate_limits import RateLimitsIn, RateLimitsOut
from chatter.services.rate_limits import UserRateLimits

router = APIRouter(prefix="/api/v1/admin/users", tags=["admin"], responses=DATABASE_RESPONSES)


def _out(limits: UserRateLimits) -> RateLimitsOut:
    return RateLimitsOut(
        user_id=limits.user_id,
        requests_per_minute=limits.requests_per_minute,
        tokens_per_minute=limits.tokens_per_minute,
        requests_per_minute_override=limits.requests_per_minute_override,
        tokens_per_minute_override=limits.tokens_per_minute_override,
    )


@router.get("/{user_id}/rate-limits", responses=error_responses(401, 403, 404))
async def get_rate_limits(
    user_id: str, user: AdminUser, container: ContainerDep, session: SessionDep
) -> RateLimitsOut:
    """The user's rate limits in force and the admin's overrides (admins only)."""
    limits = await container.rate_limits.user_limits(session=session, admin=user, user_id=user_id)
    return _out(limits)


@router.put("/{user_id}/rate-limits", responses=error_responses(401, 403, 404, 422))
async def set_rate_limits(
    user_id: str,
    body: RateLimitsIn,
    user: AdminUser,
    container: ContainerDep,
    session: SessionDep,
) -> RateLimitsOut:
    """Replace the user's overrides (null: the server's default), in force from the user's
    next request on every worker (admins only)."""
    limits = await container.rate_limits.set_user_limits(
        session=session,
        admin=user,
        user_id=user_id,
        requests_per_minute=body.requests_per_minute,
        tokens_per_minute=body.tokens_per_minute,
    )
    return _out(limits)
