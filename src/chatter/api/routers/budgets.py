"""Spend budgets: admins set and read any user's (`/api/v1/admin/users/{id}/budget`,
`.../usage`); every user reads their own spend at `/api/v1/auth/me/usage`."""

from __future__ import annotations

from fastapi import APIRouter

from chatter.api.deps import AdminUser, ContainerDep, CurrentUser, SessionDep
from chatter.api.schemas.budgets import BudgetIn, BudgetOut, UsageReportOut
from chatter.api.schemas.common import DATABASE_RESPONSES, error_responses
from chatter.domain.enums import UserRole
from chatter.errors import Forbidden
from chatter.storage.models import User

router = APIRouter(prefix="/api/v1", tags=["budgets"], responses=DATABASE_RESPONSES)


def _require_admin(user: User) -> None:
    # Before any lookup: a non-admin never learns whether the user exists.
    if user.role != UserRole.ADMIN.value:
        raise Forbidden("Only admins may read or set other users' budgets.")


@router.put("/admin/users/{user_id}/budget", responses=error_responses(401, 403, 404, 422))
async def set_budget(
    user_id: str, body: BudgetIn, user: AdminUser, container: ContainerDep, session: SessionDep
) -> BudgetOut:
    """Set (replace) a user's spend budget. Admins only. Turns already admitted keep
    their reservations; the new limits apply from the next admission."""
    _require_admin(user)
    await container.budgets.set_budget(session=session, user_id=user_id, limits=body.limits())
    report = await container.budgets.usage(session=session, user_id=user_id)
    return BudgetOut.of(user_id, report.limits, report.updated_at)


@router.get("/admin/users/{user_id}/budget", responses=error_responses(401, 403, 404))
async def get_budget(
    user_id: str, user: AdminUser, container: ContainerDep, session: SessionDep
) -> BudgetOut:
    """A user's budget (every limit null: none set). Admins only."""
    _require_admin(user)
    report = await container.budgets.usage(session=session, user_id=user_id)
    return BudgetOut.of(user_id, report.limits, report.updated_at)


@router.get("/admin/users/{user_id}/usage", responses=error_responses(401, 403, 404))
async def get_user_usage(
    user_id: str, user: AdminUser, container: ContainerDep, session: SessionDep
) -> UsageReportOut:
    """A user's budget and spend today and this month (UTC). Admins only."""
    _require_admin(user)
    return UsageReportOut.of(await container.budgets.usage(session=session, user_id=user_id))


@router.get("/auth/me/usage", responses=error_responses(401))
async def my_usage(
    user: CurrentUser, container: ContainerDep, session: SessionDep
) -> UsageReportOut:
    """Your budget and your spend today and this month (UTC): spent (finished turns, from
    the analytics rollups), reserved by your turns in flight, and what remains."""
    return UsageReportOut.of(await container.budgets.usage(session=session, user_id=user.id))
