"""`chatter analytics check|rebuild` as an operator runs them (see test_cli.py for why these
tests are synchronous and use their own SQLite files)."""

from __future__ import annotations

import asyncio

from sqlalchemy import update
from test_cli import database_file, invoke, upgrade  # noqa: F401 - the fixture

from chatter.storage.db import create_engine
from chatter.storage.rollup_tables import usage_rollups
from conftest import make_settings, running_app

TOOL_TURN = {"message": "what is 6*7?", "workflow": "chat_with_tools"}


def chat_turns(url: str) -> int:
    async def _turns() -> int:
        settings = make_settings(url, llm={"demo_chunk_delay_s": 0})
        async with running_app(settings) as (_, client):
            register = {"email": "ops@example.com", "password": "operator password 1"}
            await client.post("/api/v1/auth/register", json=register)
            login = await client.post("/api/v1/auth/login", json=register)
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            for body in ({"message": "hello"}, TOOL_TURN, {"message": "again"}):
                response = await client.post("/api/v1/chat", json=body, headers=headers)
                assert response.status_code == 200, response.text
            summary = await client.get("/api/v1/analytics/summary", headers=headers)
            return int(summary.json()["total_tokens"])

    return asyncio.run(_turns())


def tamper(url: str) -> None:
    async def _tamper() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    update(usage_rollups)
                    .where(usage_rollups.c.granularity == "hour")
                    .values(total_tokens=usage_rollups.c.total_tokens + 7)
                )
        finally:
            await engine.dispose()

    asyncio.run(_tamper())


def test_check_finds_a_tampered_rollup_and_rebuild_restores_it(database_file: str) -> None:  # noqa: F811
    upgrade(database_file)
    total = chat_turns(database_file)
    assert total > 0

    clean = invoke("analytics", "check")
    assert clean.exit_code == 0, clean.output
    assert "match" in clean.output

    tamper(database_file)
    dirty = invoke("analytics", "check", "--since", "2000-01-01")
    assert dirty.exit_code == 1, dirty.output
    assert "total_tokens" in dirty.output
    assert "differences" in dirty.output

    rebuilt = invoke("analytics", "rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "Rolled up 3 executions" in rebuilt.output
    assert invoke("analytics", "check").exit_code == 0


def test_check_refuses_a_bad_date(database_file: str) -> None:  # noqa: F811
    upgrade(database_file)
    result = invoke("analytics", "check", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "not a date" in result.output
