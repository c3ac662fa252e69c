"""/api/v1/analytics: usage read from the rollups (users: their own; admins: everyone's, or
one user's with `user_id`). `format=csv` downloads the same figures with a header row."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from chatter.api.deps import ContainerDep, CorrelationId, CurrentUser, SessionDep
from chatter.api.schemas.analytics import (
    ConversationAnalyticsOut,
    SummaryOut,
    UsageOut,
    UsagePointOut,
)
from chatter.api.schemas.common import DATABASE_RESPONSES, error_responses

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"], responses=DATABASE_RESPONSES)

Start = Annotated[datetime | None, Query(description="Inclusive; ISO 8601 (naive times are UTC).")]
End = Annotated[datetime | None, Query(description="Exclusive; default now.")]
UserFilter = Annotated[str | None, Query(max_length=26, description="Admins: one user's figures.")]
Format = Annotated[Literal["json", "csv"], Query(description="`csv`: a download.")]
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


@router.get(
    "/summary",
    response_model=SummaryOut,
    responses={**CSV_RESPONSE, **error_responses(401, 403, 422)},
)
async def summary(
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    start: Start = None,
    end: End = None,
    user_id: UserFilter = None,
    format: Format = "json",
) -> SummaryOut | Response:
    figures = await container.analytics.summary(
        session=session, user=user, start=start, end=end, user_id=user_id
    )
    out = SummaryOut.model_validate(figures)
    if format == "csv":
        row = out.model_dump(
            mode="json", exclude={"top_models", "top_conversations", "top_users", "costs"}
        )
        return _csv("summary", list(row), [row])
    return out


@router.get(
    "/usage",
    response_model=UsageOut,
    responses={**CSV_RESPONSE, **error_responses(401, 403, 422)},
)
async def usage(
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    start: Annotated[
        datetime | None, Query(description="Inclusive; default 24 h before `end`.")
    ] = None,
    end: End = None,
    granularity: Annotated[
        str, Query(max_length=16, description="minute (≤ 48 h), hour (≤ 93 days) or day.")
    ] = "hour",
    group_by: Annotated[
        str | None,
        Query(max_length=100, description="Comma-separated: provider, model, user, workflow."),
    ] = None,
    user_id: UserFilter = None,
    format: Format = "json",
) -> UsageOut | Response:
    keys = [key.strip() for key in (group_by or "").split(",") if key.strip()]
    series = await container.analytics.usage(
        session=session,
        user=user,
        start=start,
        end=end,
        granularity=granularity,
        group_by=keys,
        user_id=user_id,
    )
    out = UsageOut.model_validate(series)
    if format == "csv":
        rows = [point.model_dump(mode="json") for point in out.points]
        keep = ["bucket", *[("user_id" if k == "user" else k) for k in out.group_by]]
        columns = keep + [name for name in UsagePointOut.model_fields if name not in _GROUPS]
        return _csv("usage", columns, rows)
    return out


@router.get("/conversations/{conversation_id}", responses=error_responses(401, 404))
async def conversation(
    conversation_id: str,
    user: CurrentUser,
    container: ContainerDep,
    session: SessionDep,
    correlation_id: CorrelationId,
) -> ConversationAnalyticsOut:
    figures = await container.analytics.conversation(
        session=session, user=user, conversation_id=conversation_id, correlation_id=correlation_id
    )
    return ConversationAnalyticsOut.model_validate(figures)


_GROUPS = {"bucket", "provider", "model", "user_id", "workflow"}


def _cell(value: Any) -> Any:
    """Model and provider names come from users: a cell a spreadsheet would run as a
    formula is written as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(name: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows([{name: _cell(value) for name, value in row.items()} for row in rows])
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="chatter-{name}.csv"'},
    )
