"""Stats survive a restart: a new app on the same database answers the same figures, and
the Python API falls back to the database for a window the new process did not see."""

from __future__ import annotations

from typing import Any

import httpx
from monitoring_support import container_of

from chatter.domain.ids import new_id
from chatter.domain.monitoring import StatsWindow
from chatter.settings import Settings
from conftest import running_app

PASSWORD = "correct horse battery"


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _figures(stats: dict[str, Any]) -> tuple[object, ...]:
    return (
        stats["counts_by_status"],
        stats["by_provider"],
        stats["by_model"],
        stats["by_workflow"],
        stats["duration_ms"],
        [op["execution_id"] for op in stats["workflow_ops"]],
    )


async def test_stats_survive_a_restart(settings: Settings) -> None:
    email = f"restart-{new_id().lower()}@example.com"
    async with running_app(settings) as (_, client):
        registered = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        user_id = registered.json()["id"]
        headers = await _login(client, email)
        execution_ids = []
        for message in ("first", "what is 2+3?"):
            turn = await client.post(
                "/api/v1/chat",
                json={"message": message, "workflow": "chat_with_tools"},
                headers=headers,
            )
            assert turn.status_code == 200, turn.text
            execution_ids.append(turn.json()["execution"]["id"])
        before = (await client.get("/api/v1/monitoring/stats", headers=headers)).json()
    assert before["counts_by_status"] == {"completed": 2}
    assert before["by_provider"][0]["total_tokens"] > 0
    async with running_app(settings) as (app, client):
        headers = await _login(client, email)
        after = (await client.get("/api/v1/monitoring/stats", headers=headers)).json()
        assert _figures(after) == _figures(before)
        listed = await client.get("/api/v1/monitoring/workflows", headers=headers)
        assert [i["execution_id"] for i in listed.json()["items"]] == execution_ids[::-1]
        monitoring = container_of(app).monitoring
        # The new process saw none of it live; "auto" reads the database for the window.
        assert monitoring.tracker.get(execution_ids[0]) is None
        stats = await monitoring.get_workflow_stats(window=StatsWindow.HOUR_1, user_id=user_id)
        assert stats.source == "database"
        assert {m.execution_id for m in stats.workflow_ops} == set(execution_ids)
        assert stats.counts_by_status == {"completed": 2}
